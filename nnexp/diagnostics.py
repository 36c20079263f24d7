"""Seeing vanishing/exploding gradients, dead and saturated units, and clipping.

Three tools:

- :func:`lint_config` reads a config (no TensorFlow) and warns about
  combinations the literature advises against, each with why and what to do.
- :class:`Probe` pushes a fixed batch of validation images through the model
  after every epoch and measures every hidden layer: mean and std of its
  pre-activations and activations, the fraction of dead units (ReLU family:
  never positive on the probe batch) and of saturated units (sigmoid and tanh:
  within :data:`SATURATION_MARGIN` of a bound on at least
  :data:`SATURATED_SHARE` of the probe images).
- the training step itself (see :mod:`nnexp.training`) accumulates, without
  running any step twice, each Dense kernel's gradient L2 norm and the ratio
  of its update size to its weight size, the global gradient norm before
  clipping and the fraction of steps in which clipping changed the gradient.

Everything lands in ``diagnostics.csv`` (long format: epoch, layer, quantity,
value; epoch 0 is the untrained model) and ``diagnostics.png``. Diagnostics
never change what training computes: the same seed gives the same metrics with
and without them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnexp.config import Config

PROBE_SIZE = 512
SATURATION_MARGIN = 0.01
SATURATED_SHARE = 0.95

# Where "dead" makes sense: units whose output is never positive pass little or
# no gradient. Where "saturated" makes sense: bounded, squashing activations.
DEAD_CAPABLE = {"relu", "leaky_relu", "prelu", "rrelu", "elu", "selu", "gelu", "swish"}
BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}

# Thresholds of the compare flags, on the ratio of the first hidden layer's
# kernel-gradient norm to the output layer's, at the last epoch.
VANISHING_RATIO = 0.1
EXPLODING_RATIO = 10.0

DIAGNOSTIC_COLUMNS = ["epoch", "layer", "quantity", "value"]


# --------------------------------------------------------------------------
# Config lint
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class LintWarning:
    """A questionable combination in a config: what, why, and what to change."""

    rule: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


RELU_FAMILY = {"relu", "leaky_relu", "prelu", "rrelu"}
HE_INITIALIZERS = {"he_normal", "he_uniform"}
GLOROT_INITIALIZERS = {"glorot_normal", "glorot_uniform"}
DEEP = 10


def lint_config(config: Config) -> list[LintWarning]:
    """Warnings about a config's combination of settings (no TensorFlow).

    >>> from nnexp.config import build_config
    >>> [w.rule for w in lint_config(build_config({"model": {"activation": "selu"}}))]
    ['selu-initializer', 'selu-inputs']
    """
    model = config.model
    activation = model.activation["name"]
    initializer = model.initializer["name"]
    depth = len(model.hidden_units)
    warnings: list[LintWarning] = []

    def warn(rule: str, message: str) -> None:
        warnings.append(LintWarning(rule, message))

    if activation == "selu":
        if initializer != "lecun_normal":
            warn(
                "selu-initializer",
                f"SELU with {initializer}: self-normalisation assumes LeCun normal "
                "weights (variance 1/fan_in); set model.initializer: lecun_normal.",
            )
        if model.batch_norm != "none" or model.input_batch_norm:
            warn(
                "selu-batch-norm",
                "SELU with batch normalisation: SELU normalises the signal itself and "
                "BN breaks the plain Dense stack its proof assumes; set "
                "model.batch_norm: none and model.input_batch_norm: false.",
            )
        if config.data.scaling != "standardize":
            warn(
                "selu-inputs",
                "SELU on unstandardized inputs: self-normalisation needs inputs with "
                "mean 0 and std 1; set data.scaling: standardize.",
            )
    if activation in BOUNDS and initializer in HE_INITIALIZERS:
        warn(
            "he-with-saturating",
            f"{initializer} with {activation}: He initialisation doubles the variance "
            "for ReLU-like units, which pushes sigmoid/tanh into saturation; use "
            "glorot_uniform or glorot_normal.",
        )
    if (
        activation in RELU_FAMILY
        and initializer in GLOROT_INITIALIZERS
        and depth >= DEEP
    ):
        warn(
            "glorot-with-deep-relu",
            f"{initializer} with {depth} layers of {activation}: Glorot's variance "
            "ignores that ReLU zeroes half the signal, so it shrinks with depth; use "
            "he_normal or he_uniform.",
        )
    if activation in BOUNDS and depth >= DEEP and model.batch_norm == "none":
        warn(
            "deep-saturating",
            f"{depth} layers of {activation} without batch norm: gradients tend to "
            "vanish through saturating units; consider batch_norm: after, or a "
            "non-saturating activation.",
        )
    if activation == "leaky_relu" and model.activation["negative_slope"] >= 1:
        warn(
            "leaky-slope",
            f"leaky_relu with negative_slope {model.activation['negative_slope']:g}: "
            "a slope of 1 or more is no longer a rectifier; typical values are "
            "0.01-0.3.",
        )
    if activation == "rrelu" and model.activation["lower"] == model.activation["upper"]:
        warn(
            "rrelu-fixed",
            "rrelu with lower == upper has no randomness; it is a leaky_relu with "
            "that slope.",
        )
    if initializer in {"zeros", "ones", "constant"}:
        warn(
            "constant-initializer",
            f"{initializer} gives every unit of a layer the same weights, so they "
            "stay identical (no symmetry breaking); use a random initializer.",
        )
    optimizer = config.training.optimizer
    if optimizer["name"] == "sgd" and optimizer["learning_rate"] >= 1.0:
        warn(
            "large-learning-rate",
            f"SGD with learning_rate {optimizer['learning_rate']:g}: rates of 1 or "
            "more usually diverge; try 0.001-0.1.",
        )
    train_images = config.data.train_size or 60_000 - config.data.validation_size
    if config.training.batch_size > train_images:
        warn(
            "batch-larger-than-data",
            f"batch_size {config.training.batch_size} is larger than the "
            f"{train_images} training images: every step sees the whole set.",
        )
    return warnings


# --------------------------------------------------------------------------
# Layer statistics on a probe batch
# --------------------------------------------------------------------------


def hidden_layer_pairs(model: Any) -> list[tuple[str, Any, Any]]:
    """(name, pre-activation tensor, activation tensor) of each hidden layer."""
    pairs = []
    index = 1
    while True:
        try:
            layer = model.get_layer(f"activation_{index}")
        except ValueError:
            break
        pairs.append((f"hidden_{index}", layer.input, layer.output))
        index += 1
    return pairs


def dense_kernels(model: Any) -> list[tuple[str, Any]]:
    """(layer name, kernel variable) of every Dense layer, output included."""
    import keras

    return [
        (layer.name, layer.kernel)
        for layer in model.layers
        if isinstance(layer, keras.layers.Dense)
    ]


class Probe:
    """Measures every hidden layer on a fixed batch of validation images.

    Args:
        model: the built model (its layers named as :func:`nnexp.model.build_model`
            names them).
        activation: the resolved activation spec of the config.
        images, labels: the probe batch (the first :data:`PROBE_SIZE`
            validation images).
    """

    def __init__(
        self,
        model: Any,
        activation: dict[str, Any],
        images: np.ndarray,
        labels: np.ndarray,
    ) -> None:
        import keras
        import tensorflow as tf

        self.model = model
        self.activation = activation["name"]
        pairs = hidden_layer_pairs(model)
        self.layer_names = [name for name, _, _ in pairs]
        outputs = [t for _, pre, post in pairs for t in (pre, post)]
        self.inner = keras.Model(model.inputs, outputs) if outputs else None
        self.images = tf.constant(images[:PROBE_SIZE])
        self.labels = tf.constant(labels[:PROBE_SIZE], tf.int32)
        self.kernels = dense_kernels(model)

        inner = self.inner

        @tf.function(reduce_retracing=True)
        def forward(images: tf.Tensor, training: bool) -> list[tf.Tensor]:
            return inner(images, training=training)

        self._forward = forward

    def layer_rows(self, epoch: int, training: bool = False) -> list[dict[str, Any]]:
        """Per-layer statistics of the probe batch, as long-format rows."""
        if self.inner is None:
            return []
        tensors = self._forward(self.images, training)
        if not isinstance(tensors, list | tuple):
            tensors = [tensors]
        rows = []
        for index, name in enumerate(self.layer_names):
            pre = np.asarray(tensors[2 * index], dtype=np.float64)
            post = np.asarray(tensors[2 * index + 1], dtype=np.float64)
            values = {
                "preactivation_mean": pre.mean(),
                "preactivation_std": pre.std(),
                "activation_mean": post.mean(),
                "activation_std": post.std(),
            }
            if self.activation in DEAD_CAPABLE:
                values["dead_fraction"] = float(np.mean(np.all(post <= 0, axis=0)))
            if self.activation in BOUNDS:
                low, high = BOUNDS[self.activation]
                near = (post <= low + SATURATION_MARGIN) | (
                    post >= high - SATURATION_MARGIN
                )
                values["saturated_fraction"] = float(
                    np.mean(near.mean(axis=0) >= SATURATED_SHARE)
                )
            rows += [
                {"epoch": epoch, "layer": name, "quantity": q, "value": float(v)}
                for q, v in values.items()
            ]
        return rows

    def gradient_rows(self, epoch: int, training: bool = False) -> list[dict[str, Any]]:
        """L2 norm of the loss gradient for each Dense kernel, on the probe batch."""
        import keras
        import tensorflow as tf

        variables = [kernel for _, kernel in self.kernels]
        with tf.GradientTape() as tape:
            probabilities = self.model(self.images, training=training)
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(self.labels, probabilities)
            )
        gradients = tape.gradient(loss, variables)
        return [
            {
                "epoch": epoch,
                "layer": name,
                "quantity": "gradient_norm",
                "value": float(tf.norm(gradient)),
            }
            for (name, _), gradient in zip(self.kernels, gradients, strict=True)
        ]


def step_rows(
    epoch: int,
    kernel_names: list[str],
    totals: dict[str, Any],
    steps: int,
    clipping: bool,
) -> list[dict[str, Any]]:
    """Turn the training step's accumulated sums into per-epoch rows."""
    rows = []
    grad_sums = np.asarray(totals["gradient_norm_sum"])
    ratio_sums = np.asarray(totals["update_ratio_sum"])
    for index, name in enumerate(kernel_names):
        rows.append(
            {
                "epoch": epoch,
                "layer": name,
                "quantity": "gradient_norm",
                "value": float(grad_sums[index] / steps),
            }
        )
        rows.append(
            {
                "epoch": epoch,
                "layer": name,
                "quantity": "update_ratio",
                "value": float(ratio_sums[index] / steps),
            }
        )
    rows.append(
        {
            "epoch": epoch,
            "layer": "all",
            "quantity": "global_gradient_norm",
            "value": float(totals["global_norm_sum"]) / steps,
        }
    )
    rows.append(
        {
            "epoch": epoch,
            "layer": "all",
            "quantity": "global_gradient_norm_max",
            "value": float(totals["global_norm_max"]),
        }
    )
    if clipping:
        rows.append(
            {
                "epoch": epoch,
                "layer": "all",
                "quantity": "clipped_fraction",
                "value": float(totals["clipped_steps"]) / steps,
            }
        )
    return rows


