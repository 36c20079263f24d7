"""Tests of nnexp.runs: atomic writes, claiming run folders, reading them back."""

from __future__ import annotations

import errno
import json
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from nnexp.errors import RunError
from nnexp.runs import (
    create_run_dir,
    ensure_writable_dir,
    is_run_dir,
    iter_run_dirs,
    read_metrics,
    read_result,
    read_run,
    result_problem,
    save_atomic,
    write_atomic,
    write_csv,
    write_json,
    write_text,
)
from nnexp.training import METRIC_COLUMNS


class WriterFailed(Exception):
    pass


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def fake_run(folder: Path, **result: Any) -> Path:
    """A run folder with a result and, as every completed run has, a model
    archive (an empty zip stands in: only its being whole is checked)."""
    folder.mkdir(parents=True)
    write_json(folder / "result.json", {"status": "completed", **result})
    with zipfile.ZipFile(folder / "model.keras", "w"):
        pass
    return folder


# --------------------------------------------------------------------------
# Atomic writes


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_write_atomic_writes_the_file_and_nothing_else(
    tmp_path: Path, binary: bool
) -> None:
    payload: Any = b"\x00\x01 bytes" if binary else "caf\u00e9 text\n"
    write_atomic(tmp_path / "out", lambda f: f.write(payload), binary=binary)

    assert listing(tmp_path) == ["out"]
    written = (tmp_path / "out").read_bytes()
    assert written == (payload if binary else payload.encode("utf-8"))


@pytest.mark.parametrize(
    "error",
    [WriterFailed("disk on fire"), KeyboardInterrupt()],
    ids=["exception", "keyboard-interrupt"],
)
def test_write_atomic_failing_writer_leaves_old_file_and_no_temporary(
    tmp_path: Path, error: BaseException
) -> None:
    target = tmp_path / "result.json"
    target.write_text('{"old": true}\n')

    def half_then_fail(f: Any) -> None:
        f.write('{"new": tr')
        raise error

    with pytest.raises(type(error)):
        write_atomic(target, half_then_fail)

    assert target.read_text() == '{"old": true}\n'
    assert listing(tmp_path) == ["result.json"]


def test_write_atomic_failing_writer_creates_nothing(tmp_path: Path) -> None:
    def fail(f: Any) -> None:
        f.write("partial")
        raise WriterFailed

    with pytest.raises(WriterFailed):
        write_atomic(tmp_path / "new.txt", fail)
    assert listing(tmp_path) == []


# save_atomic: for writers that need a path (Keras' model.save)


def test_save_atomic_writes_through_a_temporary_path_ending_like_the_file(
    tmp_path: Path,
) -> None:
    given: list[Path] = []

    def save(path: Path) -> None:
        given.append(path)
        path.write_bytes(b"archive")

    save_atomic(tmp_path / "model.keras", save)

    assert listing(tmp_path) == ["model.keras"]
    assert (tmp_path / "model.keras").read_bytes() == b"archive"
    (temporary,) = given
    assert temporary.parent == tmp_path
    # Keras refuses a path that does not end in .keras.
    assert temporary.name.startswith(".model.") and temporary.name.endswith(
        ".tmp.keras"
    )


def test_save_atomic_on_a_full_disk_names_the_file_and_removes_the_temporary(
    tmp_path: Path,
) -> None:
    target = tmp_path / "model.keras"
    target.write_bytes(b"old model")

    def fill_the_disk(path: Path) -> None:
        path.write_bytes(b"half an archive")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(RunError) as caught:
        save_atomic(target, fill_the_disk)

    assert str(caught.value) == f"cannot write {target}: No space left on device"
    assert target.read_bytes() == b"old model"
    assert listing(tmp_path) == ["model.keras"]


@pytest.mark.parametrize(
    "error",
    [WriterFailed("bug in the writer"), KeyboardInterrupt()],
    ids=["exception", "keyboard-interrupt"],
)
def test_save_atomic_failing_writer_propagates_and_leaves_no_temporary(
    tmp_path: Path, error: BaseException
) -> None:
    def half_then_fail(path: Path) -> None:
        path.write_bytes(b"half")
        raise error

    with pytest.raises(type(error)):
        save_atomic(tmp_path / "model.keras", half_then_fail)
    assert listing(tmp_path) == []


