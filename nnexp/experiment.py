"""One run from config to run folder: data, model, training, files.

:func:`execute_run` is what ``nnexp train`` calls, and what every worker of
``nnexp compare`` calls for each grid point. It saves after every epoch
(metrics, checkpoint, result), so a crash or an interrupt loses at most the
epoch in progress, and :func:`execute_run` with ``resume_dir`` continues from
the last finished epoch.

A process training into a run folder holds an exclusive lock on
``<run>/.train.lock`` the whole time (``train``, ``train --resume`` and every
``compare`` worker alike), so two processes never write the same run; the
kernel drops the lock when the process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import math
import os
import platform
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnexp import __version__
from nnexp.config import Config, config_from_yaml_text
from nnexp.errors import RunError
from nnexp.runs import (
    FINISHED,
    create_run_dir,
    read_metrics,
    read_result,
    save_atomic,
    write_atomic,
    write_csv,
    write_json,
    write_text,
)
from nnexp.training import METRIC_COLUMNS, EpochMetrics, TrainingObserver

RUN_LOCK = ".train.lock"
"""The lock file inside a run folder, held while a process trains into it."""

CHECKPOINT = "checkpoint.npz"

_RESUME_ADVICE = "it cannot be resumed: train the config again"


class ResumeError(RunError):
    """A run folder cannot be resumed (its checkpoint or metrics are missing,
    unreadable or of another model); found before anything is written.

    Attributes:
        problem: what is wrong, without the advice (``<run>/checkpoint.npz is
            unreadable (...)``).
    """

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}; {_RESUME_ADVICE}")
        self.problem = problem


@contextlib.contextmanager
def hold_run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's exclusive lock (non-blocking) for the ``with`` body.

    Raises:
        RunError: another process holds it ("... is being trained by another
            process (pid N)"), or the folder is missing or not writable.
    """
    run_dir = Path(run_dir)
    path = run_dir / RUN_LOCK
    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            raise RunError(f"{run_dir} is not a run folder (no result.json)") from None
        except OSError as exc:
            raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _lock_owner(descriptor)
            os.close(descriptor)
            who = f" (pid {owner})" if owner else ""
            raise RunError(
                f"{run_dir} is being trained by another process{who}"
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                os.close(descriptor)
                raise RunError(f"cannot lock {path}: {exc.strerror or exc}") from None
            # A file system without locks: train unprotected rather than not at all.
        # The previous holder removes the file as it lets go; if it did so
        # after we opened it, we hold a lock on a file nobody else will open.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        opened = os.fstat(descriptor)
        if current is not None and (current.st_ino, current.st_dev) == (
            opened.st_ino,
            opened.st_dev,
        ):
            break
        os.close(descriptor)
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        yield
    finally:
        # Removed while still held, so the next process locks a fresh file.
        path.unlink(missing_ok=True)
        os.close(descriptor)


def _lock_owner(descriptor: int) -> int | None:
    """The pid written into a lock file by its holder (None if not yet there)."""
    for _ in range(20):
        try:
            text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            return None
        if text.isdigit():
            return int(text)
        time.sleep(0.01)  # locked, but the holder has not written its pid yet
    return None


def read_checkpoint(path: Path, epochs_recorded: int) -> tuple[int, dict[str, Any]]:
    """The epoch and variables saved in a checkpoint, checked but not applied.

    Loaded with ``allow_pickle=False``: a checkpoint can never run code.

    Args:
        path: the ``checkpoint.npz``.
        epochs_recorded: rows in the run's ``metrics.csv``; the checkpoint's
            epoch must be one of them.

    Raises:
        ResumeError: the file is missing, empty, not an ``.npz`` archive,
            damaged, holds objects, has no (or a nonsensical) ``__epoch__``.
    """
    path = Path(path)

    def unreadable(reason: str) -> ResumeError:
        return ResumeError(f"{path} is unreadable ({reason})")

    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise ResumeError(f"{path} is missing") from None
    except OSError as exc:
        raise unreadable(exc.strerror or str(exc)) from None
    if not head:
        raise unreadable("the file is empty")
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise unreadable("not a NumPy .npz archive")
    state: dict[str, Any] = {}
    try:
        with np.load(path, allow_pickle=False) as saved:
            for key in saved.files:
                try:
                    state[key] = saved[key]
                except ValueError as exc:
                    if "allow_pickle" in str(exc):
                        raise unreadable(f"{key!r} holds Python objects") from None
                    raise
    except ResumeError:
        raise
    except (
        OSError,
        EOFError,
        ValueError,
        KeyError,
        zipfile.BadZipFile,
        zlib.error,
        struct.error,
        NotImplementedError,
    ) as exc:
        raise unreadable(f"a damaged or truncated archive: {exc}") from None
    if "__epoch__" not in state:
        raise unreadable("it has no __epoch__ entry")
    epoch = state.pop("__epoch__")
    if epoch.shape != () or epoch.dtype.kind not in "iu":
        raise unreadable("its __epoch__ entry is not an epoch number")
    epoch = int(epoch)
    if not 1 <= epoch <= epochs_recorded:
        raise unreadable(
            f"it holds epoch {epoch}, but metrics.csv records "
            f"{epochs_recorded} finished epoch(s)"
        )
    return epoch, state


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
        self.written = False

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
                self.run_dir / CHECKPOINT,
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
        self.written = True
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
    note: str = "",
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
        note: the run's message while it trains, and after it unless it ends
            with a message of its own (why a sweep trained it again, say).

    Returns:
        The run folder and its final ``result.json`` content. A diverged run
        returns normally with status ``diverged``.

    Raises:
        KeyboardInterrupt: after marking the run ``interrupted`` (resumable).
        ResumeError: ``resume_dir``'s checkpoint (or metrics) is missing,
            unreadable or of another model; the folder is left as it was.
        RunError: another process is training into the folder.
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

    with contextlib.ExitStack() as held:
        history: list[dict[str, float]] = []
        checkpoint = None
        if resume_dir is not None:
            run_dir = Path(resume_dir)
            read_result(run_dir)  # not a run folder: say so, and lock nothing
            held.enter_context(hold_run_lock(run_dir))
            # Read everything a resume needs before writing anything: a folder
            # that cannot be resumed is left exactly as it was.
            previous, history, checkpoint = _read_resumable(run_dir)
            if previous.get("status") in FINISHED:
                # Finished by another process since the caller looked.
                raise RunError(
                    f"{run_dir} is already {previous['status']}; nothing to resume"
                )
            base = dict(previous)
            base["resumed_at"] = base.get("resumed_at", []) + [_now()]
        else:
            if run_dir is None:
                run_dir = create_run_dir(Path(runs_dir), config.name, config.short_hash)
            held.enter_context(hold_run_lock(run_dir))
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
        if resume_dir is None:
            recorder.update(status="running", message=note)

        try:
            return _train_into(
                config,
                splits,
                run_dir,
                recorder,
                started,
                tensorboard,
                checkpoint,
                note,
            )
        except KeyboardInterrupt:
            if recorder.written:
                recorder.update(
                    status="interrupted",
                    message=f"interrupted after {len(history)} finished epoch(s); "
                    f"continue with: nnexp train --resume {run_dir}",
                    wall_seconds=_wall(base, started),
                )
            raise
        except BaseException as exc:
            # A resume that stopped before its first write (the checkpoint does
            # not fit the model, say) leaves the folder as it found it.
            if recorder.written:
                try:
                    recorder.update(
                        status="failed",
                        message=f"{type(exc).__name__}: {exc}",
                        wall_seconds=_wall(base, started),
                    )
                except RunError:
                    # The disk that refused the model refuses result.json too;
                    # the first error is the one worth reporting.
                    pass
            raise


def _read_resumable(
    run_dir: Path,
) -> tuple[dict[str, Any], list[dict[str, float]], tuple[int, dict] | None]:
    """A run folder's result, metrics and checkpoint, read for a resume."""
    previous = read_result(run_dir)
    try:
        history = read_metrics(run_dir)
    except RunError as exc:
        raise ResumeError(str(exc)) from None
    checkpoint = None
    if history:
        checkpoint = read_checkpoint(run_dir / CHECKPOINT, len(history))
    return previous, history, checkpoint


def check_resumable(run_dir: Path) -> None:
    """Raise at once what resuming ``run_dir`` would raise before training:
    another process is training it, or its metrics or checkpoint are missing
    or unreadable (a checkpoint of another model shows only once the model is
    built). Writes nothing; meant to run before the data and TensorFlow load.

    Raises:
        RunError: not a run folder, or being trained by another process.
        ResumeError: the metrics or checkpoint cannot be resumed from.
    """
    run_dir = Path(run_dir)
    read_result(run_dir)
    with hold_run_lock(run_dir):
        _read_resumable(run_dir)


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
    checkpoint: tuple[int, dict[str, Any]] | None = None,
    note: str = "",
) -> RunOutcome:
    from nnexp.model import build_model, count_parameters
    from nnexp.plots import plot_run_curves
    from nnexp.training import CheckpointMismatch, Trainer, seed_everything

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
    if checkpoint is not None:
        start_epoch, state = checkpoint
        try:
            trainer.set_state(state)
        except CheckpointMismatch as exc:
            raise ResumeError(
                f"{run_dir / CHECKPOINT} does not match this run's model ({exc})"
            ) from None
        # Epochs after the checkpoint (if a crash hit between the two writes)
        # are dropped and trained again.
        del recorder.history[start_epoch:]
    if not recorder.written:
        # A resumed run: its state is back, so from here on it trains.
        recorder.update(status="running", message=note)

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
        save_atomic(run_dir / "model.keras", model.save)
    if recorder.history:
        plot_run_curves(recorder.history, run_dir / "curves.png", config.name)

    result = recorder.update(
        status=outcome.status,
        message=outcome.message or note,
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