# --------------------------------------------------------------------------
# Init statistics (nnexp summary CONFIG --init-stats)
# --------------------------------------------------------------------------


def init_stats(
    config: Config, images: np.ndarray, labels: np.ndarray
) -> list[dict[str, Any]]:
    """Per-layer activation mean/std and kernel-gradient norm of the untrained
    model on one batch: the signal shrinking or exploding with depth, or not.

    BN layers normalise with the batch's own statistics (training mode), as
    they would in the first training step.
    """
    from nnexp.model import build_model
    from nnexp.training import seed_everything

    seed_everything(config.seed)
    model = build_model(config)
    probe = Probe(model, config.model.activation, images, labels)
    layer_rows = probe.layer_rows(0, training=True)
    gradient_rows = {
        row["layer"]: row["value"] for row in probe.gradient_rows(0, training=True)
    }
    by_layer: dict[str, dict[str, Any]] = {}
    for row in layer_rows:
        by_layer.setdefault(row["layer"], {"layer": row["layer"]})[row["quantity"]] = (
            row["value"]
        )
    result = []
    for index, name in enumerate(probe.layer_names, start=1):
        entry = by_layer[name]
        entry["gradient_norm"] = gradient_rows.get(f"dense_{index}", math.nan)
        result.append(entry)
    result.append(
        {"layer": "output", "gradient_norm": gradient_rows.get("output", math.nan)}
    )
    return result


