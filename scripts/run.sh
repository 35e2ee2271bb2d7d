#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (as root):
#   scripts/run.sh demo   install, build, and run the main job
#   scripts/run.sh test   install, build, and run every test, then again
#                         under AddressSanitizer + UndefinedBehaviorSanitizer
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
  # Train LeNet5 on Fashion-MNIST (Debian's dataset-fashion-mnist).
  rm -rf runs/demo
  build/moda train --arch lenet5 --epochs 10 --seed 1 --no-augment --out runs/demo
  build/moda eval --checkpoint runs/demo/checkpoint.safetensors
  ;;
test)
  scripts/install-deps.sh
  build build
  (cd build && ctest --output-on-failure -j "$jobs")
  build build-asan -DMODA_SANITIZE=ON
  # oneDNN's JIT code and OpenMP runtime are not instrumented; leak checks
  # stay on for our code.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs")
  ;;
*)
  echo "usage: scripts/run.sh demo|test" >&2
  exit 2
  ;;
esac
