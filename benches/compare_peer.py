#!/usr/bin/env python3
"""Side-by-side speed of `nowt bench` and the PyTorch peer (benches/torch_peer.py).

Runs the two alternately, `--repeats` times per rule, in one session, and prints a markdown
table of medians (ms/step, images/s, peak RSS), the ratio of the medians nowt/peer, and the
median of the ratios of each back-to-back pair (steadier when the machine's load drifts).

Usage (from the repository root, after `cargo build --release`):
    python3 benches/compare_peer.py --model mlp --batch 128 --threads 2 --repeats 5
"""
import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "benches" / "torch_peer.py"
NOWT = ROOT / "target" / "release" / "nowt"


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    fields = dict(re.findall(r"(\w+)=([\w.]+)", out))
    return float(fields["ms_per_step"]), float(fields["peak_rss_mb"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--rules", default="bp,fa,ss,wm,kp")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.05)
    a = ap.parse_args()
    common = ["--model", a.model, "--batch", str(a.batch), "--threads", str(a.threads), "--steps", str(a.steps),
              "--lr", str(a.lr)]
    print(f"| rule | nowt ms/step | peer ms/step | ratio | paired ratio | nowt img/s | peer img/s | nowt peak MB | peer peak MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rule in a.rules.split(","):
        ours, theirs = [], []
        for _ in range(a.repeats):
            ours.append(run([str(NOWT), "bench", "--rule", rule, *common]))
            theirs.append(run([sys.executable, str(PEER), "--rule", rule, *common]))
        mo = statistics.median(t for t, _ in ours)
        mp = statistics.median(t for t, _ in theirs)
        ro = max(m for _, m in ours)
        rp = max(m for _, m in theirs)
        paired = statistics.median(o / t for (o, _), (t, _) in zip(ours, theirs))
        print(f"| {rule} | {mo:.2f} | {mp:.2f} | {mo / mp:.2f} | {paired:.2f} | {a.batch / mo * 1e3:.0f} | {a.batch / mp * 1e3:.0f} | {ro:.0f} | {rp:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
