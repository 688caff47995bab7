"""nowt from Python: deep learning without weight transport (Akrout et al., NeurIPS 2019).

Every rule of the ``nowt`` tool on one seam, with numpy arrays in and out::

    import nowt
    run = nowt.train(rule="kp", epochs=2)          # the embedded digits, Kolen-Pollack
    print(run.summary["last"]["test"]["top1_err"])
    w = run.checkpoint()["fc2.weight"]              # numpy arrays: W, B and the rule's M

A run made here is the run ``nowt train`` makes from the same config: the same directory
(``config.toml``, ``provenance.json``, ``metrics.jsonl``, ``checkpoints/``, ``summary.json``),
the same numbers, resumable from either side. The keyword arguments are the config keys of
``nowt train --help`` and ``config.toml`` (sections as dicts: ``rules={"wm": {"lr": 0.05}}``),
validated by the same code, so the messages are the same; they are raised as
:class:`ConfigError`, :class:`DataError`, :class:`DivergedError` or :class:`CheckpointError`
(all :class:`NowtError`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from . import _nowt
from ._nowt import CheckpointError, ConfigError, DataError, DivergedError, NowtError

__version__ = _nowt.__version__

__all__ = [
    "train",
    "resume",
    "load",
    "compare",
    "report",
    "Run",
    "Comparison",
    "rules",
    "presets",
    "defaults",
    "resolve",
    "check",
    "NowtError",
    "ConfigError",
    "DataError",
    "DivergedError",
    "CheckpointError",
]


def _call(name: str, kwargs: dict) -> str:
    """What started a run, for its provenance.json: the call, arrays named by shape."""

    def show(v: Any) -> str:
        if isinstance(v, np.ndarray):
            return f"<array {v.dtype} {tuple(v.shape)}>"
        if isinstance(v, (tuple, list)) and any(isinstance(x, np.ndarray) for x in v):
            return "(" + ", ".join(show(x) for x in v) + ")"
        if callable(v):
            return f"<{getattr(v, '__name__', 'callable')}>"
        return repr(v)

    args = ", ".join(f"{k}={show(v)}" for k, v in kwargs.items() if v is not None)
    return f"python: nowt.{name}({args})"


def _samples(name: str, x: Any) -> np.ndarray:
    """Samples ``x`` checked (``uint8`` or ``float32``; ``(N, C, H, W)`` or ``(N, D)``; finite)
    and made C-contiguous; errors name the array."""
    x = np.asarray(x)
    if x.dtype not in (np.uint8, np.float32):
        raise DataError(f"{name}: dtype {x.dtype}; give uint8 or float32 (x.astype(np.float32))")
    if x.ndim not in (2, 4):
        raise DataError(f"{name}: shape {x.shape}; give (N, C, H, W) images or (N, D) vectors")
    if x.shape[0] == 0:
        raise DataError(f"{name}: no samples")
    if x.dtype == np.float32 and not np.isfinite(x).all():
        raise DataError(f"{name}: {int((~np.isfinite(x)).sum())} values are NaN or infinite")
    return np.ascontiguousarray(x)


def _check_arrays(data: Any) -> tuple[tuple, int]:
    """``data`` checked and made C-contiguous: ``(x_train, y_train, x_test, y_test[, x_val,
    y_val])``, images ``(N, C, H, W)`` or vectors ``(N, D)`` of ``uint8`` or ``float32``,
    integer labels ``(N,)`` from 0. Returns the arrays and the number of classes."""
    names = ["x_train", "y_train", "x_test", "y_test", "x_val", "y_val"]
    if not isinstance(data, (tuple, list)) or len(data) not in (4, 6):
        raise DataError(
            "data: give (x_train, y_train, x_test, y_test) or "
            "(x_train, y_train, x_test, y_test, x_val, y_val)"
        )
    out = []
    for i in range(0, len(data), 2):
        xn, yn = names[i], names[i + 1]
        x, y = _samples(xn, data[i]), np.asarray(data[i + 1])
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{yn}: shape {y.shape}; give one label per sample of {xn}, ({x.shape[0]},)")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{yn}: dtype {y.dtype}; give integer class labels")
        if y.min() < 0:
            raise DataError(f"{yn}: label {int(y.min())} is negative; labels are 0, 1, …")
        if out and x.shape[1:] != out[0].shape[1:]:
            raise DataError(f"{xn}: samples of shape {x.shape[1:]}, x_train's are {out[0].shape[1:]}")
        out += [x, np.ascontiguousarray(y, dtype=np.int64)]
    classes = int(max(int(y.max()) for y in out[1::2])) + 1
    if classes < 2:
        raise DataError("y_train: every label is 0; a classifier needs at least 2 classes")
    return tuple(out), classes


def _json_or_none(path: Path) -> Optional[Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _records(path: Path) -> list[dict]:
    """A JSON-lines file's records (``[]`` where it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Run:
    """A run directory, made by ``nowt.train`` here or ``nowt train`` on the command line.

    ``dir``: the directory; ``config``: its resolved config (dict); ``finished``: whether every
    epoch ran; ``summary``: ``summary.json`` (``None`` until finished); ``metrics``: the
    ``metrics.jsonl`` records (list of dicts, exactly as written); ``probes``: the
    ``probes.jsonl`` records of a run made with ``probe_every`` (every layer's angles every that
    many steps, and before the first; ``[]`` without)."""

    def __init__(self, dir: os.PathLike | str):
        self.dir = Path(dir)
        if not (self.dir / "config.toml").exists():
            raise CheckpointError(f"{self.dir}: not a nowt run directory (no config.toml)")

    def __repr__(self) -> str:
        state = "finished" if self.finished else f"{len(self.metrics)} epochs so far"
        return f"nowt.Run({str(self.dir)!r}, rule={self.config['rule']!r}, {state})"

    @property
    def config(self) -> dict:
        return json.loads(_nowt.config_json(str(self.dir)))

    @property
    def finished(self) -> bool:
        return _nowt.finished(str(self.dir))

    @property
    def summary(self) -> Optional[dict]:
        return _json_or_none(self.dir / "summary.json")

    @property
    def provenance(self) -> Optional[dict]:
        return _json_or_none(self.dir / "provenance.json")

    @property
    def metrics(self) -> list[dict]:
        return _records(self.dir / "metrics.jsonl")

    @property
    def probes(self) -> list[dict]:
        return _records(self.dir / "probes.jsonl")

    def frame(self):
        """The metrics as a long pandas DataFrame: one row per (epoch, split, metric, layer)
        with its value; ``split`` is train/val/test for the evaluations and ``layer`` for the
        per-layer measurements (``layer`` names the layer; empty otherwise). Needs pandas."""
        import pandas as pd

        rows = []
        for r in self.metrics:
            e = r["epoch"]
            for split in ("train", "val", "test"):
                for metric, value in (r.get(split) or {}).items():
                    rows.append((e, split, metric, "", value))
            for layer in r["layers"]:
                for metric, value in layer.items():
                    if metric != "layer":
                        rows.append((e, "layer", metric, layer["layer"], value))
            for metric in ("lr", "seconds", "images_per_s", "data_wait_s"):
                if metric in r:
                    rows.append((e, "run", metric, "", r[metric]))
        return pd.DataFrame(rows, columns=["epoch", "split", "metric", "layer", "value"])

    def checkpoints(self) -> list[Path]:
        """The run's checkpoints, newest first."""
        return [Path(p) for p in _nowt.checkpoints(str(self.dir))]

    def forward(self, x: np.ndarray, epoch: Optional[int] = None) -> np.ndarray:
        """The network's logits ``(N, classes)`` for samples ``x`` given as ``data=`` takes them
        (``uint8`` read as ``k/255``, or ``float32``; not normalised: the run's normalisation,
        recorded in its checkpoints, is applied), in evaluation mode, from the newest checkpoint
        or the one at the end of ``epoch``."""
        return _nowt.forward(str(self._checkpoint_path(epoch)), _samples("x", x))

    def _checkpoint_path(self, epoch: Optional[int]) -> Path:
        paths = self.checkpoints()
        if epoch is not None:
            paths = [p for p in paths if p.name == f"ckpt-e{epoch:05d}-s0000000.safetensors"]
            if not paths:
                raise CheckpointError(
                    f"{self.dir}: no checkpoint at the end of epoch {epoch} "
                    f"(kept: {', '.join(p.name for p in self.checkpoints()) or 'none'})"
                )
        if not paths:
            raise CheckpointError(f"{self.dir}: no checkpoint")
        return paths[0]

    def checkpoint(self, epoch: Optional[int] = None) -> "Tensors":
        """Every tensor of a checkpoint as a numpy array (``<layer>.weight`` W,
        ``<layer>.feedback`` B, ``<layer>.M`` the rule's M, biases, batch norm, optimiser
        state; see the README's table), from the newest checkpoint or the one at the end of
        ``epoch``. The checkpoint's epoch, step and config are in ``.meta`` of the result."""
        meta, tensors = _nowt.checkpoint(str(self._checkpoint_path(epoch)))
        out = Tensors(tensors)
        out.meta = json.loads(meta)
        return out


