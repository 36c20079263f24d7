"""Tests of nnexp.training and nnexp.experiment: optimizers, the training loop,
run folders and resuming, with real TensorFlow on a few thousand real images."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import yaml

from nnexp.config import build_config, config_from_yaml_text
from nnexp.experiment import execute_run, load_run_config
from nnexp.model import build_model, count_parameters, load_model
from nnexp.runs import read_metrics, read_result
from nnexp.training import (
    METRIC_COLUMNS,
    Trainer,
    build_optimizer,
    seed_everything,
)

PER_EPOCH = [c for c in METRIC_COLUMNS if c != "seconds"]

DIVERGING = {
    "model": {"hidden_layers": [32, 16], "activation": "relu"},
    "training": {"optimizer": {"name": "sgd", "learning_rate": 1.0e6}, "epochs": 2},
}
"""Plain SGD with a learning rate of a million and two ReLU layers: NaN within
the first 4 steps for every seed tried (0-11). With one hidden layer the ReLUs
all die instead and the loss stays finite."""


def metric_rows(history: list[dict[str, float]]) -> list[dict[str, float]]:
    """The per-epoch numbers without the wall-clock column."""
    return [{k: row[k] for k in PER_EPOCH} for row in history]


# --------------------------------------------------------------------------
# Optimizers and clipping


def optimizer_for(training: dict[str, Any]) -> Any:
    return build_optimizer(build_config({"training": training}).training)


@pytest.mark.parametrize(
    ("spec", "keras_class", "attributes"),
    [
        pytest.param(
            "sgd",
            keras.optimizers.SGD,
            {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
            id="sgd-defaults",
        ),
        pytest.param(
            {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
            keras.optimizers.SGD,
            {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
            id="sgd-nesterov",
        ),
        pytest.param(
            {"name": "adam", "learning_rate": 0.003, "beta_1": 0.8, "amsgrad": True},
            keras.optimizers.Adam,
            {
                "learning_rate": 0.003,
                "beta_1": 0.8,
                "beta_2": 0.999,
                "epsilon": 1e-7,
                "amsgrad": True,
            },
            id="adam",
        ),
        pytest.param(
            {"name": "adamw", "weight_decay": 0.01},
            keras.optimizers.AdamW,
            {"learning_rate": 0.001, "weight_decay": 0.01},
            id="adamw",
        ),
        pytest.param(
            {"name": "nadam", "learning_rate": 0.002, "beta_2": 0.99},
            keras.optimizers.Nadam,
            {"learning_rate": 0.002, "beta_1": 0.9, "beta_2": 0.99},
            id="nadam",
        ),
        pytest.param(
            {"name": "rmsprop", "rho": 0.8, "momentum": 0.5, "centered": True},
            keras.optimizers.RMSprop,
            {"learning_rate": 0.001, "rho": 0.8, "momentum": 0.5, "centered": True},
            id="rmsprop",
        ),
    ],
)
def test_optimizer_name_and_arguments(
    spec: Any, keras_class: type, attributes: dict[str, Any]
) -> None:
    optimizer = optimizer_for({"optimizer": spec})
    assert type(optimizer) is keras_class
    for name, expected in attributes.items():
        actual = getattr(optimizer, name)
        if isinstance(expected, bool):
            assert actual is expected, name
        else:
            assert float(np.asarray(actual)) == pytest.approx(expected, rel=1e-6), name
    assert optimizer.clipvalue is None
    assert optimizer.clipnorm is None
    assert optimizer.global_clipnorm is None


@pytest.mark.parametrize(
    ("clipping", "attribute"),
    [
        pytest.param({"value": 0.5}, "clipvalue", id="value->clipvalue"),
        pytest.param({"norm": 1.5}, "clipnorm", id="norm->clipnorm"),
        pytest.param(
            {"global_norm": 2.5}, "global_clipnorm", id="global_norm->global_clipnorm"
        ),
    ],
)
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_clipping_reaches_the_optimizer(
    clipping: dict[str, float], attribute: str, optimizer: str
) -> None:
    keras_optimizer = optimizer_for({"optimizer": optimizer, "clipping": clipping})
    (threshold,) = clipping.values()
    for name in ("clipvalue", "clipnorm", "global_clipnorm"):
        value = getattr(keras_optimizer, name)
        if name == attribute:
            assert value == pytest.approx(threshold)
        else:
            assert value is None


def test_clip_value_really_clips_the_update() -> None:
    """One SGD step with lr 1 and clipvalue 0.5 moves a weight by at most 0.5."""
    optimizer = optimizer_for(
        {"optimizer": {"name": "sgd", "learning_rate": 1.0}, "clipping": {"value": 0.5}}
    )
    variable = keras.Variable(np.zeros(3, np.float32))
    optimizer.apply([keras.ops.convert_to_tensor([10.0, -0.2, -7.0])], [variable])
    np.testing.assert_allclose(np.asarray(variable), [-0.5, 0.2, 0.5], rtol=1e-6)


# --------------------------------------------------------------------------
# The training loop


def test_two_identical_runs_give_identical_metrics(
    tiny_config: Any, tiny_splits: Any, completed_run: Any, tmp_path: Path
) -> None:
    again = execute_run(tiny_config(), tmp_path, splits=tiny_splits)
    first = metric_rows(read_metrics(completed_run.run_dir))
    second = metric_rows(read_metrics(again.run_dir))
    assert len(first) == 2
    assert first == second  # bit-identical, not just close
    assert again.result["test"] == completed_run.result["test"]

    # ... and the seed matters: another seed gives other numbers.
    other = execute_run(tiny_config({"seed": 8}), tmp_path, splits=tiny_splits)
    assert metric_rows(read_metrics(other.run_dir)) != first


def test_learning_happens(completed_run: Any) -> None:
    history = read_metrics(completed_run.run_dir)
    assert completed_run.status == "completed"
    assert history[1]["loss"] < history[0]["loss"]
    # Chance is 10%; 2 epochs on 2,000 images reach well above 60%.
    assert history[-1]["val_accuracy"] > 0.6
    assert completed_run.result["test"]["accuracy"] > 0.6


def test_epoch_permutation_depends_on_seed_and_epoch(
    tiny_config: Any, tiny_splits: Any
) -> None:
    def trainer(seed: int) -> Trainer:
        config = tiny_config({"seed": seed})
        return Trainer(
            config,
            build_model(config),
            tiny_splits.x_train,
            tiny_splits.y_train,
            tiny_splits.x_val,
            tiny_splits.y_val,
        )

    a, b = trainer(1), trainer(2)
    assert sorted(a.permutation(1)) == list(range(2000))
    np.testing.assert_array_equal(a.permutation(1), a.permutation(1))
    assert not np.array_equal(a.permutation(1), a.permutation(2))
    assert not np.array_equal(a.permutation(1), b.permutation(1))
    assert a.steps_per_epoch == 63  # ceil(2000 / 32): a short last batch


def test_trainer_state_round_trip_across_fresh_objects(
    tiny_config: Any, tiny_splits: Any
) -> None:
    """A checkpoint restores into a newly built model and optimizer, whose Keras
    auto-generated names (adam_3, seed_generator_7, ...) differ from the saved ones."""
    config = tiny_config(
        {
            "model": {"activation": "rrelu", "batch_norm": "after"},
            "training": {"epochs": 1},
        }
    )

    def new_trainer() -> Trainer:
        seed_everything(config.seed)
        return Trainer(
            config,
            build_model(config),
            tiny_splits.x_train,
            tiny_splits.y_train,
            tiny_splits.x_val,
            tiny_splits.y_val,
        )

    source = new_trainer()
    assert source.fit().status == "completed"
    state = source.get_state()
    target = new_trainer()
    target.set_state(state)

    restored = target.get_state()
    assert len(restored) == len(state)
    for (key, value), (_, original) in zip(
        sorted(restored.items()), sorted(state.items()), strict=True
    ):
        np.testing.assert_array_equal(value, original, err_msg=key)
    assert int(np.asarray(target.optimizer.iterations)) == source.steps_per_epoch
    np.testing.assert_array_equal(
        target.evaluate(tiny_splits.x_val, tiny_splits.y_val),
        source.evaluate(tiny_splits.x_val, tiny_splits.y_val),
    )

    broken = dict(state)
    broken.pop(next(k for k in broken if k.startswith("model/00000/")))
    with pytest.raises(KeyError, match="model/00000"):
        target.set_state(broken)


# --------------------------------------------------------------------------
# Divergence


def test_diverging_run_is_marked_diverged(
    tiny_config: Any, tiny_splits: Any, tmp_path: Path
) -> None:
    outcome = execute_run(tiny_config(DIVERGING), tmp_path, splits=tiny_splits)

    assert outcome.status == "diverged"
    message = outcome.result["message"]
    assert "training loss became nan in epoch 1" in message
    assert outcome.result["epochs_completed"] == 0
    assert math.isnan(outcome.result["test"]["accuracy"])
    # On disk too; no model is saved for a diverged run.
    saved = read_result(outcome.run_dir)
    assert saved["status"] == "diverged"
    assert saved["message"] == message
    assert not (outcome.run_dir / "model.keras").exists()
    assert not (outcome.run_dir / "checkpoint.npz").exists()


# --------------------------------------------------------------------------
# The run folder


def test_run_folder_files(completed_run: Any, tiny_config: Any) -> None:
    run_dir = completed_run.run_dir
    names = {p.name for p in run_dir.iterdir() if not p.name.startswith(".")}
    # (Optional extras such as diagnostics are off in the tiny config.)
    assert names == {
        "config.yaml",
        "metrics.csv",
        "result.json",
        "model.keras",
        "curves.png",
        "checkpoint.npz",
    }
    assert run_dir.parent.name == "tiny"
    assert run_dir.name.endswith(tiny_config().short_hash)


def test_run_folder_config_is_resolved_and_reloadable(
    completed_run: Any, tiny_config: Any
) -> None:
    config = tiny_config()
    text = (completed_run.run_dir / "config.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    # Resolved: every default filled in, components as full mappings.
    assert data["model"]["activation"] == {"name": "relu"}
    assert data["model"]["initializer"] == {"name": "glorot_uniform"}
    assert data["training"]["optimizer"]["beta_2"] == pytest.approx(0.999)
    assert data["training"]["clipping"] is None
    assert data["model"]["batch_norm"] == "none"
    reloaded = config_from_yaml_text(text)
    assert reloaded == config
    assert reloaded.hash == config.hash
    assert load_run_config(completed_run.run_dir) == config


def test_run_folder_metrics_csv(completed_run: Any) -> None:
    with open(completed_run.run_dir / "metrics.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert header == [
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "seconds",
    ]
    assert [row[0] for row in rows] == ["1", "2"]
    for row in rows:
        values = [float(v) for v in row]
        assert all(math.isfinite(v) for v in values)
        assert 0 <= values[2] <= 1 and 0 <= values[4] <= 1
        assert values[5] == pytest.approx(0.002)
        assert values[6] > 0


def test_run_folder_result_json(completed_run: Any, tiny_config: Any) -> None:
    config = tiny_config()
    result = json.loads((completed_run.run_dir / "result.json").read_text())
    assert result == completed_run.result
    for key in (
        "status",
        "message",
        "final",
        "best",
        "test",
        "params",
        "versions",
        "config_hash",
        "seed",
        "name",
        "epochs_planned",
        "epochs_completed",
        "started_at",
        "finished_at",
        "wall_seconds",
        "seconds_per_epoch",
    ):
        assert key in result, key
    assert result["status"] == "completed"
    assert result["config_hash"] == config.hash
    assert result["seed"] == 7
    assert result["epochs_planned"] == result["epochs_completed"] == 2
    history = read_metrics(completed_run.run_dir)
    assert result["final"] == {k: history[-1][k] for k in PER_EPOCH}
    best = max(history, key=lambda row: row["val_accuracy"])
    assert result["best"]["epoch"] == best["epoch"]
    assert result["best"]["val_accuracy"] == best["val_accuracy"]
    assert set(result["test"]) == {"loss", "accuracy"}
    assert 0 < result["test"]["accuracy"] <= 1
    assert result["params"] == count_parameters(build_model(config))
    assert result["params"]["total_params"] == 784 * 32 + 32 + 32 * 16 + 16 + 170
    assert {"nnexp", "python", "tensorflow", "keras", "numpy"} <= set(
        result["versions"]
    )
    assert result["versions"]["keras"] == keras.__version__


def test_run_folder_model_loads_and_matches_the_test_accuracy(
    completed_run: Any, tiny_splits: Any
) -> None:
    model = load_model(str(completed_run.run_dir / "model.keras"))
    probabilities = np.asarray(model.predict(tiny_splits.x_test, verbose=0))
    accuracy = float(np.mean(probabilities.argmax(axis=1) == tiny_splits.y_test))
    assert accuracy == pytest.approx(completed_run.result["test"]["accuracy"], abs=1e-4)


def test_run_folder_curves_png(completed_run: Any) -> None:
    data = (completed_run.run_dir / "curves.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 5000
    import matplotlib.image

    image = matplotlib.image.imread(completed_run.run_dir / "curves.png")
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_run_folder_has_no_temporary_files(completed_run: Any) -> None:
    assert not [
        p.name for p in completed_run.run_dir.iterdir() if p.name.startswith(".")
    ]


# --------------------------------------------------------------------------
# Interrupting and resuming


def test_interrupt_then_resume_matches_an_uninterrupted_run(
    tiny_config: Any, tiny_splits: Any, interrupted_run: Any, tmp_path: Path
) -> None:
    """BN moving statistics, Adam slots and RReLU's random-generator state all
    have to come back from checkpoint.npz for the numbers to match."""
    config = tiny_config(
        {
            "model": {
                "activation": "rrelu",
                "batch_norm": "after",
                "input_batch_norm": True,
            },
            "training": {"epochs": 3},
        }
    )
    reference = execute_run(config, tmp_path / "reference", splits=tiny_splits)
    run_dir = interrupted_run(config, tmp_path / "interrupted", after=1)

    result = read_result(run_dir)
    assert result["status"] == "interrupted"
    assert f"nnexp train --resume {run_dir}" in result["message"]
    assert result["epochs_completed"] == 1
    assert len(read_metrics(run_dir)) == 1
    assert (run_dir / "checkpoint.npz").is_file()
    assert not (run_dir / "model.keras").exists()

    resumed = execute_run(config, resume_dir=run_dir, splits=tiny_splits)

    assert resumed.run_dir == run_dir
    assert resumed.status == "completed"
    assert resumed.result["epochs_completed"] == 3
    assert len(resumed.result["resumed_at"]) == 1
    assert resumed.result["started_at"] == result["started_at"]
    expected = metric_rows(read_metrics(reference.run_dir))
    actual = metric_rows(read_metrics(run_dir))
    assert [row["epoch"] for row in actual] == [1, 2, 3]
    for want, got in zip(expected, actual, strict=True):
        np.testing.assert_allclose(
            [got[k] for k in PER_EPOCH], [want[k] for k in PER_EPOCH], rtol=1e-6
        )
    # In practice the resumed run is bit-identical (same process, same CPU).
    assert actual == expected
    assert resumed.result["test"] == reference.result["test"]
    with open(run_dir / "metrics.csv") as f:
        assert [line.split(",")[0] for line in f.read().splitlines()] == [
            "epoch",
            "1",
            "2",
            "3",
        ]
    assert (run_dir / "model.keras").is_file()


def test_resume_without_checkpoint_fails_clearly(
    tiny_config: Any, tiny_splits: Any, interrupted_run: Any, tmp_path: Path
) -> None:
    from nnexp.errors import RunError

    config = tiny_config()
    run_dir = interrupted_run(config, tmp_path, after=1)
    (run_dir / "checkpoint.npz").unlink()
    with pytest.raises(RunError, match="checkpoint.npz is missing"):
        execute_run(config, resume_dir=run_dir, splits=tiny_splits)
    assert read_result(run_dir)["status"] == "failed"


def test_stderr_filter_drops_the_noise_and_passes_the_rest_on(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from nnexp.training import _stderr_without

    with _stderr_without(("chatter",)):
        # Written to the file descriptor itself, as TensorFlow's C++ code does.
        os.write(2, b"some chatter from C++\na real problem\n")
    assert capfd.readouterr().err == "a real problem\n"
