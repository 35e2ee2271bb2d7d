#!/usr/bin/env bash
# The replacement experiment (docs/results.md, "Module replacement"):
# MODA's calibrated replacement against CNNSplitter's on Fashion-MNIST.
#
#   bench/replacement/run.sh [BUILD_DIR]      (default: build)
#
# Strong models: VGG16 w0.5 and ResNet18 w0.5, MODA-trained on classes 0-4.
# Weak models: LeNet5, MODA-trained without augmentation on classes 5-9
# (relabelled 0-4) plus a mixed class t in 0..4 (label 5) that keeps 10% of
# its training images; kept twice, after epoch 1 (under-fitted) and after
# the last epoch (over-fitted). Each (strong, t, weak state) is replaced with
# `moda replace --optimizer sgd --lr 0.05 --epochs 5`, which also scores
# CNNSplitter's baseline; table.py turns the results into the table.
#
# It resumes where it stopped: finished trainings, models already in the
# registry and finished replacements are skipped, an interrupted training
# continues with `moda train --resume`. Each training (with its
# decomposition) and each replacement holds a lock while it runs, so runs
# of the script side by side share the work. Everything goes under $OUT.
# Exit status 3: some work was held by another run, or waits for a model.
#
# STRONG ("vgg16 resnet18") and MIX ("0 1 2 3 4") restrict a run to some
# strong models and mixed classes.
#
# Environment: OUT (runs/replacement), STRONG_EPOCHS (3), STRONG_SUBSET
# (training images per class of the strong models, 0: all; 2000), WEAK_EPOCHS
# (30), SEED (1), JOBS (trainings, then replacements, at once; 1),
# NICE (19), OMP_NUM_THREADS (1: on a shared machine one thread per job
# runs far faster than OpenMP threads that wait on each other).
set -euo pipefail

BUILD=${1:-build}
MODA=$BUILD/moda
OUT=${OUT:-runs/replacement}
STRONG_EPOCHS=${STRONG_EPOCHS:-3}
STRONG_SUBSET=${STRONG_SUBSET:-2000}
WEAK_EPOCHS=${WEAK_EPOCHS:-30}
SEED=${SEED:-1}
JOBS=${JOBS:-1}
NICE=${NICE:-19}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)

[ -x "$MODA" ] || { echo "run.sh: $MODA not found: build first (cmake --build $BUILD)" >&2; exit 2; }
mkdir -p "$OUT/train" "$OUT/registry" "$OUT/results" "$OUT/logs" "$OUT/locks"

STRONG=${STRONG-vgg16 resnet18}
MIX=${MIX-0 1 2 3 4}
STATES="early late"

log() { echo "[$(date -u +%H:%M:%S)] $*"; }
run() { nice -n "$NICE" "$MODA" "$@"; }

# Epochs finished by the run in $1 (its metrics.csv: a header, a row per epoch).
epochs_done() {
    if [ -f "$1/checkpoint.safetensors" ] && [ -f "$1/metrics.csv" ]; then
        echo $(($(wc -l <"$1/metrics.csv") - 1))
    else
        echo 0
    fi
}

# train DIR EPOCHS [STOP_AFTER] -- TRAIN_OPTIONS...: a fresh run, or the
# interrupted one continued; nothing when it is finished.
train() {
    local dir=$1 epochs=$2 stop=$3
    shift 4
    local finished
    finished=$(epochs_done "$dir")
    if [ "$finished" -ge "$epochs" ] || { [ "$stop" -gt 0 ] && [ "$finished" -ge "$stop" ]; }; then return 0; fi
    local extra=()
    [ "$stop" -gt 0 ] && extra=(--stop-after $((stop - finished)))
    if [ "$finished" -gt 0 ]; then
        log "resuming $dir after epoch $finished"
        run train --resume --out "$dir" "${extra[@]}" 2>>"$OUT/logs/$(basename "$dir").log"
    else
        log "training $dir ($epochs epochs)"
        rm -rf "$dir"
        run train "$@" --epochs "$epochs" --out "$dir" "${extra[@]}" 2>>"$OUT/logs/$(basename "$dir").log"
    fi
}

# decompose CHECKPOINT_DIR NAME: the model into the registry, once.
decompose() {
    local dir=$1 name=$2
    [ -f "$OUT/registry/.$name.done" ] && return 0
    log "decomposing $name"
    run decompose --checkpoint "$dir/checkpoint.safetensors" --out "$OUT/registry" --name "$name" \
        >>"$OUT/logs/decompose.log" 2>&1
    touch "$OUT/registry/.$name.done"
}

train_strong() {
    local arch=$1 subset=()
    [ "$STRONG_SUBSET" -gt 0 ] && subset=(--subset "$STRONG_SUBSET")
    train "$OUT/train/$arch" "$STRONG_EPOCHS" 0 -- --arch "$arch" --width 0.5 --moda --seed "$SEED" \
        --classes "0,1,2,3,4" "${subset[@]}"
    decompose "$OUT/train/$arch" "$arch-w0.5-c0-4"
}

