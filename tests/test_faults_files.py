"""Damaged files: corrupt run files are reported without stopping a listing,
model files cannot run code, and a failed write never leaves half a file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nnexp.cli import cli
from nnexp.errors import RunError
from nnexp.runs import write_json, write_text


@pytest.fixture()
def runs_copy(completed_run: Any, tmp_path: Path) -> Path:
    """A runs folder holding two copies of one finished run."""
    runs_dir = tmp_path / "runs"
    for name in ("good", "damaged"):
        shutil.copytree(
            completed_run.run_dir, runs_dir / name / completed_run.run_dir.name
        )
    return runs_dir


def _damaged(runs_dir: Path) -> Path:
    (run_dir,) = (runs_dir / "damaged").iterdir()
    return run_dir


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        pytest.param(lambda d: (d / "result.json").write_text("{not json"), "unreadable: ", id="result-not-json"),
        pytest.param(lambda d: (d / "result.json").write_text("[1, 2]"), "unreadable: ", id="result-not-object"),
        pytest.param(lambda d: (d / "result.json").write_bytes(b"\xff\xfe"), "unreadable: ", id="result-not-utf8"),
        pytest.param(lambda d: (d / "model.keras").write_bytes(b"garbage"), "completed; model.keras is corrupt", id="model-corrupt"),
        pytest.param(lambda d: (d / "model.keras").unlink(), "completed; model.keras is missing", id="model-missing"),
        pytest.param(lambda d: (d / "metrics.csv").write_text("epoch,loss\n1,abc\n"), "completed", id="metrics-corrupt"),
    ],
)  # fmt: skip
def test_summary_reports_a_damaged_run_and_lists_the_others(
    runs_copy: Path, damage: Any, expected: str
) -> None:
    damage(_damaged(runs_copy))

    listing = CliRunner().invoke(cli, ["summary", str(runs_copy)])
    as_json = CliRunner().invoke(cli, ["summary", str(runs_copy), "--json"])

    assert listing.exit_code == 0, listing.output
    assert as_json.exit_code == 0, as_json.output
    assert "Traceback" not in listing.output
    runs = {Path(r["path"]).parent.name: r for r in json.loads(as_json.output)["runs"]}
    assert sorted(runs) == ["damaged", "good"]
    assert (runs["good"]["status"], runs["good"]["problem"]) == ("completed", None)
    damaged = runs["damaged"]
    shown = (
        f"unreadable: {damaged['problem']}"
        if damaged["status"] == "unreadable"
        else f"{damaged['status']}; {damaged['problem']}"
        if damaged["problem"]
        else damaged["status"]
    )
    assert shown.startswith(expected)


def test_summary_of_an_unreadable_run_is_an_error_not_a_traceback(
    runs_copy: Path,
) -> None:
    run_dir = _damaged(runs_copy)
    (run_dir / "result.json").write_text("{")

    result = CliRunner().invoke(cli, ["summary", str(run_dir)])

    assert result.exit_code == 2
    assert result.output.startswith(f"error: {run_dir / 'result.json'} is unreadable")


def test_a_model_file_cannot_run_code(tmp_path: Path) -> None:
    """Keras' safe mode refuses a saved Lambda layer, whose bytecode would run."""
    import keras

    from nnexp.model import load_model

    marker = tmp_path / "ran"
    # The path is a constant inside the lambda's own bytecode.
    touch = eval(f"lambda x: x + 0 * len(open({str(marker)!r}, 'w').name)")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(touch)])
    model.save(tmp_path / "evil.keras")
    marker.unlink(missing_ok=True)  # saving traced the lambda once

    with pytest.raises(ValueError, match="safe_mode"):
        load_model(str(tmp_path / "evil.keras"))
    assert not marker.exists()


def test_a_failed_write_keeps_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_json(target, {"status": "completed"})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        write_json(target, {"status": Unserialisable()})

    assert json.loads(target.read_text()) == {"status": "completed"}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_write_into_a_vanished_folder_is_a_run_error(tmp_path: Path) -> None:
    with pytest.raises(
        RunError, match="cannot write .*gone/result.json: No such file or directory"
    ):
        write_text(tmp_path / "gone" / "result.json", "{}")


def test_resuming_a_finished_run_is_refused(completed_run: Any) -> None:
    result = CliRunner().invoke(cli, ["train", "--resume", str(completed_run.run_dir)])

    assert result.exit_code == 2
    assert result.output == (
        f"error: {completed_run.run_dir} is already completed; nothing to resume\n"
    )
