"""Optimizer, gradient clipping and the training loop.

The loop is nnexp's own rather than ``model.fit``: the training images live in
memory as one tensor, each epoch's shuffle is a permutation drawn from
``(seed, epoch)``, and a compiled function runs a whole chunk of steps (a
``tf.range`` loop gathering each batch by index) before Python sees a number
again. That removes the per-batch Python and ``tf.data`` work that dominates
small models on a CPU, and it makes an epoch reproducible from the seed alone,
which is what resuming an interrupted run needs.

Per-epoch numbers follow Keras' conventions: ``loss`` and ``accuracy`` are
the averages over the epoch's training batches (weighted by batch size, so a
short last batch counts less), measured while the weights change; ``val_*``
are measured on the whole validation set after the epoch.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from nnexp.config import Config, TrainingConfig

# Roughly how many times per epoch the progress display hears from the loop.
# Each report costs one device-to-host sync; 20 of them are invisible.
PROGRESS_REPORTS_PER_EPOCH = 20

EVAL_BATCH_SIZE = 2500


# TensorFlow's C++ start-up lines, written straight to the stderr file
# descriptor before its logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot
# hide them. None says anything about the run: a CPU build reports the missing
# GPU driver, and the CPU features it was not compiled for.
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
    "failed call to cuInit",
)

_tensorflow_started = False


def start_tensorflow(threads: int | None = None) -> None:
    """Import TensorFlow, fix its thread pools and find its devices, quietly.

    TensorFlow's start-up chatter (oneDNN, missing CUDA drivers, CPU features)
    is dropped; any other line it prints on stderr meanwhile is passed on.
    Call it before the first TensorFlow operation; a later call only tries
    to set the threads (TensorFlow keeps the pools it has once it has run).

    Args:
        threads: intra-op threads (the cores one run may use); None leaves
            TensorFlow's default of one thread per core. Defaults to None.
    """
    global _tensorflow_started
    if _tensorflow_started:
        configure_threads(threads)
        return
    _tensorflow_started = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_without(_STARTUP_NOISE):
        import keras  # noqa: F401  (imports TensorFlow, the noisy part)
        import tensorflow as tf

        configure_threads(threads)
        tf.config.list_physical_devices()


@contextlib.contextmanager
def _stderr_without(noise: tuple[str, ...]) -> Iterator[None]:
    """Send the stderr file descriptor to a temporary file for the duration,
    then write back every line that contains none of ``noise``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            lines = capture.read().decode(errors="replace").splitlines()
            kept = [line for line in lines if not any(n in line for n in noise)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def configure_threads(threads: int | None) -> None:
    """Fix TensorFlow's thread pools before it runs its first operation.

    Args:
        threads: intra-op threads (the cores one run may use); None leaves
            TensorFlow's default of one thread per core.
    """
    import tensorflow as tf

    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(min(2, int(threads)))
    except RuntimeError:
        # TensorFlow is already initialised in this process (e.g. a second run
        # in the same Python); the pools it has stay in force.
        pass


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras' global generator."""
    import keras

    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)


def build_optimizer(training: TrainingConfig) -> Any:
    """Create the Keras optimizer, with clipping set on the optimizer itself.

    ``clipping: {value: v}`` becomes ``clipvalue=v``, ``{norm: n}`` becomes
    ``clipnorm=n`` (each gradient tensor separately) and ``{global_norm: n}``
    becomes ``global_clipnorm=n`` (all tensors together).
    """
    import keras

    spec = dict(training.optimizer)
    name = spec.pop("name")
    classes = {
        "sgd": keras.optimizers.SGD,
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "nadam": keras.optimizers.Nadam,
        "rmsprop": keras.optimizers.RMSprop,
    }
    clipping = {}
    if training.clipping is not None:
        keyword = {
            "value": "clipvalue",
            "norm": "clipnorm",
            "global_norm": "global_clipnorm",
        }[training.clipping.kind]
        clipping[keyword] = training.clipping.threshold
    return classes[name](**spec, **clipping)


