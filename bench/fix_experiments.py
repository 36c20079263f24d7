"""Try speed fixes for nnexp's training loop without editing nnexp.

Each variant trains the reference model (``configs/bn_after.yaml``) in a fresh
process with nnexp's own ``Trainer``; variants alternate, several repetitions,
and the table gives the median steady-state epoch (epochs 2 and later), the
first epoch, and whether the per-epoch numbers equal the baseline's.

Variants:
    base        nnexp as it is, TensorFlow's default thread pools (2 here)
    t1          the same with 1 intra-op and 1 inter-op thread (nnexp's
                ``configure_threads(1)``, i.e. ``nnexp train --threads 1``)
    xla-t1      t1, and each step's forward/backward/update compiled with XLA:
                ``Trainer._compile_run_steps`` monkeypatched so the body of the
                ``tf.range`` loop calls an inner ``tf.function(jit_compile=True)``
                (gather and bookkeeping stay outside, so the short last batch
                only costs a second compilation)
    args-t1     t1, with the training images and labels passed to the compiled
                function as arguments instead of captured by it (the memory
                fix below; the same arithmetic)

``--memory N`` instead trains N one-epoch runs one after another in one process
(as a ``nnexp compare`` worker does): as nnexp is, patched to capture the data
(nnexp before commit 4f10faf) and patched to take it as arguments (since), and
prints the resident memory after each run: a function that captures the
training images keeps them alive after its run ends.

The monkeypatch follows ``nnexp/training.py`` as of commits bc2e7f1 to 4f10faf
(the compiled function returns ``loss_sum, correct, seen, extras``; ``fit``
passes either 3 or 5 arguments); diagnostics are not supported by it.

    python bench/fix_experiments.py --reps 4 --epochs 3
    python bench/fix_experiments.py --variant xla-t1 --epochs 2   # one child
    python bench/fix_experiments.py --memory 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "bn_after.yaml"
VARIANTS = ("base", "t1", "xla-t1", "args-t1")
MEMORY_VARIANTS = ("nnexp", "captured", "args")


def patch_run_steps(*, xla: bool, data_as_arguments: bool) -> None:
    """Replace ``Trainer._compile_run_steps`` by an equivalent variant.

    Args:
        xla: compile each step's forward, backward and update with XLA.
        data_as_arguments: pass the training images and labels to the
            compiled function on every call instead of capturing them.
    """
    import keras
    import tensorflow as tf

    from nnexp.training import Trainer

    def _compile_run_steps(self):  # noqa: ANN001, ANN202 - mirrors nnexp's method
        if getattr(self, "diagnostics", False):
            raise NotImplementedError("the experiment patch has no diagnostics")
        model, optimizer = self.model, self.optimizer
        batch_size, num_train = self.batch_size, self.num_train
        variables = model.trainable_variables

        def train_step(images, labels):
            with tf.GradientTape() as tape:
                probabilities = model(images, training=True)
                loss = tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(labels, probabilities)
                )
            gradients = tape.gradient(loss, variables)
            optimizer.apply(gradients, variables)
            predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            correct = tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.int64))
            return loss, correct

        if xla:
            train_step = tf.function(train_step, jit_compile=True)

        @tf.function(jit_compile=False)
        def run_steps(x_all, y_all, permutation, first, last):
            loss_sum = tf.constant(0.0, tf.float64)
            correct = tf.constant(0, tf.int64)
            seen = tf.constant(0, tf.int64)
            for step in tf.range(first, last):
                start = step * batch_size
                stop = tf.minimum(start + batch_size, num_train)
                indices = permutation[start:stop]
                loss, step_correct = train_step(
                    tf.gather(x_all, indices), tf.gather(y_all, indices)
                )
                count = tf.cast(stop - start, tf.int64)
                loss_sum += tf.cast(loss, tf.float64) * tf.cast(count, tf.float64)
                correct += step_correct
                seen += count
            return loss_sum, correct, seen, {}

        x_train, y_train = self.x_train, self.y_train

        # The returned function accepts both call styles of Trainer.fit:
        # (permutation, first, last) before commit 4f10faf, and
        # (x, y, permutation, first, last) since.
        if data_as_arguments:
            # The graph gets placeholders; the data stays owned by the Trainer.
            def call(*args):  # noqa: ANN002, ANN202
                return run_steps(x_train, y_train, *args[-3:])

            return call

        # As nnexp did before 4f10faf: the tensors are captured by the graph.
        @tf.function(jit_compile=False)
        def run_steps_captured(permutation, first, last):
            return run_steps(x_train, y_train, permutation, first, last)

        def call_captured(*args):  # noqa: ANN002, ANN202
            return run_steps_captured(*args[-3:])

        return call_captured

    Trainer._compile_run_steps = _compile_run_steps


def rss_mb() -> float:
    """Current resident set of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(
    variant: str, runs: int, config_path: Path, train_size: int | None
) -> None:
    """Train ``runs`` one-epoch runs in this process; print RSS after each."""
    import tempfile

    from nnexp.backends.base import RunTask, execute_task
    from nnexp.config import load_config
    from nnexp.training import configure_threads

    configure_threads(1)
    if variant in ("captured", "args"):
        patch_run_steps(xla=False, data_as_arguments=variant == "args")
    activations = ["elu", "relu", "tanh", "selu", "sigmoid", "leaky_relu"]
    with tempfile.TemporaryDirectory() as sweep_dir:
        print(
            json.dumps({"variant": variant, "run": 0, "rss_mb": rss_mb()}), flush=True
        )
        for index in range(runs):
            overrides = [
                "training.epochs=1",
                f"model.activation={activations[index % len(activations)]}",
                f"seed={42 + index}",
            ]
            if train_size:
                overrides.append(f"data.train_size={train_size}")
            config = load_config(config_path, overrides)
            result = execute_task(
                RunTask(index, config.to_yaml(), sweep_dir, f"run{index}")
            )
            row = {"variant": variant, "run": index + 1, "rss_mb": rss_mb()}
            print(json.dumps({**row, "status": result.status}), flush=True)


