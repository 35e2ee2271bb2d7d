#!/usr/bin/env bash
# Installs what the project needs on Debian 12 (as root), and nothing when
# it is all there already.
#
#   scripts/install-deps.sh           build the project and run it: compilers,
#                                     libraries, and the default data set
#   scripts/install-deps.sh --build   only what the build needs (image builds)
#   scripts/install-deps.sh --test    everything above, the container tools of
#                                     the deploy tests, headless Chromium for
#                                     the web page's test, promtool for the
#                                     metrics' lint, clang for the fuzz
#                                     targets, and the pinned Python
#                                     test tools in .venv
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
case "$mode" in
--build) mode=build ;;
--test) mode=test ;;
run) ;;
-h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
*) echo "usage: scripts/install-deps.sh [--build|--test]" >&2; exit 2 ;;
esac

# libdnnl-dev's CMake config looks for OpenCL (Debian builds oneDNN with its
# OpenCL GPU runtime), and ocl-icd-opencl-dev is only a Recommends of it.
packages=(
  build-essential cmake pkg-config ca-certificates curl
  libdnnl-dev ocl-icd-opencl-dev libcmocka-dev zlib1g-dev libjansson-dev libzstd-dev
  libmicrohttpd-dev libcurl4-openssl-dev libpng-dev libjpeg62-turbo-dev
)
[ "$mode" = build ] || packages+=(dataset-fashion-mnist)
# The deploy tests build and run images with podman, without a daemon, from a
# Debian root that mmdebstrap makes (tests/containers/); the web page's test
# drives Chromium.
if [ "$mode" = test ]; then
  packages+=(python3 python3-venv)
  packages+=(podman runc netavark aardvark-dns catatonit uidmap mmdebstrap)
  packages+=(chromium chromium-driver)
  # promtool, which lints /metrics (tests/metrics_promtool_test.sh).
  packages+=(prometheus)
  # The libFuzzer targets: Debian 12's clang 14, its fuzzer runtime and its OpenMP.
  packages+=(clang libclang-rt-14-dev libomp-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  log=$(mktemp)
  # dpkg's progress goes to a log, shown when something fails.
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } > "$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "install-deps.sh: apt-get failed" >&2
    exit 1
  fi
  rm -f "$log"
fi

[ "$mode" = test ] || exit 0

# Python test tools, pinned, in a virtualenv of their own.
req=scripts/requirements-test.txt
stamp=.venv/.requirements
if [ ! -x .venv/bin/python ] || ! cmp -s "$req" "$stamp"; then
  # Debian's interpreter (python3-venv above), whatever else is on PATH.
  rm -rf .venv
  /usr/bin/python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r "$req"
  cp "$req" "$stamp"
fi