class Tensors(dict):
    """A checkpoint's tensors by name, with its metadata in ``.meta``."""

    meta: dict


def _callbacks(on_epoch, on_step, log_every):
    if on_step is not None and log_every <= 0:
        raise ConfigError("on_step: give log_every > 0, the steps between calls")
    for name, f in (("on_epoch", on_epoch), ("on_step", on_step)):
        if f is not None and not callable(f):
            raise ConfigError(f"{name}: give a function")


def train(
    config: Optional[os.PathLike | str] = None,
    *,
    preset: Optional[str] = None,
    data: Optional[tuple] = None,
    on_epoch: Optional[Callable[[dict], Any]] = None,
    on_step: Optional[Callable[[int, float], Any]] = None,
    log_every: int = 0,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 3,
    init_from: Optional[os.PathLike | str] = None,
    **keys: Any,
) -> Run:
    """Trains a fresh run and returns it.

    ``config``: a config file (TOML, as ``nowt train --config``); ``preset``: a preset's name
    (``nowt.presets()``); ``keys``: config keys on top of either (or of the defaults,
    ``nowt.defaults()``), e.g. ``rule="kp", epochs=2, lr=0.01, out="runs/kp"``.

    ``data=(x_train, y_train, x_test, y_test)`` (or with ``x_val, y_val`` after them) trains on
    your arrays: images ``(N, C, H, W)`` or vectors ``(N, D)``, ``uint8`` (read as ``k/255``,
    as the built-in datasets decode 8-bit images) or ``float32``; integer labels from 0. They
    are normalised per channel by the training set's mean and std and augmented as the built-in
    data are, and fingerprinted in the run's provenance.

    ``on_epoch(record)`` is called after every epoch with its ``metrics.jsonl`` record;
    ``on_step(step, loss)`` every ``log_every`` steps. A callback returning ``False`` stops the
    run (checkpointed, resumable with :func:`resume`; the returned run is not ``finished``); one
    raising stops it the same way and the exception propagates; so does Ctrl-C
    (``KeyboardInterrupt``).
    """
    _callbacks(on_epoch, on_step, log_every)
    call = _call("train", dict(config=config, preset=preset, data=data, **keys))
    classes = 0
    if data is not None:
        if "dataset" in keys:
            raise ConfigError("dataset: give data= or dataset=, not both")
        data, classes = _check_arrays(data)
    dir, _ = _nowt.train(
        keys,
        config=None if config is None else str(config),
        preset=preset,
        data=data,
        classes=classes,
        on_epoch=on_epoch,
        on_step=on_step,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        init_from=None if init_from is None else str(init_from),
        call=call,
    )
    return Run(dir)