def test_save_atomic_into_a_vanished_folder_is_a_run_error(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "model.keras"
    with pytest.raises(RunError) as caught:
        save_atomic(target, lambda path: path.write_bytes(b"x"))
    assert str(caught.value) == f"cannot write {target}: No such file or directory"


def test_write_atomic_replaces_existing_content(tmp_path: Path) -> None:
    target = tmp_path / "x.txt"
    write_text(target, "a much longer first version\n")
    write_text(target, "short\n")
    assert target.read_text() == "short\n"
    assert listing(tmp_path) == ["x.txt"]


def test_write_json_and_read_result_round_trip(tmp_path: Path) -> None:
    data = {"status": "diverged", "test": {"loss": float("nan")}, "n": [1, 2]}
    write_json(tmp_path / "result.json", data)
    back = read_result(tmp_path)
    assert back["status"] == "diverged" and back["n"] == [1, 2]
    assert back["test"]["loss"] is None  # strict JSON: NaN is written as null
    assert "NaN" not in (tmp_path / "result.json").read_text()


def test_write_csv_and_read_metrics_round_trip(tmp_path: Path) -> None:
    rows = [
        {
            "epoch": epoch,
            "loss": 1.0 / epoch,
            "accuracy": 0.5,
            "val_loss": 0.25,
            "val_accuracy": 0.75,
            "learning_rate": 0.01,
            "seconds": 1.5,
        }
        for epoch in (1, 2, 3)
    ]
    write_csv(tmp_path / "metrics.csv", rows, METRIC_COLUMNS)
    back = read_metrics(tmp_path)
    assert back == rows
    # epoch stays a whole number, so rewriting the rows (as a resumed run
    # does) keeps the column as 1, 2, 3 rather than 1.0, 2.0, 3.0.
    assert all(type(row["epoch"]) is int for row in back)
    write_csv(tmp_path / "metrics.csv", back, METRIC_COLUMNS)
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == ",".join(METRIC_COLUMNS)
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]


def test_read_metrics_missing_and_corrupt(tmp_path: Path) -> None:
    assert read_metrics(tmp_path) == []
    (tmp_path / "metrics.csv").write_text("epoch,loss\n1,not-a-number\n")
    with pytest.raises(RunError, match="metrics.csv is unreadable"):
        read_metrics(tmp_path)


# --------------------------------------------------------------------------
# Claiming run folders


def test_create_run_dir_layout(tmp_path: Path) -> None:
    run_dir = create_run_dir(tmp_path / "runs", "my-exp", "abcdef12")
    assert run_dir.parent == tmp_path / "runs" / "my-exp"
    stamp, _, rest = run_dir.name.partition("-")
    assert len(stamp) == 8 and stamp.isdigit()
    assert rest.endswith("-abcdef12")
    assert run_dir.is_dir() and listing(run_dir) == []


def test_create_run_dir_never_returns_the_same_folder_twice(tmp_path: Path) -> None:
    made = [create_run_dir(tmp_path, "same", "deadbeef") for _ in range(20)]
    assert len(set(made)) == 20
    assert all(p.is_dir() for p in made)


def test_create_run_dir_concurrent_callers_get_distinct_folders(
    tmp_path: Path,
) -> None:
    barrier = threading.Barrier(16)

    def claim(_: int) -> Path:
        barrier.wait()
        return create_run_dir(tmp_path, "race", "0badc0de")

    with ThreadPoolExecutor(16) as pool:
        made = list(pool.map(claim, range(16)))
    assert len(set(made)) == 16
    assert len(listing(tmp_path / "race")) == 16


def test_create_run_dir_skips_a_folder_that_already_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nnexp.runs

    monkeypatch.setattr(nnexp.runs.time, "strftime", lambda fmt: "20250101-120000")
    taken = tmp_path / "exp" / "20250101-120000-12345678"
    taken.mkdir(parents=True)
    (taken / "result.json").write_text("{}")

    first = create_run_dir(tmp_path, "exp", "12345678")
    second = create_run_dir(tmp_path, "exp", "12345678")
    assert first.name == "20250101-120000-12345678-1"
    assert second.name == "20250101-120000-12345678-2"
    assert (taken / "result.json").read_text() == "{}"  # untouched


def test_create_run_dir_under_a_regular_file_is_a_run_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(RunError, match="cannot write into runs folder"):
        create_run_dir(blocker / "runs", "x", "12345678")
    with pytest.raises(RunError, match="not a folder"):
        ensure_writable_dir(blocker)


def test_ensure_writable_dir_creates_parents_and_leaves_no_probe(
    tmp_path: Path,
) -> None:
    folder = ensure_writable_dir(tmp_path / "a" / "b")
    assert folder.is_dir()
    assert listing(folder) == []


# --------------------------------------------------------------------------
# Reading back and listing


