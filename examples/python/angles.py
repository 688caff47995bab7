"""Three rules on MNIST held as numpy arrays: how each rule's M comes to align with W.

Trains backprop, feedback alignment and Kolen-Pollack on the same MLP from the same W₀, records
∠(W, M) per layer after every epoch through the `on_epoch` callback, prints the table and, where
matplotlib is installed, plots it (angles.png). MNIST is read from its IDX files (the README's
'Data' section fetches them into data/mnist).

    python3 examples/python/angles.py [--data-dir data/mnist] [--epochs 5] [--limit 0]
"""

import argparse
import gzip
import struct
from pathlib import Path

import numpy as np

import nowt


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (raw or .gz) as a numpy array."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist(dir: Path):
    def one(stem):
        found = [p for p in (dir / stem, dir / f"{stem}.gz") if p.exists()]
        if not found:
            raise SystemExit(f"{dir / stem}: missing; fetch MNIST as the README's 'Data' section says")
        return read_idx(found[0])

    xtr, ytr = one("train-images-idx3-ubyte"), one("train-labels-idx1-ubyte")
    xte, yte = one("t10k-images-idx3-ubyte"), one("t10k-labels-idx1-ubyte")
    # Images (N, 1, 28, 28) as uint8: nowt reads them as k/255, as it reads MNIST's files.
    return xtr[:, None], ytr.astype(np.int64), xte[:, None], yte.astype(np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=Path("data/mnist"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--limit", type=int, default=0, help="train on the first N images (0: all)")
    ap.add_argument("--out", type=Path, default=Path("runs/python-angles"))
    a = ap.parse_args()
    xtr, ytr, xte, yte = mnist(a.data_dir)
    if a.limit:
        xtr, ytr = xtr[: a.limit], ytr[: a.limit]

    angles = {}  # rule -> list of {layer: ∠(W, M)} per epoch
    for rule in ("bp", "fa", "kp"):
        per_epoch = angles.setdefault(rule, [])

        def on_epoch(record, per_epoch=per_epoch):
            per_epoch.append({l["layer"]: l["weight_angle_deg"] for l in record["layers"]})

        run = nowt.train(
            data=(xtr, ytr, xte, yte), rule=rule, model="mlp", hidden=[256, 256],
            epochs=a.epochs, lr=0.01, on_epoch=on_epoch, out=a.out / rule,
        )
        err = run.summary["last"]["test"]["top1_err"]
        print(f"{run.config['rule']:>20}: test error {100 * err:.2f}%  ({run.dir})")

    layers = [l for l in angles["bp"][0] if angles["bp"][0][l] is not None]
    print("\n∠(W, M) in degrees after each epoch (the first layer's M carries no error)")
    print(f"{'rule':>6} {'layer':>6} " + " ".join(f"{e + 1:>6}" for e in range(a.epochs)))
    for rule, rows in angles.items():
        for layer in layers:
            print(f"{rule:>6} {layer:>6} " + " ".join(f"{r[layer]:6.1f}" for r in rows))

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib is not installed: no plot)")
        return
    fig, axes = plt.subplots(1, len(layers), figsize=(4 * len(layers), 3), sharey=True)
    for ax, layer in zip(np.atleast_1d(axes), layers):
        for rule, rows in angles.items():
            ax.plot(range(1, a.epochs + 1), [r[layer] for r in rows], marker="o", label=rule)
        ax.set_title(f"{layer}: ∠(W, M)")
        ax.set_xlabel("epoch")
    np.atleast_1d(axes)[0].set_ylabel("degrees")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(a.out / "angles.png", dpi=120)
    print(f"\nplot: {a.out / 'angles.png'}")


if __name__ == "__main__":
    main()