def resume(
    run: Run | os.PathLike | str,
    *,
    data: Optional[tuple] = None,
    epochs: Optional[int] = None,
    threads: Optional[int] = None,
    on_epoch: Optional[Callable[[dict], Any]] = None,
    on_step: Optional[Callable[[int, float], Any]] = None,
    log_every: int = 0,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 3,
) -> Run:
    """Continues a stopped run from its newest checkpoint (``nowt train --resume``); a run of
    arrays needs the same ``data`` again (checked by fingerprint). ``epochs`` extends it;
    ``threads`` runs the rest on another number of threads (0: one per core), which changes
    no value."""
    _callbacks(on_epoch, on_step, log_every)
    dir = run.dir if isinstance(run, Run) else Path(run)
    classes = 0
    if data is not None:
        data, classes = _check_arrays(data)
    _nowt.resume(
        str(dir),
        data=data,
        classes=classes,
        epochs=epochs,
        threads=threads,
        on_epoch=on_epoch,
        on_step=on_step,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        call=_call("resume", dict(run=str(dir), data=data, epochs=epochs, threads=threads)),
    )
    return Run(dir)


class Comparison:
    """A comparison's directory (``nowt.compare`` here, ``nowt compare`` on the command line):
    ``dir``; ``done``: every run finished or failed and the report is written; ``runs``: its
    run directories as :class:`Run`; ``report``: ``report.md``'s text; ``table``: ``report.csv``
    as a list of dicts (one per rule and setting)."""

    def __init__(self, dir: os.PathLike | str, done: bool = True):
        self.dir = Path(dir)
        self.done = done

    def __repr__(self) -> str:
        return f"nowt.Comparison({str(self.dir)!r}, {len(self.runs)} runs)"

    @property
    def runs(self) -> list[Run]:
        return [Run(d) for d in sorted(self.dir.iterdir()) if (d / "config.toml").exists()]

    @property
    def report(self) -> str:
        return (self.dir / "report.md").read_text()

    @property
    def table(self) -> list[dict]:
        import csv

        with open(self.dir / "report.csv", newline="") as f:
            return list(csv.DictReader(f))


