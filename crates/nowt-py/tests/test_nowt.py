"""The Python package against the library it wraps and the `nowt` binary it must agree with.

The binary comparisons need `nowt` built (`cargo build --release`); NOWT_BIN names it, else
the checkout's target/release/nowt is used.
"""

import gzip
import json
import math
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

import nowt

ROOT = Path(__file__).resolve().parents[3]
TIMING = ("seconds", "images_per_s", "data_wait_s")


def nowt_bin() -> str:
    path = os.environ.get("NOWT_BIN") or str(ROOT / "target" / "release" / "nowt")
    assert Path(path).exists(), f"{path}: build the binary first (cargo build --release) or set NOWT_BIN"
    return path


def untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (big-endian dims, unsigned bytes), gzipped, as MNIST ships."""
    head = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(head + array.astype(np.uint8).tobytes())


def tiny_mnist(dir: Path, seed: int = 0):
    """A tiny MNIST-format dataset: class-dependent blobs on noise, 28×28, ten classes."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = rng.integers(0, 60, size=(n, 28, 28))
        for i, c in enumerate(y):
            r, col = 2 + 2 * c, 4 + (c % 5) * 4
            x[i, r : r + 6, col : col + 6] += 180
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.uint8)

    (xtr, ytr), (xte, yte) = make(300), make(100)
    dir.mkdir(parents=True, exist_ok=True)
    write_idx(dir / "train-images-idx3-ubyte.gz", xtr)
    write_idx(dir / "train-labels-idx1-ubyte.gz", ytr)
    write_idx(dir / "t10k-images-idx3-ubyte.gz", xte)
    write_idx(dir / "t10k-labels-idx1-ubyte.gz", yte)
    return xtr[:, None], ytr.astype(np.int64), xte[:, None], yte.astype(np.int64)


def test_train_returns_a_finished_run(tmp_path):
    r = nowt.train(rule="kp", epochs=2, out=tmp_path / "kp")
    assert r.finished and r.config["rule"] == "kolen-pollack"
    assert r.summary["epochs"] == 2 and len(r.metrics) == 2
    assert r.summary["last"] == r.metrics[-1]
    assert r.provenance["command"].startswith("python: nowt.train(rule='kp'")


def test_probe_every_records_the_layers_within_training(tmp_path):
    """probe_every=4 on the embedded digits (12 steps an epoch at batch 128): records before the
    first step and at global steps 4, 8, …, 24 in probes.jsonl, the ones at each epoch's last
    step measuring exactly what that epoch's record does, with its training loss."""
    r = nowt.train(rule="wm", epochs=2, probe_every=4, out=tmp_path / "wm")
    probes = r.probes
    assert [p["global_step"] for p in probes] == list(range(0, 25, 4))
    assert probes[0]["loss"] is None and probes[0]["step"] == 0
    for epoch, end in zip(r.metrics, (probes[3], probes[6])):
        assert (end["epoch"], end["step"]) == (epoch["epoch"], 12)
        assert end["layers"] == epoch["layers"]
        assert end["loss"] == epoch["train"]["loss"]
    assert nowt.train(rule="wm", epochs=1, out=tmp_path / "plain").probes == []


def test_arrays_give_the_binarys_metrics_on_the_same_data(tmp_path):
    """nowt.train on MNIST-format data held as numpy arrays = `nowt train --dataset mnist` on the
    same files, record for record (timing aside), data fingerprint included."""
    data = tiny_mnist(tmp_path / "mnist")
    keys = dict(rule="fa", model="mlp", hidden=[32], epochs=2, batch_size=50, lr=0.05, seed=3)
    cli = tmp_path / "cli"
    subprocess.run(
        [nowt_bin(), "train", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"),
         "--rule", "fa", "--model", "mlp", "--hidden", "32", "--epochs", "2", "--batch-size",
         "50", "--lr", "0.05", "--seed", "3", "--out", str(cli), "-q"],
        check=True, capture_output=True,
    )
    py = nowt.train(data=data, out=tmp_path / "py", **keys)
    theirs = nowt.load(cli)
    assert untimed(py.metrics) == untimed(theirs.metrics)
    assert py.provenance["data_fingerprint"] == theirs.provenance["data_fingerprint"]
    assert py.config["dataset"] == "arrays" and theirs.config["dataset"] == "mnist"


