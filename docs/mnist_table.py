#!/usr/bin/env python3
"""Prints the markdown results table of docs/mnist.md from run directories.

Usage: python3 docs/mnist_table.py runs/mnist-bp runs/mnist-fa ...
"""
import json
import sys
from pathlib import Path

print("| rule | test acc % (final) | best test acc % (epoch) | out layer ∠(W,M) | out layer ∠(δ,δbp) at its input | hidden ∠(W,M) | ‖M‖/‖W‖ out | sign agreement out | seconds (20 epochs) |")
print("|---|---|---|---|---|---|---|---|---|")
for d in map(Path, sys.argv[1:]):
    cfg = (d / "config.toml").read_text()
    rule = next(l.split("=")[1].strip().strip('"') for l in cfg.splitlines() if l.startswith("rule"))
    s = json.loads((d / "summary.json").read_text())
    last = s["last"]
    out, hid = last["layers"][-1], last["layers"][0]
    print(f"| {rule} | {100 * (1 - last['test']['top1_err']):.2f} | {100 * (1 - s['best_test_top1_err']):.2f} ({s['best_epoch']}) "
          f"| {out['weight_angle_deg']:.1f}° | {out['delta_angle_deg']:.1f}° | {hid['weight_angle_deg']:.1f}° "
          f"| {out['norm_ratio']:.3f} | {100 * out['sign_concordance']:.1f}% | {s['total_seconds']:.0f} |")

print()
print("| rule | " + " | ".join(str(e) for e in range(1, 21, 3)) + " |")
print("|---|" + "---|" * len(range(1, 21, 3)))
for d in map(Path, sys.argv[1:]):
    cfg = (d / "config.toml").read_text()
    rule = next(l.split("=")[1].strip().strip('"') for l in cfg.splitlines() if l.startswith("rule"))
    rows = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
    cells = [f"{100 * (1 - r['test']['top1_err']):.2f} / {r['layers'][-1]['weight_angle_deg']:.0f}°" for r in rows[::3]]
    print(f"| {rule} | " + " | ".join(cells) + " |")
