"""The plain Keras reference: the BN reference model trained with ``model.fit``.

This is what a user would write without nnexp: a ``Sequential`` model,
``compile`` with SGD and sparse categorical cross-entropy, and ``model.fit``
with Keras' defaults (``shuffle=True``, no ``steps_per_execution``, no
``jit_compile`` override, TensorFlow's default thread pools, and the default
``verbose="auto"`` progress bar, sent to stderr here). The data is
loaded with :func:`nnexp.data.load_splits`, so both sides train on identical
arrays; loading is timed and reported on its own line, apart from training.

Every line on stdout is one JSON object:

    {"event": "start", "import_seconds": ..., ...}
    {"event": "load", "seconds": ...}
    {"event": "epoch", "epoch": 1, "seconds": ..., "loss": ..., ...}  (per epoch)
    {"event": "done", "fit_seconds": ..., "wall_seconds": ...}

An epoch's ``seconds`` is measured like nnexp's ``metrics.csv`` column: from
the start of the epoch to the end of its validation pass.

    python bench/plain_keras.py --epochs 3 --seed 42
    python bench/plain_keras.py --epochs 1 --activation selu --train-size 2000
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# JSON lines go to the real stdout; Keras' own progress output is sent to
# stderr (see main) so that it cannot interleave with them.
_OUT = sys.stdout


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), file=_OUT, flush=True)


def build_plain_model(keras: object, activation: str = "elu") -> object:
    """The reference network as a user would write it in Keras."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Flatten(),
            layers.BatchNormalization(),
            layers.Dense(300, activation=activation, kernel_initializer="he_normal"),
            layers.BatchNormalization(),
            layers.Dense(100, activation=activation, kernel_initializer="he_normal"),
            layers.BatchNormalization(),
            layers.Dense(10, activation="softmax"),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--activation", default="elu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument(
        "--verbose",
        default="auto",
        help="model.fit's verbose: auto (Keras' default, a progress bar), 0, 1 or 2",
    )
    args = parser.parse_args(argv)

    import keras

    import nnexp.data

    import_seconds = time.perf_counter() - _T0
    emit(
        "start",
        import_seconds=import_seconds,
        keras=keras.__version__,
        activation=args.activation,
        epochs=args.epochs,
        seed=args.seed,
        pid=os.getpid(),
    )

    started = time.perf_counter()
    splits = nnexp.data.load_splits(
        validation_size=args.validation_size, train_size=args.train_size
    )
    emit("load", seconds=time.perf_counter() - started, train=len(splits.x_train))

    keras.utils.set_random_seed(args.seed)
    model = build_plain_model(keras, args.activation)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            emit(
                "epoch",
                epoch=epoch + 1,
                seconds=time.perf_counter() - self.began,
                **{k: float(logs[k]) for k in sorted(logs)},
            )

    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    started = time.perf_counter()
    sys.stdout = sys.stderr  # Keras prints its progress bar to sys.stdout
    try:
        model.fit(
            splits.x_train,
            splits.y_train,
            epochs=args.epochs,
            validation_data=(splits.x_val, splits.y_val),
            batch_size=args.batch_size,
            callbacks=[EpochTimer()],
            verbose=verbose,
        )
    finally:
        sys.stdout = _OUT
    emit(
        "done",
        fit_seconds=time.perf_counter() - started,
        wall_seconds=time.perf_counter() - _T0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
