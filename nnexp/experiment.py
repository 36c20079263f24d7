"""One run from config to run folder: data, model, training, files.

:func:`execute_run` is what ``nnexp train`` calls, and what every worker of
``nnexp compare`` calls for each grid point. It saves after every epoch
(metrics, checkpoint, result), so a crash or an interrupt loses at most the
epoch in progress, and :func:`execute_run` with ``resume_dir`` continues from
the last finished epoch.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnexp import __version__
from nnexp.config import Config, config_from_yaml_text
from nnexp.errors import RunError
from nnexp.runs import (
    create_run_dir,
    read_metrics,
    read_result,
    write_atomic,
    write_csv,
    write_json,
    write_text,
)
from nnexp.training import METRIC_COLUMNS, EpochMetrics, TrainingObserver


@dataclass
class RunOutcome:
    """What :func:`execute_run` produced."""

    run_dir: Path
    result: dict[str, Any]

    @property
    def status(self) -> str:
        return self.result["status"]


def software_versions() -> dict[str, str]:
    """Versions that decide the numbers a run produces."""
    import keras
    import tensorflow as tf

    return {
        "nnexp": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def summarize_history(history: list[dict[str, float]]) -> dict[str, Any]:
    """Final and best-epoch metrics from the per-epoch rows.

    The best epoch is the one with the highest validation accuracy (the first
    such epoch if tied).
    """
    if not history:
        return {"final": None, "best": None, "seconds_per_epoch": None}
    final = history[-1]
    finite = [row for row in history if math.isfinite(row["val_loss"])]
    best = max(finite or history, key=lambda row: row["val_accuracy"])
    seconds = [row["seconds"] for row in history]
    # The first epoch pays for tracing and compiling; later ones are steady.
    steady = seconds[1:] or seconds
    return {
        "final": {k: final[k] for k in METRIC_COLUMNS if k not in ("seconds",)},
        "best": {
            "epoch": int(best["epoch"]),
            "val_accuracy": best["val_accuracy"],
            "val_loss": best["val_loss"],
        },
        "seconds_per_epoch": float(np.median(steady)),
        "seconds_first_epoch": seconds[0],
    }


class _RunRecorder:
    """Saves a run's progress after every epoch and forwards it to the display."""

    def __init__(
        self,
        run_dir: Path,
        base_result: dict[str, Any],
        history: list[dict[str, float]],
        display: TrainingObserver | None,
    ) -> None:
        self.run_dir = run_dir
        self.result = base_result
        self.history = history
        self.display = display
        self.diagnostics: Any = None
        self.tensorboard: Any = None

    def on_epoch_begin(self, epoch: int, steps: int) -> None:
        if self.display:
            self.display.on_epoch_begin(epoch, steps)

    def on_progress(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        if self.display:
            self.display.on_progress(epoch, step, loss, accuracy)

    def on_epoch_end(self, metrics: EpochMetrics, trainer: Any) -> None:
        self.history.append(metrics.as_row())
        write_csv(self.run_dir / "metrics.csv", self.history, METRIC_COLUMNS)
        if self.diagnostics is not None:
            self.diagnostics.record_epoch(metrics.epoch, trainer.epoch_diagnostics)
        if self.tensorboard is not None:
            rows = self.diagnostics.rows if self.diagnostics is not None else []
            self.tensorboard.log_epoch(metrics.as_row(), rows)
        if math.isfinite(metrics.loss) and math.isfinite(metrics.val_loss):
            state = trainer.get_state()
            state["__epoch__"] = np.array(metrics.epoch)
            write_atomic(
                self.run_dir / "checkpoint.npz",
                lambda f: np.savez(f, **state),
                binary=True,
            )
        self.update(status="running")
        if self.display:
            self.display.on_epoch_end(metrics, trainer)

    def update(self, **fields: Any) -> dict[str, Any]:
        self.result.update(fields)
        self.result.update(summarize_history(self.history))
        self.result["epochs_completed"] = len(self.history)
        self.result["updated_at"] = _now()
        write_json(self.run_dir / "result.json", self.result)
        return self.result


def execute_run(
    config: Config,
    runs_dir: Path | None = None,
    *,
    splits: Any = None,
    data_dir: Path | None = None,
    display: TrainingObserver | None = None,
    resume_dir: Path | None = None,
    run_dir: Path | None = None,
    tensorboard: bool = False,
) -> RunOutcome:
    """Train one config and write its run folder.

    Args:
        config: the validated config.
        runs_dir: where a new run folder is created (ignored with
            ``resume_dir`` or ``run_dir``).
        splits: already loaded data (``nnexp.data.Splits``); loaded when None.
        data_dir: where to look for Fashion-MNIST first.
        display: receives progress (a progress bar, a sweep display).
        resume_dir: an interrupted run folder to continue.
        run_dir: an existing, empty folder to use instead of creating one.
        tensorboard: also write TensorBoard logs into ``<run>/tensorboard/``.

    Returns:
        The run folder and its final ``result.json`` content. A diverged run
        returns normally with status ``diverged``.

    Raises:
        KeyboardInterrupt: after marking the run ``interrupted`` (resumable).
        NnexpError: for the user's mistakes (missing data, unwritable folder).
    """
    from nnexp.data import load_splits

    if splits is None:
        splits = load_splits(
            validation_size=config.data.validation_size,
            train_size=config.data.train_size,
            scaling=config.data.scaling,
            data_dir=data_dir,
        )

    history: list[dict[str, float]] = []
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        previous = read_result(run_dir)
        history = read_metrics(run_dir)
        base = dict(previous)
        base["resumed_at"] = base.get("resumed_at", []) + [_now()]
    else:
        if run_dir is None:
            run_dir = create_run_dir(Path(runs_dir), config.name, config.short_hash)
        write_text(run_dir / "config.yaml", config.to_yaml())
        base = {
            "status": "running",
            "name": config.name,
            "config_hash": config.hash,
            "seed": config.seed,
            "epochs_planned": config.training.epochs,
            "started_at": _now(),
        }
    recorder = _RunRecorder(run_dir, base, history, display)
    started = time.perf_counter()
    recorder.update(status="running", message="")

    try:
        return _train_into(config, splits, run_dir, recorder, started, tensorboard)
    except KeyboardInterrupt:
        recorder.update(
            status="interrupted",
            message=f"interrupted after {len(history)} finished epoch(s); "
            f"continue with: nnexp train --resume {run_dir}",
            wall_seconds=_wall(base, started),
        )
        raise
    except BaseException as exc:
        recorder.update(
            status="failed",
            message=f"{type(exc).__name__}: {exc}",
            wall_seconds=_wall(base, started),
        )
        raise


def _wall(base: dict[str, Any], started: float) -> float:
    """Wall time, adding what earlier attempts of a resumed run spent."""
    return float(base.get("wall_seconds") or 0.0) + time.perf_counter() - started


def _train_into(
    config: Config,
    splits: Any,
    run_dir: Path,
    recorder: _RunRecorder,
    started: float,
    tensorboard: bool = False,
) -> RunOutcome:
    from nnexp.model import build_model, count_parameters
    from nnexp.plots import plot_run_curves
    from nnexp.training import Trainer, seed_everything

    seed_everything(config.seed)
    model = build_model(config)
    trainer = Trainer(
        config,
        model,
        splits.x_train,
        splits.y_train,
        splits.x_val,
        splits.y_val,
        diagnostics=config.diagnostics,
    )
    start_epoch = 0
    checkpoint = run_dir / "checkpoint.npz"
    if recorder.history:
        if not checkpoint.exists():
            raise RunError(f"cannot resume {run_dir}: checkpoint.npz is missing")
        with np.load(checkpoint) as saved:
            state = {key: saved[key] for key in saved.files}
        start_epoch = int(state.pop("__epoch__"))
        # Epochs after the checkpoint (if a crash hit between the two writes)
        # are dropped and trained again.
        del recorder.history[start_epoch:]
        trainer.set_state(state)

    recorder.update(
        params=count_parameters(model),
        versions=software_versions(),
        platform=platform.platform(),
        python_executable=sys.executable,
        train_images=int(len(splits.x_train)),
    )
    if config.diagnostics:
        from nnexp.diagnostics import DiagnosticsRecorder

        recorder.diagnostics = DiagnosticsRecorder(
            run_dir, config, model, splits.x_val, splits.y_val
        )
        recorder.diagnostics.start(start_epoch)
    if tensorboard:
        from nnexp.diagnostics import TensorBoardLogger

        recorder.tensorboard = TensorBoardLogger(run_dir, model, splits.x_val)
    try:
        outcome = trainer.fit(recorder, start_epoch=start_epoch)
    finally:
        if recorder.tensorboard is not None:
            recorder.tensorboard.close()
    if recorder.diagnostics is not None:
        recorder.diagnostics.finish()

    test_loss, test_accuracy = float("nan"), float("nan")
    if outcome.status == "completed":
        test_loss, test_accuracy = trainer.evaluate(splits.x_test, splits.y_test)
        temporary = run_dir / ".model.tmp.keras"
        model.save(temporary)
        temporary.replace(run_dir / "model.keras")
    if recorder.history:
        plot_run_curves(recorder.history, run_dir / "curves.png", config.name)

    result = recorder.update(
        status=outcome.status,
        message=outcome.message,
        test={"loss": test_loss, "accuracy": test_accuracy},
        finished_at=_now(),
        wall_seconds=_wall(recorder.result, started),
    )
    return RunOutcome(run_dir, result)


def record_failed_run(config: Config, runs_dir: Path, message: str) -> Path:
    """Write a run folder for a run that never reported back (its worker died).

    The folder holds the resolved config and a ``failed`` result, so reports
    count the run and a rerun of the sweep trains it again.
    """
    run_dir = create_run_dir(Path(runs_dir), config.name, config.short_hash)
    write_text(run_dir / "config.yaml", config.to_yaml())
    write_json(
        run_dir / "result.json",
        {
            "status": "failed",
            "name": config.name,
            "config_hash": config.hash,
            "seed": config.seed,
            "epochs_planned": config.training.epochs,
            "epochs_completed": 0,
            "started_at": _now(),
            "message": message,
        },
    )
    return run_dir


def load_run_config(run_dir: Path) -> Config:
    """The resolved config stored in a run folder."""
    path = Path(run_dir) / "config.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise RunError(f"{run_dir} has no readable config.yaml") from None
    return config_from_yaml_text(text, str(path))
