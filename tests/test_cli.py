"""Tests of the ``nnexp`` command line, through click's CliRunner (in process)
and once as ``python -m nnexp`` (a real subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner, Result

from nnexp.cli import cli
from nnexp.runs import read_metrics, read_result

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"

TINY_YAML = {
    "name": "cli-tiny",
    "seed": 3,
    "model": {"hidden_layers": [32, 16], "activation": "relu"},
    "training": {"optimizer": {"name": "adam", "learning_rate": 0.002}, "epochs": 5},
}
TINY_DATA = ["--set", "data.train_size=2000", "--set", "data.validation_size=1000"]


def run(*args: Any) -> Result:
    """Invoke the CLI with a wide terminal, so rich tables are not cut."""
    return CliRunner().invoke(
        cli, [str(a) for a in args], env={"COLUMNS": "400"}, catch_exceptions=True
    )


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, (result.output, result.exception)


def assert_user_error(result: Result, fragment: str) -> None:
    """Exit status 2, one ``error:`` line on stderr, no traceback anywhere."""
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.fixture
def tiny_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "cli-tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_YAML))
    return path


@pytest.fixture
def runs_copy(completed_run: Any, tmp_path: Path) -> Path:
    """A runs folder holding two copies of the session's finished run."""
    runs = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(completed_run.run_dir, runs / "tiny" / name)
    return runs


# --------------------------------------------------------------------------
# summary of a config: the model


@pytest.mark.parametrize(
    ("config", "counts"),
    [
        pytest.param("bn_after.yaml", ("271,346", "268,978", "2,368"), id="bn_after"),
        pytest.param("bn_before.yaml", ("270,946", "268,578", "2,368"), id="bn_before"),
    ],
)
def test_summary_of_reference_configs_prints_parameter_counts(
    config: str, counts: tuple[str, str, str]
) -> None:
    result = run("summary", CONFIGS / config)
    assert_ok(result)
    total, trainable, non_trainable = counts
    lines = result.output.splitlines()
    assert f"Total params: {total}" in lines
    assert f"Trainable params: {trainable}" in lines
    assert f"Non-trainable params: {non_trainable}" in lines
    for layer in ("input_bn", "dense_1", "bn_1", "activation_1", "dense_2", "output"):
        assert layer in result.output


@pytest.mark.parametrize(
    ("config", "counts"),
    [
        pytest.param("bn_after.yaml", (271_346, 268_978, 2_368), id="bn_after"),
        pytest.param("bn_before.yaml", (270_946, 268_578, 2_368), id="bn_before"),
    ],
)
def test_summary_json_of_reference_configs(
    config: str, counts: tuple[int, int, int]
) -> None:
    result = run("summary", CONFIGS / config, "--json")
    assert_ok(result)
    data = json.loads(result.output)
    assert (
        data["total_params"],
        data["trainable_params"],
        data["non_trainable_params"],
    ) == counts
    layers = data["layers"]
    assert [layer["name"] for layer in layers][:2] == ["flatten", "input_bn"]
    assert layers[-1]["name"] == "output"
    assert sum(layer["params"] for layer in layers) == counts[0]
    dense_1 = next(layer for layer in layers if layer["name"] == "dense_1")
    bias_expected = config == "bn_after.yaml"
    assert any(v["name"].endswith("/bias") for v in dense_1["variables"]) is (
        bias_expected
    )


def test_summary_variables_shows_what_backprop_trains() -> None:
    result = run("summary", CONFIGS / "bn_after.yaml", "--variables")
    assert_ok(result)
    rows = [line for line in result.output.splitlines() if "bn_after_elu/" in line]
    by_kind: dict[str, set[str]] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("│ ").split("│")]
        name, _shape, trained = cells
        kind = name.rsplit("/", 1)[-1]
        by_kind.setdefault(kind, set()).add(trained)
    assert by_kind["gamma"] == {"yes"}
    assert by_kind["beta"] == {"yes"}
    assert by_kind["kernel"] == {"yes"}
    assert by_kind["moving_mean"] == {"no (moving average)"}
    assert by_kind["moving_variance"] == {"no (moving average)"}
    # input_bn + bn_1 + bn_2 each have all four.
    assert sum(1 for row in rows if "/moving_mean" in row) == 3


