"""A nowt checkpoint in PyTorch: the same MLP built from the checkpoint's tensors, evaluated on
MNIST's test set with the normalisation the checkpoint records. Needs torch, numpy and
safetensors (no nowt package); MNIST's IDX files as the README's 'Data' section fetches them.

    nowt train --preset mnist-mlp --epochs 2 --out runs/mnist-mlp-bp
    python3 docs/to_pytorch.py runs/mnist-mlp-bp/checkpoints/ckpt-e00002-s0000000.safetensors

It prints PyTorch's test error and loss beside those nowt recorded for the same checkpoint.
"""

import gzip
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main(path: str, data_dir: str = "data/mnist") -> None:
    tensors = load_file(path)
    meta = safe_open(path, "np").metadata()
    config = meta["config"]
    model = re.search(r'^model = "([^"]+)"', config, re.M).group(1)
    act = re.search(r'^activation = "([^"]+)"', config, re.M).group(1)
    assert model == "mlp", "this recipe builds nowt's MLP (fc1, fc2, … with the activation between)"
    # The MLP: fc1 … fcL ([out, in] weights, as torch.nn.Linear's), the activation between.
    layers = []
    n = len([k for k in tensors if re.fullmatch(r"fc\d+\.weight", k)])
    for i in range(1, n + 1):
        w, b = tensors[f"fc{i}.weight"], tensors[f"fc{i}.bias"]
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.weight.data = torch.from_numpy(w.copy())
        lin.bias.data = torch.from_numpy(b.copy())
        layers.append(lin)
        if i < n:
            layers.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}[act]())
    net = torch.nn.Sequential(torch.nn.Flatten(), *layers).eval()

    # The inputs as nowt reads them (k/255), normalised per channel as the checkpoint records.
    (mean, std), = json.loads(meta["input_norm"])
    d = Path(data_dir)
    find = lambda stem: next(p for p in (d / stem, d / f"{stem}.gz") if p.exists())
    x = read_idx(find("t10k-images-idx3-ubyte")).astype(np.float32) / np.float32(255)
    y = torch.from_numpy(read_idx(find("t10k-labels-idx1-ubyte")).astype(np.int64))
    x = torch.from_numpy((x - np.float32(mean)) / np.float32(std))[:, None]
    with torch.no_grad():
        logits = net(x)
    err = (logits.argmax(1) != y).double().mean().item()
    loss = torch.nn.functional.cross_entropy(logits.double(), y).item()
    ours = json.loads(meta["last"])["test"]
    print(f"{path}: epoch {meta['epoch']}")
    print(f"  PyTorch: test top-1 error {100 * err:.2f}%  loss {loss:.4f}")
    print(f"  nowt:    test top-1 error {100 * ours['top1_err']:.2f}%  loss {ours['loss']:.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