@dataclass(frozen=True)
class EpochMetrics:
    """What one epoch produced; one row of ``metrics.csv``."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float
    seconds: float

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


METRIC_COLUMNS = list(EpochMetrics.__dataclass_fields__)


class TrainingObserver(Protocol):
    """Receives progress from :meth:`Trainer.fit`; the CLI draws it, runs save it."""

    def on_epoch_begin(self, epoch: int, steps: int) -> None: ...

    def on_progress(
        self, epoch: int, step: int, loss: float, accuracy: float
    ) -> None: ...

    def on_epoch_end(self, metrics: EpochMetrics, trainer: Trainer) -> None: ...


@dataclass
class FitOutcome:
    """How :meth:`Trainer.fit` ended."""

    status: str  # "completed" or "diverged"
    history: list[EpochMetrics]
    message: str = ""


class Trainer:
    """Trains one model on in-memory arrays with a compiled multi-step loop.

    Args:
        config: the validated experiment config.
        model: the built Keras model.
        x_train, y_train: training images (float32, N x 28 x 28) and labels.
        x_val, y_val: validation images and labels.
    """

    def __init__(
        self,
        config: Config,
        model: Any,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        diagnostics: bool = False,
    ) -> None:
        import tensorflow as tf

        from nnexp.diagnostics import dense_kernels

        self.config = config
        self.model = model
        self.diagnostics = diagnostics
        self.kernels = dense_kernels(model)
        self.epoch_diagnostics: dict[str, Any] | None = None
        self.optimizer = build_optimizer(config.training)
        self.optimizer.build(model.trainable_variables)
        self.batch_size = config.training.batch_size
        self.num_train = int(len(x_train))
        self.steps_per_epoch = math.ceil(self.num_train / self.batch_size)
        self.x_train = tf.constant(x_train, dtype=tf.float32)
        self.y_train = tf.constant(y_train, dtype=tf.int32)
        self.x_val = x_val
        self.y_val = y_val
        self._run_steps = self._compile_run_steps()
        self._evaluate_batch = self._compile_evaluate_batch()

    # -- the compiled pieces ------------------------------------------------

    def _compile_run_steps(self) -> Any:
        import keras
        import tensorflow as tf

        model, optimizer = self.model, self.optimizer
        batch_size, num_train = self.batch_size, self.num_train
        variables = model.trainable_variables
        diagnostics = self.diagnostics
        kernel_ids = {id(kernel) for _, kernel in self.kernels}
        kernel_positions = [
            i for i, variable in enumerate(variables) if id(variable) in kernel_ids
        ]
        clipping = self.config.training.clipping

        def clipping_changes(gradients: list) -> tf.Tensor:
            """Whether the optimizer's clipping alters these raw gradients."""
            if clipping is None:
                return tf.constant(False)
            threshold = clipping.threshold
            if clipping.kind == "value":
                return tf.reduce_any(
                    [tf.reduce_any(tf.abs(g) > threshold) for g in gradients]
                )
            if clipping.kind == "norm":
                return tf.reduce_any([tf.norm(g) > threshold for g in gradients])
            return tf.linalg.global_norm(gradients) > threshold

        @tf.function(jit_compile=False)
        def run_steps(
            x_all: tf.Tensor,
            y_all: tf.Tensor,
            permutation: tf.Tensor,
            first: tf.Tensor,
            last: tf.Tensor,
        ):
            # The data comes in as arguments, not captured from the enclosing
            # scope: a captured tensor would live as long as the traced graph,
            # which TensorFlow keeps after the Trainer is gone, so every run of
            # a sweep worker would leave its 172 MB of images behind.
            loss_sum = tf.constant(0.0, tf.float64)
            correct = tf.constant(0, tf.int64)
            seen = tf.constant(0, tf.int64)
            kernel_count = len(kernel_positions)
            gradient_norm_sum = tf.zeros([kernel_count], tf.float64)
            update_ratio_sum = tf.zeros([kernel_count], tf.float64)
            global_norm_sum = tf.constant(0.0, tf.float64)
            global_norm_max = tf.constant(0.0, tf.float64)
            clipped_steps = tf.constant(0, tf.int64)
            for step in tf.range(first, last):
                start = step * batch_size
                stop = tf.minimum(start + batch_size, num_train)
                indices = permutation[start:stop]
                images = tf.gather(x_all, indices)
                labels = tf.gather(y_all, indices)
                with tf.GradientTape() as tape:
                    probabilities = model(images, training=True)
                    loss = tf.reduce_mean(
                        keras.losses.sparse_categorical_crossentropy(
                            labels, probabilities
                        )
                    )
                gradients = tape.gradient(loss, variables)
                # Diagnostics are measured on the raw gradients of this very step,
                # before the optimizer clips and applies them: no step runs twice.
                # (``diagnostics`` is fixed at trace time: off, none of it exists.)
                before = (
                    [tf.identity(variables[i]) for i in kernel_positions]
                    if diagnostics
                    else []
                )
                if diagnostics:
                    global_norm = tf.cast(tf.linalg.global_norm(gradients), tf.float64)
                    global_norm_sum += global_norm
                    global_norm_max = tf.maximum(global_norm_max, global_norm)
                    clipped_steps += tf.cast(clipping_changes(gradients), tf.int64)
                    gradient_norm_sum += tf.cast(
                        tf.stack([tf.norm(gradients[i]) for i in kernel_positions]),
                        tf.float64,
                    )
                optimizer.apply(gradients, variables)
                if diagnostics:
                    ratios = [
                        tf.norm(variables[i] - old) / (tf.norm(old) + 1e-12)
                        for i, old in zip(kernel_positions, before, strict=True)
                    ]
                    update_ratio_sum += tf.cast(tf.stack(ratios), tf.float64)

                count = tf.cast(stop - start, tf.int64)
                loss_sum += tf.cast(loss, tf.float64) * tf.cast(count, tf.float64)
                predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
                correct += tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
                seen += count
            extras = {
                "gradient_norm_sum": gradient_norm_sum,
                "update_ratio_sum": update_ratio_sum,
                "global_norm_sum": global_norm_sum,
                "global_norm_max": global_norm_max,
                "clipped_steps": clipped_steps,
            }
            return loss_sum, correct, seen, extras

        return run_steps

    def _compile_evaluate_batch(self) -> Any:
        import keras
        import tensorflow as tf

        model = self.model

        @tf.function(jit_compile=False, reduce_retracing=True)
        def evaluate_batch(images: tf.Tensor, labels: tf.Tensor):
            probabilities = model(images, training=False)
            losses = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            correct = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
            return tf.reduce_sum(tf.cast(losses, tf.float64)), correct

        return evaluate_batch

    # -- public API ---------------------------------------------------------

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of training images in ``epoch`` (1-based), from the seed."""
        generator = np.random.default_rng([self.config.seed, epoch])
        return generator.permutation(self.num_train).astype(np.int32)

    def evaluate(self, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
        """Mean loss and accuracy of the model in inference mode."""
        import tensorflow as tf

        loss_sum, correct = 0.0, 0
        for start in range(0, len(images), EVAL_BATCH_SIZE):
            batch_loss, batch_correct = self._evaluate_batch(
                tf.constant(images[start : start + EVAL_BATCH_SIZE]),
                tf.constant(labels[start : start + EVAL_BATCH_SIZE], tf.int32),
            )
            loss_sum += float(batch_loss)
            correct += int(batch_correct)
        return loss_sum / len(images), correct / len(images)

    @property
    def learning_rate(self) -> float:
        # Stored as float32; print 0.01, not 0.009999999776.
        return float(f"{float(np.asarray(self.optimizer.learning_rate)):.7g}")

    def fit(
        self,
        observer: TrainingObserver | None = None,
        start_epoch: int = 0,
    ) -> FitOutcome:
        """Train from ``start_epoch`` (epochs already done) to the configured end.

        Stops early, with status ``diverged``, as soon as the training loss is
        NaN or infinite.
        """
        import tensorflow as tf

        history: list[EpochMetrics] = []
        chunk = max(1, math.ceil(self.steps_per_epoch / PROGRESS_REPORTS_PER_EPOCH))
        for epoch in range(start_epoch + 1, self.config.training.epochs + 1):
            started = time.perf_counter()
            if observer:
                observer.on_epoch_begin(epoch, self.steps_per_epoch)
            permutation = tf.constant(self.permutation(epoch))
            loss_sum, correct, seen = 0.0, 0, 0
            totals: dict[str, Any] = {}
            for first in range(0, self.steps_per_epoch, chunk):
                last = min(first + chunk, self.steps_per_epoch)
                part_loss, part_correct, part_seen, extras = self._run_steps(
                    self.x_train,
                    self.y_train,
                    permutation,
                    tf.constant(first),
                    tf.constant(last),
                )
                if self.diagnostics:
                    totals = _add_totals(totals, extras)
                loss_sum += float(part_loss)
                correct += int(part_correct)
                seen += int(part_seen)
                if not math.isfinite(loss_sum):
                    return FitOutcome(
                        "diverged",
                        history,
                        f"the training loss became {loss_sum} in epoch {epoch} "
                        f"(by step {last} of {self.steps_per_epoch})",
                    )
                if observer:
                    observer.on_progress(epoch, last, loss_sum / seen, correct / seen)

            val_loss, val_accuracy = self.evaluate(self.x_val, self.y_val)
            metrics = EpochMetrics(
                epoch=epoch,
                loss=loss_sum / seen,
                accuracy=correct / seen,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                learning_rate=self.learning_rate,
                seconds=time.perf_counter() - started,
            )
            history.append(metrics)
            self.epoch_diagnostics = (
                {**totals, "steps": self.steps_per_epoch} if self.diagnostics else None
            )
            if not math.isfinite(val_loss):
                if observer:
                    observer.on_epoch_end(metrics, self)
                return FitOutcome(
                    "diverged", history, f"the validation loss became {val_loss}"
                )
            if observer:
                observer.on_epoch_end(metrics, self)
        return FitOutcome("completed", history)

    # -- state, for checkpoints ---------------------------------------------

    def get_state(self) -> dict[str, np.ndarray]:
        """Every model and optimizer variable (weights, BN moving statistics,
        optimizer slots and iteration count, random-generator states)."""
        state = {}
        for prefix, variables in (
            ("model", self.model.variables),
            ("optimizer", self.optimizer.variables),
        ):
            for index, variable in enumerate(variables):
                state[f"{prefix}/{index:05d}/{variable.path}"] = np.asarray(variable)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`get_state` returned (same config and model).

        Variables are matched by position, not by path: Keras numbers the
        names of unnamed objects per process (``adam`` vs ``adam_1``,
        ``seed_generator_3``), so a resumed run's paths can differ from the
        interrupted run's. The shapes are checked instead, and every variable
        is checked before any is assigned, so a state that does not fit
        leaves the model as it was.

        Raises:
            CheckpointMismatch: the state holds a variable this model lacks,
                lacks one it has, or has a different shape or a non-numeric
                type for one.
        """
        saved = {"/".join(key.split("/", 2)[:2]): value for key, value in state.items()}
        checked = []
        for prefix, variables in (
            ("model", self.model.variables),
            ("optimizer", self.optimizer.variables),
        ):
            for index, variable in enumerate(variables):
                slot = f"{prefix}/{index:05d}"
                if slot not in saved:
                    raise CheckpointMismatch(
                        f"checkpoint lacks {slot} ({variable.path})"
                    )
                value = np.asarray(saved.pop(slot))
                if value.dtype.kind not in "biuf":
                    raise CheckpointMismatch(
                        f"checkpoint {slot} holds {value.dtype} data, but "
                        f"{variable.path} holds numbers"
                    )
                if tuple(value.shape) != tuple(variable.shape):
                    raise CheckpointMismatch(
                        f"checkpoint {slot} has shape {tuple(value.shape)}, but "
                        f"{variable.path} has shape {tuple(variable.shape)}"
                    )
                checked.append((variable, value))
        if saved:
            raise CheckpointMismatch(
                f"checkpoint holds {len(saved)} variable(s) more than this model "
                f"and optimizer have (the first is {min(saved)})"
            )
        for variable, value in checked:
            variable.assign(value)


class CheckpointMismatch(ValueError):
    """A saved training state does not fit this model and optimizer."""


def _add_totals(totals: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
    """Combine one chunk's diagnostic sums with the epoch's so far."""
    values = {key: np.asarray(value) for key, value in extras.items()}
    if not totals:
        return values
    return {
        key: np.maximum(totals[key], value)
        if key == "global_norm_max"
        else totals[key] + value
        for key, value in values.items()
    }