def test_summary_json_counts_prelu_slopes() -> None:
    result = run("summary", CONFIGS / "prelu.yaml", "--json")
    assert_ok(result)
    data = json.loads(result.output)
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["activation_1"]["type"] == "PReLU"
    assert layers["activation_1"]["trainable_params"] == 300
    assert layers["activation_2"]["trainable_params"] == 100
    assert data["total_params"] == 266_610 + 400
    assert data["non_trainable_params"] == 0


def test_summary_applies_set_overrides() -> None:
    result = run(
        "summary",
        CONFIGS / "bn_after.yaml",
        "--json",
        "--set",
        "model.batch_norm=before",
    )
    assert_ok(result)
    assert json.loads(result.output)["total_params"] == 270_946


# --------------------------------------------------------------------------
# train


def test_train_tiny_config(tiny_yaml: Path, tiny_splits: Any, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    result = run("train", tiny_yaml, "--runs-dir", runs_dir, "--epochs", 1, *TINY_DATA)
    assert_ok(result)

    (run_dir,) = list((runs_dir / "cli-tiny").iterdir())
    assert f"run folder: {run_dir}" in result.output
    for row in (
        "final val_accuracy",
        "best val_accuracy (epoch 1)",
        "test accuracy (final weights)",
        "total params",
        "25,818",  # 784*32+32 + 32*16+16 + 16*10+10
    ):
        assert row in result.output
    assert "[completed]" in result.output
    saved = read_result(run_dir)
    assert saved["status"] == "completed"
    assert saved["epochs_planned"] == saved["epochs_completed"] == 1
    assert saved["train_images"] == 2000
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["training"]["epochs"] == 1
    assert config["data"]["train_size"] == 2000
    assert config["data"]["validation_size"] == 1000
    assert len(read_metrics(run_dir)) == 1


def test_train_diverging_run_exits_1(
    tiny_yaml: Path, tiny_splits: Any, tmp_path: Path
) -> None:
    # Brackets in the path are text, not rich markup.
    runs_dir = tmp_path / "[red]runs[/]"
    result = run(
        "train",
        tiny_yaml,
        "--runs-dir",
        runs_dir,
        "--epochs",
        1,
        *TINY_DATA,
        "--set",
        "training.optimizer={name: sgd, learning_rate: 1000000.0}",
    )
    assert result.exit_code == 1, (result.output, result.exception)
    assert "diverged: the training loss became nan in epoch 1" in result.output
    assert "Traceback" not in result.output
    (run_dir,) = list((runs_dir / "cli-tiny").iterdir())
    assert f"run folder: {run_dir}" in result.output
    assert read_result(run_dir)["status"] == "diverged"


def test_train_resume_continues_an_interrupted_run(
    tiny_config: Any, interrupted_run: Any, tmp_path: Path
) -> None:
    run_dir = interrupted_run(tiny_config(), tmp_path)
    assert read_result(run_dir)["status"] == "interrupted"

    result = run("train", "--resume", run_dir)
    assert_ok(result)
    assert f"run folder: {run_dir}" in result.output
    saved = read_result(run_dir)
    assert saved["status"] == "completed"
    assert [row["epoch"] for row in read_metrics(run_dir)] == [1, 2]

    again = run("train", "--resume", run_dir)
    assert_user_error(again, "is already completed; nothing to resume")


# --------------------------------------------------------------------------
# summary of run folders


def test_summary_of_a_run_folder(completed_run: Any) -> None:
    result = run("summary", completed_run.run_dir)
    assert_ok(result)
    assert "tiny  [completed]" in result.output
    assert f"run folder: {completed_run.run_dir}" in result.output
    test_accuracy = completed_run.result["test"]["accuracy"]
    assert f"{100 * test_accuracy:.2f}%" in result.output

    as_json = run("summary", completed_run.run_dir, "--json")
    assert_ok(as_json)
    assert json.loads(as_json.output) == completed_run.result


def test_summary_of_a_runs_folder_lists_every_run(runs_copy: Path) -> None:
    result = run("summary", runs_copy)
    assert_ok(result)
    assert "tiny/a" in result.output and "tiny/b" in result.output
    assert result.output.count("completed") == 2

    as_json = run("summary", runs_copy, "--json")
    assert_ok(as_json)
    rows = json.loads(as_json.output)["runs"]
    assert sorted(Path(row["path"]).name for row in rows) == ["a", "b"]
    assert {row["status"] for row in rows} == {"completed"}


def test_summary_of_a_runs_folder_survives_a_corrupt_result(runs_copy: Path) -> None:
    (runs_copy / "tiny" / "b" / "result.json").write_text('{"status": "comp')

    result = run("summary", runs_copy)
    assert_ok(result)
    lines = result.output.splitlines()
    good = [line for line in lines if "tiny/a" in line]
    bad = [line for line in lines if "tiny/b" in line]
    assert good and "completed" in good[0]
    assert bad and "unreadable" in bad[0]

    as_json = run("summary", runs_copy, "--json")
    assert_ok(as_json)
    rows = json.loads(as_json.output)["runs"]
    statuses = {Path(row["path"]).name: row["status"] for row in rows}
    assert statuses == {"a": "completed", "b": "unreadable"}

    # Asked about the corrupt run itself: a clear error, not a traceback.
    alone = run("summary", runs_copy / "tiny" / "b")
    assert_user_error(alone, "result.json is unreadable")


def test_summary_of_an_empty_folder(tmp_path: Path) -> None:
    result = run("summary", tmp_path)
    assert_ok(result)
    assert "no runs under" in result.output


# --------------------------------------------------------------------------
# User errors: exit 2, one line, no traceback


def test_error_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert_user_error(
        run("train", missing, "--runs-dir", tmp_path / "runs"),
        f"config file not found: {missing}",
    )
    assert not (tmp_path / "runs").exists()


def test_error_runs_dir_under_a_regular_file(tiny_yaml: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    assert_user_error(
        run("train", tiny_yaml, "--runs-dir", blocker / "runs", *TINY_DATA),
        f"cannot write into runs folder {blocker / 'runs'}",
    )


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        pytest.param(
            "model.activaton=elu",
            "unknown key 'model.activaton'",
            id="unknown-key",
        ),
        pytest.param("no-equals-sign", "expected KEY=VALUE", id="no-equals"),
        pytest.param("training.epochs=zero", "training.epochs", id="bad-type"),
        pytest.param(
            "model.activation=relu6", "unknown activation 'relu6'", id="bad-name"
        ),
        pytest.param("training.batch_size=[1", "not valid YAML", id="bad-yaml"),
    ],
)
@pytest.mark.parametrize("command", ["train", "summary", "check"])
def test_error_bad_set(
    command: str, setting: str, fragment: str, tiny_yaml: Path, tmp_path: Path
) -> None:
    extra = ["--runs-dir", tmp_path / "runs"] if command == "train" else []
    result = run(command, tiny_yaml, *extra, "--set", setting)
    assert_user_error(result, fragment)


