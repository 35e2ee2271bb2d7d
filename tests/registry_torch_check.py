#!/usr/bin/env python3
"""Check a registry model from the PyTorch side (not part of ctest).

Verifies the index and manifest hashes, decompresses weights and rates with
the `zstd` command, parses the safetensors files by hand into torch tensors
(and with the `safetensors` package too when it is installed), checks every
tensor against the manifest's graph, and runs the graph in PyTorch. With
--idx-dir it evaluates the test split there and compares the accuracy with
the manifest's.

    python3 tests/registry_torch_check.py REGISTRY MODEL [--idx-dir DIR]
"""
import argparse
import gzip
import hashlib
import json
import os
import struct
import subprocess
import sys

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def parse_safetensors(raw, source):
    """The format by hand: u64 header length, JSON header, data section."""
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        dtype = DTYPES[t["dtype"]]
        x = torch.frombuffer(bytearray(data[b:e]), dtype=dtype) if e > b else torch.empty(0, dtype=dtype)
        tensors[name] = x.reshape(t["shape"])
    print(f"  {source}: {len(tensors)} tensors, {len(raw)} bytes, metadata {sorted(meta)}")
    return tensors, meta


def read_file(model_dir, info):
    path = os.path.join(model_dir, info["path"])
    z = open(path, "rb").read()
    if len(z) != info["bytes"] or sha256(z) != info["sha256"]:
        fail(f"{path}: size or sha256 differs from the manifest")
    raw = subprocess.run(["zstd", "-d", "-c", "-q", path], check=True, stdout=subprocess.PIPE).stdout
    return raw, path


def forward(graph, params, x):
    out = []
    for nd in graph:
        kind, ins = nd["kind"], [out[i] for i in nd["inputs"]]
        p = [params[q["name"]] for q in nd["params"]]
        if kind == "input":
            y = x
        elif kind == "conv2d":
            y = F.conv2d(ins[0], p[0], p[1] if nd["bias"] else None, stride=nd["stride"], padding=nd["pad"],
                         groups=nd["groups"])
        elif kind == "batchnorm2d":
            y = F.batch_norm(ins[0], p[2], p[3], p[0], p[1], training=False, eps=1e-5)
        elif kind == "relu":
            y = F.relu(ins[0])
        elif kind == "maxpool2d":
            y = F.max_pool2d(ins[0], nd["kernel"], nd["stride"], nd["pad"])
        elif kind == "global_avgpool":
            y = ins[0].mean(dim=(2, 3))
        elif kind == "flatten":
            y = ins[0].flatten(1)
        elif kind == "linear":
            y = F.linear(ins[0], p[0], p[1] if nd["bias"] else None)
        elif kind == "add":
            y = ins[0] + ins[1]
        else:
            fail(f"unknown node kind {kind}")
        if list(y.shape[1:]) != nd["shape"]:
            fail(f"node {nd['index']} ({kind}): torch shape {list(y.shape[1:])}, manifest {nd['shape']}")
        out.append(y)
    return out[-1]


def load_idx(directory, prefix):
    def read(name):
        for suffix in ("", ".gz"):
            path = os.path.join(directory, name + suffix)
            if os.path.exists(path):
                return (gzip.open if suffix else open)(path, "rb").read()
        fail(f"{directory}: no {name}")
    images = read(f"{prefix}-images-idx3-ubyte")
    labels = read(f"{prefix}-labels-idx1-ubyte")
    n, h, w = struct.unpack(">III", images[4:16])
    x = torch.frombuffer(bytearray(images[16:]), dtype=torch.uint8).reshape(n, 1, h, w).float() / 255
    y = torch.frombuffer(bytearray(labels[8:]), dtype=torch.uint8).long()
    return x, y


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("registry")
    ap.add_argument("model")
    ap.add_argument("--idx-dir", help="IDX dataset directory to evaluate the test split on")
    a = ap.parse_args()

    index = json.load(open(os.path.join(a.registry, "index.json")))
    entry = next((m for m in index["models"] if m["name"] == a.model), None)
    if entry is None:
        fail(f"no model {a.model} in the index")
    mtext = open(os.path.join(a.registry, entry["manifest"]), "rb").read()
    if sha256(mtext) != entry["sha256"]:
        fail("manifest sha256 differs from the index")
    man = json.loads(mtext)
    model_dir = os.path.join(a.registry, a.model)
    graph = man["architecture"]["graph"]
    k = man["architecture"]["num_classes"]
    print(f"{a.model}: {man['architecture']['arch']} width {man['architecture']['width']}, {k} classes")

    raw, path = read_file(model_dir, man["files"]["weights"])
    weights, meta = parse_safetensors(raw, path)
    try:
        from safetensors.torch import load as st_load
        ref = st_load(raw)
        assert ref.keys() == weights.keys() and all(torch.equal(ref[n], weights[n]) for n in ref)
        print("  the safetensors package reads the same tensors")
    except ImportError:
        print("  (safetensors package not installed; hand-written reader only)")
    expected = {q["name"]: q["shape"] for nd in graph for q in nd["params"]}
    if set(expected) != set(weights):
        fail(f"tensor names differ from the graph's: {sorted(set(expected) ^ set(weights))}")
    for name, shape in expected.items():
        if list(weights[name].shape) != shape or weights[name].dtype != torch.float32:
            fail(f"{name}: {weights[name].dtype} {list(weights[name].shape)}, manifest {shape}")
    trainable = sum(weights[q["name"]].numel() for nd in graph for q in nd["params"] if q["trainable"])
    if trainable != man["architecture"]["params"]:
        fail(f"{trainable} trainable parameters, manifest {man['architecture']['params']}")
    print(f"  weights: {len(weights)} tensors, {trainable} trainable parameters, shapes as in the graph")

    raw, path = read_file(model_dir, man["files"]["rates"])
    rates, meta = parse_safetensors(raw, path)
    layers = json.loads(meta["layers"])
    relus = [nd["index"] for nd in graph if nd["kind"] == "relu"]
    if layers != relus:
        fail(f"rates layers {layers}, the graph's ReLU nodes {relus}")
    for l, node in enumerate(layers):
        r = rates[f"rates.{l}"]
        if list(r.shape) != [k, graph[node]["shape"][0]] or r.min() < 0 or r.max() > 1:
            fail(f"rates.{l}: shape {list(r.shape)} or values out of [0, 1]")
    print(f"  rates: {len(layers)} layers, class counts {rates['class_count'].int().tolist()}")

    inp = man["input"]
    with torch.no_grad():
        logits = forward(graph, weights, torch.randn(2, inp["channels"], inp["height"], inp["width"]))
    print(f"  forward pass in PyTorch: logits {list(logits.shape)}")

    if a.idx_dir:
        x, y = load_idx(a.idx_dir, "t10k")
        pad = inp["pad"]
        x = F.pad(x, (pad, pad, pad, pad))
        mean = torch.tensor(inp["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(inp["std"]).view(1, -1, 1, 1)
        x = (x - mean) / std
        right = 0
        with torch.no_grad():
            for i in range(0, len(y), 500):
                right += (forward(graph, weights, x[i:i + 500]).argmax(1) == y[i:i + 500]).sum().item()
        acc = right / len(y)
        want = man["metrics"]["test_accuracy"]
        print(f"  test accuracy in PyTorch {100 * acc:.2f}%, manifest {100 * want:.2f}%")
        if abs(acc - want) > 0.002:
            fail("accuracy differs from the manifest")
    print("OK")


if __name__ == "__main__":
    main()
