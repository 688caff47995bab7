# Type stubs for the nowt package (the Python half is __init__.py; the native half _nowt).
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np

__version__: str

PathLike = Union[os.PathLike, str]
Arrays = tuple[np.ndarray, ...]

class NowtError(Exception): ...
class ConfigError(NowtError): ...
class DataError(NowtError): ...
class DivergedError(NowtError): ...
class CheckpointError(NowtError): ...

class Tensors(dict[str, np.ndarray]):
    meta: dict[str, Any]

class Run:
    dir: Path
    def __init__(self, dir: PathLike) -> None: ...
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def finished(self) -> bool: ...
    @property
    def summary(self) -> Optional[dict[str, Any]]: ...
    @property
    def provenance(self) -> Optional[dict[str, Any]]: ...
    @property
    def metrics(self) -> list[dict[str, Any]]: ...
    @property
    def probes(self) -> list[dict[str, Any]]: ...
    def frame(self) -> Any: ...
    def checkpoints(self) -> list[Path]: ...
    def checkpoint(self, epoch: Optional[int] = None) -> Tensors: ...
    def forward(self, x: np.ndarray, epoch: Optional[int] = None) -> np.ndarray: ...

def train(
    config: Optional[PathLike] = None,
    *,
    preset: Optional[str] = None,
    data: Optional[Arrays] = None,
    on_epoch: Optional[Callable[[dict[str, Any]], Any]] = None,
    on_step: Optional[Callable[[int, float], Any]] = None,
    log_every: int = 0,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 3,
    init_from: Optional[PathLike] = None,
    **keys: Any,
) -> Run: ...
def resume(
    run: Union[Run, PathLike],
    *,
    data: Optional[Arrays] = None,
    epochs: Optional[int] = None,
    threads: Optional[int] = None,
    on_epoch: Optional[Callable[[dict[str, Any]], Any]] = None,
    on_step: Optional[Callable[[int, float], Any]] = None,
    log_every: int = 0,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 3,
) -> Run: ...
class Comparison:
    dir: Path
    done: bool
    def __init__(self, dir: PathLike, done: bool = True) -> None: ...
    @property
    def runs(self) -> list[Run]: ...
    @property
    def report(self) -> str: ...
    @property
    def table(self) -> list[dict[str, str]]: ...

def compare(
    config: Optional[PathLike] = None,
    *,
    rules: Iterable[str] = ...,
    seeds: Iterable[int] = ...,
    grid: Optional[dict[str, list[Any]]] = None,
    grid_seeds: Optional[Iterable[int]] = None,
    preset: Optional[str] = None,
    out: Optional[PathLike] = None,
    on_epoch: Optional[Callable[[dict[str, Any]], Any]] = None,
    on_step: Optional[Callable[[int, float], Any]] = None,
    log_every: int = 0,
    checkpoint_every: int = 0,
    keep_checkpoints: int = 3,
    **keys: Any,
) -> Comparison: ...
def report(dirs: Union[PathLike, Iterable[PathLike]], out: Optional[PathLike] = None) -> Path: ...
def load(dir: PathLike) -> Run: ...
def rules() -> list[dict[str, Any]]: ...
def presets() -> dict[str, str]: ...
def defaults() -> dict[str, Any]: ...
def check(models: Iterable[Any] = ..., rules: Iterable[str] = ...) -> list[dict[str, Any]]: ...
def resolve(config: Optional[PathLike] = None, *, preset: Optional[str] = None, **keys: Any) -> dict[str, Any]: ...
