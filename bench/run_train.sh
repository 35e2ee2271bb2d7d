#!/usr/bin/env bash
# Training throughput in images/s, ours (bench_train: the step `moda train`
# runs) next to PyTorch (train_torch.py: the same model, batch, optimiser
# and input shape), both on 2 OpenMP threads, as one side-by-side table.
#
# Usage: bench/run_train.sh [BUILD_DIR]   (default: build)
# Env:   ARCHS (default "vgg16:0.5 resnet18:0.5 mobilenet:1 lenet5:1"):
#        arch:width pairs; STEPS (timed steps per run, default 20), WARMUP
#        (default 3), BATCH (default 128), ROUNDS (default 3): for each arch
#        the two run back to back ROUNDS times; ratios are taken per round
#        and their median is shown, so a burst of load from elsewhere on a
#        shared machine does not land on one side only.
#        PYTHON (default /usr/bin/python3, the interpreter with Debian's torch).
#        DATA_DIR (default /usr/share/datasets/fashion-mnist).
#        DEVICE (default cpu): cpu or cuda, for both sides.
# Data: the first (WARMUP + STEPS) * BATCH Fashion-MNIST training images,
# zero-padded to 32x32 and normalised with the training set's mean and std,
# written once to raw files that both sides read, one batch per step.
# Before timing, PyTorch's model must have exactly the parameter count our
# bench reports for the same arch and width, or the run stops.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
bench="$build/bench/bench_train"
python="${PYTHON:-/usr/bin/python3}"
archs="${ARCHS:-vgg16:0.5 resnet18:0.5 mobilenet:1 lenet5:1}"
steps="${STEPS:-20}"
warmup="${WARMUP:-3}"
batch="${BATCH:-128}"
rounds="${ROUNDS:-3}"
data_dir="${DATA_DIR:-/usr/share/datasets/fashion-mnist}"
device="${DEVICE:-cpu}"

if [[ ! -x "$bench" ]]; then
    echo "missing $bench: build it with cmake --build $build --target bench_train" >&2
    exit 1
fi
export OMP_NUM_THREADS=2
# Debian's PyTorch takes its BLAS from the libblas.so.3 alternative; the
# reference implementation would make its linear layers the bottleneck.
case "$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null)" in
*/blas/libblas.so.3) echo "warning: PyTorch will use the reference BLAS; install libopenblas0-openmp" >&2 ;;
esac

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
out="$tmp/results.jsonl"
images="$tmp/images.f32" labels="$tmp/labels.i32"
"$python" - "$data_dir" $(((warmup + steps) * batch)) "$images" "$labels" <<'EOF'
import gzip
import sys

import numpy as np

data_dir, n, images, labels = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def idx(name, offset):
    with gzip.open(f"{data_dir}/{name}", "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)
x = idx("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
y = idx("train-labels-idx1-ubyte.gz", 8).astype(np.int32)
if len(x) < n:
    sys.exit(f"{data_dir}: {len(x)} training images, the run needs {n}")
x = np.pad(x.astype(np.float32) / 255, ((0, 0), (2, 2), (2, 2)))
x = (x - x.mean()) / x.std()
x[:n].reshape(n, 1, 32, 32).tofile(images)
y[:n].tofile(labels)
EOF
for ((r = 0; r < rounds; r++)); do
    for aw in $archs; do
        arch="${aw%%:*}" width="${aw#*:}"
        [[ "$aw" == *:* ]] || width=1
        ours="$("$bench" --json --arch "$arch" --width "$width" --batch "$batch" --steps "$steps" --warmup "$warmup" \
            --images "$images" --labels "$labels" --device "$device")"
        echo "$ours" >>"$out"
        params="$(sed -n 's/.*"params": \([0-9]*\).*/\1/p' <<<"$ours")"
        "$python" "$here/train_torch.py" --json --arch "$arch" --width "$width" --batch "$batch" \
            --steps "$steps" --warmup "$warmup" --images "$images" --labels "$labels" \
            --expect-params "$params" --device "$device" >>"$out"
    done
done

"$python" - "$out" "$rounds" "$steps" "$batch" "$device" <<'EOF'
import json
import statistics
import sys

path, rounds, steps, batch, device = sys.argv[1:6]
runs = {}  # (impl, arch, width) -> images/s, one per round
params = {}
order = []
with open(path) as f:
    for line in f:
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        key = (r["arch"], float(r["width"]))
        if key not in order:
            order.append(key)
        runs.setdefault((r["impl"],) + key, []).append(r["images_per_s"])
        params[key] = r["params"]

print(f"training images/s, batch {batch}, Fashion-MNIST padded to 1x32x32, 10 classes, on {device}, OMP_NUM_THREADS=2: "
      f"per round {steps} timed steps; shown: the median over {rounds} alternating rounds")
print("ratio = ours/PyTorch, median of the per-round ratios (each round runs the two back to back)")
print()
print("| arch | width | params | ours img/s | PyTorch img/s | ratio |")
print("|---|---:|---:|---:|---:|---:|")
for arch, width in order:
    o, t = runs.get(("moda", arch, width)), runs.get(("torch", arch, width))
    if not o or not t or len(o) != len(t):
        print(f"| {arch} | {width:g} | | missing result | | |")
        continue
    ratio = statistics.median(a / b for a, b in zip(o, t))
    print(f"| {arch} | {width:g} | {params[(arch, width)]:,} | {statistics.median(o):.1f} | "
          f"{statistics.median(t):.1f} | {ratio:.2f} |")
EOF
