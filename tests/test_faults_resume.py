"""Runs that cannot simply go on, through the command line (click's CliRunner):

- ``train --resume`` of a run whose checkpoint is damaged, or of another
  model: one ``error:`` line, exit status 2, and the folder left as it was;
- ``train --resume`` of a run another process is training right now: refused;
- ``compare`` reruns: a failed run trains again from scratch (its folder kept),
  an interrupted run whose checkpoint is unreadable trains again from scratch
  and says so, and a stale claim whose pid belongs to a live process (pid 1)
  neither counts as done nor makes the rerun wait;
- ``compare`` names a sweep as ``train`` names a run, and grid values that are
  mappings or long lists give valid, distinct run names.

Everything trains for real, tiny: 1,000 training images, one hidden layer.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner, Result

from nnexp.cli import cli

CONFIG = {
    "name": "fr",
    "seed": 5,
    "data": {"train_size": 1000, "validation_size": 500},
    "model": {"hidden_layers": [16]},
    "training": {"optimizer": {"name": "adam"}, "epochs": 1, "batch_size": 100},
}

ADVICE = "it cannot be resumed: train the config again"


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(
        cli, [str(a) for a in args], env={"COLUMNS": "400"}, catch_exceptions=False
    )


def assert_one_error(result: Result, message: str) -> None:
    """Exit status 2 and exactly one ``error:`` line, no traceback."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr == f"error: {message}\n"
    assert "Traceback" not in result.output