def child(variant: str, epochs: int, config_path: Path, train_size: int | None) -> None:
    """Train once in this process and print one JSON line per epoch."""
    from nnexp.training import configure_threads

    if variant != "base":
        configure_threads(1)
    if variant == "xla-t1":
        patch_run_steps(xla=True, data_as_arguments=False)
    if variant == "args-t1":
        patch_run_steps(xla=False, data_as_arguments=True)

    from nnexp.config import load_config
    from nnexp.data import load_splits
    from nnexp.model import build_model
    from nnexp.training import Trainer, seed_everything

    overrides = [f"training.epochs={epochs}"]
    if train_size:
        overrides.append(f"data.train_size={train_size}")
    config = load_config(config_path, overrides)
    splits = load_splits(
        validation_size=config.data.validation_size,
        train_size=config.data.train_size,
        scaling=config.data.scaling,
    )
    seed_everything(config.seed)
    model = build_model(config)
    trainer = Trainer(
        config, model, splits.x_train, splits.y_train, splits.x_val, splits.y_val
    )
    for metrics in trainer.fit().history:
        print(json.dumps({"variant": variant, **metrics.as_row()}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=VARIANTS, help="run one child and exit")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--out", type=Path, default=None, help="raw JSON lines")
    parser.add_argument("--memory", type=int, default=0, metavar="RUNS")
    parser.add_argument(
        "--memory-variant", choices=MEMORY_VARIANTS, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.memory_variant:
        memory_child(args.memory_variant, args.memory, args.config, args.train_size)
        return 0
    if args.variant:
        child(args.variant, args.epochs, args.config, args.train_size)
        return 0
    if args.memory:
        return memory(args)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    rows = []
    for rep in range(args.reps):
        for index in range(len(variants)):
            variant = variants[(index + rep) % len(variants)]
            command = [
                sys.executable,
                __file__,
                "--variant",
                variant,
                "--epochs",
                str(args.epochs),
                "--config",
                str(args.config),
            ]
            if args.train_size:
                command += ["--train-size", str(args.train_size)]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            for line in done.stdout.splitlines():
                if line.startswith("{"):
                    rows.append({**json.loads(line), "rep": rep, "wall": wall})
            print(f"  rep {rep} {variant}: {wall:.1f} s", flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))

    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    baseline = {(r["rep"], r["epoch"]): r for r in rows if r["variant"] == variants[0]}
    base_steady = None
    print(
        f"\n{'variant':<8} {'steady s':>9} {'first s':>8} {'vs ' + variants[0]:>9}  "
        f"numbers vs {variants[0]}"
    )
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        steady = statistics.median(r["seconds"] for r in mine if r["epoch"] >= 2)
        first = statistics.median(r["seconds"] for r in mine if r["epoch"] == 1)
        base_steady = base_steady or steady
        diff = max(
            abs(r[k] - baseline[(r["rep"], r["epoch"])][k]) for r in mine for k in keys
        )
        same = "identical" if diff == 0 else f"max |diff| {diff:.2g}"
        print(
            f"{variant:<8} {steady:9.2f} {first:8.2f} "
            f"{base_steady / steady:8.2f}x  {same}"
        )
    return 0


def memory(args: argparse.Namespace) -> int:
    """RSS after each of ``args.memory`` runs in one process: nnexp as it is,
    and patched to capture the data (as before 4f10faf) or to take it as
    arguments (as since)."""
    table = {}
    for variant in MEMORY_VARIANTS:
        command = [
            sys.executable,
            __file__,
            "--memory",
            str(args.memory),
            "--memory-variant",
            variant,
            "--config",
            str(args.config),
        ]
        if args.train_size:
            command += ["--train-size", str(args.train_size)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        rows = [
            json.loads(line) for line in done.stdout.splitlines() if line[:1] == "{"
        ]
        table[variant] = [row["rss_mb"] for row in rows]
    header = "  ".join(f"{'run ' + str(i):>6}" for i in range(1, args.memory + 1))
    print(f"RSS (MB) in one process   {'start':>6}  {header}")
    for variant, values in table.items():
        name = {
            "nnexp": "nnexp as it is",
            "captured": "data captured",
            "args": "data as arguments",
        }[variant]
        print(f"  {name:<23} " + "  ".join(f"{v:6.0f}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
