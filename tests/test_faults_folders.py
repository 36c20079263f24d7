"""Damaged run and sweep folders, odd folder names and a disk that fills up.

A result.json or sweep.yaml whose fields have the wrong types is reported as a
problem of that run or sweep (one ``error:`` line for the folder itself; a
listing goes on with the others), names from the file system are printed as
they are (never read as rich markup), and a model that cannot be saved leaves
no temporary file and a run marked failed.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from nnexp.cli import cli

SWEEP_CONFIG = {
    "name": "fold",
    "seed": 5,
    "data": {"train_size": 1000, "validation_size": 500},
    "model": {"hidden_layers": [16]},
    "training": {
        "optimizer": {"name": "adam", "learning_rate": 0.003},
        "epochs": 1,
        "batch_size": 100,
    },
}


def run(*args: Any) -> Result:
    """The CLI in this process, on a wide terminal (rich tables stay whole)."""
    return CliRunner().invoke(
        cli, [str(a) for a in args], env={"COLUMNS": "400"}, catch_exceptions=True
    )


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output


def assert_error(result: Result, line: str) -> None:
    """Exit status 2 and exactly this one line on stderr, nothing on stdout."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr == f"error: {line}\n"
    assert result.stdout == ""


def edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def set_key(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change that sets ``data[k1][k2]... = value``."""

    def change(data: Any) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return change


def row_of(output: str, name: str) -> str:
    """The one table row with a cell ``name``."""
    (line,) = [line for line in output.splitlines() if f"│ {name} " in line]
    return line


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.split("│")[1:-1]]


# --------------------------------------------------------------------------
# result.json with fields of the wrong type


MALFORMED_RESULTS = [
    pytest.param(set_key("best", value="x"), "'best' should be a mapping, got a string", id="best-string"),
    pytest.param(set_key("params", "total_params", value="x"), "'params.total_params' should be a whole number, got a string", id="total-params-string"),
    pytest.param(set_key("final", "val_accuracy", value="0.5"), "'final.val_accuracy' should be a number, got a string", id="val-accuracy-string"),
    pytest.param(set_key("test", value=3), "'test' should be a mapping, got a whole number", id="test-number"),
    pytest.param(set_key("started_at", value=5), "'started_at' should be a string, got a whole number", id="started-at-number"),
    pytest.param(set_key("final", value=[1]), "'final' should be a mapping, got a list", id="final-list"),
    pytest.param(set_key("params", value=[1]), "'params' should be a mapping, got a list", id="params-list"),
]  # fmt: skip


@pytest.fixture()
def two_runs(completed_run: Any, tmp_path: Path) -> SimpleNamespace:
    """A runs folder with two copies of the session's finished run."""
    runs_dir = tmp_path / "runs"
    for name in ("good", "damaged"):
        shutil.copytree(completed_run.run_dir, runs_dir / "tiny" / name)
    return SimpleNamespace(
        runs_dir=runs_dir,
        good=runs_dir / "tiny" / "good",
        damaged=runs_dir / "tiny" / "damaged",
    )


@pytest.mark.parametrize(("change", "problem"), MALFORMED_RESULTS)
def test_summary_of_a_run_with_a_malformed_result_is_one_error_line(
    two_runs: SimpleNamespace, change: Any, problem: str
) -> None:
    path = two_runs.damaged / "result.json"
    edit_json(path, change)

    assert_error(run("summary", two_runs.damaged), f"{path} is malformed: {problem}")
    assert_error(
        run("summary", two_runs.damaged, "--json"), f"{path} is malformed: {problem}"
    )


@pytest.mark.parametrize(("change", "problem"), MALFORMED_RESULTS)
def test_a_listing_shows_a_malformed_run_as_unreadable_and_goes_on(
    two_runs: SimpleNamespace, change: Any, problem: str
) -> None:
    path = two_runs.damaged / "result.json"
    edit_json(path, change)
    message = f"{path} is malformed: {problem}"

    table = run("summary", two_runs.runs_dir)
    assert_ok(table)
    assert cells(row_of(table.stdout, "tiny/good"))[2] == "completed"
    assert cells(row_of(table.stdout, "tiny/damaged")) == [
        "-",
        "tiny/damaged",
        f"unreadable: {message}",
        "-/-",
        "-",
        "-",
    ]

    as_json = run("summary", two_runs.runs_dir, "--json")
    assert_ok(as_json)
    rows = {Path(r["path"]).name: r for r in json.loads(as_json.stdout)["runs"]}
    assert (rows["good"]["status"], rows["good"]["problem"]) == ("completed", None)
    assert rows["damaged"] == {
        "path": str(two_runs.damaged),
        "status": "unreadable",
        "problem": message,
    }


def test_resuming_a_run_with_a_malformed_result_is_one_error_line(
    two_runs: SimpleNamespace,
) -> None:
    path = two_runs.damaged / "result.json"
    edit_json(path, set_key("status", value=["interrupted"]))

    assert_error(
        run("train", "--resume", two_runs.damaged),
        f"{path} is malformed: 'status' should be a string, got a list",
    )


# --------------------------------------------------------------------------
# Sweeps: a damaged run inside, a damaged sweep.yaml


@pytest.fixture(scope="module")
def sweep(
    tiny_splits: Any, tmp_path_factory: pytest.TempPathFactory
) -> SimpleNamespace:
    """One real sweep (relu and tanh, one seed each, one epoch), trained once."""
    root = tmp_path_factory.mktemp("folders")
    config = root / "fold.yaml"
    config.write_text(yaml.safe_dump(SWEEP_CONFIG))
    result = run(
        "compare", config, "--activations", "relu,tanh", "--seeds", 1,
        "--runs-dir", root / "runs",
    )  # fmt: skip
    assert_ok(result)
    (sweep_dir,) = [p for p in (root / "runs" / "fold-compare").iterdir() if p.is_dir()]
    return SimpleNamespace(sweep_dir=sweep_dir)


def copy_sweep(sweep: SimpleNamespace, destination: Path) -> Path:
    shutil.copytree(sweep.sweep_dir, destination)
    return destination


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(set_key("final", value=[1]), id="final-list"),
        pytest.param(set_key("params", value=[1]), id="params-list"),
        pytest.param(set_key("best", value="x"), id="best-string"),
        pytest.param(set_key("test", "accuracy", value="0.9"), id="test-string"),
    ],
)
def test_a_sweep_counts_a_run_with_a_malformed_result_as_unfinished(
    sweep: SimpleNamespace, tmp_path: Path, change: Any
) -> None:
    sweep_dir = copy_sweep(sweep, tmp_path / "sweep")
    (relu,) = (sweep_dir / "relu-s5").iterdir()
    edit_json(relu / "result.json", change)

    table = run("summary", sweep_dir)
    assert_ok(table)
    assert "fold: 2 runs" in table.stdout
    assert " 0/0/0 (+1 unfinished) " in row_of(table.stdout, "relu")
    assert " no completed runs " in row_of(table.stdout, "relu")
    assert " 1/0/0 " in row_of(table.stdout, "tanh")

    as_json = run("summary", sweep_dir, "--json")
    assert_ok(as_json)
    points = {p["point"]: p for p in json.loads(as_json.stdout)["points"]}
    assert (points["relu"]["completed"], points["relu"]["unfinished"]) == (0, 1)
    assert points["relu"]["verdict"] == "no completed runs"
    assert (points["tanh"]["completed"], points["tanh"]["verdict"]) == (1, "best")


