"""Noise pre-training under feedback alignment, replayed in PyTorch: does the output layer's W
align with its fixed B?

An independent check of nowt's noise pre-training phase at the mnist-mlp preset's settings
(MLP 784-500-10, ReLU, He-normal W and B, SGD lr 0.05 momentum 0.9, weight decay 1e-4 on W,
batch 128, 469 steps; inputs N(0, 1) per pixel, labels uniform, both drawn fresh each step),
then variants of the setting (input mean and scale, no momentum, tanh or sigmoid units, no
biases, a deeper network, 2,000 steps). Prints each weight layer's angle between W and B,
before -> after. Hand-written forward and backward (no autograd): the hidden layers receive
e B (nowt's convention: B has W's shape), the output error e = (softmax(z) - onehot(y)) / N.

    python3 -m pip install torch && python3 replay.py
"""
import math

import torch

torch.set_num_threads(1)


def angle(a, b):
    return math.degrees(math.acos(float((a * b).sum() / (a.norm() * b.norm()))))


def pretrain(layers=(784, 500, 10), act="relu", bias=True, mean=0.0, std=1.0, steps=469,
             lr=0.05, momentum=0.9, decay=1e-4, seed=0):
    g = torch.Generator().manual_seed(seed)
    he = lambda o, i: torch.randn(o, i, generator=g) * math.sqrt(2 / i)
    pairs = list(zip(layers[:-1], layers[1:]))
    Ws = [he(o, i) for i, o in pairs]
    Bs = [he(o, i) for i, o in pairs]
    bs = [torch.zeros(o) for _, o in pairs]
    f, df = {
        "relu": (lambda a: a.clamp(min=0), lambda a, h: (a > 0).float()),
        "tanh": (torch.tanh, lambda a, h: 1 - h * h),
        "sigmoid": (torch.sigmoid, lambda a, h: h * (1 - h)),
    }[act]
    vW = [torch.zeros_like(W) for W in Ws]
    vb = [torch.zeros_like(b) for b in bs]
    before = [angle(W, B) for W, B in zip(Ws, Bs)]
    for _ in range(steps):
        x = mean + std * torch.randn(128, layers[0], generator=g)
        y = torch.randint(0, layers[-1], (128,), generator=g)
        hs, pre = [x], []
        for k, (W, b) in enumerate(zip(Ws, bs)):
            a = hs[-1] @ W.T + b
            pre.append(a)
            hs.append(f(a) if k < len(Ws) - 1 else a)
        onehot = torch.nn.functional.one_hot(y, layers[-1]).float()
        d = (hs[-1].softmax(1) - onehot) / 128
        for k in reversed(range(len(Ws))):
            gW, gb = d.T @ hs[k] + decay * Ws[k], d.sum(0)
            if k > 0:
                d = (d @ Bs[k]) * df(pre[k - 1], hs[k])  # feedback alignment: B, not W
            vW[k].mul_(momentum).add_(gW)
            Ws[k].sub_(lr * vW[k])
            if bias:
                vb[k].mul_(momentum).add_(gb)
                bs[k].sub_(lr * vb[k])
    return [f"{a:.1f}->{angle(W, B):.1f}" for a, W, B in zip(before, Ws, Bs)]


SETTINGS = [
    ("nowt's defaults (mnist-mlp preset, 469 steps)", {}),
    ("input mean 0.5", dict(mean=0.5)),
    ("input mean 1", dict(mean=1.0)),
    ("input std 0.3", dict(std=0.3)),
    ("no momentum, 2,000 steps", dict(momentum=0.0, steps=2000)),
    ("tanh units, no momentum, 2,000 steps", dict(act="tanh", momentum=0.0, steps=2000)),
    ("sigmoid units, no momentum, 2,000 steps", dict(act="sigmoid", momentum=0.0, steps=2000)),
    ("no biases, no momentum, 2,000 steps", dict(bias=False, momentum=0.0, steps=2000)),
    ("784-100-100-10, no momentum, 2,000 steps", dict(layers=(784, 100, 100, 10), momentum=0.0, steps=2000)),
]

if __name__ == "__main__":
    print("| setting | seed | angle(W, B) per weight layer, bottom to top: before -> after |")
    print("|---|---|---|")
    for name, kw in SETTINGS:
        for seed in (0, 1):
            print(f"| {name} | {seed} | {', '.join(pretrain(seed=seed, **kw))} |", flush=True)
