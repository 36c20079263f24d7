"""Shared fixtures: tiny real Fashion-MNIST splits and tiny configs.

Training tests use the real data from Debian's ``dataset-fashion-mnist``
package, cut down to 2,000 training and 1,000 validation images, and small
networks, so a whole run takes well under a second on a CPU.
"""

from __future__ import annotations

import copy
import os

# Before anything imports TensorFlow: silence its C++ start-up chatter.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from nnexp.config import Config, build_config  # noqa: E402

TINY_TRAIN_SIZE = 2000
TINY_VALIDATION_SIZE = 1000

TINY_BASE: dict[str, Any] = {
    "name": "tiny",
    "seed": 7,
    "data": {
        "train_size": TINY_TRAIN_SIZE,
        "validation_size": TINY_VALIDATION_SIZE,
        "scaling": "unit",
    },
    "model": {"hidden_layers": [32, 16], "activation": "relu"},
    "training": {
        "optimizer": {"name": "adam", "learning_rate": 0.002},
        "epochs": 2,
        "batch_size": 32,
    },
}
"""A small but real experiment: ~26k parameters, 63 steps per epoch."""


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``changes`` into a copy of ``base`` (mappings merge, the rest
    replaces; a named component given as a mapping replaces the whole spec)."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        old = merged.get(key)
        if (
            isinstance(old, dict)
            and isinstance(value, dict)
            and key not in ("activation", "initializer", "optimizer", "clipping")
        ):
            merged[key] = _merge(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def make_tiny_config(changes: dict[str, Any] | None = None, *overrides: str) -> Config:
    """A validated tiny config: :data:`TINY_BASE`, deep-merged with ``changes``,
    then ``KEY=VALUE`` overrides as ``--set`` would apply them."""
    return build_config(_merge(TINY_BASE, changes or {}), overrides=list(overrides))


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., Config]:
    """Factory: ``tiny_config({"model": {...}}, "training.epochs=1")``."""
    return make_tiny_config


@pytest.fixture(scope="session", autouse=True)
def _private_keras_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep nnexp.data's decoded-dataset cache out of the user's ~/.keras."""
    previous = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(tmp_path_factory.mktemp("keras_home"))
    yield
    if previous is None:
        os.environ.pop("KERAS_HOME", None)
    else:
        os.environ["KERAS_HOME"] = previous


@pytest.fixture(scope="session")
def tiny_splits() -> Any:
    """2,000 training and 1,000 validation images (the full 10,000 test set).

    Tests that train through the CLI request it too: it skips them when the
    data is missing and fills the decoded cache the CLI then reads.
    """
    from nnexp.data import load_splits
    from nnexp.errors import DataError

    try:
        return load_splits(
            validation_size=TINY_VALIDATION_SIZE,
            train_size=TINY_TRAIN_SIZE,
            scaling="unit",
            download=False,
        )
    except DataError as exc:
        pytest.skip(
            f"needs Fashion-MNIST (apt-get install dataset-fashion-mnist): {exc}"
        )


@pytest.fixture(scope="session")
def completed_run(tiny_splits: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One finished 2-epoch run of the tiny config (read-only: copy to modify)."""
    from nnexp.experiment import execute_run

    runs_dir = tmp_path_factory.mktemp("completed_runs")
    return execute_run(make_tiny_config(), runs_dir, splits=tiny_splits)


class InterruptAfter:
    """A progress display that presses Ctrl-C once ``epoch`` has been saved."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, steps: int) -> None:
        pass

    def on_progress(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        pass

    def on_epoch_end(self, metrics: Any, trainer: Any) -> None:
        if metrics.epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="session")
def interrupted_run(tiny_splits: Any) -> Callable[..., Path]:
    """Factory: train ``config`` into a fresh ``runs_dir``, interrupt it (as
    Ctrl-C would) right after epoch ``after`` and return its run folder."""
    from nnexp.experiment import execute_run

    def interrupt(config: Config, runs_dir: Path, after: int = 1) -> Path:
        with pytest.raises(KeyboardInterrupt):
            execute_run(
                config, runs_dir, splits=tiny_splits, display=InterruptAfter(after)
            )
        (run_dir,) = [p for p in Path(runs_dir).glob("*/*") if p.is_dir()]
        return run_dir

    return interrupt
