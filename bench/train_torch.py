#!/usr/bin/python3
"""PyTorch peer of bench_train: the same four models as engine/models.c
(module names included), the same optimiser and the same measurement, so
run_train.sh can put the two side by side.

Models: VGG16-BN (CIFAR: 3x3 convs with bias, BN, ReLU, five max pools,
classifier 4096-4096-K without dropout), ResNet18 (CIFAR stem: one 3x3
conv, no max pool; 1x1 conv + BN shortcuts where the shape changes),
MobileNet v1 (CIFAR: stride-1 stem, 13 depthwise-separable blocks) and
LeNet5 (5x5 convs with bias, ReLU, max pools, FC 120-84-K). Conv channels
scale as model_scale_channels does: max(1, round(c * width)), halves away
from zero, width taken as a float32 like the C side; the hidden FC sizes
do not scale. Initialisation follows model_init.

Step: train mode, CrossEntropyLoss, backward, SGD(lr 0.05, momentum 0.9,
nesterov, weight_decay 5e-4). Input: 1 x 32 x 32 (Fashion-MNIST padded),
10 classes; with --images/--labels, consecutive batches of those raw files
(float32 images, int32 labels, the ones bench_train reads), else one seeded
batch of N(0, 1) pixels and random labels. Reported: images/s = batch *
steps / seconds over the timed steps.

Usage: train_torch.py [--arch A] [--width W] [--batch N] [--steps N]
                      [--warmup N] [--in-channels C] [--images F --labels F]
                      [--expect-params N] [--json]
       train_torch.py --check-params
  --expect-params N fails unless the model has N trainable parameters
  (run_train.sh passes the count bench_train reports); --check-params
  checks the four models at width 1, 3 channels, 32x32, 10 classes
  against the engine's counts and exits.
"""
import argparse
import json
import math
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SIZE = 32
NUM_CLASSES = 10

# Trainable parameters of the engine's models at width 1, 3 input
# channels, 32x32, 10 classes.
REFERENCE_PARAMS = {"vgg16": 33_646_666, "resnet18": 11_173_962,
                    "mobilenet": 3_217_226, "lenet5": 62_006}


def scale(c, width):
    """model_scale_channels: max(1, lround(c * (double)(float)width))."""
    w32 = struct.unpack("f", struct.pack("f", width))[0]
    v = c * w32
    f = math.floor(v)
    r = f + 1 if v - f >= 0.5 else f
    return max(1, int(r))


# 0 = 2x2 max pool.
VGG16_CFG = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0,
             512, 512, 512, 0, 512, 512, 512, 0]