# A weak model for mixed class t: its checkpoint after epoch 1 is copied
# aside (early), then the run goes on to the last epoch (late).
train_weak() {
    local t=$1 dir=$OUT/train/lenet5-t$1
    local opts=(--arch lenet5 --moda --no-augment --seed "$SEED" --classes "5,6,7,8,9" --mix-class "$t"
        --mix-fraction 0.1)
    if [ ! -f "$dir-early/checkpoint.safetensors" ]; then
        # The early copy must be epoch 1's: a run that went past it without one starts again.
        [ "$(epochs_done "$dir")" -gt 1 ] && rm -rf "$dir"
        train "$dir" "$WEAK_EPOCHS" 1 -- "${opts[@]}"
        mkdir -p "$dir-early.tmp"
        cp "$dir/checkpoint.safetensors" "$dir/metrics.csv" "$dir-early.tmp/"
        rm -rf "$dir-early"
        mv "$dir-early.tmp" "$dir-early"
    fi
    train "$dir" "$WEAK_EPOCHS" 0 -- "${opts[@]}"
    decompose "$dir-early" "lenet5-t$t-early"
    decompose "$dir" "lenet5-t$t-late"
}

declare -A CLASS_NAME=([0]=T-shirt/top [1]=Trouser [2]=Pullover [3]=Dress [4]=Coat)

# The strong model's module for class t into the weak model of t in one state.
replace() {
    local arch=$1 t=$2 state=$3
    local res=$OUT/results/$arch-t$t-$state.json weak=lenet5-t$t-$state strong=$arch-w0.5-c0-4
    [ -s "$res" ] && return 0
    if [ ! -f "$OUT/registry/.$weak.done" ] || [ ! -f "$OUT/registry/.$strong.done" ]; then
        log "not replacing in $weak by $strong yet: a model is missing (training elsewhere?)"
        return 3
    fi
    log "replacing ${CLASS_NAME[$t]} in $weak by $strong's module"
    if ! run replace --registry "$OUT/registry" --weak "$weak" --strong "$strong" --class "${CLASS_NAME[$t]}" \
        --optimizer sgd --lr 0.05 --epochs 5 --json >"$res.tmp" 2>>"$OUT/logs/replace-$arch-t$t-$state.log"; then
        rm -f "$res.tmp"
        log "replacing in $weak by $strong failed: see $OUT/logs/replace-$arch-t$t-$state.log"
        return 1
    fi
    mv "$res.tmp" "$res"
}

# locked NAME CMD...: CMD while holding $OUT/locks/NAME.lock, so that two
# runs of this script share the work; status 3 when another run holds it.
locked() {
    local name=$1
    shift
    (
        set -e # again: the caller runs this where a failing command would not stop it
        flock -n 9 || { log "skipping $name: another run is on it"; exit 3; }
        "$@"
    ) 9>"$OUT/locks/$name.lock"
}

# Runs the tasks (each "NAME CMD..."), up to JOBS at once; status 3 when
# some could not run (held elsewhere, or waiting for a model).
run_tasks() {
    local task pids=() rc=0 st
    for task in "$@"; do
        while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
        # shellcheck disable=SC2086  # a task is words
        locked $task &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        st=0
        wait "$pid" || st=$?
        if [ "$st" -eq 3 ] && [ "$rc" -eq 0 ]; then rc=3; elif [ "$st" -ne 0 ] && [ "$st" -ne 3 ]; then rc=1; fi
    done
    return "$rc"
}

tasks=()
for t in $MIX; do tasks+=("weak-t$t train_weak $t"); done
for arch in $STRONG; do tasks+=("strong-$arch train_strong $arch"); done
# Not in an `||` list: that would switch off set -e inside the tasks.
set +e
run_tasks "${tasks[@]}"
st=$?
set -e
[ "$st" -eq 1 ] && { log "a training failed: see $OUT/logs"; exit 1; }
tasks=()
for arch in $STRONG; do
    for t in $MIX; do
        for state in $STATES; do tasks+=("replace-$arch-t$t-$state replace $arch $t $state"); done
    done
done
set +e
run_tasks "${tasks[@]}"
st=$?
set -e
[ "$st" -eq 1 ] && { log "a replacement failed: see $OUT/logs"; exit 1; }
if [ "$st" -eq 3 ]; then
    log "some work is held by another run or waits for its models: run this again when it is done"
    exit 3
fi
log "done"
if compgen -G "$OUT/results/*.json" >/dev/null; then
    python3 "$HERE/table.py" "$OUT/results" "$OUT/train" | tee "$OUT/table.md"
fi