def test_forward_gives_the_recorded_test_error_on_raw_inputs(tmp_path):
    """The checkpoint records the normalisation: logits of the raw test images reproduce the
    run's test error and loss."""
    xtr, ytr, xte, yte = tiny_mnist(tmp_path / "m")
    r = nowt.train(data=(xtr, ytr, xte, yte), model="lenet5", epochs=2, batch_size=50,
                   out=tmp_path / "r")
    t = r.checkpoint()
    assert len(t.meta["input_norm"]) == 1 and t.meta["input_norm"][0][1] > 0
    logits = r.forward(xte)
    assert logits.shape == (100, 10) and logits.dtype == np.float32
    test = r.metrics[-1]["test"]
    assert np.mean(logits.argmax(1) != yte) == pytest.approx(test["top1_err"], abs=1e-12)
    z = logits.astype(np.float64)
    z -= z.max(1, keepdims=True)
    nll = -(z[np.arange(100), yte] - np.log(np.exp(z).sum(1)))
    assert nll.mean() == pytest.approx(test["loss"], rel=1e-5)
    first = r.forward(xte, epoch=1)
    assert not np.array_equal(first, logits)
    with pytest.raises(nowt.DataError, match="x: samples of shape"):
        r.forward(np.zeros((3, 1, 20, 20), np.uint8))


def test_a_validation_pair_is_used_as_given(tmp_path):
    xtr, ytr, xte, yte = tiny_mnist(tmp_path / "m")
    r = nowt.train(
        data=(xtr[:250], ytr[:250], xte, yte, xtr[250:], ytr[250:]),
        model="mlp", hidden=[16], epochs=1, out=tmp_path / "r",
    )
    assert r.metrics[0]["val"] is not None
    with pytest.raises(nowt.ConfigError, match="val_fraction"):
        nowt.train(
            data=(xtr[:250], ytr[:250], xte, yte, xtr[250:], ytr[250:]),
            val_fraction=0.1, model="mlp", epochs=1, out=tmp_path / "r2",
        )


