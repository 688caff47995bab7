"""Load a nowt checkpoint in Python (pip install safetensors numpy) and measure angle(W, B).

Usage: python3 docs/load_checkpoint.py runs/<run>/checkpoints/ckpt-e00020-s0000000.safetensors
"""
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

path = sys.argv[1]
tensors = load_file(path)  # {"fc1.weight": array [out, in], "fc1.feedback": ..., "fc1.bias": ..., ...}
meta = safe_open(path, "np").metadata()  # "config" (TOML), "epoch", "step", ...
print(f"{path}: epoch {meta['epoch']}, step {meta['step']}, {len(tensors)} tensors")
for name in sorted(n for n in tensors if n.endswith(".weight")):
    layer = name[: -len(".weight")]
    W, B = tensors[name], tensors[layer + ".feedback"]
    cos = (W * B).sum() / (np.linalg.norm(W) * np.linalg.norm(B))
    print(f"  {layer}: W {W.shape}, angle(W, B) = {np.degrees(np.arccos(np.clip(cos, -1, 1))):.1f} deg")