def _grid_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def compare(
    config: Optional[os.PathLike | str] = None,
    *,
    rules: Iterable[str] = ("bp", "fa", "ss", "wm", "kp"),
    seeds: Iterable[int] = (0,),
    grid: Optional[dict] = None,
    grid_seeds: Optional[Iterable[int]] = None,
    preset: Optional[str] = None,
    out: Optional[os.PathLike | str] = None,
    on_epoch: Optional[Callable[[dict], Any]] = None,
    on_step: Optional[Callable[[int, float], Any]] = None,
    log_every: int = 0,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 3,
    **keys: Any,
) -> Comparison:
    """``nowt compare``: every rule × seed (× sweep point) on one configuration, one run
    directory each under ``out``, then the report (``report.md``, ``report.csv``, ``figures/``).
    Called again with the same ``out`` it keeps finished runs and resumes unfinished ones.

    ``grid={"lr": [0.1, 0.03]}`` sweeps config keys (needs ``val_fraction``): the report keeps
    each rule's point with the lowest validation error. ``grid_seeds=[0]`` (some of ``seeds``)
    sweeps at those seeds only, then trains each rule's chosen point at the other seeds.
    ``keys`` are config keys as in :func:`train` (not ``rule``, ``seed`` or ``out``).
    ``on_epoch(record)`` sees every run's records, each with ``record["run"]`` naming the run;
    ``False`` stops the comparison (the returned comparison is not ``done``; call again to
    continue)."""
    _callbacks(on_epoch, on_step, log_every)
    if any(isinstance(v, (str, int)) for v in (seeds, grid_seeds)) or isinstance(rules, str):
        raise ConfigError(
            "rules, seeds, grid_seeds: give lists, e.g. rules=['bp', 'fa'], seeds=[0, 1, 2]")
    axes = [(k, [_grid_value(v) for v in vs]) for k, vs in (grid or {}).items()]
    grid_seeds = None if grid_seeds is None else [int(s) for s in grid_seeds]
    call = _call("compare", dict(config=config, preset=preset, rules=list(rules),
                                 seeds=list(seeds), grid=grid, grid_seeds=grid_seeds, out=out,
                                 **keys))
    dir, done = _nowt.compare(
        keys,
        [str(r) for r in rules],
        [int(s) for s in seeds],
        axes,
        grid_seeds=grid_seeds or [],
        config=None if config is None else str(config),
        preset=preset,
        out=None if out is None else str(out),
        on_epoch=on_epoch,
        on_step=on_step,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        call=call,
    )
    return Comparison(dir, done)


