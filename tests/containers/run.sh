#!/usr/bin/env bash
# The deploy checks of the test command that need containers, after the
# unit tests (which lint the deployment files: ctest deploy_lint): the
# README's commands on a fresh Debian 12 root, the CPU image, and
# compose.yaml.
#
#   tests/containers/run.sh [BUILD_DIR]     (default: build)
#
# A check that cannot run here (no podman, or podman cannot run containers)
# is skipped with its reason, except under CI=true, where it fails: CI's
# machines run containers. MODA_CONTAINER_TESTS=0 skips them all; the
# fresh-root check sets it for the test command it runs in its container.
set -uo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-$dir/../../build}" && pwd)

if [ "${MODA_CONTAINER_TESTS:-1}" = 0 ]; then
  echo "container checks: skipped (MODA_CONTAINER_TESTS=0)"
  exit 0
fi

passed=0 failed=0 skipped=0 summary=()
for t in fresh_root image_test compose_test; do
  echo "== $t"
  start=$SECONDS
  if [ "$t" = fresh_root ]; then "$dir/$t.sh"; else "$dir/$t.sh" "$build"; fi
  rc=$?
  took=$((SECONDS - start))
  if [ $rc -eq 77 ] && [ "${CI:-}" != true ]; then
    skipped=$((skipped + 1)) result=skipped
  elif [ $rc -eq 0 ]; then
    passed=$((passed + 1)) result=passed
  else
    failed=$((failed + 1)) result=FAILED
    [ $rc -eq 77 ] && echo "$t: skipped, and CI=true: CI's machines must run it"
  fi
  summary+=("$(printf '%-14s %-8s %4d s' "$t" "$result" "$took")")
done
# Images that rebuilds left untagged pile up on a machine that runs this
# often; a day's worth stay as build cache.
podman image prune -f --filter until=24h >/dev/null 2>&1 || true
printf '%s\n' "== container checks" "${summary[@]}"
echo "container checks: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
