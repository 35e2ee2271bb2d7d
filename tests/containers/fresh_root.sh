#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12 root: a container made from
# a clean minbase root gets the repository as committed (git archive, not
# the work tree), runs `scripts/run.sh test` there, then starts
# `scripts/run.sh demo` and classifies the example image through it.
#
#   tests/containers/fresh_root.sh [REV]     (default HEAD)
#
# Exit 0 when both pass, 77 when podman cannot run containers here.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
rev=${1:-HEAD}

containers_setup; rc=$?
[ $rc -eq 0 ] || exit $rc

work=$(mktemp -d)
name=moda-fresh-root-$$
trap 'podman rm -f "$name" >/dev/null 2>&1; rm -rf "$work"' EXIT
git -C "$root" archive --format=tar -o "$work/src.tar" "$rev" || { echo "fresh root: no revision $rev"; exit 1; }
echo "fresh root: $(git -C "$root" rev-parse --short "$rev") in $base_image"

# Inside: the test command (its own container checks skip: this is one),
# then the demo command in the background until it serves the example.
cat > "$work/inside.sh" <<'EOF'
set -euo pipefail
mkdir /src && tar -xf /src.tar -C /src && cd /src
MODA_CONTAINER_TESTS=0 scripts/run.sh test
scripts/run.sh demo > /tmp/demo.log 2>&1 &
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null http://127.0.0.1:8080/v2/health/ready 2>/dev/null && break
  sleep 0.2
done
answer=$(curl -fsS -X POST http://127.0.0.1:8080/v1/infer -H 'Content-Type: application/json' \
  --data-binary @examples/infer-ankle-boot.json) || { cat /tmp/demo.log; exit 1; }
echo "demo answered: $answer"
kill -TERM %1 && wait %1
grep -q '"class":"Ankle boot"' <<<"$answer"
EOF

start=$SECONDS
podman run --rm --name "$name" "${ca_run_args[@]}" \
  -v "$work/src.tar:/src.tar:ro" -v "$work/inside.sh:/inside.sh:ro" \
  "$base_image" bash /inside.sh
rc=$?
check "the README's test and demo commands pass on a fresh Debian 12 root ($((SECONDS - start)) s)" $rc
report "fresh root"
