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

    from nnexp.training import CheckpointMismatch

    broken = dict(state)
    broken.pop(next(k for k in broken if k.startswith("model/00000/")))
    with pytest.raises(CheckpointMismatch) as caught:
        target.set_state(broken)
    assert str(caught.value) == "checkpoint lacks model/00000 (tiny/dense_1/kernel)"


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


def folder_state(run_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of a run folder (hidden ones too), with mtime and bytes."""
    return {
        p.name: (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(run_dir.iterdir())
        if p.is_file()
    }


def _rewrite_checkpoint(run_dir: Path, change: Any) -> None:
    path = run_dir / "checkpoint.npz"
    with np.load(path) as saved:
        state = {key: saved[key] for key in saved.files}
    change(state)
    np.savez(path, **state)


def _truncate(run_dir: Path) -> None:
    path = run_dir / "checkpoint.npz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _first_model_variable(state: dict[str, np.ndarray]) -> str:
    return min(key for key in state if key.startswith("model/"))


DAMAGED_CHECKPOINTS = [
    pytest.param(lambda d: (d / "checkpoint.npz").unlink(), "is missing", id="missing"),
    pytest.param(
        lambda d: (d / "checkpoint.npz").write_bytes(b""),
        "is unreadable (the file is empty)",
        id="empty",
    ),
    pytest.param(
        lambda d: (d / "checkpoint.npz").write_bytes(bytes(range(256)) * 4),
        "is unreadable (not a NumPy .npz archive)",
        id="garbage",
    ),
    pytest.param(
        _truncate,
        "is unreadable (a damaged or truncated archive: File is not a zip file)",
        id="truncated",
    ),
    pytest.param(
        lambda d: _rewrite_checkpoint(d, lambda s: s.pop("__epoch__")),
        "is unreadable (it has no __epoch__ entry)",
        id="no-epoch",
    ),
    pytest.param(
        lambda d: _rewrite_checkpoint(
            d, lambda s: s.update(__epoch__=np.array([1, 2]))
        ),
        "is unreadable (its __epoch__ entry is not an epoch number)",
        id="epoch-not-a-number",
    ),
    pytest.param(
        lambda d: _rewrite_checkpoint(d, lambda s: s.update(__epoch__=np.array(5))),
        "is unreadable (it holds epoch 5, but metrics.csv records 1 finished epoch(s))",
        id="epoch-not-recorded",
    ),
    pytest.param(
        lambda d: _rewrite_checkpoint(
            d, lambda s: s.update(extra=np.array([{"a": 1}], dtype=object))
        ),
        "is unreadable ('extra' holds Python objects)",
        id="pickled-objects",
    ),
]


@pytest.mark.parametrize(("damage", "problem"), DAMAGED_CHECKPOINTS)
def test_a_damaged_checkpoint_is_refused_and_the_folder_left_alone(
    tiny_config: Any,
    tiny_splits: Any,
    interrupted_run: Any,
    tmp_path: Path,
    damage: Any,
    problem: str,
) -> None:
    from nnexp.experiment import ResumeError

    config = tiny_config()
    run_dir = interrupted_run(config, tmp_path, after=1)
    damage(run_dir)
    before = folder_state(run_dir)
    with pytest.raises(ResumeError) as caught:
        execute_run(config, resume_dir=run_dir, splits=tiny_splits)
    assert str(caught.value) == (
        f"{run_dir}/checkpoint.npz {problem}; it cannot be resumed: train the "
        "config again"
    )
    assert caught.value.problem == f"{run_dir}/checkpoint.npz {problem}"
    # Nothing written: still interrupted, still the same files, no lock left.
    assert folder_state(run_dir) == before
    assert read_result(run_dir)["status"] == "interrupted"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param(
            lambda s: s.update({_first_model_variable(s): np.zeros((3, 3))}),
            "checkpoint model/00000 has shape (3, 3), but tiny/dense_1/kernel "
            "has shape (784, 32)",
            id="other-shape",
        ),
        pytest.param(
            lambda s: s.update({"model/99999/x": np.zeros(1)}),
            "checkpoint holds 1 variable(s) more than this model and optimizer "
            "have (the first is model/99999)",
            id="extra-variable",
        ),
        pytest.param(
            lambda s: s.pop(_first_model_variable(s)),
            "checkpoint lacks model/00000 (tiny/dense_1/kernel)",
            id="missing-variable",
        ),
        pytest.param(
            lambda s: s.update({_first_model_variable(s): np.array("text")}),
            "checkpoint model/00000 holds <U4 data, but tiny/dense_1/kernel "
            "holds numbers",
            id="text",
        ),
    ],
)
def test_a_checkpoint_of_another_model_is_refused_and_the_folder_left_alone(
    tiny_config: Any,
    tiny_splits: Any,
    interrupted_run: Any,
    tmp_path: Path,
    change: Any,
    detail: str,
) -> None:
    from nnexp.experiment import ResumeError

    config = tiny_config()
    run_dir = interrupted_run(config, tmp_path, after=1)
    _rewrite_checkpoint(run_dir, change)
    before = folder_state(run_dir)
    with pytest.raises(ResumeError) as caught:
        execute_run(config, resume_dir=run_dir, splits=tiny_splits)
    assert str(caught.value) == (
        f"{run_dir}/checkpoint.npz does not match this run's model ({detail}); it "
        "cannot be resumed: train the config again"
    )
    assert folder_state(run_dir) == before


def test_a_refused_state_changes_no_variable(
    tiny_config: Any, tiny_splits: Any
) -> None:
    from nnexp.training import CheckpointMismatch

    config = tiny_config()
    seed_everything(config.seed)
    trainer = Trainer(
        config,
        build_model(config),
        tiny_splits.x_train,
        tiny_splits.y_train,
        tiny_splits.x_val,
        tiny_splits.y_val,
    )
    before = trainer.get_state()
    state = {key: value + 1 for key, value in before.items()}
    last = max(key for key in state if key.startswith("optimizer/"))
    state[last] = np.zeros((2, 2))
    with pytest.raises(CheckpointMismatch, match="^checkpoint optimizer/"):
        trainer.set_state(state)
    after = trainer.get_state()
    assert all(np.array_equal(after[key], before[key]) for key in before)


def test_a_run_finished_meanwhile_is_not_resumed(
    completed_run: Any, tiny_config: Any, tiny_splits: Any, tmp_path: Path
) -> None:
    """The caller looked before another process finished the run; execute_run
    looks again once it holds the run's lock."""
    import shutil

    from nnexp.errors import RunError

    run_dir = tmp_path / completed_run.run_dir.name
    shutil.copytree(completed_run.run_dir, run_dir)
    before = folder_state(run_dir)
    with pytest.raises(RunError) as caught:
        execute_run(tiny_config(), resume_dir=run_dir, splits=tiny_splits)
    assert str(caught.value) == f"{run_dir} is already completed; nothing to resume"
    assert folder_state(run_dir) == before


# --------------------------------------------------------------------------
# One process at a time trains into a run folder

HOLD_LOCK = """
import sys, time
from pathlib import Path
from nnexp.experiment import hold_run_lock
with hold_run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lock_holder() -> Any:
    """Factory: a separate process holding a run folder's lock (killed after)."""
    import subprocess
    import sys

    processes: list[subprocess.Popen] = []

    def hold(run_dir: Path) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(run_dir)],
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait()


