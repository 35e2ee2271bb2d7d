#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/<target>/) from the
repository's own examples, registry and test data, plus a few small
synthetic files. Needs the zstd command. The seeds are committed: run this
only when an input format changes. Files it does not write are kept:
regression seeds (crash-*) and registry_manifest/composed.json, the
manifest `moda compose --save` wrote for classes 7,8,9 of the bundled
model, renamed to it (the target parses every manifest under that name)."""
import gzip
import json
import os
import struct
import subprocess
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LENET = os.path.join(ROOT, "models", "fmnist-lenet5")


def read(*parts):
    with open(os.path.join(ROOT, *parts), "rb") as f:
        return f.read()


def write(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def v1_json():
    # First byte: 0 infer, 1 compose, 2 replace, 3 calibrate.
    write("v1_json", "infer-ankle-boot", b"\x00" + read("examples", "infer-ankle-boot.json"))
    pixels = [[[[(x * y) % 256 for x in range(28)] for y in range(28)]]]
    write("v1_json", "infer-id-float", b"\x00" + json.dumps(
        {"id": "fmnist-lenet5~7-8-9~0.9", "inputs": [[[[v / 255 for v in row] for row in pixels[0][0]]]],
         "top_k": 2}).encode())
    write("v1_json", "infer-flat-shape", b"\x00" + json.dumps(
        {"model": "fmnist-lenet5", "classes": [0, 1], "threshold": 0.5, "dtype": "uint8", "shape": [1, 1, 28, 28],
         "inputs": [v for row in pixels[0][0][0:28] for v in row]}).encode())
    write("v1_json", "compose-names", b"\x01" + json.dumps(
        {"model": "fmnist-lenet5", "classes": ["Sneaker", "Bag", "Ankle boot"]}).encode())
    write("v1_json", "compose-indices", b"\x01" + json.dumps(
        {"model": "fmnist-lenet5", "classes": [3, 1], "threshold": 0.25}).encode())
    write("v1_json", "replace", b"\x02" + json.dumps(
        {"weak": "fmnist-lenet5", "strong": "fmnist-lenet5", "class": "Bag", "threshold": 0.9,
         "calibration": {"epochs": 1}, "name": "patched"}).encode())
    write("v1_json", "calibrate", b"\x03" + json.dumps({"model": "fmnist-lenet5", "calibration": {}}).encode())


def v1_binary():
    # First byte: 0 octet-stream, 1 PNG, 2 JPEG, 3 no Content-Type; the query up to a newline; the body.
    u8 = read("examples", "ankle-boot.u8")
    write("v1_binary", "uint8-composed", b"\x00model=fmnist-lenet5&classes=7,8,9&dtype=uint8&shape=1,1,28,28\n" + u8)
    f32 = b"".join(struct.pack("<f", b / 255) for b in u8)
    write("v1_binary", "float32-id-topk", b"\x00id=fmnist-lenet5~7-8-9~0.9&dtype=float32&shape=1,1,28,28&top_k=2\n" +
          f32)
    write("v1_binary", "png", b"\x01model=fmnist-lenet5\n" + read("examples", "bag.png"))
    write("v1_binary", "jpeg-threshold", b"\x02model=fmnist-lenet5&classes=Sneaker,Bag,Ankle boot&threshold=0.5\n" +
          read("examples", "ankle-boot.jpg"))


def json_fast():
    # First byte: bit 0 JSON_REJECT_DUPLICATES, bit 1 JSON_DECODE_ANY.
    write("json_fast", "infer-body", b"\x01" + read("examples", "infer-ankle-boot.json"))
    write("json_fast", "numbers", b"\x00" + json.dumps(
        [0, -0, 1.5, -2.25e-3, 1e308, 4.9e-324, 123456789012345678, 0.1, 3.4028234663852886e38,
         18446744073709551615, 1.00000000000000011102230246251565404236316680908203125]).encode())
    write("json_fast", "nested", b"\x01" + json.dumps(
        {"a": {"b": [True, False, None, "x\ty\"z"]}, "c": "\u00e9", "d": [[[]]], "e": {}}).encode())
    write("json_fast", "scalar", b"\x02-12.5e+7")


def v2_infer():
    # First byte: bit 0 binary (then the header text's length and text), bit 1 the composed model.
    u8 = read("examples", "ankle-boot.u8")
    write("v2_infer", "json-uint8", b"\x00" + json.dumps(
        {"id": "r1", "inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "UINT8",
                                 "data": list(u8)}],
         "outputs": [{"name": "class_index"}, {"name": "probabilities"}]}).encode())
    write("v2_infer", "json-fp32-composed", b"\x02" + json.dumps(
        {"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [b / 255 for b in u8]}],
         "parameters": {"classes": [7, 8, 9], "threshold": 0.9}}).encode())
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "UINT8",
                                   "parameters": {"binary_data_size": len(u8)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    n = str(len(head)).encode()
    write("v2_infer", "binary-uint8", b"\x01" + bytes([len(n)]) + n + head + u8)
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "UINT8",
                                   "parameters": {"binary_data_size": len(u8)}}],
                       "outputs": [{"name": "logits", "parameters": {"binary_data": True}},
                                   {"name": "class_index", "parameters": {"binary_data": False}}]}).encode()
    n = str(len(head)).encode()
    write("v2_infer", "binary-outputs-composed", b"\x03" + bytes([len(n)]) + n + head + u8)


def ids():
    for i, s in enumerate(["fmnist-lenet5~7-8-9~0.9", "m~0~1", "a.b_c~12-3~1e-05", "x~1-2~0.5~",
                           "fmnist-lenet5~7-8-9~0.9~per-layer", "m~0~1~tied"]):
        write("id", "id-%d" % i, s)


def registry():
    write("registry_index", "index.json", read("models", "index.json"))
    write("registry_index", "index-two", json.dumps({"format": 1, "models": [
        {"name": "a", "manifest": "a/manifest.json", "sha256": "ab" * 32},
        {"name": "b-2", "manifest": "b-2/manifest.0123456789abcdef.json", "sha256": "CD" * 32}]}))
    write("registry_manifest", "manifest.json", read("models", "fmnist-lenet5", "manifest.json"))


def tensor_file():
    rates = read("models", "fmnist-lenet5", "rates.safetensors.zst")
    write("tensor_file", "rates.safetensors.zst", rates)
    raw = subprocess.run(["zstd", "-dc"], input=rates, stdout=subprocess.PIPE, check=True).stdout
    write("tensor_file", "rates.safetensors", raw)
    write("tensor_file", "golden_depthwise.safetensors", read("tests", "data", "golden_depthwise.safetensors"))


def images():
    for name in ["ankle-boot.png", "ankle-boot.jpg", "bag.png", "sneaker.png"]:
        write("image", name, read("examples", name))

    def png(width, height, color_type, depth, rows, extra=b""):
        def chunk(kind, data):
            return (len(data).to_bytes(4, "big") + kind + data +
                    zlib.crc32(kind + data).to_bytes(4, "big"))
        ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, color_type, 0, 0, 0])
        raw = b"".join(b"\x00" + r for r in rows)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) +
                chunk(b"IEND", b""))
    # Gray + alpha, 16-bit gray, a palette with tRNS, RGBA.
    write("image", "gray-alpha.png", png(3, 2, 4, 8, [bytes([10, 255, 20, 128, 30, 0])] * 2))
    write("image", "gray16.png", png(2, 2, 0, 16, [bytes([0, 0, 255, 255])] * 2))
    palette = b"\x00\x00\x00\xff\x00\x00\x00\xff\x00"
    plte = len(palette).to_bytes(4, "big") + b"PLTE" + palette + zlib.crc32(b"PLTE" + palette).to_bytes(4, "big")
    trns = (2).to_bytes(4, "big") + b"tRNS" + b"\xff\x80" + zlib.crc32(b"tRNS\xff\x80").to_bytes(4, "big")
    write("image", "palette.png", png(3, 1, 3, 8, [bytes([0, 1, 2])], plte + trns))
    write("image", "rgba.png", png(2, 1, 6, 8, [bytes([1, 2, 3, 255, 4, 5, 6, 7])]))


def cifar():
    # First byte: bit 0 CIFAR-100, bit 1 a names file (2-byte length first).
    rec10 = bytes([3]) + bytes(i % 256 for i in range(3072))
    write("cifar", "cifar10-two", b"\x00" + rec10 + bytes([9]) + bytes(3072))
    names = "\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    names = names.encode() + b"\n"
    write("cifar", "cifar10-names-gz", b"\x02" + len(names).to_bytes(2, "little") + names +
          gzip.compress(rec10, mtime=0))
    write("cifar", "cifar100", b"\x01" + bytes([4, 42]) + bytes(i % 7 for i in range(3072)))


def idx():
    # Two-byte little-endian length of the labels file, then it, then the images.
    labels = (0x801).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([0, 9, 4])
    images = ((0x803).to_bytes(4, "big") + (3).to_bytes(4, "big") + (4).to_bytes(4, "big") +
              (5).to_bytes(4, "big") + bytes(i * 5 % 256 for i in range(60)))
    write("idx", "three", len(labels).to_bytes(2, "little") + labels + images)
    gl, gi = gzip.compress(labels, mtime=0), gzip.compress(images, mtime=0)
    write("idx", "three-gz", len(gl).to_bytes(2, "little") + gl + gi)


if __name__ == "__main__":
    v1_json()
    v1_binary()
    json_fast()
    v2_infer()
    ids()
    registry()
    tensor_file()
    images()
    cifar()
    idx()
