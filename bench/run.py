"""Benchmark nnexp against a plain Keras script, side by side, on this machine.

Sections (default: all of them, in this order):

    train        nnexp train vs bench/plain_keras.py (model.fit): steady-state
                 steps/s (epochs 2 and later), first epoch, per-epoch metric
                 differences, peak RSS (target 5 comes from these same runs)
    sweep        nnexp compare (6 activations x 1 epoch x 1 seed) with --jobs 1
                 and --jobs 2 vs the plain script run 6 times in a row
    data         nnexp.data.load_raw / load_splits from the decoded cache
    startup      nnexp --help, nnexp check, a config error; TensorFlow not imported
    flops        matmul GFLOP/s (NumPy, TensorFlow; 1 and 2 threads) and the
                 compute limit of the reference model
    equivalence  nnexp's loop vs model.fit fed the same order of images

Every measurement is a fresh child process; arms are interleaved and their
order rotated every repetition, so a slow spell on a shared machine hits all
arms alike. The table shows medians and ratios; the raw numbers go to a JSON
file (default ``bench/out/bench-<timestamp>.json``, also copied to
``bench/out/latest.json``).

    python bench/run.py                         # everything, default sizes
    python bench/run.py train --reps 5 --epochs 4
    python bench/run.py --quick --out /tmp/b.json   # smoke test (CI), ~45 s
    python bench/run.py --nnexp-src /tmp/snapshot   # benchmark another checkout

Exit status: 0 if every child process did what was expected (timings are
never judged), 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLAIN = HERE / "plain_keras.py"
PROBES = HERE / "probes.py"
REFERENCE_CONFIG = REPO / "configs" / "bn_after.yaml"
SECTIONS = ("train", "sweep", "data", "startup", "flops", "equivalence")
SWEEP_ACTIVATIONS = ("selu", "elu", "leaky_relu", "relu", "tanh", "sigmoid")
FULL_TRAIN = 55000
BATCH_SIZE = 32
# Dense layers of the reference model: (inputs, units).
REFERENCE_DENSE = ((784, 300), (300, 100), (100, 10))

TARGETS = {
    "train_speedup": 2.0,  # nnexp steady steps/s >= 2 x plain
    "sweep_fraction": 0.40,  # compare wall <= 40% of 6 plain processes
    "data_seconds": 0.2,
    "startup_seconds": 1.0,
    "memory_fraction": 1.10,  # nnexp peak RSS <= 1.1 x plain
}


# --------------------------------------------------------------------------
# Child processes


class Runner:
    """Starts child processes, times them and collects their peak RSS."""

    def __init__(self, workdir: Path, nnexp_src: Path | None, verbose: bool) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.verbose = verbose
        self.failures: list[str] = []
        self.env = dict(os.environ)
        self.env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.env["PYTHONUNBUFFERED"] = "1"
        if nnexp_src is not None:
            old = self.env.get("PYTHONPATH")
            self.env["PYTHONPATH"] = str(nnexp_src) + (os.pathsep + old if old else "")
        self.python = sys.executable
        script = Path(sys.executable).parent / "nnexp"
        self.nnexp = [str(script)] if script.exists() else [self.python, "-m", "nnexp"]
        self._count = 0

    def run(
        self,
        label: str,
        command: list[str],
        *,
        expect: int | None = 0,
        env: dict[str, str] | None = None,
        timeout: float = 3600,
    ) -> dict[str, Any]:
        """Run ``command`` in the work folder; wall time, CPU time, peak RSS.

        The peak RSS is ``ru_maxrss`` from ``wait4`` for this child: the
        largest resident set of the child or of any descendant it waited for
        (the same number ``/usr/bin/time -v`` prints).
        """
        self._count += 1
        stem = f"{self._count:04d}-{label}"
        out_path = self.logs / f"{stem}.out"
        err_path = self.logs / f"{stem}.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.perf_counter()
            process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env or self.env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
            timer = threading.Timer(timeout, process.kill)
            timer.start()
            try:
                _, status, usage = os.wait4(process.pid, 0)
            finally:
                timer.cancel()
            wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout = out_path.read_text(errors="replace")
        result = {
            "label": label,
            "command": command,
            "exit_code": process.returncode,
            "wall_seconds": wall,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "stdout_log": str(out_path),
            "stderr_log": str(err_path),
        }
        if expect is not None and process.returncode != expect:
            tail = err_path.read_text(errors="replace").strip().splitlines()[-5:]
            message = (
                f"{label}: exit {process.returncode} (expected {expect}): "
                + " | ".join(tail)
            )
            self.failures.append(message)
            result["error"] = message
            print(f"  ! {message}", file=sys.stderr)
        if self.verbose:
            print(
                f"  {label}: {wall:.2f} s, exit {process.returncode}, "
                f"peak RSS {result['peak_rss_mb']:.0f} MB",
                flush=True,
            )
        result["stdout"] = stdout
        return result


def json_lines(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def last_json(text: str) -> dict[str, Any] | None:
    rows = json_lines(text)
    return rows[-1] if rows else None


def rotate(items: list[Any], by: int) -> list[Any]:
    by %= len(items)
    return items[by:] + items[:by]


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


# --------------------------------------------------------------------------
# train


def _read_nnexp_run(runs_dir: Path) -> tuple[list[dict[str, float]], dict[str, Any]]:
    metrics = sorted(runs_dir.glob("*/*/metrics.csv"))
    if len(metrics) != 1:
        return [], {}
    with open(metrics[0], newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    result_path = metrics[0].parent / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    return rows, result


def bench_train(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    train_n = args.train_size or FULL_TRAIN
    steps = math.ceil(train_n / BATCH_SIZE)
    arms = [a.strip() for a in args.train_arms.split(",") if a.strip()]
    records = []
    print(
        f"train: {', '.join(arms)}; {args.reps} repetitions x {args.epochs} epochs, "
        f"{train_n} images ({steps} steps/epoch)",
        flush=True,
    )
    for rep in range(args.reps):
        seed = args.seed + rep
        for arm in rotate(arms, rep):
            label = f"train-r{rep}-{arm}"
            if arm == "plain":
                command = [
                    runner.python,
                    str(PLAIN),
                    "--epochs",
                    str(args.epochs),
                    "--seed",
                    str(seed),
                ]
                if args.train_size:
                    command += ["--train-size", str(args.train_size)]
                run = runner.run(label, command)
                events = json_lines(run["stdout"])
                epochs = [
                    {
                        "epoch": e["epoch"],
                        "seconds": e["seconds"],
                        "loss": e["loss"],
                        "accuracy": e["accuracy"],
                        "val_loss": e["val_loss"],
                        "val_accuracy": e["val_accuracy"],
                    }
                    for e in events
                    if e.get("event") == "epoch"
                ]
                extra = {
                    e["event"]: {k: v for k, v in e.items() if k != "event"}
                    for e in events
                    if e.get("event") in ("start", "load", "done")
                }
            else:
                threads = None
                if arm.startswith("nnexp-t"):
                    threads = int(arm.removeprefix("nnexp-t"))
                elif arm != "nnexp":
                    raise SystemExit(f"unknown train arm {arm!r}")
                runs_dir = runner.workdir / "train" / label
                command = runner.nnexp + [
                    "train",
                    str(args.config),
                    "--epochs",
                    str(args.epochs),
                    "--runs-dir",
                    str(runs_dir),
                    "--set",
                    f"seed={seed}",
                ]
                if args.train_size:
                    command += ["--set", f"data.train_size={args.train_size}"]
                if threads:
                    command += ["--threads", str(threads)]
                run = runner.run(label, command)
                epochs, result = _read_nnexp_run(runs_dir)
                extra = {"result_seconds_per_epoch": result.get("seconds_per_epoch")}
            if not epochs and "error" not in run:
                runner.failures.append(f"{label}: no per-epoch numbers")
            steady = [e["seconds"] for e in epochs if e["epoch"] >= 2]
            record = {
                "rep": rep,
                "seed": seed,
                "arm": arm,
                "epochs": epochs,
                "first_epoch_seconds": epochs[0]["seconds"] if epochs else None,
                "steady_epoch_seconds": median(steady) if steady else None,
                "wall_seconds": run["wall_seconds"],
                "cpu_seconds": run["cpu_seconds"],
                "peak_rss_mb": run["peak_rss_mb"],
                "exit_code": run["exit_code"],
                "extra": extra,
            }
            # Without a second epoch there is no steady state; fall back to
            # epoch 1 (it includes tracing/compiling) and say so.
            basis = record["steady_epoch_seconds"] or record["first_epoch_seconds"]
            record["steady"] = record["steady_epoch_seconds"] is not None
            record["steps_per_second"] = steps / basis if basis else None
            records.append(record)

    summary: dict[str, Any] = {
        "train_images": train_n,
        "steps_per_epoch": steps,
        "epochs": args.epochs,
        "reps": args.reps,
        "arms": {},
    }
    for arm in arms:
        mine = [r for r in records if r["arm"] == arm]
        summary["arms"][arm] = {
            "steps_per_second": median([r["steps_per_second"] for r in mine]),
            "steady_epoch_seconds": median([r["steady_epoch_seconds"] for r in mine]),
            "first_epoch_seconds": median([r["first_epoch_seconds"] for r in mine]),
            "wall_seconds": median([r["wall_seconds"] for r in mine]),
            "cpu_seconds": median([r["cpu_seconds"] for r in mine]),
            "peak_rss_mb": median([r["peak_rss_mb"] for r in mine]),
            "steady": all(r["steady"] for r in mine),
        }
    plain = summary["arms"].get("plain")
    for arm in arms:
        if arm == "plain" or plain is None:
            continue
        mine = summary["arms"][arm]
        mine["speedup_vs_plain"] = ratio(
            mine["steps_per_second"], plain["steps_per_second"]
        )
        paired = []
        for rep in range(args.reps):
            a = [r for r in records if r["rep"] == rep and r["arm"] == arm]
            b = [r for r in records if r["rep"] == rep and r["arm"] == "plain"]
            if a and b and a[0]["steps_per_second"] and b[0]["steps_per_second"]:
                paired.append(a[0]["steps_per_second"] / b[0]["steps_per_second"])
        mine["paired_speedups"] = paired
        mine["rss_vs_plain"] = ratio(mine["peak_rss_mb"], plain["peak_rss_mb"])
        mine["metric_diff_vs_plain"] = _metric_diffs(records, arm)
    summary["records"] = records
    return summary


def _metric_diffs(records: list[dict[str, Any]], arm: str) -> dict[str, Any]:
    """How far an arm's per-epoch numbers are from the plain script's, same
    seed, same epoch; and the seed-to-seed spread of each, for scale."""
    keys = ("loss", "accuracy", "val_loss", "val_accuracy")
    diffs: dict[str, list[float]] = {k: [] for k in keys}
    final: dict[str, dict[str, list[float]]] = {"plain": {}, arm: {}}
    for rep in sorted({r["rep"] for r in records}):
        a = [r for r in records if r["rep"] == rep and r["arm"] == arm]
        b = [r for r in records if r["rep"] == rep and r["arm"] == "plain"]
        if not (a and b and a[0]["epochs"] and b[0]["epochs"]):
            continue
        for ea, eb in zip(a[0]["epochs"], b[0]["epochs"], strict=False):
            for k in keys:
                diffs[k].append(ea[k] - eb[k])
        for name, rec in (("plain", b[0]), (arm, a[0])):
            for k in keys:
                final[name].setdefault(k, []).append(rec["epochs"][-1][k])
    out: dict[str, Any] = {}
    for k in keys:
        values = diffs[k]
        out[k] = {
            "mean_abs_diff": statistics.fmean(abs(v) for v in values)
            if values
            else None,
            "max_abs_diff": max((abs(v) for v in values), default=None),
            "mean_diff": statistics.fmean(values) if values else None,
            "bit_identical": bool(values) and all(v == 0 for v in values),
        }
        for name in ("plain", arm):
            seq = final[name].get(k, [])
            out[k][f"final_mean_{'nnexp' if name == arm else 'plain'}"] = (
                statistics.fmean(seq) if seq else None
            )
            out[k][f"final_seed_std_{'nnexp' if name == arm else 'plain'}"] = (
                statistics.stdev(seq) if len(seq) > 1 else None
            )
    return out


# --------------------------------------------------------------------------
# sweep


def bench_sweep(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    activations = list(SWEEP_ACTIVATIONS[: args.sweep_activations])
    jobs_list = [int(j) for j in args.jobs.split(",") if j.strip()]
    arms = ["plain"] + [f"jobs{j}" for j in jobs_list]
    print(
        f"sweep: {len(activations)} activations x 1 epoch x 1 seed; arms "
        f"{', '.join(arms)}; {args.sweep_reps} repetitions",
        flush=True,
    )
    records = []
    for rep in range(args.sweep_reps):
        for arm in rotate(arms, rep):
            label = f"sweep-r{rep}-{arm}"
            if arm == "plain":
                started = time.perf_counter()
                runs, ok = [], True
                for activation in activations:
                    command = [
                        runner.python,
                        str(PLAIN),
                        "--epochs",
                        "1",
                        "--seed",
                        str(args.seed),
                        "--activation",
                        activation,
                    ]
                    if args.train_size:
                        command += ["--train-size", str(args.train_size)]
                    run = runner.run(f"{label}-{activation}", command)
                    ok = ok and run["exit_code"] == 0
                    runs.append(
                        {
                            "activation": activation,
                            "wall_seconds": run["wall_seconds"],
                            "peak_rss_mb": run["peak_rss_mb"],
                        }
                    )
                wall = time.perf_counter() - started
                records.append(
                    {
                        "rep": rep,
                        "arm": arm,
                        "wall_seconds": wall,
                        "runs": runs,
                        "ok": ok,
                    }
                )
            else:
                jobs = int(arm.removeprefix("jobs"))
                runs_dir = runner.workdir / "sweep" / label
                command = runner.nnexp + [
                    "compare",
                    str(args.config),
                    "--activations",
                    ",".join(activations),
                    "--seeds",
                    "1",
                    "--epochs",
                    "1",
                    "--new",
                    "--runs-dir",
                    str(runs_dir),
                    "--jobs",
                    str(jobs),
                    "--set",
                    f"seed={args.seed}",
                ]
                if args.train_size:
                    command += ["--set", f"data.train_size={args.train_size}"]
                run = runner.run(label, command)
                per_run = []
                for result_path in sorted(runs_dir.glob("**/result.json")):
                    result = json.loads(result_path.read_text())
                    per_run.append(
                        {
                            "name": result.get("name"),
                            "status": result.get("status"),
                            "wall_seconds": result.get("wall_seconds"),
                            "seconds_first_epoch": result.get("seconds_first_epoch"),
                        }
                    )
                records.append(
                    {
                        "rep": rep,
                        "arm": arm,
                        "wall_seconds": run["wall_seconds"],
                        "peak_rss_mb": run["peak_rss_mb"],
                        "cpu_seconds": run["cpu_seconds"],
                        "runs": per_run,
                        "ok": run["exit_code"] == 0
                        and len(per_run) == len(activations),
                    }
                )
                if run["exit_code"] == 0 and len(per_run) != len(activations):
                    runner.failures.append(
                        f"{label}: {len(per_run)} run folders, "
                        f"expected {len(activations)}"
                    )
    summary: dict[str, Any] = {
        "activations": activations,
        "train_images": args.train_size or FULL_TRAIN,
        "reps": args.sweep_reps,
        "arms": {},
    }
    for arm in arms:
        walls = [r["wall_seconds"] for r in records if r["arm"] == arm]
        summary["arms"][arm] = {"wall_seconds": median(walls), "all": walls}
    plain = summary["arms"]["plain"]["wall_seconds"]
    for arm in arms[1:]:
        mine = summary["arms"][arm]
        mine["fraction_of_plain"] = ratio(mine["wall_seconds"], plain)
        paired = []
        for rep in range(args.sweep_reps):
            a = [r for r in records if r["rep"] == rep and r["arm"] == arm]
            b = [r for r in records if r["rep"] == rep and r["arm"] == "plain"]
            if a and b:
                paired.append(a[0]["wall_seconds"] / b[0]["wall_seconds"])
        mine["paired_fractions"] = paired
    timed = [a for a in arms[1:] if summary["arms"][a]["wall_seconds"] is not None]
    if timed:
        summary["fastest_jobs"] = min(
            timed, key=lambda a: summary["arms"][a]["wall_seconds"]
        )
    summary["records"] = records
    return summary


# --------------------------------------------------------------------------
# data


def bench_data(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"data: {args.data_procs} fresh processes x {args.data_calls} calls", flush=True
    )
    probe = [runner.python, str(PROBES), "data", "--calls", str(args.data_calls)]
    # Warm the decoded cache (the first load ever decodes and writes it).
    warm = runner.run("data-warm", probe[:3] + ["--calls", "1"])
    processes = []
    for index in range(args.data_procs):
        run = runner.run(f"data-{index}", probe)
        result = last_json(run["stdout"]) or {}
        result["wall_seconds"] = run["wall_seconds"]
        result["peak_rss_mb"] = run["peak_rss_mb"]
        processes.append(result)
    # The cold path for scale: an empty Keras home forces decode + verify +
    # cache write from the .gz files.
    cold_home = runner.workdir / "cold-keras-home"
    shutil.rmtree(cold_home, ignore_errors=True)
    cold_env = dict(runner.env, KERAS_HOME=str(cold_home))
    cold = runner.run("data-cold", probe[:3] + ["--calls", "1"], env=cold_env)
    cold_result = last_json(cold["stdout"]) or {}
    shutil.rmtree(cold_home, ignore_errors=True)

    def collect(key: str, first: bool) -> list[float]:
        values = []
        for p in processes:
            seq = p.get(key) or []
            values += seq[:1] if first else seq[1:]
        return values

    summary = {
        "load_raw_first_call": median(collect("load_raw_seconds", True)),
        "load_raw_later_calls": median(collect("load_raw_seconds", False)),
        "load_splits_first_call": median(collect("load_splits_seconds", True)),
        "load_splits_later_calls": median(collect("load_splits_seconds", False)),
        "load_splits_first_call_max": max(
            collect("load_splits_seconds", True), default=None
        ),
        "import_nnexp_data": median([p.get("import_seconds") for p in processes]),
        "cold_decode_load_raw": (cold_result.get("load_raw_seconds") or [None])[0],
        "tensorflow_imported": any(p.get("tensorflow_imported") for p in processes),
        "source": processes[0].get("source") if processes else None,
        "warm_exit_code": warm["exit_code"],
        "processes": processes,
    }
    return summary


# --------------------------------------------------------------------------
# startup


def bench_startup(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    print(f"startup: {args.startup_reps} repetitions", flush=True)
    config = str(args.config)
    bad = "model.activaton=elu"
    cases = {
        "nnexp --help": (runner.nnexp + ["--help"], 0),
        "nnexp check": (runner.nnexp + ["check", config], 0),
        "config error": (runner.nnexp + ["check", config, "--set", bad], 2),
    }
    if not args.quick:
        cases["python -c 'import tensorflow' (for scale)"] = (
            [runner.python, "-c", "import tensorflow"],
            0,
        )
    names = list(cases)
    walls: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(args.startup_reps):
        for name in rotate(names, rep):
            command, expect = cases[name]
            run = runner.run(
                f"startup-r{rep}-{name.split()[-1]}", command, expect=expect
            )
            walls[name].append(run["wall_seconds"])
    probe = runner.run(
        "startup-noimport", [runner.python, str(PROBES), "noimport", config, bad]
    )
    imports = last_json(probe["stdout"]) or {}
    return {
        "commands": {n: {"median": median(w), "all": w} for n, w in walls.items()},
        "imports": imports,
        "tensorflow_imported": any(
            v.get("tensorflow_imported") for v in imports.values()
        )
        if imports
        else None,
    }


# --------------------------------------------------------------------------
# flops


def reference_flops(train_images: int, validation_images: int = 5000) -> dict[str, Any]:
    macs = sum(i * o for i, o in REFERENCE_DENSE)
    # BN and ELU per image: roughly 10 FLOPs forward, 20 backward per feature
    # (784 inputs + 300 + 100 hidden units), plus one exp per ELU unit.
    bn_features = 784 + 300 + 100
    other = 30 * bn_features + 3 * 400
    training = 3 * 2 * macs * train_images
    validation = 2 * macs * validation_images
    return {
        "dense_macs_per_image": macs,
        "train_flops_per_epoch": training,
        "validation_flops_per_epoch": validation,
        "epoch_flops": training + validation,
        "bn_activation_flops_per_image_estimate": other,
        "bn_activation_share": other / (3 * 2 * macs),
    }


def bench_flops(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    thread_counts = [1] if args.quick else [1, 2]
    print(
        f"flops: matmul GFLOP/s, threads {thread_counts}, {args.flops_rounds} rounds",
        flush=True,
    )
    rounds: dict[str, list[dict[str, Any]]] = {f"threads{t}": [] for t in thread_counts}
    for round_index in range(args.flops_rounds):
        for threads in rotate(thread_counts, round_index):
            env = dict(runner.env)
            for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[name] = str(threads)
            command = [
                runner.python,
                str(PROBES),
                "flops",
                "--threads",
                str(threads),
                "--seconds",
                str(args.flops_seconds),
            ]
            # The smoke version skips TensorFlow here: importing it alone takes
            # seconds, and the other sections already exercise it.
            command.append("--numpy-only" if args.quick else "--big")
            run = runner.run(f"flops-r{round_index}-t{threads}", command, env=env)
            rounds[f"threads{threads}"].append(last_json(run["stdout"]) or {})
    # A slower round only means something else ran meanwhile: keep the best
    # rate of each product over the rounds (and the median of their medians).
    results: dict[str, Any] = {}
    for key, runs in rounds.items():
        merged: dict[str, Any] = {"rounds": len(runs)}
        for kind in ("numpy", "tf_eager", "tf_loop"):
            shapes: dict[str, Any] = {}
            for run in runs:
                for shape, value in (run.get(kind) or {}).items():
                    shapes.setdefault(shape, []).append(value)
            merged[kind] = {
                shape: {
                    "best": max(v["best"] for v in values),
                    "median": statistics.median(v["median"] for v in values),
                    "per_round_best": [v["best"] for v in values],
                }
                for shape, values in shapes.items()
            }
        results[key] = merged
    peak = {}
    for key, result in results.items():
        rates = [
            value["best"]
            for kind in ("numpy", "tf_eager", "tf_loop")
            for value in (result.get(kind) or {}).values()
        ]
        small = [
            value["best"]
            for name, value in (result.get("tf_loop") or {}).items()
            if not name.startswith("square")
        ]
        peak[key] = {
            "best_any": max(rates, default=None),
            "tf_loop_model_shapes_mean": statistics.fmean(small) if small else None,
        }
    return {
        "model": reference_flops(args.train_size or FULL_TRAIN),
        "peak": peak,
        "measurements": results,
        "raw_rounds": rounds,
    }


# --------------------------------------------------------------------------
# equivalence


def bench_equivalence(runner: Runner, args: argparse.Namespace) -> dict[str, Any]:
    size = args.equivalence_train_size
    print(
        f"equivalence: {args.equivalence_epochs} epochs on {size or FULL_TRAIN} images"
    )
    command = [
        runner.python,
        str(PROBES),
        "equivalence",
        str(args.config),
        "--epochs",
        str(args.equivalence_epochs),
    ]
    if size:
        command += ["--train-size", str(size)]
    run = runner.run("equivalence", command)
    return last_json(run["stdout"]) or {"error": run.get("error")}


# --------------------------------------------------------------------------
# Report


def _fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


def render(results: dict[str, Any]) -> str:
    lines = []
    add = lines.append
    targets = []

    train = results.get("train")
    if train:
        add("")
        add(
            f"TRAIN  {train['train_images']} images, {train['steps_per_epoch']} "
            f"steps/epoch, {train['epochs']} epochs x {train['reps']} reps "
            "(medians; steady = epochs >= 2)"
        )
        add(
            f"  {'arm':<10} {'steps/s':>8} {'epoch s':>8} {'1st ep s':>9} "
            f"{'wall s':>7} {'RSS MB':>7} {'speedup':>8} {'paired':>18} {'RSS x':>6}"
        )
        for arm, a in train["arms"].items():
            paired = ",".join(f"{p:.2f}" for p in a.get("paired_speedups", []))
            add(
                f"  {arm:<10} {_fmt(a['steps_per_second'], 0):>8} "
                f"{_fmt(a['steady_epoch_seconds']):>8} "
                f"{_fmt(a['first_epoch_seconds']):>9} {_fmt(a['wall_seconds'], 1):>7} "
                f"{_fmt(a['peak_rss_mb'], 0):>7} "
                f"{_fmt(a.get('speedup_vs_plain'), 2, 'x'):>8} {paired:>18} "
                f"{_fmt(a.get('rss_vs_plain'), 2):>6}"
            )
        if not all(a["steady"] for a in train["arms"].values()):
            add("  (one epoch only: 'steps/s' includes the first epoch's tracing)")
        for arm, a in train["arms"].items():
            diff = a.get("metric_diff_vs_plain")
            if not diff:
                continue
            va = diff["val_accuracy"]
            lo = diff["loss"]
            add(
                f"  {arm} vs plain, same seed and epoch: mean |diff| val_accuracy "
                f"{_fmt(va['mean_abs_diff'], 4)} (max {_fmt(va['max_abs_diff'], 4)}), "
                f"loss {_fmt(lo['mean_abs_diff'], 4)}; final val_accuracy "
                f"{_fmt(va['final_mean_nnexp'], 4)} vs "
                f"{_fmt(va['final_mean_plain'], 4)}"
                f" (seed std {_fmt(va['final_seed_std_nnexp'], 4)} / "
                f"{_fmt(va['final_seed_std_plain'], 4)})"
            )
        nn = train["arms"].get("nnexp")
        if nn and "speedup_vs_plain" in nn:
            speed = nn["speedup_vs_plain"]
            ok = speed >= TARGETS["train_speedup"] if speed else None
            targets.append(("1 train >= 2.00x plain steps/s", _fmt(speed, 2, "x"), ok))
            rss = nn.get("rss_vs_plain")
            ok = rss <= TARGETS["memory_fraction"] if rss else None
            targets.append(("5 peak RSS <= 1.10x plain", _fmt(rss, 2, "x"), ok))

    sweep = results.get("sweep")
    if sweep:
        add("")
        add(
            f"SWEEP  {len(sweep['activations'])} activations x 1 epoch x 1 seed, "
            f"{sweep['train_images']} images, {sweep['reps']} reps (median wall)"
        )
        for arm, a in sweep["arms"].items():
            walls = ", ".join(f"{w:.1f}" for w in a["all"])
            frac = a.get("fraction_of_plain")
            name = (
                "plain x N processes"
                if arm == "plain"
                else f"nnexp compare --{arm[:4]} {arm[4:]}"
            )
            add(
                f"  {name:<28} {_fmt(a['wall_seconds'], 1, ' s'):>9}  "
                f"{('= ' + _fmt(frac * 100, 0, '% of plain')) if frac else '':<17} "
                f"[{walls}]"
            )
        if sweep.get("fastest_jobs"):
            add(f"  fastest: --jobs {sweep['fastest_jobs'][4:]}")
        for arm, a in sweep["arms"].items():
            if arm != "plain":
                frac = a.get("fraction_of_plain")
                ok = frac <= TARGETS["sweep_fraction"] if frac else None
                targets.append(
                    (f"2 sweep --jobs {arm[4:]} <= 40% of plain", _fmt(frac, 2), ok)
                )

    data = results.get("data")
    if data:
        add("")
        add("DATA  from the decoded cache, fresh processes (median seconds)")
        add(
            f"  load_raw   first call {_fmt(data['load_raw_first_call'], 3)}, "
            f"later {_fmt(data['load_raw_later_calls'], 3)}"
        )
        add(
            f"  load_splits first call {_fmt(data['load_splits_first_call'], 3)} "
            f"(max {_fmt(data['load_splits_first_call_max'], 3)}), "
            f"later {_fmt(data['load_splits_later_calls'], 3)}"
        )
        add(
            f"  cold (decode + verify + write cache) load_raw "
            f"{_fmt(data['cold_decode_load_raw'], 3)}; import nnexp.data "
            f"{_fmt(data['import_nnexp_data'], 3)}"
        )
        for key, name in (
            ("load_raw_first_call", "3 load_raw < 0.2 s"),
            ("load_splits_first_call", "3 load_splits < 0.2 s"),
        ):
            value = data[key]
            targets.append((name, _fmt(value, 3, " s"), value < 0.2 if value else None))

    startup = results.get("startup")
    if startup:
        add("")
        add("STARTUP  wall seconds of a fresh process (median)")
        for name, value in startup["commands"].items():
            add(f"  {name:<44} {_fmt(value['median'], 2)}")
        add(
            "  TensorFlow imported by help/check/error: "
            f"{startup['tensorflow_imported']}"
        )
        worst = max(
            (
                v["median"]
                for n, v in startup["commands"].items()
                if n.startswith(("nnexp", "config"))
            ),
            default=None,
        )
        ok = None
        if worst is not None:
            ok = (
                worst < TARGETS["startup_seconds"]
                and not startup["tensorflow_imported"]
            )
        targets.append(
            ("4 start-up < 1 s, no TensorFlow", _fmt(worst, 2, " s (slowest)"), ok)
        )

    flops = results.get("flops")
    if flops:
        model = flops["model"]
        add("")
        add(
            f"COMPUTE  {model['dense_macs_per_image']:,} Dense MACs/image; "
            f"{model['epoch_flops'] / 1e9:.1f} GFLOP per epoch "
            f"(training 6 x MACs x images + validation forward); BN/ELU about "
            f"{model['bn_activation_share'] * 100:.1f}% more, left out"
        )
        add(
            f"  {'matmul GFLOP/s (best)':<28} "
            + "  ".join(
                f"{k:>22}" for k in ("numpy t1/t2", "tf eager t1/t2", "tf loop t1/t2")
            )
        )
        t1 = flops["measurements"].get("threads1", {})
        t2 = flops["measurements"].get("threads2", {})
        for shape in t1.get("numpy") or {}:
            cells = []
            for kind in ("numpy", "tf_eager", "tf_loop"):
                a = (t1.get(kind) or {}).get(shape, {}).get("best")
                b = (t2.get(kind) or {}).get(shape, {}).get("best")
                cells.append(f"{_fmt(a, 0):>10} /{_fmt(b, 0):>10}")
            add(f"  {shape:<28} " + "  ".join(cells))
        peaks = {
            key: value.get("tf_loop_model_shapes_mean")
            for key, value in flops["peak"].items()
        }
        gflop = model["epoch_flops"] / 1e9
        for key, rate in peaks.items():
            if rate:
                add(
                    f"  limit with {key[7:]} thread(s) at the model's matmul shapes "
                    f"({rate:.0f} GFLOP/s, tf loop mean): {gflop / rate:.2f} s/epoch"
                )
        if train and train["train_images"] == model["train_flops_per_epoch"] / (
            6 * model["dense_macs_per_image"]
        ):
            for arm, a in train["arms"].items():
                sec = a["steady_epoch_seconds"]
                if not sec:
                    continue
                rate = gflop / sec
                shares = ", ".join(
                    f"{rate / peak * 100:.0f}% of the {key[7:]}-thread limit"
                    for key, peak in peaks.items()
                    if peak
                )
                add(f"  {arm:<10} {sec:5.2f} s/epoch = {rate:5.1f} GFLOP/s: {shares}")

    equivalence = results.get("equivalence")
    if equivalence and "nnexp" in equivalence:
        add("")
        add(
            f"EQUIVALENCE  nnexp loop vs model.fit on nnexp's order, "
            f"{equivalence['train_images']} images x {equivalence['epochs']} epochs"
        )
        add(
            f"  initial weights identical: {equivalence['initial_weights_identical']}; "
            "final weights max |diff|: "
            f"{equivalence['final_weights_max_abs_diff']:.3g}; "
            f"fit jit_compile: {equivalence['plain_jit_compile']}"
        )
        diffs = equivalence["max_abs_metric_diff"]
        add(
            "  max |diff| per metric: "
            + ", ".join(f"{k} {v:.2g}" for k, v in diffs.items())
        )

    if targets:
        add("")
        add("TARGETS")
        for name, value, ok in targets:
            add(f"  {name:<40} {value:<24} {_verdict(ok)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main


def machine_description() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    try:
        lscpu = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10
        ).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in (
                "Model name",
                "CPU(s)",
                "Thread(s) per core",
                "L3 cache",
            ):
                info[key.strip()] = value.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gb"] = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        info["load_average_at_start"] = os.getloadavg()
    except OSError:
        pass
    return info


def software_versions(runner: Runner) -> dict[str, Any]:
    """Installed versions (read from package metadata: nothing is imported)
    and which nnexp the children import, with its git commit."""
    from importlib import metadata

    versions: dict[str, Any] = {}
    for package in ("tensorflow", "keras", "numpy", "nnexp"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    code = "import importlib.util as u; print(u.find_spec('nnexp').origin)"
    run = runner.run("versions", [runner.python, "-c", code])
    origin = run["stdout"].strip().splitlines()[-1:] or [""]
    versions["nnexp_path"] = origin[0]
    try:
        src = Path(origin[0]).resolve().parent.parent
        head = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if head.returncode == 0:
            versions["nnexp_git_head"] = head.stdout.strip()
            dirty = subprocess.run(
                ["git", "-C", str(src), "status", "--porcelain", "--", "nnexp"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            versions["nnexp_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return versions


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark nnexp against a plain Keras script.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny smoke version (CI): 1,000 images, 1 epoch, 1 repetition, "
        "no equivalence section unless named",
    )
    parser.add_argument("--reps", type=int, default=3, help="train repetitions")
    parser.add_argument("--epochs", type=int, default=3, help="train epochs per run")
    parser.add_argument("--train-size", type=int, default=None, help="images (55000)")
    parser.add_argument(
        "--train-arms",
        default="plain,nnexp,nnexp-t1",
        help="plain, nnexp, nnexp-tN (nnexp train --threads N)",
    )
    parser.add_argument("--sweep-reps", type=int, default=2)
    parser.add_argument("--sweep-activations", type=int, default=6, help="first N of 6")
    parser.add_argument("--jobs", default="1,2", help="--jobs values of nnexp compare")
    parser.add_argument("--data-procs", type=int, default=5)
    parser.add_argument("--data-calls", type=int, default=3)
    parser.add_argument("--startup-reps", type=int, default=5)
    parser.add_argument("--flops-seconds", type=float, default=1.0)
    parser.add_argument("--flops-rounds", type=int, default=3)
    parser.add_argument("--equivalence-epochs", type=int, default=2)
    parser.add_argument("--equivalence-train-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42, help="repetition r uses seed+r")
    parser.add_argument("--config", type=Path, default=REFERENCE_CONFIG)
    parser.add_argument(
        "--nnexp-src",
        type=Path,
        default=None,
        help="put this folder first on children's PYTHONPATH (benchmark another "
        "checkout of nnexp, e.g. a clean `git archive HEAD` export)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="run folders, logs")
    parser.add_argument("--out", type=Path, default=None, help="raw JSON")
    parser.add_argument("--note", default="", help="free text stored in the JSON")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {SECTIONS}")
    if args.quick:
        args.reps, args.epochs = 1, 1
        args.train_size = args.train_size or 1000
        args.train_arms = "plain,nnexp"
        args.sweep_reps, args.sweep_activations, args.jobs = 1, 1, "1"
        args.data_procs, args.data_calls = 1, 2
        args.startup_reps = 1
        args.flops_seconds, args.flops_rounds = 0.05, 1
        args.equivalence_epochs = 1
        args.equivalence_train_size = args.equivalence_train_size or 500
    elif args.train_size and not args.equivalence_train_size:
        args.equivalence_train_size = args.train_size
    if not args.sections:
        # The smoke version leaves out the equivalence check (one more
        # TensorFlow process, ~10 s) to stay well under a minute; name it to
        # run it: `run.py --quick equivalence`.
        args.sections = [s for s in SECTIONS if not (args.quick and s == "equivalence")]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = HERE / "out"
    workdir = (args.workdir or out_dir / f"work-{stamp}").resolve()
    out = (args.out or out_dir / f"bench-{stamp}.json").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    runner = Runner(workdir, args.nnexp_src, verbose=not args.quiet)
    args.config = args.config.resolve()

    results: dict[str, Any] = {
        "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "quick": args.quick,
        "arguments": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        "note": args.note,
        "config": str(args.config),
        "machine": machine_description(),
        "versions": software_versions(runner),
        "targets": TARGETS,
    }
    functions = {
        "train": bench_train,
        "sweep": bench_sweep,
        "data": bench_data,
        "startup": bench_startup,
        "flops": bench_flops,
        "equivalence": bench_equivalence,
    }
    started = time.perf_counter()
    for section in args.sections:
        section_started = time.perf_counter()
        results[section] = functions[section](runner, args)
        results[section]["section_seconds"] = time.perf_counter() - section_started
        # Save as we go: a long benchmark interrupted late keeps its numbers.
        _write(out, results, runner)
    results["total_seconds"] = time.perf_counter() - started
    try:
        results["machine"]["load_average_at_end"] = os.getloadavg()
    except OSError:
        pass
    _write(out, results, runner)
    if out.parent == out_dir.resolve():
        shutil.copyfile(out, out_dir / "latest.json")
    print(render(results))
    print(f"\nraw numbers: {out}\nlogs and run folders: {workdir}")
    if runner.failures:
        print(f"\n{len(runner.failures)} child process(es) failed:", file=sys.stderr)
        for failure in runner.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


def _write(path: Path, results: dict[str, Any], runner: Runner) -> None:
    results["failures"] = runner.failures
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(results, indent=1, default=str))
    temporary.replace(path)


if __name__ == "__main__":
    sys.exit(main())