def report(dirs: Iterable[os.PathLike | str], out: Optional[os.PathLike | str] = None) -> Path:
    """``nowt report``: the report of run directories or directories of runs (a comparison's),
    written to ``out`` (default: the first directory). Returns ``report.md``'s path."""
    dirs = [str(d) for d in ([dirs] if isinstance(dirs, (str, os.PathLike)) else dirs)]
    if not dirs:
        raise ConfigError("dirs: give at least one run directory")
    return Path(_nowt.report(dirs, str(out) if out is not None else dirs[0]))


def load(dir: os.PathLike | str) -> Run:
    """The run in ``dir`` (made by this module or by the ``nowt`` binary)."""
    return Run(dir)


def rules() -> list[dict]:
    """The rule registry: each rule's ``name``, ``aliases``, ``summary`` and ``knobs`` (config
    ``key``, CLI ``flag``, ``doc``)."""
    return json.loads(_nowt.rules_json())


def presets() -> dict[str, str]:
    """The presets by name, each its TOML text (its first line says what it follows)."""
    return dict(_nowt.presets())


def defaults() -> dict:
    """Every config key with its default value."""
    return json.loads(_nowt.defaults_json())


def resolve(config: Optional[os.PathLike | str] = None, *, preset: Optional[str] = None, **keys: Any) -> dict:
    """The config :func:`train` would run for these arguments, validated, without training."""
    return json.loads(
        _nowt.resolve_json(keys, config=None if config is None else str(config), preset=preset)
    )


def check(models: Iterable[Any] = (), rules: Iterable[str] = ()) -> list[dict]:
    """``nowt check``: the exact oracles that prove each rule (DESIGN.md §6) on this machine and
    build, for ``models`` × ``rules`` (default: mlp, lenet5, resnet20, resnet18 and every rule).
    Each model is a built-in one's name or a description of your own (a list of layer dicts, as
    ``train(model=...)`` takes). One dict per check: ``model``, ``rule``, ``check``, ``passed``,
    ``detail``."""
    if isinstance(models, str) or isinstance(rules, str):
        raise ConfigError("models, rules: give lists, e.g. models=['mlp']")
    return json.loads(_nowt.check_json(json.dumps(list(models)), list(rules)))


def _keys_doc() -> str:
    """Every config key with its default and its doc (the text of ``nowt train --help``), then
    every rule knob: appended to :func:`train`'s docstring."""
    docs = _nowt.key_docs()
    lines = ["", "Config keys (as in config.toml; flags of `nowt train`), defaults and meaning:", ""]
    for k, v in defaults().items():
        if isinstance(v, dict):
            continue
        lines.append(f"    {k} = {v!r}")
        lines.append(f"        {docs.get(k, '')}")
    lines += ["", "Rule knobs (a dict under rules=, e.g. rules={'wm': {'lr': 0.05}}):", ""]
    for r in rules():
        for kn in r["knobs"]:
            lines.append(f"    {kn['key']}: {kn['doc']}")
    return "\n".join(lines)


train.__doc__ = (train.__doc__ or "") + _keys_doc()
