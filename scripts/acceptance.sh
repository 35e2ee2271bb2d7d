#!/usr/bin/env bash
# The long runs behind docs/results.md: each architecture trained the
# standard way (ST) and with MODA on Fashion-MNIST, then decomposed into one
# registry, inspected, and evaluated for reuse (composed MODA modules against
# the full MODA and ST models on every class subset).
#
#   scripts/acceptance.sh [BUILD_DIR]        (default: build)
#
# Every step resumes: run it again after an interruption and training
# continues from the last epoch's checkpoint, while finished steps (a
# complete run, a registry model newer than its checkpoint, a reuse table
# newer than its models) are skipped. One instance at a time (a lock in
# RUNS). On 2 cores, VGG16 at width 0.5 takes about 7 minutes per epoch and
# its reuse over all 1013 subsets an estimated 1.8 hours.
#
# Environment (defaults in brackets):
#   MODELS   "arch:width ..."         ["vgg16:0.5 mobilenet:1 resnet18:0.5"]
#   EPOCHS   training epochs          [15]
#   SEED     training seed            [1]
#   TASKS    reuse subsets: all or N  [all]
#   RUNS     output directory         [runs]
#   DEVICE   training and reuse device: cpu, cuda or auto          [cpu]
#   TRAIN_ARGS  extra `moda train` arguments, e.g. "--subset 100"   []
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
moda=$build/moda
models=${MODELS:-vgg16:0.5 mobilenet:1 resnet18:0.5}
epochs=${EPOCHS:-15}
seed=${SEED:-1}
tasks=${TASKS:-all}
runs=${RUNS:-runs}
device=${DEVICE:-cpu}
registry=$runs/registry-${epochs}ep
[ -x "$moda" ] || { echo "acceptance.sh: no $moda; build first (scripts/run.sh demo or cmake)" >&2; exit 2; }
mkdir -p "$runs"
exec 9>"$runs/.acceptance.lock"
flock -n 9 || { echo "acceptance.sh: another instance is running in $runs" >&2; exit 1; }

say() { printf '%s  %s\n' "$(date -u +%FT%TZ)" "$*"; }

# Epochs completed by the run in $1 (rows of its metrics.csv).
epochs_done() { [ -f "$1/metrics.csv" ] && echo $(($(wc -l < "$1/metrics.csv") - 1)) || echo 0; }

train() { # name arch width mode-args...
  local name=$1 arch=$2 width=$3; shift 3
  local dir=$runs/$name
  if [ "$(epochs_done "$dir")" -ge "$epochs" ]; then return; fi
  if [ -f "$dir/checkpoint.safetensors" ]; then
    say "$name: resuming at epoch $(($(epochs_done "$dir") + 1))/$epochs"
    "$moda" train --out "$dir" --resume --device "$device" >> "$runs/$name.log" 2>&1
  else
    say "$name: training $arch width $width, $epochs epochs, seed $seed"
    # shellcheck disable=SC2086 # TRAIN_ARGS is a list of words
    "$moda" train --arch "$arch" --width "$width" --epochs "$epochs" --seed "$seed" "$@" ${TRAIN_ARGS:-} \
      --device "$device" --out "$dir" > "$runs/$name.log" 2>&1
  fi
  tail -n 1 "$runs/$name.log"
}

decompose() { # name
  local name=$1 manifest=$registry/$1/manifest.json
  if [ -f "$manifest" ] && [ "$manifest" -nt "$runs/$name/checkpoint.safetensors" ]; then return; fi
  say "$name: decomposing into $registry"
  "$moda" decompose --checkpoint "$runs/$name/checkpoint.safetensors" --out "$registry" --name "$name" \
    > "$runs/decompose-$name.log" 2>&1
  "$moda" inspect "$registry" "$name" > "$runs/inspect-$name.txt"
}

reuse() { # moda-name st-name
  local out=$runs/reuse-$1
  if [ -f "$out/reuse.csv" ] && [ "$out/reuse.csv" -nt "$registry/$1/manifest.json" ] &&
     [ "$out/reuse.csv" -nt "$registry/$2/manifest.json" ]; then return; fi
  say "$1: reuse over $tasks subsets against $2"
  "$moda" eval-reuse --registry "$registry" --model "$1" --st-model "$2" --tasks "$tasks" --device "$device" \
    --out "$out" > "$runs/reuse-$1.txt" 2>&1
  tail -n 15 "$runs/reuse-$1.txt"
}

for m in $models; do
  arch=${m%%:*} width=${m#*:}
  base=$arch-w$width
  train "$base-st" "$arch" "$width"
  train "$base-moda" "$arch" "$width" --moda
  decompose "$base-st"
  decompose "$base-moda"
done
"$moda" inspect "$registry"
for m in $models; do
  arch=${m%%:*} width=${m#*:}
  reuse "$arch-w$width-moda" "$arch-w$width-st"
done
say "done: $registry, $runs/inspect-*.txt, $runs/reuse-*"
