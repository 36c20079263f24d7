"""Measurements that run in a fresh child process of ``bench/run.py``.

Each probe prints one JSON object on its last stdout line. They run in their
own process so that the runner never imports TensorFlow itself, so that thread
settings (``OPENBLAS_NUM_THREADS``, TensorFlow's pools) apply before the first
operation, and so that "fresh process" means what a user's command sees.

    python bench/probes.py data --calls 5
    python bench/probes.py noimport CONFIG BAD_SET
    python bench/probes.py flops --threads 1 --seconds 0.3
    python bench/probes.py equivalence CONFIG --epochs 2 --train-size 55000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent


def _print(result: dict) -> None:
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------
# data: nnexp.data.load_raw / load_splits


def probe_data(args: argparse.Namespace) -> dict:
    """Time load_raw and load_splits; the first call may decode and cache."""
    started = time.perf_counter()
    import nnexp.data as data

    import_seconds = time.perf_counter() - started
    raw_seconds, splits_seconds = [], []
    source = None
    for _ in range(args.calls):
        started = time.perf_counter()
        raw = data.load_raw(download=False)
        raw_seconds.append(time.perf_counter() - started)
        source = raw.source
        del raw
        started = time.perf_counter()
        splits = data.load_splits(
            validation_size=args.validation_size,
            train_size=args.train_size,
            download=False,
        )
        splits_seconds.append(time.perf_counter() - started)
        del splits
    return {
        "import_seconds": import_seconds,
        "load_raw_seconds": raw_seconds,
        "load_splits_seconds": splits_seconds,
        "source": source,
        "cache_file": str(data.cache_dir() / "fashion-mnist-decoded-v1.npz"),
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


# --------------------------------------------------------------------------
# noimport: the light commands must not import TensorFlow


def probe_noimport(args: argparse.Namespace) -> dict:
    """Run ``nnexp --help``, ``check`` and a config error in this process and
    report whether TensorFlow or Keras got imported."""
    import contextlib
    import io

    from nnexp.cli import cli

    cases = {
        "help": ["--help"],
        "check": ["check", args.config],
        "config_error": ["check", args.config, "--set", args.bad_set],
    }
    result = {}
    for name, argv in cases.items():
        code = None
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            try:
                cli.main(args=argv, prog_name="nnexp", standalone_mode=True)
            except SystemExit as exc:
                code = exc.code
        result[name] = {
            "exit_code": code,
            "tensorflow_imported": "tensorflow" in sys.modules,
            "keras_imported": "keras" in sys.modules,
        }
    return result


# --------------------------------------------------------------------------
# flops: matmul speed with NumPy and TensorFlow

# (m, k, n): an (m x k) @ (k x n) product, 2*m*k*n FLOPs.
MATMUL_SHAPES = {
    "fwd 32x784 @ 784x300": (32, 784, 300),
    "fwd 32x300 @ 300x100": (32, 300, 100),
    "dW 784x32 @ 32x300": (784, 32, 300),
    "dX 32x300 @ 300x784": (32, 300, 784),
    "square 1024": (1024, 1024, 1024),
    "square 2048": (2048, 2048, 2048),
}


def _time_repeated(function, flops: float, seconds: float) -> dict:
    """GFLOP/s of ``function`` (one product per call): 5 timed blocks, each
    long enough to last about ``seconds`` / 5."""
    function()  # warm up (allocations, kernel selection)
    started = time.perf_counter()
    function()
    once = max(time.perf_counter() - started, 1e-6)
    calls = max(1, int(seconds / 5 / once))
    rates = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            function()
        elapsed = time.perf_counter() - started
        rates.append(flops * calls / elapsed / 1e9)
    return {"best": max(rates), "median": statistics.median(rates), "calls": calls}


def probe_flops(args: argparse.Namespace) -> dict:
    """Matmul GFLOP/s with ``args.threads`` threads, float32.

    NumPy's BLAS thread count comes from ``OPENBLAS_NUM_THREADS`` (set by the
    runner before this process started). TensorFlow is measured twice: eager
    ``tf.matmul`` calls (what one op costs with dispatch) and a compiled loop
    of ``repeat`` products in one ``tf.function`` (the kernel alone).
    """
    import numpy as np

    shapes = {
        name: shape
        for name, shape in MATMUL_SHAPES.items()
        if args.big or max(shape) < 2048
    }
    rng = np.random.default_rng(0)
    operands = {
        name: (
            rng.standard_normal((m, k), dtype=np.float32),
            rng.standard_normal((k, n), dtype=np.float32),
        )
        for name, (m, k, n) in shapes.items()
    }
    result: dict = {"threads": args.threads, "numpy": {}, "tf_eager": {}, "tf_loop": {}}
    for name, (m, k, n) in shapes.items():
        a, b = operands[name]
        result["numpy"][name] = _time_repeated(
            lambda a=a, b=b: a @ b, 2.0 * m * k * n, args.seconds
        )

    if args.numpy_only:
        return result
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, args.threads))
    result["tensorflow"] = tf.__version__
    result["numpy_version"] = np.__version__
    for name, (m, k, n) in shapes.items():
        a, b = (tf.constant(x) for x in operands[name])
        flops = 2.0 * m * k * n
        result["tf_eager"][name] = _time_repeated(
            lambda a=a, b=b: tf.matmul(a, b).numpy(), flops, args.seconds
        )
        repeat = max(1, min(1000, int(2e9 / flops)))

        @tf.function
        def loop(a, b, repeat=repeat):
            total = tf.constant(0.0)
            for _ in tf.range(repeat):
                # Adding the loop counter-independent product into a scalar
                # keeps each matmul alive; the reduction is 1/k of the work.
                total += tf.reduce_sum(tf.matmul(a, b))
            return total

        result["tf_loop"][name] = _time_repeated(
            lambda a=a, b=b, loop=loop: loop(a, b).numpy(), flops * repeat, args.seconds
        )
        result["tf_loop"][name]["repeat"] = repeat
    return result


# --------------------------------------------------------------------------
# equivalence: nnexp's loop against model.fit on the same order of images


def probe_equivalence(args: argparse.Namespace) -> dict:
    """Train the reference model twice from the same seed: with nnexp's
    Trainer, and with ``model.fit`` (Keras defaults, the plain script's model)
    fed each epoch's images in nnexp's order with ``shuffle=False``.

    If the arithmetic of the two loops is the same, the weights end equal and
    the per-epoch numbers differ only by how the averages are accumulated
    (Keras: float32 running means; nnexp: float64 sums).
    """
    import keras
    import numpy as np

    sys.path.insert(0, str(HERE))
    from plain_keras import build_plain_model

    from nnexp.config import load_config
    from nnexp.data import load_splits
    from nnexp.model import build_model
    from nnexp.training import Trainer, seed_everything

    overrides = [f"training.epochs={args.epochs}"]
    if args.train_size:
        overrides.append(f"data.train_size={args.train_size}")
    config = load_config(args.config, overrides)
    splits = load_splits(
        validation_size=config.data.validation_size,
        train_size=config.data.train_size,
        scaling=config.data.scaling,
    )

    seed_everything(config.seed)
    nnexp_model = build_model(config)
    keras.utils.set_random_seed(config.seed)
    plain_model = build_plain_model(keras)
    initial_equal = len(nnexp_model.weights) == len(plain_model.weights) and all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(nnexp_model.weights, plain_model.weights, strict=True)
    )

    seed_everything(config.seed)
    nnexp_model = build_model(config)
    trainer = Trainer(
        config, nnexp_model, splits.x_train, splits.y_train, splits.x_val, splits.y_val
    )
    history = trainer.fit().history
    nnexp_rows = [
        {k: getattr(m, k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")}
        for m in history
    ]

    keras.utils.set_random_seed(config.seed)
    plain_model = build_plain_model(keras)
    plain_model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=config.training.optimizer["learning_rate"]
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    plain_rows = []
    for epoch in range(1, args.epochs + 1):
        order = trainer.permutation(epoch)
        logs = plain_model.fit(
            splits.x_train[order],
            splits.y_train[order],
            batch_size=config.training.batch_size,
            epochs=1,
            shuffle=False,
            validation_data=(splits.x_val, splits.y_val),
            verbose=0,
        ).history
        plain_rows.append({k: float(v[0]) for k, v in logs.items()})

    weight_diff = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(nnexp_model.weights, plain_model.weights, strict=True)
    )
    diffs = {
        key: max(
            abs(n[key] - p[key]) for n, p in zip(nnexp_rows, plain_rows, strict=True)
        )
        for key in ("loss", "accuracy", "val_loss", "val_accuracy")
    }
    return {
        "train_images": int(len(splits.x_train)),
        "epochs": args.epochs,
        "initial_weights_identical": bool(initial_equal),
        "final_weights_max_abs_diff": weight_diff,
        "plain_jit_compile": bool(getattr(plain_model, "jit_compile", False)),
        "nnexp": nnexp_rows,
        "plain_same_order": plain_rows,
        "max_abs_metric_diff": diffs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bench/run.py's child probes")
    sub = parser.add_subparsers(dest="probe", required=True)

    p = sub.add_parser("data")
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--validation-size", type=int, default=5000)
    p.add_argument("--train-size", type=int, default=None)

    p = sub.add_parser("noimport")
    p.add_argument("config")
    p.add_argument("bad_set")

    p = sub.add_parser("flops")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--big", action="store_true", help="include 2048^3")
    p.add_argument("--numpy-only", action="store_true", help="skip TensorFlow")

    p = sub.add_parser("equivalence")
    p.add_argument("config")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-size", type=int, default=None)

    args = parser.parse_args(argv)
    probe = {
        "data": probe_data,
        "noimport": probe_noimport,
        "flops": probe_flops,
        "equivalence": probe_equivalence,
    }[args.probe]
    _print(probe(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
