#!/usr/bin/env bash
# CPU inference, ours (bench_infer: frozen plans on fixed threads, frozen
# plans choosing their batch-1 threads, and the unfrozen graph)
# next to PyTorch eager, TorchScript (freeze + optimize_for_inference) and
# ONNX Runtime (bench/infer_torch.py), at batch 1 and 64, as one table.
#
# Usage: bench/run_infer.sh [BUILD_DIR]   (default: build)
# Env:   ROUNDS (default 3): every engine runs every model once per round,
#          ours then the peers, so a busy spell of a shared machine lands on
#          all of them; the table shows the median over rounds of each
#          round's median call, and the range of those medians.
#        TIME (default 1.0): seconds of timed calls per measurement.
#        THREADS1 (default 1,2): thread counts tried at batch 1;
#        THREADS64 (default 2): at batch 64.
#        BATCHES (default "1 64"): the batch sizes run (1 and/or 64).
#        MODELS (default: the four architectures and composed 2- and
#          5-class models of VGG16 and ResNet18).
#        VENV (default bench/.venv-infer): made on first use from
#          bench/requirements-infer.txt, with Debian's python3-torch visible.
#        OUT: also keep the raw JSON lines there.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
bench="$build/bench/bench_infer"
rounds="${ROUNDS:-3}"
time_s="${TIME:-1.0}"
threads1="${THREADS1:-1,2}"
threads64="${THREADS64:-2}"
venv="${VENV:-$here/.venv-infer}"
read -r -a batches <<<"${BATCHES:-1 64}"
read -r -a models <<<"${MODELS:-lenet5:1 vgg16:0.5 resnet18:0.5 mobilenet:1 vgg16:0.5:c2 vgg16:0.5:c5 resnet18:0.5:c2 resnet18:0.5:c5}"

if [[ ! -x "$bench" ]]; then
    echo "missing $bench: build it with cmake --build $build --target bench_infer" >&2
    exit 1
fi
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
    echo "Debian's PyTorch is missing: apt-get install -y python3-torch libopenblas0-openmp" >&2
    exit 1
fi
if [[ ! -x "$venv/bin/python" ]]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q -r "$here/requirements-infer.txt"
fi
python="$venv/bin/python"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
out="$work/results.jsonl"
"$bench" --export "$work" "${models[@]}"
for ((r = 0; r < rounds; r++)); do
    for b in "${batches[@]}"; do
        if [[ "$b" == 1 ]]; then
            "$bench" --time "$time_s" --batch 1 --threads "$threads1" --engines frozen,frozen-auto,graph "${models[@]}" >>"$out"
        else
            "$bench" --time "$time_s" --batch "$b" --threads "$threads64" --engines frozen,graph "${models[@]}" >>"$out"
        fi
    done
    for b in "${batches[@]}"; do
        t="$threads64"
        [[ "$b" == 1 ]] && t="$threads1"
        "$python" "$here/infer_torch.py" --dir "$work" --time "$time_s" --batch "$b" --threads "$t" "${models[@]}" >>"$out"
    done
done
[[ -n "${OUT:-}" ]] && cp "$out" "$OUT"

"$python" - "$out" "$rounds" <<'EOF'
import collections
import json
import statistics
import sys

rows = [json.loads(l) for l in open(sys.argv[1])]
rounds = int(sys.argv[2])
engines = ["ours-frozen", "ours-frozen-auto", "ours-graph", "torch-eager", "torchscript", "onnxruntime"]
runs = collections.defaultdict(list)
macs = {}
for r in rows:
    runs[(r["model"], r["batch"], r["engine"], r["threads"])].append(r["ms"])
    if "macs" in r:
        macs[r["model"]] = (r["macs"], r["parent_macs"])
models = list(dict.fromkeys(r["model"] for r in rows))
threads = sorted({r["threads"] for r in rows})


def med(key):
    v = runs.get(key)
    return (statistics.median(v), min(v), max(v)) if v else None


def cell(m, batch):
    if m is None:
        return "—"
    if batch == 1:
        return f"{m[0]:.3f} ms ({m[1]:.3f}–{m[2]:.3f})"
    return f"{batch / m[0] * 1e3:,.0f} img/s ({batch / m[2] * 1e3:,.0f}–{batch / m[1] * 1e3:,.0f})"


print(f"Medians over {rounds} alternating rounds of each round's median call; ranges over the rounds.")
print("Batch 1: latency per call; batch 64: images per second.\n")
for batch in sorted({r["batch"] for r in rows}):
    ts = sorted({r["threads"] for r in rows if r["batch"] == batch})
    for t in ts:
        print(f"\n**batch {batch}, {t} thread{'s' if t > 1 else ''}**\n")
        print("| model | " + " | ".join(engines) + " | ours-frozen ÷ ORT speed |")
        print("|---|" + "---:|" * (len(engines) + 1))
        for model in models:
            cells = [cell(med((model, batch, e, t)), batch) for e in engines]
            ours, ort = med((model, batch, "ours-frozen", t)), med((model, batch, "onnxruntime", t))
            ratio = f"{ort[0] / ours[0]:.2f}×" if ours and ort else "—"
            print(f"| {model} | " + " | ".join(cells) + f" | {ratio} |")
if len({r["threads"] for r in rows if r["batch"] == 1}) > 1:
    print("\n**batch 1, each engine at its faster thread count (median ms)**\n")
    print("| model | ours-frozen | torchscript | onnxruntime | ours ÷ ORT speed |")
    print("|---|---:|---:|---:|---:|")
    for model in models:
        best = {}
        for e in ("ours-frozen", "torchscript", "onnxruntime"):
            c = [(med((model, 1, e, t))[0], t) for t in threads if med((model, 1, e, t))]
            best[e] = min(c) if c else None
        f = lambda b: f"{b[0]:.3f} ({b[1]}t)" if b else "—"
        ratio = f"{best['onnxruntime'][0] / best['ours-frozen'][0]:.2f}×" if best["ours-frozen"] and best["onnxruntime"] else "—"
        print(f"| {model} | {f(best['ours-frozen'])} | {f(best['torchscript'])} | {f(best['onnxruntime'])} | {ratio} |")
print("\n**composed models: time ÷ the full model's time (ours-frozen) against MACs ÷ full MACs**\n")
print("| model | batch | threads | MACs ratio | time ratio | time ÷ MACs ratio |")
print("|---|---:|---:|---:|---:|---:|")
for model in models:
    if "_c" not in model or model not in macs:
        continue
    parent = model.rsplit("_c", 1)[0]
    for batch in sorted({r["batch"] for r in rows}):
        for t in threads:
            a, b = med((model, batch, "ours-frozen", t)), med((parent, batch, "ours-frozen", t))
            if a and b:
                mr, tr = macs[model][0] / macs[model][1], a[0] / b[0]
                print(f"| {model} | {batch} | {t} | {mr:.3f} | {tr:.3f} | {tr / mr:.2f} |")
EOF