def cut_to(size: int) -> Callable[[Path], None]:
    def cut(path: Path) -> None:
        path.write_bytes(path.read_bytes()[:size])

    return cut


def cut_before(text: str, extra: int = 0) -> Callable[[Path], None]:
    """Cut the file just before the last ``text`` (plus ``extra`` bytes)."""

    def cut(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: data.rindex(text.encode()) + extra])

    return cut


def yaml_change(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    return lambda path: edit_yaml(path, change)


def drop_last_run(data: dict[str, Any]) -> None:
    data["runs"].pop()


MALFORMED_SWEEPS = [
    pytest.param(cut_to(200), "'base_config' is missing (is the file cut short?)", id="cut-200"),
    pytest.param(cut_before("config_hash: ", 20), "'base_config' is missing (is the file cut short?)", id="cut-in-last-hash"),
    pytest.param(cut_before("- point: "), "'base_config' is missing (is the file cut short?)", id="cut-before-last-run"),
    pytest.param(cut_before("base_config:"), "'base_config' is missing (is the file cut short?)", id="cut-before-base-config"),
    pytest.param(yaml_change(set_key("runs", value=5)), "'runs' should be a list, got a whole number", id="runs-number"),
    pytest.param(yaml_change(set_key("runs", 0, "seed", value="x")), "'runs[0].seed' should be a whole number, got a string", id="seed-string"),
    pytest.param(yaml_change(set_key("axes", value=[1])), "'axes[0]' should be a mapping, got a whole number", id="axis-number"),
    pytest.param(yaml_change(set_key("axes", value=[{}])), "'axes[0].key' is missing", id="axis-empty"),
    pytest.param(yaml_change(set_key("runs", 1, "config_hash", value=None)), "'runs[1].config_hash' should be a string, got null", id="hash-null"),
    pytest.param(yaml_change(set_key("seeds", value=[])), "'seeds' is empty", id="no-seeds"),
    pytest.param(yaml_change(drop_last_run), "it lists 1 run(s), but its axes and seeds make 2 (is the file cut short?)", id="run-missing"),
]  # fmt: skip


@pytest.mark.parametrize(("damage", "problem"), MALFORMED_SWEEPS)
def test_summary_of_a_malformed_sweep_is_one_error_line(
    sweep: SimpleNamespace, tmp_path: Path, damage: Any, problem: str
) -> None:
    sweep_dir = copy_sweep(sweep, tmp_path / "sweep")
    path = sweep_dir / "sweep.yaml"
    damage(path)

    assert_error(run("summary", sweep_dir), f"{path} is malformed: {problem}")
    assert_error(run("summary", sweep_dir, "--json"), f"{path} is malformed: {problem}")


@pytest.mark.parametrize(("damage", "problem"), MALFORMED_SWEEPS)
def test_a_listing_reports_a_malformed_sweep_and_goes_on(
    sweep: SimpleNamespace,
    completed_run: Any,
    tmp_path: Path,
    damage: Any,
    problem: str,
) -> None:
    runs_dir = tmp_path / "runs"
    copy_sweep(sweep, runs_dir / "fold-compare" / "1-good")
    bad = copy_sweep(sweep, runs_dir / "fold-compare" / "2-bad")
    shutil.copytree(completed_run.run_dir, runs_dir / "tiny" / "alone")
    damage(bad / "sweep.yaml")
    message = f"unreadable: {bad / 'sweep.yaml'} is malformed: {problem}"

    table = run("summary", runs_dir)
    assert_ok(table)
    assert cells(row_of(table.stdout, "2-bad")) == [
        "2-bad",
        "fold-compare/2-bad",
        message,
        "-",
        "-",
    ]
    assert cells(row_of(table.stdout, "1-good"))[:3] == [
        "1-good",
        "fold-compare/1-good",
        "2/2",
    ]
    assert cells(row_of(table.stdout, "tiny/alone"))[2] == "completed"

    as_json = run("summary", runs_dir, "--json")
    assert_ok(as_json)
    listing = json.loads(as_json.stdout)
    assert listing["sweeps"] == [
        {
            "path": str(bad),
            "started": "2-bad",
            "progress": message,
            "best_point": "-",
            "best_metric": "-",
        },
        {
            "path": str(runs_dir / "fold-compare" / "1-good"),
            "started": "1-good",
            "progress": "2/2",
            "best_point": listing["sweeps"][1]["best_point"],
            "best_metric": listing["sweeps"][1]["best_metric"],
        },
    ]
    assert listing["sweeps"][1]["best_point"] in ("relu", "tanh")
    assert [(Path(r["path"]).name, r["status"]) for r in listing["runs"]] == [
        ("alone", "completed")
    ]


# --------------------------------------------------------------------------
# Names from the file system are text, not rich markup


@pytest.mark.parametrize(
    ("folder", "run_name"),
    [
        pytest.param("odd[/]", "exp/run", id="listing-folder-closing-tag"),
        pytest.param("runs", "[/]", id="run-folder-closing-tag"),
        pytest.param("runs", "[bold]run", id="run-folder-bold-tag"),
        pytest.param("[red]runs[/red]", "[link=x]run", id="listing-folder-tags"),
    ],
)
def test_a_listing_prints_folder_names_as_they_are(
    completed_run: Any, tmp_path: Path, folder: str, run_name: str
) -> None:
    runs_dir = tmp_path / folder
    shutil.copytree(completed_run.run_dir, runs_dir / run_name)
    (runs_dir / "broken[/]").mkdir(parents=True)
    (runs_dir / "broken[/]" / "result.json").write_text("[1]")

    result = run("summary", runs_dir)

    assert_ok(result)
    assert result.stdout.splitlines()[0].strip() == f"runs under {runs_dir}"
    assert cells(row_of(result.stdout, run_name))[2] == "completed"
    assert cells(row_of(result.stdout, "broken[/]"))[2] == (
        f"unreadable: {runs_dir / 'broken[/]' / 'result.json'} is unreadable: "
        "expected a JSON object"
    )


def test_summary_of_a_run_folder_with_markup_in_its_name(
    completed_run: Any, tmp_path: Path
) -> None:
    run_dir = tmp_path / "odd[/]" / "[bold]run"
    shutil.copytree(completed_run.run_dir, run_dir)
    (run_dir / "model.keras").unlink()

    result = run("summary", run_dir)

    assert_ok(result)
    lines = result.stdout.splitlines()
    assert lines[0].strip() == "tiny  [completed]"
    assert lines[-2:] == [
        f"run folder: {run_dir}",
        "warning: model.keras is missing",
    ]


def test_a_listing_of_sweeps_prints_folder_names_as_they_are(
    sweep: SimpleNamespace, tmp_path: Path
) -> None:
    runs_dir = tmp_path / "odd[/]"
    good = copy_sweep(sweep, runs_dir / "[bold]sweep")
    bad = copy_sweep(sweep, runs_dir / "[/]")
    cut_to(200)(bad / "sweep.yaml")

    result = run("summary", runs_dir)

    assert_ok(result)
    assert result.stdout.splitlines()[0].strip() == f"sweeps under {runs_dir}"
    assert cells(row_of(result.stdout, "[bold]sweep"))[:3] == [
        "[bold]sweep",
        "[bold]sweep",
        "2/2",
    ]
    assert good.is_dir()
    assert cells(row_of(result.stdout, "]")) == [
        "]",
        "[/]",
        f"unreadable: {bad / 'sweep.yaml'} is malformed: 'base_config' is missing "
        "(is the file cut short?)",
        "-",
        "-",
    ]


# --------------------------------------------------------------------------
# A disk that fills up while the model is saved


class FillDiskAfterLastEpoch:
    """A progress display that, once the last epoch's files are saved, lets
    the process write no file larger than ``limit`` bytes: as if the disk
    filled up just then. result.json (about 1 kB) still fits, model.keras
    (about 300 kB for the tiny config) does not."""

    def __init__(self, epochs: int, limit: int = 16_000) -> None:
        self.epochs = epochs
        self.limit = limit

    def on_epoch_begin(self, epoch: int, steps: int) -> None:
        pass

    def on_progress(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        pass

    def on_epoch_end(self, metrics: Any, trainer: Any) -> None:
        if metrics.epoch == self.epochs:
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, hard))


def test_a_model_that_does_not_fit_on_the_disk_fails_the_run_cleanly(
    tiny_config: Any, tiny_splits: Any, tmp_path: Path
) -> None:
    from nnexp.errors import RunError
    from nnexp.experiment import execute_run

    config = tiny_config({}, "training.epochs=1")
    previous_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Past the limit a write fails with EFBIG instead of killing the process.
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        with pytest.raises(RunError) as caught:
            execute_run(
                config,
                tmp_path / "runs",
                splits=tiny_splits,
                display=FillDiskAfterLastEpoch(epochs=1),
            )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous_limit)
        signal.signal(signal.SIGXFSZ, previous_handler)
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    model = run_dir / "model.keras"
    assert str(caught.value) == f"cannot write {model}: File too large"

    # No half-saved model is left behind, and the run says what happened.
    assert [p.name for p in run_dir.iterdir() if "model" in p.name] == []
    as_json = run("summary", run_dir, "--json")
    assert_ok(as_json)
    result = json.loads(as_json.stdout)
    assert (result["status"], result["message"]) == (
        "failed",
        f"RunError: cannot write {model}: File too large",
    )
