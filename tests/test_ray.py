"""The Ray backend: a local Ray instance with 2 CPUs runs tiny sweeps.

The sweep folder a Ray sweep writes must match what the local backend writes
for the same grid (same run folders, same metrics for the same seeds), a task
that raises must be recorded failed without stopping the others, and a rerun
must skip finished runs.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nnexp.cli import cli

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
name: raytiny
seed: 42
data: {train_size: 1000, validation_size: 500}
model: {hidden_layers: [16]}
training: {epochs: 2, optimizer: {name: adam}}
"""


@pytest.fixture(scope="module")
def ray_instance() -> Any:
    """One local Ray with 2 CPUs for the module (starting Ray is slow)."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="ERROR",
        log_to_driver=False,
        runtime_env={
            "worker_process_setup_hook": "tests.ray_fault.install",
            "env_vars": {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        },
    )
    yield ray
    ray.shutdown()


def _compare(config: Path, runs_dir: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        cli,
        [
            "compare",
            str(config),
            "--activations",
            "relu,tanh",
            "--runs-dir",
            str(runs_dir),
            *extra,
        ],
    )


def _metrics_by_run(sweep_dir: Path) -> dict[str, list[list[str]]]:
    """Each run folder's name -> its metrics.csv rows without the timing column."""
    runs = {}
    for metrics in sweep_dir.glob("*/*/metrics.csv"):
        with open(metrics, newline="") as f:
            rows = [row[:-1] for row in csv.reader(f)]  # drop 'seconds'
        runs[metrics.parent.parent.name] = rows
    return runs


def _sweep_dir(runs_dir: Path) -> Path:
    (sweep,) = [p for p in (runs_dir / "raytiny-compare").iterdir() if p.is_dir()]
    return sweep


def test_a_ray_sweep_matches_the_local_one_and_a_rerun_skips_it(
    ray_instance: Any, tmp_path: Path
) -> None:
    config = tmp_path / "raytiny.yaml"
    config.write_text(CONFIG)

    on_ray = _compare(config, tmp_path / "ray", "--seeds", "2", "--backend", "ray")
    local = _compare(config, tmp_path / "local", "--seeds", "2")

    assert on_ray.exit_code == 0, on_ray.output
    assert local.exit_code == 0, local.output
    ray_sweep, local_sweep = (
        _sweep_dir(tmp_path / "ray"),
        _sweep_dir(tmp_path / "local"),
    )
    ray_runs, local_runs = _metrics_by_run(ray_sweep), _metrics_by_run(local_sweep)
    assert sorted(ray_runs) == ["relu-s42", "relu-s43", "tanh-s42", "tanh-s43"]
    assert ray_runs == local_runs
    for sweep in (ray_sweep, local_sweep):
        for run_dir in sweep.glob("*/*"):
            assert {p.name for p in run_dir.iterdir()} >= {
                "config.yaml",
                "metrics.csv",
                "result.json",
                "model.keras",
                "curves.png",
                "checkpoint.npz",
            }
    assert (ray_sweep / "compare_summary.csv").read_text().splitlines()[1:] != []

    again = _compare(config, tmp_path / "ray", "--seeds", "2", "--backend", "ray")
    assert again.exit_code == 0, again.output
    assert "4 already done, 0 to run" in again.output
    assert len(list(ray_sweep.glob("*/*/result.json"))) == 4


def test_a_task_that_raises_is_recorded_failed_and_the_others_finish(
    ray_instance: Any, tmp_path: Path
) -> None:
    config = tmp_path / "raytiny.yaml"
    config.write_text(CONFIG.replace("seed: 42", "seed: 7"))

    result = _compare(
        config, tmp_path, "--seeds", "1", "--backend", "ray", "--ship-data"
    )

    assert result.exit_code == 1, result.output
    with open(_sweep_dir(tmp_path) / "compare.csv", newline="") as f:
        statuses = {
            row["point"]: (row["status"], row["message"]) for row in csv.DictReader(f)
        }
    assert statuses["tanh"][0] == "completed"
    assert statuses["relu"] == (
        "failed",
        "RuntimeError: injected failure on the worker",
    )
    assert "1 of 2 runs did not complete" in result.output
