#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (as root):
#   scripts/run.sh demo   install, build, and serve the bundled registry
#                         (moda-server on 127.0.0.1:8080, foreground)
#   scripts/run.sh test   install, build, and run every test, then again
#                         under AddressSanitizer + UndefinedBehaviorSanitizer,
#                         then the libFuzzer targets briefly (clang), then
#                         the deploy checks in containers: this test
#                         command and the demo on a fresh Debian 12 root, the
#                         Docker image, and compose.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

case "${1:-}" in
demo)
  scripts/install-deps.sh
  build build
  # Serve the bundled registry (models/: LeNet5 trained with MODA on
  # Fashion-MNIST) in the foreground until Ctrl-C or SIGTERM.
  cat <<'EOF'
moda-server on http://127.0.0.1:8080 (Ctrl-C stops it). From another shell:
  curl -s http://127.0.0.1:8080/v1/models
  curl -s -X POST http://127.0.0.1:8080/v1/compose -H 'Content-Type: application/json' \
       -d '{"model":"fmnist-lenet5","classes":["Sneaker","Bag","Ankle boot"]}'
  curl -s -X POST http://127.0.0.1:8080/v1/infer -H 'Content-Type: application/json' \
       --data-binary @examples/infer-ankle-boot.json
  curl -s -X POST --data-binary @examples/ankle-boot.u8 -H 'Content-Type: application/octet-stream' \
       'http://127.0.0.1:8080/v1/infer?model=fmnist-lenet5&classes=7,8,9&dtype=uint8&shape=1,1,28,28'
  curl -s http://127.0.0.1:8080/metrics
README.md ("Server") has more, including the Triton client.
EOF
  exec build/moda-server --registry models --port 8080
  ;;
test)
  scripts/install-deps.sh --test
  build build
  (cd build && ctest --output-on-failure -j "$jobs")
  build build-asan -DMODA_SANITIZE=ON
  # oneDNN's JIT code and OpenMP runtime are not instrumented; leak checks
  # stay on for our code.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs")
  # The libFuzzer targets (tests/fuzz/), built with clang, each run briefly
  # on its seeds; bench/run_fuzz.sh runs them for long.
  CC=clang build build-fuzz -DMODA_FUZZ=ON -DMODA_CUDA=OFF
  (cd build-fuzz && ctest --output-on-failure -j "$jobs" -L fuzz)
  tests/containers/run.sh build
  ;;
*)
  echo "usage: scripts/run.sh demo|test" >&2
  exit 2
  ;;
esac
