"""Writes a tiny image-folder dataset of rendered shapes, for the full-cycle test:

    make_shapes.py DIR [TRAIN_PER_CLASS] [TEST_PER_CLASS]

DIR/{train,test}/{circle,cross,square}/NNN.png: 36x36 grayscale PNGs (so the
trainer's fit rule resizes them to its input size) of one filled shape of
random size and position on a noisy dark background. Seeded: the same files
every time. Python's standard library only (PNG through zlib).
"""

import os
import random
import struct
import sys
import zlib

SIZE = 36


def write_png(path, pixels):
    """An 8-bit grayscale PNG of rows of ints in 0..255."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    header = struct.pack(">IIBBBBB", len(pixels[0]), len(pixels), 8, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def inside(shape, x, y, cx, cy, r):
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return abs(dx) <= r * 0.8 and abs(dy) <= r * 0.8
    return (abs(dx) <= r * 0.3 and abs(dy) <= r) or (abs(dy) <= r * 0.3 and abs(dx) <= r)  # cross


def render(rng, shape):
    cx, cy = SIZE / 2 + rng.uniform(-4, 4), SIZE / 2 + rng.uniform(-4, 4)
    r = rng.uniform(8, 12)
    fg = rng.randint(170, 255)
    return [[fg if inside(shape, x + 0.5, y + 0.5, cx, cy, r) else rng.randint(0, 40) for x in range(SIZE)]
            for y in range(SIZE)]


def main():
    out = sys.argv[1]
    counts = {"train": int(sys.argv[2]) if len(sys.argv) > 2 else 60,
              "test": int(sys.argv[3]) if len(sys.argv) > 3 else 20}
    rng = random.Random(1)
    for split, n in counts.items():
        for shape in ("circle", "cross", "square"):
            d = os.path.join(out, split, shape)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                write_png(os.path.join(d, f"{i:03d}.png"), render(rng, shape))


if __name__ == "__main__":
    main()
