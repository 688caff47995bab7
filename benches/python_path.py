"""The Python package's cost over the `nowt` binary on one MNIST epoch (issue 29's benchmark).

Runs the same config through both, interleaved, each in a fresh process, and reports medians of
the epoch's own time (metrics.jsonl `seconds`: training and evaluation) and of the whole
process's wall time (data loading included), with their ratios.

    python3 benches/python_path.py [--pairs 5] [--threads 1] [--bin target/release/nowt]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def epoch_seconds(run: Path) -> float:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["seconds"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bin", default="target/release/nowt")
    ap.add_argument("--preset", default="mnist-mlp")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    data_dir = str(Path("data/mnist").resolve())
    times = {"cli": [], "python": []}
    walls = {"cli": [], "python": []}
    for i in range(a.pairs):
        for side in ("cli", "python") if i % 2 == 0 else ("python", "cli"):
            out = tmp / f"{side}-{i}"
            if side == "cli":
                cmd = [a.bin, "train", "--preset", a.preset, "--epochs", "1", "--threads",
                       str(a.threads), "--data-dir", data_dir, "--out", str(out), "-q"]
            else:
                code = (f"import nowt; nowt.train(preset={a.preset!r}, epochs=1, "
                        f"threads={a.threads}, data_dir={data_dir!r}, out={str(out)!r})")
                cmd = [sys.executable, "-c", code]
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls[side].append(time.perf_counter() - t)
            times[side].append(epoch_seconds(out))
    med = {k: statistics.median(v) for k, v in times.items()}
    wall = {k: statistics.median(v) for k, v in walls.items()}
    print(f"{a.preset}, 1 epoch, {a.threads} thread(s), {a.pairs} interleaved pairs, medians:")
    print(f"  epoch seconds: cli {med['cli']:.3f}  python {med['python']:.3f}  "
          f"python/cli {med['python'] / med['cli']:.4f}")
    print(f"  process wall:  cli {wall['cli']:.3f}  python {wall['python']:.3f}  "
          f"python/cli {wall['python'] / wall['cli']:.4f}")
    print("  all epoch seconds:", json.dumps(times))


if __name__ == "__main__":
    main()
