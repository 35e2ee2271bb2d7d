#!/usr/bin/env bash
# Module size, composed size and reuse accuracy in both composition modes
# (tied, per-layer), and the tau sweep: the measurements behind
# docs/results.md "Compact modules". Reads MODA- and ST-trained models from a
# registry (scripts/acceptance.sh makes one) and writes one file per step
# into OUT; a step whose file exists is skipped, so an interrupted run
# resumes where it stopped.
#
#   bench/compact_modules.sh [BUILD_DIR]     (default: build)
#
# Environment (defaults in brackets):
#   REGISTRY  the registry                          [runs/registry-15ep]
#   OUT       output directory                      [runs/compact]
#   MODELS    "moda-name:st-name ..." compared in both modes (empty: none;
#             "moda-name:" compares with no ST model)
#             [resnet18-w0.5-moda:resnet18-w0.5-st mobilenet-w1-moda:mobilenet-w1-st]
#   SWEEP     "moda-name:mode ..." for the tau sweep (empty: none)
#             [vgg16-w0.5-moda:tied resnet18-w0.5-moda:per-layer]
#   TAUS      the sweep's thresholds                [0.1 0.5 0.8 0.9 0.95]
#   TASKS     reuse subsets: all or N (seeded)      [60]
#   SEED      seed of the subsets                   [1]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
moda=$build/moda
bench=$build/bench/bench_compose
registry=${REGISTRY:-runs/registry-15ep}
out=${OUT:-runs/compact}
models=${MODELS-resnet18-w0.5-moda:resnet18-w0.5-st mobilenet-w1-moda:mobilenet-w1-st}
sweep=${SWEEP-vgg16-w0.5-moda:tied resnet18-w0.5-moda:per-layer}
taus=${TAUS:-0.1 0.5 0.8 0.9 0.95}
tasks=${TASKS:-60}
seed=${SEED:-1}
[ -x "$moda" ] && [ -x "$bench" ] || { echo "compact_modules.sh: build $moda and $bench first" >&2; exit 2; }
mkdir -p "$out"
exec 9>"$out/.lock"
flock -n 9 || { echo "compact_modules.sh: another instance is running in $out" >&2; exit 1; }

say() { printf '%s  %s\n' "$(date -u +%FT%TZ)" "$*"; }

# step FILE COMMAND...: run COMMAND into FILE unless FILE exists (written
# atomically, so a killed step leaves nothing behind).
step() {
  local file=$1; shift
  [ -s "$file" ] && return 0
  say "$(basename "$file"): $*"
  "$@" > "$file.tmp" 2>&1 || { echo "compact_modules.sh: failed, see $file.tmp" >&2; exit 1; }
  mv "$file.tmp" "$file"
}

for pair in $models; do
  m=${pair%%:*} st=${pair#*:}
  for mode in tied per-layer; do
    step "$out/inspect-$m-$mode.txt" "$moda" inspect "$registry" "$m" --mode "$mode"
    step "$out/compose-$m-$mode.txt" "$bench" --registry "$registry" --model "$m" --mode "$mode" --frozen 1 --reps 10
    step "$out/reuse-$m-$mode.txt" "$moda" eval-reuse --registry "$registry" --model "$m" ${st:+--st-model "$st"} \
      --mode "$mode" --tasks "$tasks" --seed "$seed" --out "$out/reuse-$m-$mode"
  done
done
for s in $sweep; do
  m=${s%%:*} mode=${s#*:}
  for tau in $taus; do
    step "$out/sweep-$m-$mode-$tau-inspect.txt" "$moda" inspect "$registry" "$m" --mode "$mode" --tau "$tau"
    step "$out/sweep-$m-$mode-$tau-reuse.txt" "$moda" eval-reuse --registry "$registry" --model "$m" \
      --mode "$mode" --tau "$tau" --tasks "$tasks" --seed "$seed"
  done
done
say "done: $out"
