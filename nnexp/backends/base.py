"""What every backend hands to a worker, and what comes back.

A :class:`RunTask` carries the run's resolved config as YAML text (so it
pickles small and is re-validated on the worker), the sweep folder and,
for a resumed run, its run folder. :func:`execute_task` is the body every
backend runs for a task: load the data once per process, train, and turn any
exception into a ``failed`` :class:`TaskResult` instead of stopping the sweep.

A resumed task whose run folder turns out not to be resumable (its checkpoint
is unreadable or of another model) trains again from scratch in a new run
folder, saying so in its message; the old folder is kept as it was. Retrying
the resume could only fail the same way on every rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

_splits_cache: dict[tuple, Any] = {}


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep, as sent to a worker."""

    index: int
    config_yaml: str
    sweep_dir: str
    label: str
    resume_dir: str | None = None
    data_dir: str | None = None


@dataclass(frozen=True)
class TaskResult:
    """How a task ended: ``completed``, ``diverged``, ``failed`` or ``interrupted``."""

    index: int
    status: str
    run_dir: str | None
    message: str = ""


def load_splits_cached(config: Any, data_dir: str | None, splits: Any = None) -> Any:
    """The data splits a config needs, decoded once per process."""
    from nnexp.data import load_splits

    key = (
        config.data.validation_size,
        config.data.train_size,
        config.data.scaling,
        data_dir,
    )
    if splits is not None:
        _splits_cache[key] = splits
    if key not in _splits_cache:
        _splits_cache.clear()  # keep one dataset in memory, not one per variant
        _splits_cache[key] = load_splits(
            validation_size=config.data.validation_size,
            train_size=config.data.train_size,
            scaling=config.data.scaling,
            data_dir=Path(data_dir) if data_dir else None,
        )
    return _splits_cache[key]


def execute_task(task: RunTask, display: Any = None, splits: Any = None) -> TaskResult:
    """Train one task into its sweep folder; never raises except on interrupt."""
    from nnexp.config import config_from_yaml_text
    from nnexp.experiment import ResumeError, execute_run

    run_dir = None
    try:
        config = config_from_yaml_text(task.config_yaml, f"run {task.label}")
        data = load_splits_cached(config, task.data_dir, splits)
        try:
            outcome = execute_run(
                config,
                Path(task.sweep_dir),
                splits=data,
                display=display,
                resume_dir=Path(task.resume_dir) if task.resume_dir else None,
            )
        except ResumeError as exc:
            # Nothing was written to the old folder; a new one starts over.
            outcome = execute_run(
                config,
                Path(task.sweep_dir),
                splits=data,
                display=display,
                note=f"trained again from scratch: {exc.problem}",
            )
        return TaskResult(
            task.index,
            outcome.status,
            str(outcome.run_dir),
            outcome.result.get("message", ""),
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one failed run must not stop a sweep
        return TaskResult(task.index, "failed", run_dir, f"{type(exc).__name__}: {exc}")