# --------------------------------------------------------------------------
# Reading back and summarising
# --------------------------------------------------------------------------


def read_diagnostics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's ``diagnostics.csv`` (empty if it has none)."""
    from nnexp.runs import read_csv

    path = Path(run_dir) / "diagnostics.csv"
    if not path.exists():
        return []
    try:
        return [
            {
                "epoch": int(r["epoch"]),
                "layer": r["layer"],
                "quantity": r["quantity"],
                "value": float(r["value"]),
            }
            for r in read_csv(path)
        ]
    except (OSError, ValueError, KeyError):
        return []


def headline(rows: list[dict[str, Any]]) -> dict[str, float]:
    """For compare: the gradient ratio first/output layer and the largest dead
    fraction, both at the last recorded epoch (NaN if unavailable)."""
    if not rows:
        return {"gradient_ratio": math.nan, "max_dead_fraction": math.nan}
    last = max(row["epoch"] for row in rows)
    at_last = [row for row in rows if row["epoch"] == last]
    gradients = {
        row["layer"]: row["value"]
        for row in at_last
        if row["quantity"] == "gradient_norm"
    }
    first, output = gradients.get("dense_1"), gradients.get("output")
    ratio = first / output if first is not None and output else math.nan
    dead = [row["value"] for row in at_last if row["quantity"] == "dead_fraction"]
    return {
        "gradient_ratio": float(ratio),
        "max_dead_fraction": max(dead) if dead else math.nan,
    }