def test_error_summary_of_a_missing_path(tmp_path: Path) -> None:
    assert_user_error(run("summary", tmp_path / "nope"), "does not exist")


# --------------------------------------------------------------------------
# Help


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_help_of_every_command(command: str) -> None:
    result = run(command, "--help")
    assert_ok(result)
    assert f"Usage: cli {command}" in result.output
    assert "Options:" in result.output
    assert "Traceback" not in result.output


def test_top_level_help_lists_every_command() -> None:
    result = run("--help")
    assert_ok(result)
    for command in cli.commands:
        assert command in result.output
    assert isinstance(cli, click.Group)


def test_python_dash_m_nnexp_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nnexp", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: nnexp")
    for command in ("train", "summary", "check"):
        assert command in result.stdout


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import runpy, sys\n"
        "sys.argv = ['nnexp', '--help']\n"
        "try:\n"
        "    runpy.run_module('nnexp', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'TF-NOT-IMPORTED')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert result.stdout.strip().endswith("TF-NOT-IMPORTED"), result.stdout


def test_summary_of_a_config_prints_nothing_on_stderr() -> None:
    # A fresh process: TensorFlow's start-up lines (oneDNN, CUDA drivers, CPU
    # features) are written before its logging starts and must be filtered.
    result = subprocess.run(
        [sys.executable, "-m", "nnexp", "summary", "configs/bn_after.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Total params: 271,346" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "line"),
    [
        pytest.param(
            ("compare", "configs/quickstart.yaml", "--jobs", "0"),
            "error: Invalid value for '--jobs': 0 is not in the range x>=1. "
            "(see 'nnexp compare --help')",
            id="jobs-0",
        ),
        pytest.param(
            ("compare", "configs/quickstart.yaml", "--seeds", "1001"),
            "error: Invalid value for '--seeds': 1001 is not in the range "
            "1<=x<=1000. (see 'nnexp compare --help')",
            id="seeds-over-1000",
        ),
        pytest.param(
            ("train",),
            "error: missing CONFIG (or --resume RUN_DIR) (see 'nnexp train --help')",
            id="no-config",
        ),
        pytest.param(
            ("frob",), "error: No such command 'frob'. (see 'nnexp --help')", id="typo"
        ),
        pytest.param(
            ("train", "configs/quickstart.yaml", "--runs-dir", ""),
            "error: Invalid value for '--runs-dir': an empty path "
            "(see 'nnexp train --help')",
            id="empty-runs-dir",
        ),
        pytest.param(
            ("summary", "configs/", "--set", "seed=1", "--variables"),
            "error: --set, --variables apply to a CONFIG file, not to a folder "
            "(see 'nnexp summary --help')",
            id="config-options-on-a-folder",
        ),
    ],
)
def test_option_mistakes_are_one_error_line_too(
    args: tuple[str, ...], line: str
) -> None:
    # Click alone would print four lines: usage, a hint, a blank, "Error: ...".
    paths = [str(REPO / a) if a.startswith("configs/") else a for a in args]
    result = CliRunner().invoke(cli, paths, prog_name="nnexp")
    assert result.exit_code == 2
    assert result.stderr == line + "\n"
    assert result.stdout == ""