def test_a_run_being_trained_elsewhere_is_not_resumed(
    tiny_config: Any,
    tiny_splits: Any,
    interrupted_run: Any,
    tmp_path: Path,
    lock_holder: Any,
) -> None:
    from nnexp.errors import RunError

    config = tiny_config()
    run_dir = interrupted_run(config, tmp_path, after=1)
    holder = lock_holder(run_dir)
    before = folder_state(run_dir)
    with pytest.raises(RunError) as caught:
        execute_run(config, resume_dir=run_dir, splits=tiny_splits)
    assert str(caught.value) == (
        f"{run_dir} is being trained by another process (pid {holder.pid})"
    )
    assert folder_state(run_dir) == before

    # The lock goes with its process, however it dies.
    holder.kill()
    holder.wait()
    resumed = execute_run(config, resume_dir=run_dir, splits=tiny_splits)
    assert resumed.status == "completed"
    assert not (run_dir / ".train.lock").exists()


class _TryTheLock:
    """A display that, after each epoch, tries to lock the run folder too."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.refusals: list[str] = []

    def on_epoch_begin(self, epoch: int, steps: int) -> None:
        pass

    def on_progress(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        pass

    def on_epoch_end(self, metrics: Any, trainer: Any) -> None:
        from nnexp.errors import RunError
        from nnexp.experiment import hold_run_lock

        try:
            with hold_run_lock(self.run_dir):
                pass
        except RunError as exc:
            self.refusals.append(str(exc))


def test_a_new_run_is_locked_while_it_trains(
    tiny_config: Any, tiny_splits: Any, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    display = _TryTheLock(run_dir)
    outcome = execute_run(
        tiny_config(), run_dir=run_dir, splits=tiny_splits, display=display
    )
    assert outcome.status == "completed"
    # flock conflicts between two opens of the file, even in one process.
    message = f"{run_dir} is being trained by another process (pid {os.getpid()})"
    assert display.refusals == [message, message]
    assert not (run_dir / ".train.lock").exists()


def test_a_sweep_task_never_resumes_a_run_being_trained_elsewhere(
    tiny_config: Any,
    tiny_splits: Any,
    interrupted_run: Any,
    tmp_path: Path,
    lock_holder: Any,
) -> None:
    from nnexp.backends.base import RunTask, execute_task

    config = tiny_config()
    run_dir = interrupted_run(config, tmp_path, after=1)
    holder = lock_holder(run_dir)
    task = RunTask(0, config.to_yaml(), str(tmp_path), config.name, str(run_dir))
    result = execute_task(task, splits=tiny_splits)
    assert (result.status, result.run_dir) == ("failed", None)
    assert result.message == (
        f"RunError: {run_dir} is being trained by another process (pid {holder.pid})"
    )
    assert [p.name for p in (tmp_path / config.name).iterdir()] == [run_dir.name]


def test_a_sweep_task_trains_again_when_the_checkpoint_is_unreadable(
    tiny_config: Any, tiny_splits: Any, interrupted_run: Any, tmp_path: Path
) -> None:
    from nnexp.backends.base import RunTask, execute_task

    config = tiny_config()
    run_dir = interrupted_run(config, tmp_path, after=1)
    (run_dir / "checkpoint.npz").write_bytes(b"not a checkpoint")
    before = folder_state(run_dir)
    task = RunTask(0, config.to_yaml(), str(tmp_path), config.name, str(run_dir))
    result = execute_task(task, splits=tiny_splits)

    assert result.status == "completed"
    assert result.run_dir != str(run_dir)
    message = (
        f"trained again from scratch: {run_dir}/checkpoint.npz is unreadable (not "
        "a NumPy .npz archive)"
    )
    assert result.message == message
    new = read_result(Path(result.run_dir))
    assert (new["message"], new["epochs_completed"]) == (message, 2)
    assert "resumed_at" not in new
    assert folder_state(run_dir) == before


def test_stderr_filter_drops_the_noise_and_passes_the_rest_on(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from nnexp.training import _stderr_without

    with _stderr_without(("chatter",)):
        # Written to the file descriptor itself, as TensorFlow's C++ code does.
        os.write(2, b"some chatter from C++\na real problem\n")
    assert capfd.readouterr().err == "a real problem\n"
