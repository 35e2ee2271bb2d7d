#!/usr/bin/env python3
"""Regenerate the example requests from Fashion-MNIST's first test image.

Writes ankle-boot.u8 (784 raw uint8 pixels, 28x28, row-major),
infer-ankle-boot.json (a /v1/infer JSON request for the same pixels),
ankle-boot.png (the same pixels as an 8-bit gray PNG, lossless) and, when
cjpeg (Debian's libjpeg-turbo-progs) is on PATH, ankle-boot.jpg (quality
95, gray); and, for the module explorer's test images, the first test
image of a few other classes as PNG (trouser.png, ...). Plain python3:
gzip, struct and zlib only.

    python3 examples/make_examples.py [--data-dir DIR] [--out-dir DIR]
"""
import argparse
import gzip
import json
import os
import shutil
import struct
import subprocess
import zlib

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# The module explorer's other test images: the first test image of each.
GALLERY = {"Trouser": "trouser.png", "Pullover": "pullover.png", "Sneaker": "sneaker.png", "Bag": "bag.png"}


def read_test_images(data_dir, count):
    """The first count test images (bytes of rows*cols pixels each) and labels."""
    with gzip.open(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz")) as f:
        magic, total, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != 0x803 or total < count:
            raise SystemExit("not an IDX image file")
        images = [f.read(rows * cols) for _ in range(count)]
    with gzip.open(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz")) as f:
        magic, total = struct.unpack(">II", f.read(8))
        if magic != 0x801 or total < count:
            raise SystemExit("not an IDX label file")
        labels = list(f.read(count))
    return images, labels, rows, cols


def png_gray(pixels, rows, cols):
    """An 8-bit grayscale PNG, no interlace, filter type 0 on every row."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + pixels[r * cols:(r + 1) * cols] for r in range(rows))
    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)  # 8-bit gray
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def jpeg_gray(pixels, rows, cols):
    """The pixels through cjpeg (a PGM on its input), or None without it."""
    cjpeg = shutil.which("cjpeg")
    if not cjpeg:
        return None
    pgm = b"P5\n%d %d\n255\n" % (cols, rows) + pixels
    return subprocess.run([cjpeg, "-quality", "95", "-grayscale"], input=pgm, stdout=subprocess.PIPE,
                          check=True).stdout


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out-dir", default=here)
    args = ap.parse_args()

    images, labels, rows, cols = read_test_images(args.data_dir, 100)
    pixels, label = images[0], labels[0]
    # The files are named after this image's class; stop if the data differ.
    if CLASSES[label] != "Ankle boot":
        raise SystemExit("test image 0 is %r, expected 'Ankle boot'" % CLASSES[label])

    with open(os.path.join(args.out_dir, "ankle-boot.u8"), "wb") as f:
        f.write(pixels)
    image = [[list(pixels[r * cols:(r + 1) * cols]) for r in range(rows)]]
    request = {
        "model": "fmnist-lenet5",
        "classes": ["Sneaker", "Bag", "Ankle boot"],
        "dtype": "uint8",
        "inputs": [image],  # [N=1][C=1][H=28][W=28]
    }
    with open(os.path.join(args.out_dir, "infer-ankle-boot.json"), "w") as f:
        # One image row per line keeps the file readable.
        text = json.dumps(request, separators=(",", ":"))
        f.write(text.replace("],[", "],\n[") + "\n")
    with open(os.path.join(args.out_dir, "ankle-boot.png"), "wb") as f:
        f.write(png_gray(pixels, rows, cols))
    jpeg = jpeg_gray(pixels, rows, cols)
    if jpeg is not None:
        with open(os.path.join(args.out_dir, "ankle-boot.jpg"), "wb") as f:
            f.write(jpeg)
    else:
        print("cjpeg not found (apt-get install libjpeg-turbo-progs): ankle-boot.jpg left as it is")
    print("label %d (%s), %dx%d" % (label, CLASSES[label], rows, cols))
    for name, file in GALLERY.items():
        i = labels.index(CLASSES.index(name))
        with open(os.path.join(args.out_dir, file), "wb") as f:
            f.write(png_gray(images[i], rows, cols))
        print("%s: test image %d (%s)" % (file, i, name))


if __name__ == "__main__":
    main()
