"""Interruptions of real processes: Ctrl-C, SIGTERM and SIGKILL lose no finished work.

These tests start ``nnexp`` in a subprocess, wait until it has finished at
least one epoch, and signal it:

- SIGINT or SIGTERM during ``train``: the run is marked ``interrupted`` with its
  metrics and checkpoint, and ``train --resume`` ends with the same numbers as
  a run that was never interrupted;
- SIGKILL during ``compare``: every file left in the sweep folder is whole, and
  the same command completes the sweep;
- two ``compare`` commands on one runs folder at once: every run is trained by
  exactly one of them.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

CONFIG = """
name: sig
seed: 3
data: {train_size: 3000, validation_size: 500}
model: {hidden_layers: [64, 32], batch_norm: after, activation: elu, initializer: he_normal}
training: {epochs: 12, optimizer: {name: adam}, batch_size: 32}
"""

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _nnexp(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nnexp", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _wait_for(predicate, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the process")


def _epochs_done(runs_dir: Path) -> int:
    rows = 0
    for metrics in runs_dir.rglob("metrics.csv"):
        with open(metrics, newline="") as f:
            rows = max(rows, len(list(csv.DictReader(f))))
    return rows


def _metrics(run_dir: Path) -> np.ndarray:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    return np.array([[float(row[c]) for c in columns] for row in rows])


@pytest.mark.parametrize(
    "signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupted_train_resumes_to_the_same_numbers(
    tmp_path: Path, signal_number: int, tiny_splits: object
) -> None:
    config = tmp_path / "sig.yaml"
    config.write_text(CONFIG)
    runs_dir = tmp_path / "runs"

    process = _nnexp("train", str(config), "--runs-dir", str(runs_dir))
    _wait_for(lambda: _epochs_done(runs_dir) >= 2)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    (run_dir,) = (runs_dir / "sig").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "interrupted"
    assert f"nnexp train --resume {run_dir}" in result["message"]
    finished = result["epochs_completed"]
    assert 2 <= finished < 12
    assert len(_metrics(run_dir)) == finished
    assert (run_dir / "checkpoint.npz").exists()

    resumed = _nnexp("train", "--resume", str(run_dir))
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    straight = _nnexp("train", str(config), "--runs-dir", str(tmp_path / "straight"))
    _, stderr = straight.communicate(timeout=300)
    assert straight.returncode == 0, stderr

    (straight_dir,) = (tmp_path / "straight" / "sig").iterdir()
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
    np.testing.assert_allclose(_metrics(run_dir), _metrics(straight_dir), rtol=1e-6)


def _assert_every_file_is_whole(folder: Path) -> None:
    """Every non-temporary file parses in its own format."""
    for path in folder.rglob("*"):
        if path.is_dir() or any(
            part.startswith(".") for part in path.relative_to(folder).parts
        ):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".csv":
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            assert rows and all(len(row) == len(rows[0]) for row in rows), path
        elif path.suffix == ".yaml":
            assert isinstance(yaml.safe_load(path.read_text()), dict), path
        elif path.suffix == ".npz":
            with np.load(path) as archive:
                assert archive.files, path
        elif path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None, path
        elif path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


@pytest.mark.parametrize("after_epochs", [1, 4], ids=["early", "later"])
def test_a_sweep_killed_with_sigkill_leaves_whole_files_and_completes_on_rerun(
    tmp_path: Path, after_epochs: int, tiny_splits: object
) -> None:
    config = tmp_path / "sig.yaml"
    config.write_text(CONFIG.replace("epochs: 12", "epochs: 3"))
    runs_dir = tmp_path / "runs"
    command = [
        "compare",
        str(config),
        "--activations",
        "relu,tanh",
        "--seeds",
        "2",
        "--runs-dir",
        str(runs_dir),
    ]

    process = _nnexp(*command)
    total = lambda: sum(  # noqa: E731
        len(_metrics(m.parent)) for m in runs_dir.rglob("metrics.csv")
    )
    _wait_for(lambda: total() >= after_epochs)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)

    (sweep_dir,) = [p for p in (runs_dir / "sig-compare").iterdir() if p.is_dir()]
    _assert_every_file_is_whole(sweep_dir)

    again = _nnexp(*command)
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stdout + stderr
    _assert_every_file_is_whole(sweep_dir)
    with open(sweep_dir / "compare.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    assert [row["status"] for row in runs] == ["completed"] * 4


def test_two_concurrent_sweeps_never_train_the_same_run(
    tmp_path: Path, tiny_splits: object
) -> None:
    config = tmp_path / "sig.yaml"
    config.write_text(CONFIG.replace("epochs: 12", "epochs: 2"))
    runs_dir = tmp_path / "runs"
    command = [
        "compare",
        str(config),
        "--activations",
        "relu,tanh",
        "--seeds",
        "2",
        "--runs-dir",
        str(runs_dir),
    ]

    first, second = _nnexp(*command), _nnexp(*command)
    outputs = [p.communicate(timeout=600) for p in (first, second)]

    assert first.returncode == 0, outputs[0]
    assert second.returncode == 0, outputs[1]
    (sweep_dir,) = [p for p in (runs_dir / "sig-compare").iterdir() if p.is_dir()]
    results = [json.loads(p.read_text()) for p in sweep_dir.glob("*/*/result.json")]
    assert sorted(r["name"] for r in results) == [
        "relu-s3",
        "relu-s4",
        "tanh-s3",
        "tanh-s4",
    ]
    assert all(r["status"] == "completed" for r in results)
    assert not any(r.get("resumed_at") for r in results)


def test_a_second_resume_of_a_run_in_training_is_refused(
    tmp_path: Path, tiny_splits: object
) -> None:
    """Two processes never train into one run folder; the lock goes with a
    process killed outright, and the run then resumes to the end."""
    config = tmp_path / "sig.yaml"
    # Long enough that the first resume still trains when the second starts.
    config.write_text(CONFIG.replace("epochs: 12", "epochs: 100"))
    runs_dir = tmp_path / "runs"
    process = _nnexp("train", str(config), "--runs-dir", str(runs_dir))
    _wait_for(lambda: _epochs_done(runs_dir) >= 1)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    (run_dir,) = (runs_dir / "sig").iterdir()
    interrupted_after = _epochs_done(runs_dir)

    first = _nnexp("train", "--resume", str(run_dir))
    try:
        _wait_for(lambda: _epochs_done(runs_dir) > interrupted_after)
        second = _nnexp("train", "--resume", str(run_dir))
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 2, stderr
        assert "Traceback" not in stderr
        assert stderr.splitlines()[-1] == (
            f"error: {run_dir} is being trained by another process (pid {first.pid})"
        )
        assert first.poll() is None, "the first resume trains on"
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)

    assert json.loads((run_dir / "result.json").read_text())["status"] == "running"
    third = _nnexp("train", "--resume", str(run_dir))
    _, stderr = third.communicate(timeout=300)
    assert third.returncode == 0, stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert (result["status"], result["epochs_completed"]) == ("completed", 100)
    assert len(result["resumed_at"]) == 2  # the second resume wrote nothing
    assert [int(row[0]) for row in _metrics(run_dir)] == list(range(1, 101))
    assert not (run_dir / ".train.lock").exists()
