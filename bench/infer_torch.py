#!/usr/bin/env python3
"""Inference peers of bench_infer: PyTorch eager, TorchScript and ONNX Runtime.

Runs the models that `bench_infer --export DIR` wrote (DIR/NAME.safetensors:
the parameters, the graph's nodes in the "graph" metadata key, and an input
with our frozen plan's logits on it) as:
  torch-eager   the graph as torch.nn modules, eval mode, inference_mode
  torchscript   torch.jit.trace, torch.jit.freeze, torch.jit.optimize_for_inference
  onnxruntime   exported with torch.onnx.export (dynamic batch), ORT_ENABLE_ALL
Each engine's logits on the stored input are checked against ours first
(max |diff| / max |logit|, printed as "err"; over 1e-4 fails the run).

Timing as bench_infer does: warm-up for a tenth of --time (at least 3
calls), then call by call for --time seconds (at least 5 calls); one JSON
line per (model, engine, batch, threads) with the median, fastest and
slowest call in ms.

    infer_torch.py --dir DIR [--batch 1,64] [--threads 2] [--time 1.0]
                   [--engines torch-eager,torchscript,onnxruntime] MODEL...
MODEL as for bench_infer: ARCH:WIDTH or ARCH:WIDTH:cK.
"""
import argparse
import json
import os
import statistics
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ENGINES = ("torch-eager", "torchscript", "onnxruntime")


def model_name(spec):
    parts = spec.split(":")
    name = f"{parts[0]}_w{float(parts[1]):g}"
    return name + (f"_{parts[2]}" if len(parts) > 2 else "")


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", f"{path}: {name} is {t['dtype']}"
        b, e = t["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float32).reshape(t["shape"])
    return tensors, meta


class GraphNet(nn.Module):
    """The exported graph as modules; forward walks the nodes in order."""

    def __init__(self, graph, params):
        super().__init__()
        self.nodes = []
        self.mods = nn.ModuleDict()
        for nd in graph:
            kind, key = nd["kind"], f"n{nd['index']}"
            p = [params[q["name"]] for q in nd["params"]]
            m = None
            if kind == "conv2d":
                w = p[0]
                g = nd["groups"]
                m = nn.Conv2d(w.shape[1] * g, w.shape[0], tuple(nd["kernel"]), tuple(nd["stride"]),
                              tuple(nd["pad"]), groups=g, bias=nd["bias"])
                m.weight.data.copy_(w)
                if nd["bias"]:
                    m.bias.data.copy_(p[1])
            elif kind == "batchnorm2d":
                m = nn.BatchNorm2d(p[0].shape[0], eps=1e-5)
                m.weight.data.copy_(p[0])
                m.bias.data.copy_(p[1])
                m.running_mean.copy_(p[2])
                m.running_var.copy_(p[3])
            elif kind == "linear":
                m = nn.Linear(p[0].shape[1], p[0].shape[0], bias=nd["bias"])
                m.weight.data.copy_(p[0])
                if nd["bias"]:
                    m.bias.data.copy_(p[1])
            elif kind == "relu":
                m = nn.ReLU()
            elif kind == "maxpool2d":
                m = nn.MaxPool2d(tuple(nd["kernel"]), tuple(nd["stride"]), tuple(nd["pad"]))
            elif kind not in ("input", "global_avgpool", "flatten", "add"):
                sys.exit(f"unknown node kind {kind}")
            if m is not None:
                self.mods[key] = m
            self.nodes.append((kind, key, nd["inputs"]))

    def forward(self, x):
        out = []
        for kind, key, ins in self.nodes:
            if kind == "input":
                y = x
            elif kind == "global_avgpool":
                y = torch.flatten(F.adaptive_avg_pool2d(out[ins[0]], 1), 1)
            elif kind == "flatten":
                y = torch.flatten(out[ins[0]], 1)
            elif kind == "add":
                y = out[ins[0]] + out[ins[1]]
            else:
                y = self.mods[key](out[ins[0]])
            out.append(y)
        return out[-1]


def rel_err(got, want):
    got = torch.as_tensor(np.asarray(got))
    return float((got - want).abs().max() / want.abs().max())


def timed(fn, seconds):
    t0 = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - t0 < 0.1 * seconds:
        fn()
        calls += 1
    ms = []
    t0 = time.perf_counter()
    while len(ms) < 5 or (time.perf_counter() - t0 < seconds and len(ms) < 20000):
        a = time.perf_counter()
        fn()
        ms.append(1e3 * (time.perf_counter() - a))
    return ms


class Runner:
    """One model in every engine, each built once (per batch for TorchScript)."""

    def __init__(self, path, work):
        params, meta = read_safetensors(path)
        self.name = os.path.basename(path)[:-len(".safetensors")]
        self.x_ref, self.z_ref = params.pop("__input__"), params.pop("__logits__")
        self.net = GraphNet(json.loads(meta["graph"]), params).eval()
        self.onnx_path = os.path.join(work, self.name + ".onnx")
        self.scripted = {}
        self.sessions = {}

    def torchscript(self, batch):
        if batch not in self.scripted:
            with torch.no_grad():
                x = torch.randn(batch, *self.x_ref.shape[1:])
                traced = torch.jit.trace(self.net, x)
                frozen = torch.jit.freeze(traced)
                self.scripted[batch] = torch.jit.optimize_for_inference(frozen)
        return self.scripted[batch]

    def session(self, threads):
        import onnxruntime as ort
        if not os.path.exists(self.onnx_path):
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(self.net, self.x_ref, self.onnx_path, input_names=["x"], output_names=["logits"],
                                  dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, opset_version=13)
            import onnx
            onnx.checker.check_model(onnx.load(self.onnx_path))
        if threads not in self.sessions:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.sessions[threads] = ort.InferenceSession(self.onnx_path, so, providers=["CPUExecutionProvider"])
        return self.sessions[threads]

    def callable(self, engine, batch, threads, x):
        torch.set_num_threads(threads)
        if engine == "torch-eager":
            def run(x=x):
                with torch.inference_mode():
                    return self.net(x)
            return run
        if engine == "torchscript":
            m = self.torchscript(batch)
            def run(x=x):
                with torch.no_grad():
                    return m(x)
            return run
        s = self.session(threads)
        xn = x.numpy()
        return lambda: s.run(None, {"x": xn})[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--batch", default="1,64")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--time", type=float, default=1.0)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    engines = [e for e in a.engines.split(",") if e]
    for e in engines:
        if e not in ENGINES:
            sys.exit(f"unknown engine {e}")
    torch.manual_seed(5)
    for spec in a.models:
        r = Runner(os.path.join(a.dir, model_name(spec) + ".safetensors"), a.dir)
        for engine in engines:
            # The same model: the stored input through this engine gives our logits.
            n_ref = r.x_ref.shape[0]
            err = rel_err(r.callable(engine, n_ref, 2, r.x_ref)(), r.z_ref)
            if not err <= 1e-4:
                sys.exit(f"{r.name} {engine}: logits differ from ours by {err:.3g} relative")
            for batch in [int(b) for b in a.batch.split(",")]:
                x = torch.randn(batch, *r.x_ref.shape[1:])
                for threads in [int(t) for t in a.threads.split(",")]:
                    ms = timed(r.callable(engine, batch, threads, x), a.time)
                    print(json.dumps({"model": r.name, "engine": engine, "batch": batch, "threads": threads,
                                      "ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
                                      "calls": len(ms), "err": err}), flush=True)


if __name__ == "__main__":
    main()