class VGG16(nn.Module):
    def __init__(self, width, in_ch, num_classes, size):
        super().__init__()
        layers, c_in = [], in_ch
        for v in VGG16_CFG:
            if v == 0:
                layers.append(nn.MaxPool2d(2, 2))
                continue
            c = scale(v, width)
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=True),
                       nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.features = nn.Sequential(*layers)
        feat = c_in * (size // 32) ** 2
        self.classifier = nn.Sequential(
            nn.Linear(feat, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    def __init__(self, in_c, out_c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_c)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_c != out_c:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_c, out_c, 1, stride, 0, bias=False),
                nn.BatchNorm2d(out_c))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, width, in_ch, num_classes, size):
        super().__init__()
        c = scale(64, width)
        self.conv1 = nn.Conv2d(in_ch, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        for st, planes in enumerate((64, 128, 256, 512)):
            out_c, blocks = scale(planes, width), []
            for blk in range(2):
                blocks.append(BasicBlock(c, out_c, 2 if st > 0 and blk == 0 else 1))
                c = out_c
            setattr(self, f"layer{st + 1}", nn.Sequential(*blocks))
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class DepthwiseSeparable(nn.Module):
    def __init__(self, in_c, out_c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, in_c, 3, stride, 1, groups=in_c, bias=False)
        self.bn1 = nn.BatchNorm2d(in_c)
        self.conv2 = nn.Conv2d(in_c, out_c, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(out_c)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


MOBILENET_OUT = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
MOBILENET_STRIDE = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]


class MobileNet(nn.Module):
    def __init__(self, width, in_ch, num_classes, size):
        super().__init__()
        c = scale(32, width)
        self.conv1 = nn.Conv2d(in_ch, c, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        blocks = []
        for out, stride in zip(MOBILENET_OUT, MOBILENET_STRIDE):
            out_c = scale(out, width)
            blocks.append(DepthwiseSeparable(c, out_c, stride))
            c = out_c
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class LeNet5(nn.Module):
    def __init__(self, width, in_ch, num_classes, size):
        super().__init__()
        c1, c2 = scale(6, width), scale(16, width)
        self.conv1 = nn.Conv2d(in_ch, c1, 5, bias=True)
        self.conv2 = nn.Conv2d(c1, c2, 5, bias=True)
        s = ((size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(c2 * s * s, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


ARCHS = {"vgg16": VGG16, "resnet18": ResNet18, "mobilenet": MobileNet, "lenet5": LeNet5}


def init_like_engine(model, arch):
    """model_init's rules (the values differ: another generator)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and arch in ("vgg16", "mobilenet"):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
        # ResNet18 and LeNet5 keep nn.Linear's default, as the engine does.


def build(arch, width, in_ch, num_classes=NUM_CLASSES, size=INPUT_SIZE):
    model = ARCHS[arch](width, in_ch, num_classes, size)
    init_like_engine(model, arch)
    return model


def count_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def check_params():
    ok = True
    for arch, want in REFERENCE_PARAMS.items():
        got = count_params(build(arch, 1.0, 3))
        status = "ok" if got == want else "MISMATCH"
        ok &= got == want
        print(f"{arch:<10} {got:>12,} (engine {want:,}) {status}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="lenet5", choices=sorted(ARCHS))
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--in-channels", type=int, default=1)
    ap.add_argument("--expect-params", type=int, default=None,
                    help="fail unless the model has this many trainable parameters")
    ap.add_argument("--check-params", action="store_true",
                    help="check the four models' parameter counts against the engine's and exit")
    ap.add_argument("--images", help="raw float32 images, (N, C, 32, 32)")
    ap.add_argument("--labels", help="raw int32 labels, (N,)")
    ap.add_argument("--json", action="store_true", help="one JSON object on one line")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()

    torch.set_num_threads(2)
    if args.check_params:
        sys.exit(0 if check_params() else 1)
    steps, warmup = max(1, args.steps), max(0, args.warmup)

    torch.manual_seed(0)
    model = build(args.arch, args.width, args.in_channels)
    params = count_params(model)
    if args.expect_params is not None and params != args.expect_params:
        sys.exit(f"{args.arch} width {args.width}: {params} parameters, the engine's model has "
                 f"{args.expect_params}")
    dev = torch.device(args.device)
    if args.device == "cuda":
        # Full fp32, as the engine's CUDA backend runs by default.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    crit = nn.CrossEntropyLoss()
    if bool(args.images) != bool(args.labels):
        sys.exit("--images and --labels go together")
    if args.images:
        per = args.in_channels * INPUT_SIZE * INPUT_SIZE
        xs = torch.from_numpy(np.fromfile(args.images, dtype=np.float32))
        ys = torch.from_numpy(np.fromfile(args.labels, dtype=np.int32).astype(np.int64))
        n_batches = min(xs.numel() // per, ys.numel()) // args.batch
        if n_batches < 1:
            sys.exit(f"{args.images} and {args.labels} hold less than one batch")
        xs = xs[:n_batches * args.batch * per].view(n_batches, args.batch, args.in_channels,
                                                   INPUT_SIZE, INPUT_SIZE)
        ys = ys[:n_batches * args.batch].view(n_batches, args.batch)
    else:
        gen = torch.Generator().manual_seed(42)
        xs = torch.randn(1, args.batch, args.in_channels, INPUT_SIZE, INPUT_SIZE, generator=gen)
        ys = torch.randint(0, NUM_CLASSES, (1, args.batch), generator=gen)
    counter = [0]

    def step():
        i = counter[0] % xs.shape[0]  # step i trains on batch i, as bench_train does
        counter[0] += 1
        x, y = xs[i].to(dev), ys[i].to(dev)  # copied per step, as the engine copies its input
        opt.zero_grad(set_to_none=True)
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()  # the trainer reads each batch's loss too

    loss = 0.0
    for _ in range(warmup):
        loss = step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    secs = time.perf_counter() - t0
    ips = args.batch * steps / secs

    if args.json:
        print(json.dumps({"impl": "torch", "arch": args.arch, "width": args.width,
                          "in_channels": args.in_channels, "input_size": INPUT_SIZE,
                          "num_classes": NUM_CLASSES, "params": params, "batch": args.batch,
                          "steps": steps, "warmup": warmup, "seconds": round(secs, 4),
                          "ms_per_step": round(secs / steps * 1e3, 2),
                          "images_per_s": round(ips, 2), "last_loss": round(loss, 4),
                          "threads": torch.get_num_threads(), "device": args.device}))
    else:
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"mkldnn {torch.backends.mkldnn.is_available()}")
        print(f"{args.arch} width {args.width:g}: {params} parameters, batch {args.batch}, "
              f"{steps} steps in {secs:.2f} s ({secs / steps * 1e3:.1f} ms/step): "
              f"{ips:.1f} images/s")


if __name__ == "__main__":
    main()