def test_read_run_of_a_good_run(tmp_path: Path) -> None:
    run_dir = fake_run(tmp_path / "r", config_hash="abc", name="r")
    record = read_run(run_dir)
    assert record.problem is None
    assert record.status == "completed"
    assert record.config_hash == "abc"
    assert record.path == run_dir


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param('{"status": "compl', "is unreadable", id="truncated-json"),
        pytest.param("[1, 2, 3]", "expected a JSON object", id="not-an-object"),
        pytest.param(b"\xff\xfe\x00garbage", "is unreadable", id="not-utf8"),
    ],
)
def test_read_run_reports_a_corrupt_result_as_unreadable(
    tmp_path: Path, content: str | bytes, problem: str
) -> None:
    path = tmp_path / "result.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    record = read_run(tmp_path)
    assert record.result is None
    assert record.status == "unreadable"
    assert record.config_hash is None
    assert problem in record.problem
    assert str(path) in record.problem
    with pytest.raises(RunError, match=problem):
        read_result(tmp_path)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        pytest.param({"best": "x"}, "'best' should be a mapping, got a string", id="best-string"),
        pytest.param({"final": [1]}, "'final' should be a mapping, got a list", id="final-list"),
        pytest.param({"test": 3}, "'test' should be a mapping, got a whole number", id="test-number"),
        pytest.param({"params": [1]}, "'params' should be a mapping, got a list", id="params-list"),
        pytest.param({"params": {"total_params": "x"}}, "'params.total_params' should be a whole number, got a string", id="params-string"),
        pytest.param({"final": {"val_accuracy": "0.5"}}, "'final.val_accuracy' should be a number, got a string", id="metric-string"),
        pytest.param({"best": {"epoch": 1.5}}, "'best.epoch' should be a whole number, got a number", id="epoch-fraction"),
        pytest.param({"started_at": 5}, "'started_at' should be a string, got a whole number", id="started-number"),
        pytest.param({"status": None}, "'status' should be a string, got null", id="status-null"),
        pytest.param({"epochs_completed": True}, "'epochs_completed' should be a whole number, got true/false", id="epochs-bool"),
        pytest.param({"wall_seconds": "1"}, "'wall_seconds' should be a number, got a string", id="seconds-string"),
        pytest.param({"versions": {"keras": 3}}, "'versions.keras' should be a string, got a whole number", id="version-number"),
        pytest.param({"resumed_at": "today"}, "'resumed_at' should be a list, got a string", id="resumed-string"),
    ],
)  # fmt: skip
def test_read_run_reports_a_malformed_result(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    run_dir = fake_run(tmp_path / "r", config_hash="abc", **change)
    path = run_dir / "result.json"

    record = read_run(run_dir)
    assert (record.result, record.status, record.config_hash) == (
        None,
        "unreadable",
        None,
    )
    assert record.problem == f"{path} is malformed: {problem}"
    with pytest.raises(RunError) as caught:
        read_result(run_dir)
    assert str(caught.value) == record.problem


def test_result_problem_accepts_what_nnexp_writes(completed_run: Any) -> None:
    """A real finished run, one that never finished an epoch (no metrics yet)
    and a NaN metric written as null all pass; unknown fields are not checked."""
    result = read_result(completed_run.run_dir)
    assert result_problem(result) is None
    no_epoch_yet = {"final": None, "best": None, "seconds_per_epoch": None}
    assert result_problem(no_epoch_yet) is None
    assert result_problem({"test": {"loss": None, "accuracy": None}}) is None
    assert result_problem({"resumed_at": ["2025-01-01T00:00:00"], "extra": [1]}) is None


def test_read_result_of_a_folder_without_one(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="is not a run folder"):
        read_result(tmp_path)
    assert read_run(tmp_path).status == "unreadable"


def test_iter_run_dirs_finds_nested_runs(tmp_path: Path) -> None:
    a = fake_run(tmp_path / "exp-a" / "20250101-000000-aaaaaaaa")
    b = fake_run(tmp_path / "exp-b" / "20250101-000000-bbbbbbbb")
    c = fake_run(tmp_path / "sweep" / "grid" / "run-0")
    (tmp_path / "exp-a" / "empty-folder").mkdir()
    (tmp_path / "exp-b" / "20250101-000000-bbbbbbbb" / "notes.txt").write_text("x")

    assert list(iter_run_dirs(tmp_path)) == [a, b, c]
    assert list(iter_run_dirs(a)) == [a]  # a run folder lists itself
    assert list(iter_run_dirs(tmp_path / "exp-a" / "empty-folder")) == []
    assert is_run_dir(a) and not is_run_dir(tmp_path)


def test_listing_keeps_going_past_a_corrupt_run(tmp_path: Path) -> None:
    good = fake_run(tmp_path / "good" / "1", started_at="2025-01-01T00:00:00")
    bad = tmp_path / "bad" / "1"
    bad.mkdir(parents=True)
    (bad / "result.json").write_text("{not json")

    records = {r.path: r for r in map(read_run, iter_run_dirs(tmp_path))}
    assert set(records) == {good, bad}
    assert records[good].status == "completed"
    assert records[bad].status == "unreadable"
    assert json.loads((good / "result.json").read_text())["status"] == "completed"
