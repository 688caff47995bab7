"""Load a nowt checkpoint in Python (pip install safetensors numpy) and measure angle(W, M), M the
matrix the run's rule sends the error through (the angle the run's metrics record).

Usage: python3 docs/load_checkpoint.py runs/<run>/checkpoints/ckpt-e00020-s0000000.safetensors

(The nowt package gives M itself: nowt.load(run_dir).checkpoint()["<layer>.M"].)
"""
import json
import re
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file


def rule_matrix(rule, layer, t):
    """M of `layer` under `rule` from the checkpoint's tensors `t`, up to a positive scale (which
    no angle depends on); None where M has not W's shape (direct feedback alignment's D below the
    output layer). With `output_layer_rule` set, the top layer's M is that rule's."""
    W = t[layer + ".weight"]
    if rule == "backprop":
        return W
    if rule == "sign-symmetry":  # s·sign(W), s = W's init std or mean |W| (rules.ss_scale)
        return np.sign(W)
    if rule in ("fixed-random-sign", "batchwise-random-sign"):  # B holds the magnitudes |R|
        return np.abs(t[layer + ".feedback"]) * np.sign(W)
    if layer + ".direct" in t:  # direct feedback alignment: D [classes, in], W's shape at the top
        D = t[layer + ".direct"]
        return D if D.shape == W.shape else None
    return t[layer + ".feedback"]  # B: fa, wm, kp, sa, ia, aa


path = sys.argv[1]
tensors = load_file(path)  # {"fc1.weight": array [out, in], "fc1.feedback": ..., "fc1.bias": ..., ...}
meta = safe_open(path, "np").metadata()  # "config" (TOML), "epoch", "step", "input_norm", ...
rule = re.search(r'^rule = "([^"]+)"', meta["config"], re.M).group(1)
print(f"{path}: {rule}, epoch {meta['epoch']}, step {meta['step']}, {len(tensors)} tensors")
# The layers bottom to top, with the angles nowt measured, from the last epoch's record.
last = json.loads(meta["last"])
recorded = {l["layer"]: l["weight_angle_deg"] for l in last["layers"]} if last else {}
layers = list(recorded) or [n[: -len(".weight")] for n in tensors if n.endswith(".weight")]
for layer in layers[1:]:  # the first layer's M carries no error
    W, M = tensors[layer + ".weight"], rule_matrix(rule, layer, tensors)
    if M is None:
        print(f"  {layer}: W {W.shape}, M is D {tensors[layer + '.direct'].shape}: no angle")
        continue
    cos = (W * M).sum() / (np.linalg.norm(W) * np.linalg.norm(M))
    angle = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    print(f"  {layer}: W {W.shape}, angle(W, M) = {angle:.1f} deg (nowt recorded {recorded.get(layer)})")
