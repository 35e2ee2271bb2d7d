#!/usr/bin/python3
"""PyTorch reference for bench_conv2d: the same shapes and the same
measurement (median of timed reps after warm-up), so run_conv2d.sh can put
the two side by side.

Forward is F.conv2d on NCHW float32; backward is autograd of the output
with a fixed gradient, computing grad input + grad weight + grad bias
(counted as 2x the forward FLOPs).

Usage: conv2d_torch.py [--reps N] [--warmup N] [--shape I] [--json]
  --shape I runs only the I-th shape (0-based).
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

# (N, C, H, K, kernel, stride, pad): C->C channels, 3x3, pad 1, stride 1.
SHAPES = [(64, 64, 32, 64, 3, 1, 1),
          (64, 128, 16, 128, 3, 1, 1),
          (64, 256, 8, 256, 3, 1, 1),
          (64, 512, 4, 512, 3, 1, 1)]


def out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def median_time(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--shape", type=int, default=None,
                    choices=range(len(SHAPES)), help="only this shape (0-based)")
    ap.add_argument("--json", action="store_true",
                    help="one JSON object per shape, one per line")
    args = ap.parse_args()

    torch.set_num_threads(2)
    torch.manual_seed(0)
    rows = []
    shapes = SHAPES if args.shape is None else [SHAPES[args.shape]]
    for (n, c, h, k, ks, s, p) in shapes:
        ho = out_size(h, ks, s, p)
        x = torch.randn(n, c, h, h, dtype=torch.float32, requires_grad=True)
        w = (torch.randn(k, c, ks, ks) * 0.05).requires_grad_(True)
        b = (torch.randn(k) * 0.1).requires_grad_(True)
        dy = torch.randn(n, k, ho, ho)
        flops = 2.0 * n * k * c * ho * ho * ks * ks

        def fwd():
            with torch.no_grad():
                F.conv2d(x, w, b, stride=s, padding=p)

        y = F.conv2d(x, w, b, stride=s, padding=p)

        def bwd():
            # Only the backward pass is timed: grads of x, w and b.
            torch.autograd.grad(y, (x, w, b), dy, retain_graph=True)

        t_f = median_time(fwd, args.warmup, args.reps)
        t_b = median_time(bwd, args.warmup, args.reps)
        rows.append({"shape": f"N{n} C{c} H{h} K{k} {ks}x{ks} s{s} p{p}",
                     "n": n, "c": c, "h": h, "k": k,
                     "fwd_ms": t_f * 1e3, "bwd_ms": t_b * 1e3,
                     "fwd_gflops": flops / t_f / 1e9,
                     "bwd_gflops": 2 * flops / t_b / 1e9})

    if args.json:
        for r in rows:
            print(json.dumps(dict(impl="torch", **r)))
    else:
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"mkldnn {torch.backends.mkldnn.is_available()}")
        print(f"{'shape':<28} {'fwd ms':>8} {'fwd GF/s':>9} {'bwd ms':>8} {'bwd GF/s':>9}")
        for r in rows:
            print(f"{r['shape']:<28} {r['fwd_ms']:8.2f} {r['fwd_gflops']:9.1f} "
                  f"{r['bwd_ms']:8.2f} {r['bwd_gflops']:9.1f}")


if __name__ == "__main__":
    main()
