#!/usr/bin/env python3
"""Check that a safetensors file written by the engine loads in PyTorch.

Not part of ctest (CI has no PyTorch). Usage:

    MODA_SAFETENSORS_EXPORT=/tmp/check.safetensors build/tests/test_safetensors
    python3 tests/gen_safetensors_check.py /tmp/check.safetensors

The header is parsed by hand and each tensor is built with torch.frombuffer,
so the `safetensors` package is not needed; when it is installed, its
loader must agree too. The checks follow the reference implementation's
strict rules (header padded to 8 bytes, tensors tiling the data section
with no gaps), which are stricter than what our reader accepts. When the
metadata says "moda.check": "arange", float tensors must hold
0.5 * arange(numel) and integer tensors arange(numel).
"""
import json
import struct
import sys

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), "header length past the end of the file"
    assert n % 8 == 0, f"header length {n} is not a multiple of 8"
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    data = bytearray(raw[8 + n:])  # writable copy: frombuffer warns on read-only
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    pos = 0
    for begin, end, name in spans:
        assert begin == pos, f"{name}: starts at {begin}, expected {pos} (gap or overlap)"
        pos = end
    assert pos == len(data), f"data section has {len(data)} bytes, tensors cover {pos}"
    tensors = {}
    for name, v in header.items():
        begin, end = v["data_offsets"]
        dtype = DTYPES[v["dtype"]]
        shape = v["shape"]
        if end > begin:
            t = torch.frombuffer(data, dtype=dtype, count=(end - begin) // t_size(dtype), offset=begin)
        else:
            t = torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(shape).clone()
    return tensors, meta


def t_size(dtype):
    return torch.empty(0, dtype=dtype).element_size()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    tensors, meta = load(path)
    for name, t in tensors.items():
        print(f"{name}: {str(t.dtype).replace('torch.', '')} {tuple(t.shape)}")
    if meta.get("moda.check") == "arange":
        for name, t in tensors.items():
            n = t.numel()
            if t.is_floating_point():
                want = (0.5 * torch.arange(n, dtype=torch.float64)).to(t.dtype).reshape(t.shape)
            else:
                want = torch.arange(n, dtype=t.dtype).reshape(t.shape)
            assert torch.equal(t, want), f"{name}: values differ"
    try:
        from safetensors.torch import load_file
    except ImportError:
        load_file = None
    if load_file is not None:
        ref = load_file(path)
        assert ref.keys() == tensors.keys()
        for name in ref:
            assert torch.equal(ref[name], tensors[name]), f"{name}: safetensors package disagrees"
    print(f"{path}: {len(tensors)} tensors OK" + (" (and safetensors package agrees)" if load_file else ""))


if __name__ == "__main__":
    main()
