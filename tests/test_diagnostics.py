"""Diagnostics on models whose answer is known, config lint, and the CLI."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from nnexp.cli import cli
from nnexp.config import build_config
from nnexp.diagnostics import (
    DIAGNOSTIC_COLUMNS,
    Probe,
    gradient_flag,
    headline,
    init_stats,
    lint_config,
)
from tests.conftest import make_tiny_config


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    with open(run_dir / "diagnostics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _values(
    rows: list[dict[str, Any]], quantity: str, layer: str | None = None
) -> list:
    return [
        float(r["value"])
        for r in rows
        if r["quantity"] == quantity and (layer is None or r["layer"] == layer)
    ]


# -- known answers ----------------------------------------------------------


def test_a_layer_forced_dead_by_a_negative_bias_reports_all_units_dead(
    tiny_splits: Any,
) -> None:
    from nnexp.model import build_model

    config = make_tiny_config({"model": {"hidden_layers": [32, 16]}})
    model = build_model(config)
    dense = model.get_layer("dense_1")
    dense.bias.assign(np.full(dense.bias.shape, -1000.0, np.float32))

    probe = Probe(model, config.model.activation, tiny_splits.x_val, tiny_splits.y_val)
    rows = probe.layer_rows(epoch=0)

    assert _values(rows, "dead_fraction", "hidden_1") == [1.0]
    # The next layer only sees zeros plus its own bias: its units are all alike.
    assert _values(rows, "activation_std", "hidden_1") == [0.0]


@pytest.mark.parametrize(
    ("clipping", "expected"),
    [
        pytest.param({"value": 1e-6}, 1.0, id="value-far-below-every-gradient"),
        pytest.param({"global_norm": 1e-6}, 1.0, id="global-norm-far-below"),
        pytest.param({"norm": 1e6}, 0.0, id="norm-far-above-never-clips"),
    ],
)
def test_clipped_fraction_is_measured_inside_the_training_step(
    tiny_splits: Any, tmp_path: Path, clipping: dict, expected: float
) -> None:
    from nnexp.experiment import execute_run

    config = make_tiny_config(
        {"training": {"clipping": clipping, "epochs": 1}, "diagnostics": True}
    )
    outcome = execute_run(config, tmp_path, splits=tiny_splits)

    rows = _rows(outcome.run_dir)
    assert _values(rows, "clipped_fraction") == [expected]
    assert _values(rows, "global_gradient_norm")[0] > 0


def test_diagnostics_do_not_change_the_trained_numbers(
    tiny_splits: Any, tmp_path: Path
) -> None:
    from nnexp.experiment import execute_run

    plain = execute_run(make_tiny_config(), tmp_path / "plain", splits=tiny_splits)
    watched = execute_run(
        make_tiny_config({"diagnostics": True}),
        tmp_path / "watched",
        splits=tiny_splits,
    )

    assert plain.result["final"] == watched.result["final"]
    assert plain.result["test"] == watched.result["test"]


def test_diagnostics_files_cover_every_layer_and_epoch(
    tiny_splits: Any, tmp_path: Path
) -> None:
    from nnexp.experiment import execute_run

    config = make_tiny_config({"diagnostics": True})  # 2 hidden layers, 2 epochs
    outcome = execute_run(config, tmp_path, splits=tiny_splits)
    rows = _rows(outcome.run_dir)

    assert list(rows[0]) == DIAGNOSTIC_COLUMNS
    assert {int(r["epoch"]) for r in rows} == {0, 1, 2}
    for epoch in ("0", "1", "2"):
        at_epoch = [r for r in rows if r["epoch"] == epoch]
        for layer in ("hidden_1", "hidden_2"):
            quantities = {r["quantity"] for r in at_epoch if r["layer"] == layer}
            assert quantities == {
                "preactivation_mean",
                "preactivation_std",
                "activation_mean",
                "activation_std",
                "dead_fraction",
            }
        kernels = {r["layer"] for r in at_epoch if r["quantity"] == "gradient_norm"}
        assert kernels == {"dense_1", "dense_2", "output"}
    assert len(_values(rows, "update_ratio")) == 2 * 3  # epochs 1-2, 3 kernels
    assert all(0 < v < 1 for v in _values(rows, "update_ratio"))
    assert (outcome.run_dir / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("changes", "stays_normalised"),
    [
        pytest.param(
            {
                "data": {"scaling": "standardize"},
                "model": {
                    "hidden_layers": [{"units": 100, "repeat": 20}],
                    "activation": "selu",
                    "initializer": "lecun_normal",
                },
            },
            True,
            id="selu-lecun-standardized",
        ),
        pytest.param(
            {
                "model": {
                    "hidden_layers": [{"units": 100, "repeat": 20}],
                    "activation": "sigmoid",
                    "initializer": {"name": "random_normal", "stddev": 1.0},
                },
            },
            False,
            id="sigmoid-wide-random-normal",
        ),
    ],
)
def test_init_stats_show_self_normalisation_or_its_absence(
    changes: dict, stays_normalised: bool
) -> None:
    from nnexp.data import load_splits

    config = make_tiny_config(changes)
    splits = load_splits(
        validation_size=1000, train_size=2000, scaling=config.data.scaling
    )
    rows = init_stats(config, splits.x_val, splits.y_val)
    stds = [row["activation_std"] for row in rows if row["layer"] != "output"]

    assert len(stds) == 20
    assert all(0.8 <= s <= 1.2 for s in stds) is stays_normalised


def test_headline_and_flags() -> None:
    rows = [
        {"epoch": 2, "layer": "dense_1", "quantity": "gradient_norm", "value": 0.001},
        {"epoch": 2, "layer": "output", "quantity": "gradient_norm", "value": 1.0},
        {"epoch": 2, "layer": "hidden_1", "quantity": "dead_fraction", "value": 0.25},
        {"epoch": 2, "layer": "hidden_2", "quantity": "dead_fraction", "value": 0.5},
        {"epoch": 1, "layer": "hidden_2", "quantity": "dead_fraction", "value": 0.9},
    ]
    assert headline(rows) == {"gradient_ratio": 0.001, "max_dead_fraction": 0.5}
    assert gradient_flag(0.001) == "vanishing"
    assert gradient_flag(50.0) == "exploding"
    assert gradient_flag(1.0) == ""
    assert gradient_flag(float("nan")) == ""


# -- lint -------------------------------------------------------------------

LINT_CASES = [
    ("selu-initializer", {"model": {"activation": "selu"}}, {"model": {"activation": "selu", "initializer": "lecun_normal"}}),
    ("selu-batch-norm", {"model": {"activation": "selu", "batch_norm": "after"}}, {"model": {"activation": "selu"}}),
    ("selu-inputs", {"model": {"activation": "selu"}}, {"model": {"activation": "selu"}, "data": {"scaling": "standardize"}}),
    ("he-with-saturating", {"model": {"activation": "tanh", "initializer": "he_normal"}}, {"model": {"activation": "tanh"}}),
    ("glorot-with-deep-relu", {"model": {"hidden_layers": [{"units": 50, "repeat": 10}]}}, {"model": {"hidden_layers": [{"units": 50, "repeat": 9}]}}),
    ("deep-saturating", {"model": {"activation": "sigmoid", "hidden_layers": [{"units": 50, "repeat": 12}]}}, {"model": {"activation": "sigmoid", "batch_norm": "after", "hidden_layers": [{"units": 50, "repeat": 12}]}}),
    ("leaky-slope", {"model": {"activation": {"name": "leaky_relu", "negative_slope": 1.5}}}, {"model": {"activation": "leaky_relu"}}),
    ("rrelu-fixed", {"model": {"activation": {"name": "rrelu", "lower": 0.2, "upper": 0.2}}}, {"model": {"activation": "rrelu"}}),
    ("constant-initializer", {"model": {"initializer": "zeros"}}, {"model": {"initializer": "he_normal"}}),
    ("large-learning-rate", {"training": {"optimizer": {"name": "sgd", "learning_rate": 2.0}}}, {"training": {"optimizer": {"name": "sgd", "learning_rate": 0.1}}}),
    ("batch-larger-than-data", {"data": {"train_size": 100}, "training": {"batch_size": 128}}, {"data": {"train_size": 100}, "training": {"batch_size": 100}}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "firing", "quiet"),
    [pytest.param(*case, id=case[0]) for case in LINT_CASES],
)
def test_each_lint_rule_fires_and_stays_quiet(
    rule: str, firing: dict, quiet: dict
) -> None:
    fired = [w.rule for w in lint_config(build_config(firing))]
    silent = [w.rule for w in lint_config(build_config(quiet))]

    assert rule in fired
    assert rule not in silent


def test_the_recommended_selu_setup_and_the_example_configs_lint_clean() -> None:
    selu = build_config(
        {
            "data": {"scaling": "standardize"},
            "model": {"activation": "selu", "initializer": "lecun_normal"},
        }
    )
    assert lint_config(selu) == []
    for path in sorted(Path("configs").glob("*.yaml")):
        from nnexp.config import load_config

        assert lint_config(load_config(path)) == [], path


def test_lint_message_says_why_and_what_to_change() -> None:
    (warning,) = lint_config(
        build_config({"model": {"activation": "tanh", "initializer": "he_uniform"}})
    )
    assert str(warning) == (
        "[he-with-saturating] he_uniform with tanh: He initialisation doubles the "
        "variance for ReLU-like units, which pushes sigmoid/tanh into saturation; "
        "use glorot_uniform or glorot_normal."
    )


def test_check_prints_warnings_and_strict_makes_them_errors(tmp_path: Path) -> None:
    config = tmp_path / "selu.yaml"
    config.write_text("model: {activation: selu, initializer: lecun_normal}\n")
    runner = CliRunner()

    relaxed = runner.invoke(cli, ["check", str(config), "--quiet"])
    strict = runner.invoke(cli, ["check", str(config), "--strict"])

    assert relaxed.exit_code == 0
    assert relaxed.output == (
        "warning: [selu-inputs] SELU on unstandardized inputs: self-normalisation "
        "needs inputs with mean 0 and std 1; set data.scaling: standardize.\n"
    )
    assert strict.exit_code == 2
    assert strict.output.splitlines()[-1] == (
        "error: 1 lint warning(s) and --strict given; fix them or drop --strict"
    )
    assert "Traceback" not in strict.output


def test_train_with_diagnostics_and_tensorboard_through_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "data: {train_size: 500, validation_size: 500}\n"
        "model: {hidden_layers: [16], activation: tanh}\n"
        "training: {epochs: 1}\n"
    )
    result = CliRunner().invoke(
        cli,
        [
            "train",
            str(config),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--diagnostics",
            "--tensorboard",
        ],
    )

    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs" / "tiny").iterdir()
    rows = _rows(run_dir)
    assert _values(
        rows, "saturated_fraction", "hidden_1"
    )  # tanh: saturation, not death
    assert not _values(rows, "dead_fraction")
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))


def test_init_stats_through_the_cli() -> None:
    result = CliRunner().invoke(
        cli,
        [
            "summary",
            "configs/selu.yaml",
            "--init-stats",
            "--set",
            "data.train_size=1000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "hidden_1" in result.output and "hidden_2" in result.output
    assert "kernel grad norm" in result.output
