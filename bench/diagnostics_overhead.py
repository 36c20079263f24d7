"""Time per epoch of the reference BN model with and without --diagnostics.

Runs `nnexp train configs/bn_after.yaml` alternately without and with
diagnostics, several times, in fresh processes, and reports the median
steady-state seconds per epoch (epochs 2 and later, as result.json records
them) of each and their ratio. The probe-batch statistics are computed after
each epoch, outside the timed epoch, so their cost is reported separately from
the wall time of the whole command.

    .venv/bin/python bench/diagnostics_overhead.py --reps 3 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(
    config: Path, epochs: int, diagnostics: bool, runs_dir: Path, extra: list[str]
) -> dict:
    command = [
        sys.executable,
        "-m",
        "nnexp",
        "train",
        str(config),
        "--epochs",
        str(epochs),
        "--runs-dir",
        str(runs_dir),
        *extra,
    ]
    if diagnostics:
        command.append("--diagnostics")
    started = time.perf_counter()
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    wall = time.perf_counter() - started
    (result_file,) = runs_dir.rglob("result.json")
    result = json.loads(result_file.read_text())
    return {"seconds_per_epoch": result["seconds_per_epoch"], "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--config", type=Path, default=ROOT / "configs" / "bn_after.yaml"
    )
    parser.add_argument("--train-size", type=int, default=None)
    arguments = parser.parse_args()

    config = arguments.config
    extra = (
        ["--set", f"data.train_size={arguments.train_size}"]
        if arguments.train_size
        else []
    )

    samples: dict[str, list[dict]] = {"plain": [], "diagnostics": []}
    for rep in range(arguments.reps):
        for arm in ("plain", "diagnostics"):
            with tempfile.TemporaryDirectory() as runs_dir:
                sample = run_once(
                    config,
                    arguments.epochs,
                    arm == "diagnostics",
                    Path(runs_dir),
                    extra,
                )
            samples[arm].append(sample)
            print(
                f"rep {rep + 1} {arm:12s} {sample['seconds_per_epoch']:.3f} s/epoch, "
                f"{sample['wall_seconds']:.1f} s wall",
                flush=True,
            )

    summary = {}
    for arm, values in samples.items():
        summary[arm] = {
            "median_seconds_per_epoch": statistics.median(
                v["seconds_per_epoch"] for v in values
            ),
            "median_wall_seconds": statistics.median(v["wall_seconds"] for v in values),
        }
    epoch_ratio = (
        summary["diagnostics"]["median_seconds_per_epoch"]
        / summary["plain"]["median_seconds_per_epoch"]
    )
    wall_ratio = (
        summary["diagnostics"]["median_wall_seconds"]
        / summary["plain"]["median_wall_seconds"]
    )
    paired = [
        d["seconds_per_epoch"] / p["seconds_per_epoch"]
        for p, d in zip(samples["plain"], samples["diagnostics"], strict=True)
    ]
    print(
        json.dumps(
            {
                "summary": summary,
                "epoch_ratio": epoch_ratio,
                "wall_ratio": wall_ratio,
                "paired_epoch_ratios": paired,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