def folder_state(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under ``folder`` (hidden ones too), with mtime and bytes."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@contextlib.contextmanager
def no_hang(seconds: int) -> Iterator[None]:
    """Fail (rather than wait forever) if the body takes longer than ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------
# train --resume
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted_template(
    tiny_config: Any, interrupted_run: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """One run interrupted after epoch 1 of 2 (read-only: copy to damage)."""
    return interrupted_run(tiny_config(), tmp_path_factory.mktemp("interrupted"))


@pytest.fixture
def interrupted(interrupted_template: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "tiny" / interrupted_template.name
    shutil.copytree(interrupted_template, run_dir)
    return run_dir


def _rewrite(run_dir: Path, change: Any) -> None:
    path = run_dir / "checkpoint.npz"
    with np.load(path) as saved:
        state = {key: saved[key] for key in saved.files}
    change(state)
    np.savez(path, **state)


def _truncate(run_dir: Path) -> None:
    path = run_dir / "checkpoint.npz"
    path.write_bytes(path.read_bytes()[:1000])


def _other_model(state: dict[str, np.ndarray]) -> None:
    first = min(key for key in state if key.startswith("model/"))
    state[first] = np.zeros((784, 300), np.float32)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        pytest.param(
            lambda d: (d / "checkpoint.npz").write_bytes(b""),
            "is unreadable (the file is empty)",
            id="empty",
        ),
        pytest.param(
            _truncate,
            "is unreadable (a damaged or truncated archive: File is not a zip file)",
            id="truncated",
        ),
        pytest.param(
            lambda d: _rewrite(d, lambda s: s.pop("__epoch__")),
            "is unreadable (it has no __epoch__ entry)",
            id="no-epoch",
        ),
        pytest.param(
            lambda d: (d / "checkpoint.npz").write_bytes(b"\x80\x04garbage" * 50),
            "is unreadable (not a NumPy .npz archive)",
            id="garbage",
        ),
        pytest.param(
            lambda d: _rewrite(d, _other_model),
            "does not match this run's model (checkpoint model/00000 has shape "
            "(784, 300), but tiny/dense_1/kernel has shape (784, 32))",
            id="another-architecture",
        ),
        pytest.param(
            lambda d: (d / "checkpoint.npz").unlink(), "is missing", id="missing"
        ),
    ],
)
def test_resume_with_a_damaged_checkpoint_is_one_error_and_changes_nothing(
    interrupted: Path, damage: Any, problem: str
) -> None:
    damage(interrupted)
    before = folder_state(interrupted)
    result = invoke("train", "--resume", interrupted)
    assert_one_error(result, f"{interrupted}/checkpoint.npz {problem}; {ADVICE}")
    assert folder_state(interrupted) == before
    status = json.loads((interrupted / "result.json").read_text())["status"]
    assert status == "interrupted"


HOLD_LOCK = """
import sys, time
from pathlib import Path
from nnexp.experiment import hold_run_lock
with hold_run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_resume_of_a_run_another_process_trains_is_refused(
    interrupted: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(interrupted)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        before = folder_state(interrupted)
        result = invoke("train", "--resume", interrupted)
        assert_one_error(
            result,
            f"{interrupted} is being trained by another process (pid {holder.pid})",
        )
        assert folder_state(interrupted) == before
    finally:
        holder.kill()
        holder.wait()
    # Its holder gone (killed: the kernel drops the lock), the run resumes.
    result = invoke("train", "--resume", interrupted)
    assert result.exit_code == 0, result.output
    assert json.loads((interrupted / "result.json").read_text())["status"] == (
        "completed"
    )
    assert not (interrupted / ".train.lock").exists()


# --------------------------------------------------------------------------
# compare reruns
# --------------------------------------------------------------------------


def compare(config: Path, runs_dir: Path, *extra: Any) -> Result:
    return invoke(
        "compare",
        config,
        "--runs-dir",
        runs_dir,
        "--jobs",
        "1",
        *(extra or ("--activations", "relu,tanh", "--seeds", "2")),
    )


def grid_line(done: int, to_run: int, resumed: int) -> str:
    return (
        f"grid: activation (2) x 2 seed(s) = 4 runs; {done} already done, "
        f"{to_run} to run ({resumed} resumed)"
    )


@pytest.fixture(scope="module")
def sweep_template(
    tiny_splits: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A finished sweep, relu and tanh x seeds 5 and 6 (read-only: copy it)."""
    root = tmp_path_factory.mktemp("sweep")
    config = root / "fr.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    result = compare(config, root / "runs")
    assert result.exit_code == 0, result.output
    return config, root / "runs"


@pytest.fixture
def sweep(sweep_template: tuple[Path, Path], tmp_path: Path) -> Any:
    config, runs_dir = sweep_template
    shutil.copytree(runs_dir, tmp_path / "runs")
    (sweep_dir,) = [
        p for p in (tmp_path / "runs" / "fr-compare").iterdir() if p.is_dir()
    ]
    (victim,) = (sweep_dir / "tanh-s6").iterdir()
    return config, tmp_path / "runs", sweep_dir, victim


def _set_status(run_dir: Path, status: str) -> None:
    result = json.loads((run_dir / "result.json").read_text())
    result["status"] = status
    (run_dir / "result.json").write_text(json.dumps(result))


def _statuses(folder: Path) -> list[tuple[str, str]]:
    return sorted(
        (p.parent.name, json.loads(p.read_text())["status"])
        for p in folder.glob("*/result.json")
    )


def test_rerun_trains_a_failed_run_again_from_scratch(sweep: Any) -> None:
    """A failed run whose checkpoint is damaged used to be resumed, and to fail
    again, on every rerun."""
    config, runs_dir, sweep_dir, victim = sweep
    _set_status(victim, "failed")
    (victim / "checkpoint.npz").write_bytes(b"junk")
    kept = folder_state(victim)

    result = compare(config, runs_dir)
    assert result.exit_code == 0, result.output
    assert grid_line(done=3, to_run=1, resumed=0) in result.stdout
    assert folder_state(victim) == kept, "the failed run is kept as a record"
    assert _statuses(victim.parent) == [
        (victim.name, "failed"),
        (_newest(victim), "completed"),
    ]
    assert "resumed_at" not in _result(victim.parent / _newest(victim))

    again = compare(config, runs_dir)
    assert again.exit_code == 0, again.output
    assert grid_line(done=4, to_run=0, resumed=0) in again.stdout


def test_rerun_trains_again_when_an_interrupted_run_cannot_be_resumed(
    sweep: Any,
) -> None:
    config, runs_dir, sweep_dir, victim = sweep
    _set_status(victim, "interrupted")
    (victim / "checkpoint.npz").write_bytes(b"PK\x03\x04 but no archive")
    kept = folder_state(victim)

    result = compare(config, runs_dir)
    assert result.exit_code == 0, result.output
    assert grid_line(done=3, to_run=1, resumed=1) in result.stdout
    assert folder_state(victim) == kept
    new = victim.parent / _newest(victim)
    message = (
        f"trained again from scratch: {victim}/checkpoint.npz is unreadable (a "
        "damaged or truncated archive: File is not a zip file)"
    )
    assert (_result(new)["status"], _result(new)["message"]) == ("completed", message)
    with open(sweep_dir / "compare.csv", newline="") as f:
        rows = {row["run_dir"]: row for row in csv.DictReader(f)}
    assert rows[str(new)]["message"] == message

    again = compare(config, runs_dir)
    assert grid_line(done=4, to_run=0, resumed=0) in again.stdout


def test_a_stale_claim_of_a_live_pid_neither_counts_as_done_nor_blocks(
    sweep: Any,
) -> None:
    """What the audit found: {"pid": 1, "host": <this host>} in .claims/ for a
    missing run made a rerun print '4 already done' and wait forever."""
    config, runs_dir, sweep_dir, victim = sweep
    config_hash = _result(victim)["config_hash"]
    shutil.rmtree(victim.parent)
    claim = sweep_dir / ".claims" / f"{config_hash[:16]}.lock"
    claim.parent.mkdir(exist_ok=True)
    claim.write_text(json.dumps({"pid": 1, "host": os.uname().nodename}))

    with no_hang(120):
        result = compare(config, runs_dir)
    assert result.exit_code == 0, result.output
    assert grid_line(done=3, to_run=1, resumed=0) in result.stdout
    assert _statuses(sweep_dir / "tanh-s6")[0][1] == "completed"
    assert not list((sweep_dir / ".claims").glob("*.lock"))


def _newest(run_dir: Path) -> str:
    return max(p.name for p in run_dir.parent.iterdir() if p != run_dir)


def _result(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "result.json").read_text())


# --------------------------------------------------------------------------
# compare names its sweep and runs as train and check would
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stem", "name"),
    [
        pytest.param("my..cfg", "my.cfg", id="double-dot"),
        pytest.param("c" * 110, "c" * 100, id="over-100-characters"),
    ],
)
def test_compare_names_the_sweep_as_check_names_the_run(
    tiny_splits: Any, tmp_path: Path, stem: str, name: str
) -> None:
    data = {k: v for k, v in CONFIG.items() if k != "name"}
    config = tmp_path / f"{stem}.yaml"
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    checked = invoke("check", config)
    assert checked.exit_code == 0, checked.output
    assert f"\nname: {name}\n" in checked.stdout

    result = compare(config, tmp_path / "runs", "--activations", "relu", "--seeds", 1)
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [f"{name}-compare"]


@pytest.mark.parametrize(
    ("vary", "runs"),
    [
        pytest.param(
            "training.clipping=[null, {value: 1.0}, {norm: 1.0}]",
            ["relu-none-s5", "relu-norm1.0-s5", "relu-value1.0-s5"],
            id="mappings-keep-their-keys",
        ),
        pytest.param(
            f"model.hidden_layers=[{[10] * 40}, [16]]",
            ["relu-10_10_10_10_10_10_10_10_10_10_b687ba26-s5", "relu-16-s5"],
            id="long-value-shortened",
        ),
    ],
)
def test_compare_accepts_grids_whose_labels_used_to_collide_or_overflow(
    tiny_splits: Any, tmp_path: Path, vary: str, runs: list[str]
) -> None:
    config = tmp_path / "fr.yaml"
    config.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    result = compare(
        config, tmp_path / "runs", "--activations", "relu", "--seeds", 1, "--vary", vary
    )
    assert result.exit_code == 0, result.output
    (sweep_dir,) = [
        p for p in (tmp_path / "runs" / "fr-compare").iterdir() if p.is_dir()
    ]
    names = sorted(p.parent.parent.name for p in sweep_dir.glob("*/*/result.json"))
    assert names == runs
