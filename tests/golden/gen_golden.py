#!/usr/bin/env python3
"""Dump golden tensors from PyTorch for tests/test_golden.c.

For three small nets (conv-BN-ReLU-pool-linear, a residual block with a 1x1
shortcut, a depthwise-separable block) this writes one safetensors file each
with the initial parameters, the input and labels, the train-mode logits and
loss, every parameter gradient, the running statistics after that forward
pass, and the eval-mode logits afterwards; and one more with the MODA
losses (affinity, dispersion, compactness) on every ReLU output. Run once with Debian's
python3-torch; the outputs are committed so the tests need no PyTorch:

    /usr/bin/python3 tests/golden/gen_golden.py tests/data
"""
import json
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().to(torch.float32).numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class ConvNet(nn.Module):
    """conv 3->5 (bias) - BN - ReLU - maxpool 2 - flatten - linear 80->6."""
    in_shape = (4, 3, 8, 8)
    classes = 6

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 5, 3, padding=1, bias=True)
        self.bn0 = nn.BatchNorm2d(5)
        self.fc = nn.Linear(80, 6)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn0(self.conv0(x))), 2)
        return self.fc(torch.flatten(x, 1))


class ResBlock(nn.Module):
    """BasicBlock 4->6, stride 2, 1x1 conv + BN shortcut, GAP, linear 6->3."""
    in_shape = (4, 4, 8, 8)
    classes = 3

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.short_conv = nn.Conv2d(4, 6, 1, stride=2, bias=False)
        self.short_bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        out = F.relu(out + self.short_bn(self.short_conv(x)))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class DepthwiseBlock(nn.Module):
    """depthwise 3x3 (4 groups) - BN - ReLU - pointwise 4->8 - BN - ReLU - GAP - linear 8->3."""
    in_shape = (4, 4, 6, 6)
    classes = 3

    def __init__(self):
        super().__init__()
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.pw = nn.Conv2d(4, 8, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = F.relu(self.bn1(self.dw(x)))
        x = F.relu(self.bn2(self.pw(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def dump(model, path, seed):
    torch.manual_seed(seed)
    with torch.no_grad():  # non-trivial BN affine parameters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = torch.randn(*model.in_shape)
    labels = torch.randint(0, model.classes, (model.in_shape[0],))
    out = {"x": x, "labels": labels.float()}
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out["init." + k] = v.clone()
    model.train()
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out["logits"] = logits
    out["loss"] = loss.reshape(1)
    for k, p in model.named_parameters():
        out["grad." + k] = p.grad
    for k, v in model.state_dict().items():
        if "running" in k:
            out["after." + k] = v.clone()
    model.eval()
    with torch.no_grad():
        out["logits_eval"] = model(x)
    save_safetensors(path, out)


def moda_terms(acts, labels):
    """The three MODA terms averaged over layers, as docs/design.md section 2."""
    same = labels[:, None] == labels[None, :]
    upper = torch.triu(torch.ones_like(same), diagonal=1)
    aff, dis, com = [], [], []
    for a in acts:
        z = a.mean(dim=(2, 3)) if a.dim() == 4 else a
        zn = F.normalize(z, dim=1, eps=1e-12)
        s = zn @ zn.t()
        aff.append(s[same & upper].mean())
        dis.append(s[~same & upper].mean())
        com.append(z.mean())
    return torch.stack(aff).mean(), torch.stack(dis).mean(), torch.stack(com).mean()


class ModaNet(nn.Module):
    """conv-BN-ReLU, conv-BN-ReLU, maxpool, flatten, FC-ReLU, FC: ReLU
    outputs of conv and FC layers are tracked."""
    in_shape = (6, 3, 8, 8)
    classes = 3

    def __init__(self):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 5, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(5)
        self.conv1 = nn.Conv2d(5, 7, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(7)
        self.fc0 = nn.Linear(7 * 4 * 4, 9)
        self.fc1 = nn.Linear(9, 3)

    def forward(self, x):
        a0 = F.relu(self.bn0(self.conv0(x)))
        a1 = F.relu(self.bn1(self.conv1(a0)))
        a2 = F.relu(self.fc0(torch.flatten(F.max_pool2d(a1, 2), 1)))
        return self.fc1(a2), [a0, a1, a2]


def dump_moda(path, seed, alpha=1.0, beta=1.0, gamma=0.3):
    torch.manual_seed(seed)
    model = ModaNet()
    x = torch.randn(*model.in_shape)
    labels = torch.tensor([0, 1, 0, 2, 1, 1])
    out = {"x": x, "labels": labels.float()}
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            out["init." + k] = v.clone()
    model.train()
    logits, acts = model(x)
    ce = F.cross_entropy(logits, labels)
    aff, dis, com = moda_terms(acts, labels)
    loss = ce + alpha * (1 - aff) + beta * dis + gamma * com
    loss.backward()
    out["ce"] = ce.reshape(1)
    out["aff"] = aff.reshape(1)
    out["dis"] = dis.reshape(1)
    out["com"] = com.reshape(1)
    out["loss"] = loss.reshape(1)
    for k, p in model.named_parameters():
        out["grad." + k] = p.grad
    save_safetensors(path, out)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
    torch.manual_seed(0)
    dump(ConvNet(), f"{outdir}/golden_convnet.safetensors", 1)
    torch.manual_seed(0)
    dump(ResBlock(), f"{outdir}/golden_resblock.safetensors", 2)
    torch.manual_seed(0)
    dump(DepthwiseBlock(), f"{outdir}/golden_depthwise.safetensors", 3)
    dump_moda(f"{outdir}/golden_moda.safetensors", 4)


if __name__ == "__main__":
    main()