def test_nnexp_alone_prints_the_help() -> None:
    result = CliRunner().invoke(cli, [], prog_name="nnexp")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: nnexp [OPTIONS] COMMAND [ARGS]...")


def test_an_unreachable_ray_address_fails_fast_and_creates_nothing(
    tmp_path: Path,
) -> None:
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(
        cli,
        [
            "compare",
            str(CONFIGS / "quickstart.yaml"),
            "--activations",
            "relu",
            "--backend",
            "ray",
            "--address",
            f"127.0.0.1:{port}",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: cannot reach Ray at 127.0.0.1:{port}: Connection refused; start "
        "the cluster first (ray start --head) or check the address"
    )
    assert not (tmp_path / "runs").exists()


def test_check_validates_the_compare_grid_too(tmp_path: Path) -> None:
    result = run("check", CONFIGS / "compare_activations.yaml")
    assert_ok(result)
    assert result.stdout.splitlines()[1] == (
        "compare grid: 6 point(s) x 3 seed(s) = 18 runs, every one valid"
    )

    config = tmp_path / "grid.yaml"
    config.write_text("compare:\n  vary: {model.batch_norm: [after, sideways]}\n")
    assert_user_error(
        run("check", config),
        "model.batch_norm: must be 'none', 'before' or 'after', got 'sideways'",
    )


def test_a_bad_compare_vary_is_named_where_it_was_written(tmp_path: Path) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text("compare:\n  vary: {model.nothing: [1]}\n")
    assert_user_error(
        run("check", config),
        "error: compare.vary.model.nothing: unknown key 'model.nothing'; allowed in "
        "'model': hidden_layers, activation, initializer, batch_norm, "
        "input_batch_norm, batch_norm_momentum",
    )


def test_activations_given_twice_are_refused(tmp_path: Path) -> None:
    assert_user_error(
        run(
            "compare",
            CONFIGS / "quickstart.yaml",
            "--activations",
            "relu",
            "--vary",
            "model.activation=elu",
            "--runs-dir",
            tmp_path,
        ),
        "error: --vary model.activation: --activations already gives the "
        "activations; use one of the two",
    )