def gradient_flag(ratio: float) -> str:
    """``vanishing``, ``exploding`` or ``""`` by the documented thresholds."""
    if not math.isfinite(ratio):
        return ""
    if ratio < VANISHING_RATIO:
        return "vanishing"
    if ratio > EXPLODING_RATIO:
        return "exploding"
    return ""


# --------------------------------------------------------------------------
# Recording into the run folder
# --------------------------------------------------------------------------


class DiagnosticsRecorder:
    """Writes ``diagnostics.csv`` after every epoch and ``diagnostics.png`` at the end.

    Args:
        run_dir: the run folder.
        config: the run's config.
        model: the model being trained.
        images, labels: validation images and labels; the first
            :data:`PROBE_SIZE` form the probe batch.
    """

    def __init__(
        self,
        run_dir: Path,
        config: Config,
        model: Any,
        images: np.ndarray,
        labels: np.ndarray,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.probe = Probe(model, config.model.activation, images, labels)
        self.kernel_names = [name for name, _ in self.probe.kernels]
        self.rows: list[dict[str, Any]] = []

    def start(self, start_epoch: int) -> None:
        """Record the untrained model (epoch 0), or keep a resumed run's rows."""
        if start_epoch > 0:
            self.rows = [
                r for r in read_diagnostics(self.run_dir) if r["epoch"] <= start_epoch
            ]
            return
        self.rows = self.probe.layer_rows(0) + self.probe.gradient_rows(0)
        self._write()

    def record_epoch(self, epoch: int, totals: dict[str, Any] | None) -> None:
        """Add one finished epoch: the training steps' sums and the probe batch."""
        if totals:
            self.rows += step_rows(
                epoch,
                self.kernel_names,
                totals,
                int(totals["steps"]),
                self.config.training.clipping is not None,
            )
        self.rows += self.probe.layer_rows(epoch)
        self._write()

    def finish(self) -> None:
        from nnexp.plots import plot_diagnostics

        if self.rows:
            plot_diagnostics(
                self.rows, self.run_dir / "diagnostics.png", self.config.name
            )

    def _write(self) -> None:
        from nnexp.runs import write_csv

        write_csv(self.run_dir / "diagnostics.csv", self.rows, DIAGNOSTIC_COLUMNS)


class TensorBoardLogger:
    """Scalars (metrics, and diagnostics when on) and per-layer histograms of
    weights and probe-batch activations, in ``<run>/tensorboard/``."""

    def __init__(self, run_dir: Path, model: Any, images: np.ndarray) -> None:
        import keras
        import tensorflow as tf

        self.writer = tf.summary.create_file_writer(str(Path(run_dir) / "tensorboard"))
        self.kernels = dense_kernels(model)
        self.images = images[:PROBE_SIZE]
        pairs = hidden_layer_pairs(model)
        self.layer_names = [name for name, _, _ in pairs]
        # Built on the one input tensor, not the list ``model.inputs``: the
        # images go in as one tensor, and Keras warns when the structures differ.
        outputs = [post for _, _, post in pairs]
        self.inner = keras.Model(model.inputs[0], outputs) if pairs else None

    def log_epoch(
        self, metrics: dict[str, Any], diagnostic_rows: list[dict[str, Any]]
    ) -> None:
        import tensorflow as tf

        epoch = int(metrics["epoch"])
        with self.writer.as_default(step=epoch):
            for key, value in metrics.items():
                if key != "epoch":
                    tf.summary.scalar(key, value)
            for row in diagnostic_rows:
                if row["epoch"] == epoch:
                    tf.summary.scalar(f"{row['quantity']}/{row['layer']}", row["value"])
            for name, kernel in self.kernels:
                tf.summary.histogram(f"weights/{name}", kernel)
            if self.inner is not None:
                outputs = self.inner(self.images, training=False)
                if not isinstance(outputs, list | tuple):
                    outputs = [outputs]
                for name, output in zip(self.layer_names, outputs, strict=True):
                    tf.summary.histogram(f"activations/{name}", output)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
