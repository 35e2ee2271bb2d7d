#!/usr/bin/env bash
# conv2d throughput, ours (bench_conv2d) next to PyTorch (conv2d_torch.py),
# both on 2 OpenMP threads, as one side-by-side table.
#
# Usage: bench/run_conv2d.sh [BUILD_DIR]   (default: build)
# Env:   REPS (timed reps per measurement, default 10), WARMUP (default 3),
#        ROUNDS (default 5): for each shape the two run back to back ROUNDS
#        times; ratios are taken per round and their median is shown, so a
#        burst of load from elsewhere on a shared machine does not land on
#        one side only.
#        PYTHON (default /usr/bin/python3, the interpreter with Debian's torch).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
bench="$build/bench/bench_conv2d"
python="${PYTHON:-/usr/bin/python3}"
reps="${REPS:-10}"
warmup="${WARMUP:-3}"
rounds="${ROUNDS:-5}"

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
import statistics
import sys

path, rounds, reps = sys.argv[1], sys.argv[2], sys.argv[3]
runs = {}  # (impl, shape) -> list of (fwd GF/s, bwd GF/s), one per round
order = []
with open(path) as f:
    for line in f:
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r["shape"] not in order:
            order.append(r["shape"])
        runs.setdefault((r["impl"], r["shape"]), []).append((r["fwd_gflops"], r["bwd_gflops"]))

print(f"conv2d GFLOP/s, OMP_NUM_THREADS=2: per round the median of {reps} reps; "
      f"shown: the median over {rounds} alternating rounds")
print("ratio = ours/torch, median of the per-round ratios (each round runs the two back to back)")
print("backward = backward-data + backward-weights (+bias), counted as 2x forward FLOPs")
hdr = (f"{'shape':<28} {'ours fwd':>9} {'torch fwd':>9} {'ratio':>6} "
       f"{'ours bwd':>9} {'torch bwd':>9} {'ratio':>6}")
print(hdr)
print("-" * len(hdr))
worst = float("inf")
for s in order:
    o, t = runs.get(("moda", s)), runs.get(("torch", s))
    if not o or not t or len(o) != len(t):
        print(f"{s:<28} missing result")
        continue
    med = lambda rows, i: statistics.median(r[i] for r in rows)
    ratio = lambda i: statistics.median(a[i] / b[i] for a, b in zip(o, t))
    rf, rb = ratio(0), ratio(1)
    worst = min(worst, rf, rb)
    print(f"{s:<28} {med(o, 0):9.1f} {med(t, 0):9.1f} {rf:6.2f} "
          f"{med(o, 1):9.1f} {med(t, 1):9.1f} {rb:6.2f}")
print(f"worst ratio: {worst:.2f}")
EOF