def test_float_vectors_train(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    r = nowt.train(data=(x[:150], y[:150], x[150:], y[150:]), model="mlp", hidden=[8],
                   epochs=10, batch_size=25, out=tmp_path / "v")
    assert r.finished and r.summary["last"]["test"]["top1_err"] < 0.2


@pytest.mark.parametrize(
    "data, message",
    [
        ((np.zeros((4, 3), np.float64), np.zeros(4, int), np.zeros((2, 3), np.float32), np.zeros(2, int)), "x_train: dtype float64"),
        ((np.zeros((4, 3), np.float32), np.zeros(5, int), np.zeros((2, 3), np.float32), np.zeros(2, int)), "y_train: shape"),
        ((np.full((4, 3), np.nan, np.float32), np.zeros(4, int), np.zeros((2, 3), np.float32), np.zeros(2, int)), "x_train: 12 values are NaN"),
        ((np.zeros((4, 3), np.float32), np.array([0, 1, -1, 0]), np.zeros((2, 3), np.float32), np.zeros(2, int)), "y_train: label -1"),
        ((np.zeros((4, 3), np.float32), np.zeros(4, int), np.zeros((2, 4), np.float32), np.zeros(2, int)), "x_test: samples of shape"),
        ((np.zeros((4, 3, 2), np.float32), np.zeros(4, int), np.zeros((2, 3), np.float32), np.zeros(2, int)), "x_train: shape"),
        ((np.zeros((4, 3), np.float32), np.zeros(4, float), np.zeros((2, 3), np.float32), np.zeros(2, int)), "y_train: dtype float64"),
        ((np.zeros((4, 3), np.float32), np.zeros(4, int)), "data: give"),
    ],
)
def test_bad_arrays_are_named(tmp_path, data, message):
    with pytest.raises(nowt.DataError, match=message):
        nowt.train(data=data, model="mlp", epochs=1, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_bad_keys_raise_config_errors_naming_them(tmp_path):
    with pytest.raises(nowt.ConfigError, match="unknown field `lrr`"):
        nowt.train(lrr=0.1, out=tmp_path / "a")
    with pytest.raises(nowt.ConfigError, match="unknown rule 'magic'"):
        nowt.train(rule="magic", out=tmp_path / "b")
    with pytest.raises(nowt.ConfigError, match="lr"):
        nowt.train(lr=-1.0, out=tmp_path / "c")
    with pytest.raises(nowt.ConfigError, match="no such preset"):
        nowt.train(preset="nope", out=tmp_path / "d")
    with pytest.raises(nowt.ConfigError, match="rules.wm.sigmaa"):
        nowt.train(rule="wm", rules={"wm": {"sigmaa": 1}}, out=tmp_path / "e")
    assert issubclass(nowt.ConfigError, nowt.NowtError)
    assert not any((tmp_path / n).exists() for n in "abcde")


def test_data_errors_are_typed(tmp_path):
    with pytest.raises(nowt.DataError, match="data not found"):
        nowt.train(dataset="mnist", data_dir=tmp_path / "nothing", out=tmp_path / "r")


def test_divergence_is_typed(tmp_path):
    with pytest.raises(nowt.DivergedError, match="diverged"):
        nowt.train(lr=1e6, epochs=2, out=tmp_path / "r")


def test_keys_mirror_the_config(tmp_path):
    c = nowt.resolve(preset="mnist-mlp", rule="fa", epochs=1)
    assert c["rule"] == "feedback-alignment" and c["epochs"] == 1 and c["dataset"] == "mnist"
    assert nowt.resolve(rules={"wm": {"lr": 0.05}})["rules"]["wm"]["lr"] == 0.05
    assert set(nowt.presets()) >= {"mnist-mlp", "cifar10-resnet20"}
    names = {r["name"] for r in nowt.rules()}
    assert {"backprop", "weight-mirror", "kolen-pollack"} <= names
    assert any(k["key"] == "rules.wm.lr" for r in nowt.rules() for k in r["knobs"])
    assert "epochs = " in nowt.train.__doc__ and "rules.wm.lr" in nowt.train.__doc__
    # Each key's doc is the one `nowt train --help` shows for its flag.
    help_text = subprocess.run([nowt_bin(), "train", "--help"], capture_output=True, text=True).stdout
    for key in ("lr", "val_fraction", "shortcut", "tensorboard"):
        doc = nowt._nowt.key_docs()[key]
        assert doc in nowt.train.__doc__ and doc in " ".join(help_text.split()), key


def test_on_epoch_sees_every_record_and_false_stops_a_resumable_run(tmp_path):
    whole = nowt.train(rule="wm", epochs=3, out=tmp_path / "whole")
    seen = []

    def stop_after_two(record):
        seen.append(record)
        return len(seen) < 2

    r = nowt.train(rule="wm", epochs=3, on_epoch=stop_after_two, out=tmp_path / "part")
    assert not r.finished and len(r.metrics) == 2 and r.summary is None
    assert untimed(seen) == untimed(r.metrics)
    # On another number of threads: the same values, the new count in the run's config.
    r = nowt.resume(r, threads=1 if r.config["threads"] != 1 else 2)
    assert r.finished
    assert untimed(r.metrics) == untimed(whole.metrics)
    assert r.config["threads"] != whole.config["threads"]


def test_a_raising_callback_stops_the_run_and_propagates(tmp_path):
    steps = []

    def on_step(step, loss):
        steps.append((step, loss))
        if len(steps) == 3:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        nowt.train(epochs=2, batch_size=100, on_step=on_step, log_every=2, out=tmp_path / "r")
    assert [s for s, _ in steps] == [2, 4, 6]
    assert all(math.isfinite(l) for _, l in steps)
    r = nowt.load(tmp_path / "r")
    assert not r.finished and r.checkpoints()
    assert nowt.resume(r).finished


def test_ctrl_c_checkpoints_and_raises_keyboard_interrupt(tmp_path):
    import signal

    def on_step(step, loss):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C delivers it

    with pytest.raises(KeyboardInterrupt):
        nowt.train(epochs=3, batch_size=100, on_step=on_step, log_every=1, out=tmp_path / "r")
    r = nowt.load(tmp_path / "r")
    assert not r.finished and r.checkpoints()
    whole = nowt.train(epochs=3, batch_size=100, out=tmp_path / "whole")
    assert untimed(nowt.resume(r).metrics) == untimed(whole.metrics)


def test_on_step_needs_log_every(tmp_path):
    with pytest.raises(nowt.ConfigError, match="log_every"):
        nowt.train(on_step=lambda s, l: None, out=tmp_path / "r")


def test_checkpoint_tensors_and_the_rules_m(tmp_path):
    """W, B and M as numpy; M is the rule's (sign symmetry: sign(W)), and its angle to W is the
    one the last metrics record measured at the same state."""
    r = nowt.train(rule="ss", epochs=2, out=tmp_path / "ss")
    t = r.checkpoint()
    assert t.meta["epoch"] == 2 and t.meta["rule"] == "sign-symmetry"
    layers = [l["layer"] for l in r.metrics[-1]["layers"]]
    assert f"{layers[0]}.M" not in t
    for rec in r.metrics[-1]["layers"][1:]:
        w, m = t[rec["layer"] + ".weight"], t[rec["layer"] + ".M"]
        assert w.dtype == np.float32 and w.shape == m.shape == t[rec["layer"] + ".feedback"].shape
        assert np.array_equal(np.sign(m), np.sign(w))
        cos = float((w.astype(np.float64) * m).sum() / (np.linalg.norm(w) * np.linalg.norm(m)))
        assert math.degrees(math.acos(min(1.0, cos))) == pytest.approx(rec["weight_angle_deg"], abs=1e-3)
    first = r.checkpoint(epoch=1)
    assert first.meta["epoch"] == 1
    with pytest.raises(nowt.CheckpointError, match="epoch 9"):
        r.checkpoint(epoch=9)


def test_load_reads_a_run_the_binary_made(tmp_path):
    out = tmp_path / "cli"
    subprocess.run([nowt_bin(), "train", "--rule", "bp", "--epochs", "1", "--out", str(out), "-q"],
                   check=True, capture_output=True)
    r = nowt.load(out)
    assert r.finished and r.config["rule"] == "backprop" and len(r.metrics) == 1
    assert "fc1.weight" in r.checkpoint()
    with pytest.raises(nowt.CheckpointError, match="not a nowt run"):
        nowt.load(tmp_path)


def test_frame_is_long_format(tmp_path):
    import pandas as pd
    r = nowt.train(epochs=2, out=tmp_path / "r")
    f = r.frame()
    assert list(f.columns) == ["epoch", "split", "metric", "layer", "value"]
    test_err = f[(f.split == "test") & (f.metric == "top1_err")].value.tolist()
    assert test_err == [m["test"]["top1_err"] for m in r.metrics]
    angles = f[(f.split == "layer") & (f.metric == "weight_angle_deg") & (f.epoch == 2)]
    assert len(angles) == len(r.metrics[-1]["layers"])
    assert isinstance(f, pd.DataFrame)


def test_tensorboard_files_read_back_with_tensorboards_reader(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = nowt.train(rule="fa", epochs=3, batch_size=100, tensorboard=True, log_every=5,
                   out=tmp_path / "r")
    files = list((r.dir / "tb").glob("events.out.tfevents.*"))
    assert len(files) == 1
    acc = EventAccumulator(str(r.dir / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "test/top1_err", "lr", "weight_angle_deg/fc2", "train/step_loss"} <= tags
    err = [(e.step, e.value) for e in acc.Scalars("test/top1_err")]
    assert err == [(m["epoch"], pytest.approx(m["test"]["top1_err"], rel=1e-6)) for m in r.metrics]
    angle = [e.value for e in acc.Scalars("weight_angle_deg/fc2")]
    assert angle == [pytest.approx(m["layers"][1]["weight_angle_deg"], rel=1e-6) for m in r.metrics]
    steps = [e.step for e in acc.Scalars("train/step_loss")]
    per_epoch = math.ceil(1437 / 100)
    assert steps == [e * per_epoch + s for e in range(3) for s in range(5, per_epoch + 1, 5)]


def test_check_runs_the_oracles():
    out = nowt.check(models=["mlp"], rules=["bp", "ss", "wm"])
    assert out and all(o["passed"] for o in out), [o for o in out if not o["passed"]]
    assert {o["check"] for o in out} >= {"gradient", "matrix", "feedback"}
    matrix_rules = {o["rule"] for o in out if o["check"] == "matrix"}
    assert matrix_rules == {"backprop", "sign-symmetry", "weight-mirror"}
    with pytest.raises(nowt.ConfigError, match="model"):
        nowt.check(models=["mpl"])
    with pytest.raises(nowt.ConfigError, match="unknown rule"):
        nowt.check(rules=["magic"])


def test_a_described_network_is_a_list_of_dicts(tmp_path):
    """The built-in MLP written out as layer dicts trains bit for bit as the built-in one (the
    same W₀ from the same draws); a convolutional description trains and names its layers in
    the records; one that cannot work raises a ConfigError naming the layer and the shapes."""
    gain = math.sqrt(2)  # the built-in ReLU MLP's gain, He's
    layers = [{"kind": "linear", "out": 32, "gain": gain}, {"kind": "relu"}, {"kind": "linear", "gain": gain}]
    described = nowt.train(model=layers, epochs=2, rule="fa", out=tmp_path / "described")
    builtin = nowt.train(model="mlp", hidden=[32], epochs=2, rule="fa", out=tmp_path / "builtin")
    assert untimed(described.metrics) == untimed(builtin.metrics)
    assert described.config["model"] == {"name": "custom", "layers": layers}
    convnet = {
        "name": "tiny-vgg",
        "layers": [
            {"kind": "conv", "out": 4, "kernel": 3, "padding": 1},
            {"kind": "batch_norm", "relu": True},
            {"kind": "max_pool", "kernel": 2},
            {"kind": "flatten"},
            {"kind": "linear", "name": "out"},
        ],
    }
    r = nowt.train(model=convnet, epochs=1, rule="wm", out=tmp_path / "conv")
    assert [l["layer"] for l in r.metrics[-1]["layers"]] == ["conv1", "out"]
    assert r.summary["epochs"] == 1 and r.config["model"]["name"] == "tiny-vgg"
    bad = [{"kind": "conv", "out": 4, "kernel": 3}, {"kind": "linear"}]
    with pytest.raises(nowt.ConfigError, match=r"layer fc1: a linear layer needs flat inputs, got \[4, 6, 6\]"):
        nowt.train(model=bad, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    checks = nowt.check(models=[convnet], rules=["bp", "kp"])
    assert checks and all(o["passed"] for o in checks), [o for o in checks if not o["passed"]]
    assert {o["model"] for o in checks} >= {"tiny-vgg"}


def test_compare_is_the_binarys_comparison(tmp_path):
    """nowt.compare makes the runs, records and report `nowt compare` makes from the same
    arguments, record for record; stopped by a callback, it continues where it stopped."""
    args = ["--rules", "bp,fa", "--seeds", "0,1", "--epochs", "2", "--val-fraction", "0.1"]
    subprocess.run([nowt_bin(), "compare", *args, "--out", str(tmp_path / "cli")],
                   check=True, capture_output=True)
    seen = []

    def stop_at_third(record):
        seen.append(record["run"])
        return len(seen) != 3

    c = nowt.compare(rules=["bp", "fa"], seeds=[0, 1], epochs=2, val_fraction=0.1,
                     on_epoch=stop_at_third, out=tmp_path / "py")
    assert not c.done and seen == ["bp-s0 1/4", "bp-s0 1/4", "fa-s0 2/4"]
    c = nowt.compare(rules=["bp", "fa"], seeds=[0, 1], epochs=2, val_fraction=0.1,
                     out=tmp_path / "py")
    assert c.done and [r.dir.name for r in c.runs] == ["bp-s0", "bp-s1", "fa-s0", "fa-s1"]
    theirs = nowt.Comparison(tmp_path / "cli")
    for ours, cli in zip(c.runs, theirs.runs):
        assert untimed(ours.metrics) == untimed(cli.metrics), ours.dir.name
    assert [row["rule"] for row in c.table] == [row["rule"] for row in theirs.table]
    assert "## Runs" in c.report
    md = nowt.report([tmp_path / "cli"], out=tmp_path / "again")
    assert md == tmp_path / "again" / "report.md" and md.exists()


def test_compare_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(nowt.ConfigError, match="--grid chooses"):
        nowt.compare(rules=["bp"], grid={"lr": [0.1, 0.01]}, out=tmp_path / "a")
    with pytest.raises(nowt.ConfigError, match="seed"):
        nowt.compare(rules=["bp"], seed=3, out=tmp_path / "b")
    with pytest.raises(nowt.ConfigError, match="unknown rule"):
        nowt.compare(rules=["magic"], out=tmp_path / "c")


def test_a_sweep_keeps_each_rules_best_point(tmp_path):
    c = nowt.compare(rules=["bp"], grid={"lr": [0.1, 0.001]}, epochs=2, val_fraction=0.1,
                     out=tmp_path / "s")
    assert c.done and {r.dir.name for r in c.runs} == {"bp-lr0.1-s0", "bp-lr0.001-s0"}
    assert "Sweep" in c.report


def test_a_sweep_on_grid_seeds_trains_the_choice_at_the_other_seeds(tmp_path):
    c = nowt.compare(rules=["bp"], seeds=[0, 1], grid={"lr": [0.1, 0.001]}, grid_seeds=[0],
                     epochs=2, val_fraction=0.1, out=tmp_path / "s")
    def lowest(name):
        return min(e["val"]["top1_err"] for e in nowt.load(tmp_path / "s" / name).metrics)
    best = "0.1" if lowest("bp-lr0.1-s0") <= lowest("bp-lr0.001-s0") else "0.001"
    assert c.done and {r.dir.name for r in c.runs} == {
        "bp-lr0.1-s0", "bp-lr0.001-s0", f"bp-lr{best}-s1"}
    with pytest.raises(nowt.ConfigError, match="not one of --seeds"):
        nowt.compare(rules=["bp"], grid={"lr": [0.1]}, grid_seeds=[2], val_fraction=0.1,
                     out=tmp_path / "x")
