#!/usr/bin/env bash
# conv2d throughput, ours (bench_conv2d) next to PyTorch (conv2d_torch.py),
# both on 2 OpenMP threads, as one side-by-side table.
#
# Usage: bench/run_conv2d.sh [BUILD_DIR]   (default: build)
# Env:   REPS (timed reps per measurement, default 20), WARMUP (default 3),
#        ROUNDS (default 3): for each shape the two run alternately ROUNDS
#        times and each keeps its best median, so a burst of load from
#        elsewhere on a shared machine does not land on one side only.
#        PYTHON (default /usr/bin/python3, the interpreter with Debian's torch).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
bench="$build/bench/bench_conv2d"
python="${PYTHON:-/usr/bin/python3}"
reps="${REPS:-20}"
warmup="${WARMUP:-3}"
rounds="${ROUNDS:-3}"

if [[ ! -x "$bench" ]]; then
    echo "missing $bench: build it with cmake --build $build --target bench_conv2d" >&2
    exit 1
fi
export OMP_NUM_THREADS=2

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
n_shapes=4 # as in bench_conv2d.c and conv2d_torch.py
for ((r = 0; r < rounds; r++)); do
    for ((s = 0; s < n_shapes; s++)); do
        "$bench" --json --reps "$reps" --warmup "$warmup" --shape "$s" >>"$out"
        "$python" "$here/conv2d_torch.py" --json --reps "$reps" --warmup "$warmup" --shape "$s" >>"$out"
    done
done

"$python" - "$out" "$rounds" "$reps" <<'EOF'
import json
import sys

path, rounds, reps = sys.argv[1], sys.argv[2], sys.argv[3]
best = {}  # (impl, shape) -> [fwd GF/s, bwd GF/s], best median over rounds
order = []
with open(path) as f:
    for line in f:
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        key = (r["impl"], r["shape"])
        if r["shape"] not in order:
            order.append(r["shape"])
        b = best.setdefault(key, [0.0, 0.0])
        b[0] = max(b[0], r["fwd_gflops"])
        b[1] = max(b[1], r["bwd_gflops"])

print(f"conv2d GFLOP/s, OMP_NUM_THREADS=2, median of {reps} reps, best of {rounds} alternating rounds")
print(f"backward = backward-data + backward-weights (+bias), counted as 2x forward FLOPs")
hdr = f"{'shape':<28} {'ours fwd':>9} {'torch fwd':>9} {'ratio':>6} {'ours bwd':>9} {'torch bwd':>9} {'ratio':>6}"
print(hdr)
print("-" * len(hdr))
worst = float("inf")
for s in order:
    o = best.get(("moda", s))
    t = best.get(("torch", s))
    if not o or not t:
        print(f"{s:<28} missing result")
        continue
    rf, rb = o[0] / t[0], o[1] / t[1]
    worst = min(worst, rf, rb)
    print(f"{s:<28} {o[0]:9.1f} {t[0]:9.1f} {rf:6.2f} {o[1]:9.1f} {t[1]:9.1f} {rb:6.2f}")
print(f"worst ratio: {worst:.2f}")
EOF
