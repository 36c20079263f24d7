"""Bad input of every kind: exit status 2, one short `error:` message, no traceback.

Each case writes its files into a temporary folder, runs a command through
click's CliRunner and checks the whole error line. A few cases also run in a
real subprocess, where a traceback would show on stderr.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from nnexp.cli import cli

GOOD = "training: {epochs: 1}\n"


def _write(text: str | bytes) -> Callable[[Path], list[str]]:
    """A case whose config file holds ``text``; the command is ``check``."""

    def setup(folder: Path) -> list[str]:
        path = folder / "config.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return ["check", str(path)]

    return setup


def _args(*args: str, config: str = GOOD) -> Callable[[Path], list[str]]:
    """A case with a valid config and these command-line arguments ({cfg} = path)."""

    def setup(folder: Path) -> list[str]:
        path = folder / "config.yaml"
        path.write_text(config)
        return [
            a.replace("{cfg}", str(path)).replace("{dir}", str(folder)) for a in args
        ]

    return setup


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)

CASES = [
    # -- the file itself --
    ("empty-file", _write(""), "the file is empty; a config is a YAML mapping"),
    ("whitespace-only", _write("   \n\n"), "the file is empty; a config is a YAML mapping"),
    ("not-yaml", _write("model: [unclosed\n"), "not valid YAML"),
    ("yaml-list", _write("- 1\n- 2\n"), "expected a mapping of keys to values at the top level, got a list"),
    ("yaml-scalar", _write("42\n"), "expected a mapping of keys to values at the top level, got a number (42)"),
    ("python-tag", _write("name: !!python/object/apply:os.system ['true']\n"), "the tag !!python/object/apply:os.system is not allowed; a config holds plain YAML data"),
    ("alias-bomb", _write(BOMB), "the YAML expands to more than 20,000 values (nested aliases?); a config is a small mapping"),
    ("ten-megabytes", _write("# padding\n" * 1_000_000), "larger than 1,000,000 bytes, too large for a config file"),
    ("not-utf8", _write(b"name: caf\xe9\n"), "not UTF-8 text (byte 9 is 0xe9)"),
    ("duplicate-key", _write("seed: 1\nseed: 2\n"), "line 2: key 'seed' appears twice in the same mapping"),
    ("missing-path", lambda d: ["check", str(d / "nope.yaml")], "config file not found"),
    ("path-is-folder", lambda d: ["check", str(d)], "is a folder, not a config file"),
    # -- keys and types --
    ("unknown-top-key", _write("epochs: 3\n"), "unknown key 'epochs'"),
    ("unknown-nested-key", _write("model: {activaton: elu}\n"), "unknown key 'model.activaton' (did you mean 'model.activation'?)"),
    ("string-for-epochs", _write("training: {epochs: ten}\n"), "training.epochs: expected a whole number, got 'ten'"),
    ("float-for-units", _write("model: {hidden_layers: [100.5]}\n"), "model.hidden_layers[0]: expected a whole number, got 100.5"),
    ("bool-for-learning-rate", _write("training: {optimizer: {name: sgd, learning_rate: true}}\n"), "training.optimizer.learning_rate: expected a number, got True"),
    ("section-not-mapping", _write("model: 3\n"), "model: must be a mapping of keys to values, got 3"),
    ("zero-epochs", _write("training: {epochs: 0}\n"), "training.epochs: must be at least 1, got 0"),
    ("negative-epochs", _write("training: {epochs: -2}\n"), "training.epochs: must be at least 1, got -2"),
    ("zero-units", _write("model: {hidden_layers: [0]}\n"), "model.hidden_layers[0]: must be at least 1, got 0"),
    ("negative-units", _write("model: {hidden_layers: [-5]}\n"), "model.hidden_layers[0]: must be at least 1, got -5"),
    ("zero-batch", _write("training: {batch_size: 0}\n"), "training.batch_size: must be at least 1, got 0"),
    ("validation-too-large", _write("data: {validation_size: 60000}\n"), "data.validation_size: must be at most 59999, got 60000"),
    ("train-size-zero", _write("data: {train_size: 0}\n"), "data.train_size: must be at least 1, got 0"),
    ("train-size-too-large", _write("data: {train_size: 58000}\n"), "data.train_size: 58000 is more than the 55,000 training images left after a validation set of 5,000"),
    ("unknown-activation", _write("model: {activation: rellu}\n"), "model.activation: unknown activation 'rellu' (did you mean 'relu'?)"),
    ("unknown-initializer", _write("model: {initializer: he_norml}\n"), "model.initializer: unknown initializer 'he_norml' (did you mean 'he_normal'?)"),
    ("unknown-optimizer", _write("training: {optimizer: adamm}\n"), "training.optimizer: unknown optimizer 'adamm' (did you mean 'adam'?)"),
    ("arg-not-of-activation", _write("model: {activation: {name: elu, negative_slope: 0.2}}\n"), "model.activation.negative_slope: not an argument of elu; elu takes: alpha"),
    ("variance-scaling-bad-mode", _write("model: {initializer: {name: variance_scaling, mode: fan_middle}}\n"), "model.initializer.mode: 'fan_middle' is not allowed"),
    ("two-clipping-kinds", _write("training: {clipping: {value: 1.0, norm: 1.0}}\n"), "training.clipping: choose one kind of clipping, got value and norm; they would fight over the same gradient"),
    ("clipping-zero", _write("training: {clipping: {norm: 0}}\n"), "training.clipping.norm: must be greater than 0, got 0"),
    ("clipping-negative", _write("training: {clipping: {value: -1}}\n"), "training.clipping.value: must be greater than 0, got -1"),
    ("name-with-slash", _write("name: a/b\n"), "name: 'a/b' is not a valid run name"),
    ("name-with-dotdot", _write("name: a..b\n"), "name: 'a..b' is not a valid run name"),
    ("name-dotdot-only", _write("name: '..'\n"), "name: '..' is not a valid run name"),
    # -- the command line --
    ("set-unknown-key", _args("check", "{cfg}", "--set", "model.activaton=elu"), "--set model.activaton: unknown key 'model.activaton' (did you mean 'model.activation'?)"),
    ("set-no-equals", _args("check", "{cfg}", "--set", "training.epochs"), "expected KEY=VALUE"),
    ("set-bad-value", _args("check", "{cfg}", "--set", "training.epochs=[1"), "--set training.epochs: not valid YAML"),
    ("set-bad-type", _args("check", "{cfg}", "--set", "training.epochs=abc"), "training.epochs: expected a whole number, got 'abc'"),
    ("set-into-scalar", _args("check", "{cfg}", "--set", "seed.x=1"), "--set seed.x: 'seed' takes a single value, not keys below it; use --set seed=VALUE"),
    ("runs-dir-is-a-file", _args("train", "{cfg}", "--runs-dir", "{cfg}"), "exists but is not a folder"),
    ("vary-malformed", _args("compare", "{cfg}", "--vary", "model.batch_norm"), "expected KEY=V1,V2,..., e.g. model.batch_norm=before,after"),
    ("vary-unknown-key", _args("compare", "{cfg}", "--vary", "model.bn=before,after"), "unknown key 'model.bn'"),
    ("activations-unknown", _args("compare", "{cfg}", "--activations", "relu,sigmod"), "unknown activation 'sigmod' (did you mean 'sigmoid'?)"),
    ("activations-empty", _args("compare", "{cfg}", "--activations", ""), "--activations: give at least one activation name"),
    ("resume-not-a-run", _args("train", "--resume", "{dir}"), "is not a run folder (no result.json)"),
    ("summary-missing", _args("summary", "{dir}/missing"), "does not exist"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "expected"), [pytest.param(s, e, id=i) for i, s, e in CASES]
)
def test_bad_input_is_one_short_error_with_exit_status_2(
    tmp_path: Path, setup: Callable[[Path], list[str]], expected: str
) -> None:
    args = setup(tmp_path)

    result = CliRunner().invoke(cli, args)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.output
    assert expected in errors[0]
    assert len(errors[0]) < 400


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_python_tags_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")

    result = CliRunner().invoke(cli, ["check", str(config)])

    assert result.exit_code == 2
    assert not marker.exists()


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB)  # 9**9 = 387 million values once expanded

    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["check", str(config)])

    assert result.exit_code == 2
    assert time.perf_counter() - started < 2.0  # safety bound, not a benchmark


def test_an_unwritable_runs_folder_is_reported(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root writes anywhere; a path below a regular file fails for everyone.
        runs_dir = tmp_path / "file" / "runs"
        (tmp_path / "file").write_text("")
    else:
        runs_dir = tmp_path / "locked"
        runs_dir.mkdir(mode=0o500)
    config = tmp_path / "c.yaml"
    config.write_text(GOOD)

    result = CliRunner().invoke(
        cli, ["train", str(config), "--runs-dir", str(runs_dir)]
    )

    assert result.exit_code == 2
    assert result.output.startswith(f"error: cannot write into runs folder {runs_dir}")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
        pytest.param(
            lambda raw: gzip.compress(gzip.decompress(raw)[:-10]), id="short-contents"
        ),
    ],
)
def test_a_corrupt_dataset_file_is_reported(tmp_path: Path, damage: Callable) -> None:
    source = Path("/usr/share/datasets/fashion-mnist")
    if not source.is_dir():
        pytest.skip("needs the Debian package dataset-fashion-mnist")
    data_dir = tmp_path / "data"
    shutil.copytree(source, data_dir)
    labels = data_dir / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(damage(labels.read_bytes()))
    config = tmp_path / "c.yaml"
    config.write_text(GOOD)

    result = CliRunner().invoke(
        cli,
        [
            "train",
            str(config),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--data-dir",
            str(data_dir),
        ],
    )

    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ")
    assert "t10k-labels-idx1-ubyte.gz" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs" / "c").exists()  # nothing started


def test_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("model: {activation: {name: elu, negative_slope: 0.2}}\n")

    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-m", "nnexp", "train", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == (
        "error: model.activation.negative_slope: not an argument of elu; elu takes: alpha\n"
    )
    # Config errors come before TensorFlow is imported (generous bound).
    assert time.perf_counter() - started < 10
