"""End-to-end tests of ``nnexp compare`` (and ``nnexp summary`` on sweeps).

Everything goes through click's CliRunner and trains for real with TensorFlow,
on a tiny slice of the real Fashion-MNIST (1,000 training and 500 validation
images, one hidden layer of 32 units, one epoch). One 2 activations x 2 seeds
sweep is shared by the whole module; tests that change a sweep work on a copy
of it, so each of them trains only the run it is about.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from scipy import stats as scipy_stats

from nnexp.cli import cli

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
DATA_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
pytestmark = pytest.mark.skipif(
    not all((DATA_DIR / name).is_file() for name in DATA_FILES),
    reason="needs the Debian package: apt-get install dataset-fashion-mnist",
)

CONFIG = {
    "name": "cmp",
    "seed": 11,
    "data": {"train_size": 1000, "validation_size": 500},
    "model": {"hidden_layers": [32], "initializer": "glorot_uniform"},
    "training": {
        "optimizer": {"name": "adam", "learning_rate": 0.003},
        "epochs": 1,
        "batch_size": 100,
    },
}
RUN_NAMES = ["relu-s11", "relu-s12", "tanh-s11", "tanh-s12"]
TOTAL_PARAMS = 784 * 32 + 32 + 32 * 10 + 10

RUN_HEADER = [
    "point",
    "seed",
    "activation",
    "status",
    "final_val_accuracy",
    "best_val_accuracy",
    "best_epoch",
    "final_val_loss",
    "test_accuracy",
    "test_loss",
    "seconds_per_epoch",
    "epochs_completed",
    "total_params",
    "config_hash",
    "run_dir",
    "message",
]
METRICS = [
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "final_val_loss",
    "best_epoch",
    "seconds_per_epoch",
]
SUMMARY_HEADER = (
    ["rank", "point", "activation", "seeds", "completed", "failed", "diverged"]
    + ["unfinished"]
    + [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "ci95")]
    + ["total_params", "p_value", "p_holm", "verdict"]
)
REPORT_FILES = [
    "sweep.yaml",
    "compare.csv",
    "compare_summary.csv",
    "compare.md",
    "compare.json",
    "curves.png",
    "final.png",
]


def invoke(*args: str | Path) -> Result:
    """Run ``nnexp ARGS`` in this process; real exceptions propagate."""
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def compare(
    config: Path, runs_dir: Path, *extra: str, activations: str = "relu,tanh"
) -> Result:
    return invoke(
        "compare",
        config,
        "--activations",
        activations,
        "--runs-dir",
        runs_dir,
        "--data-dir",
        DATA_DIR,
        *extra,
    )


def write_config(folder: Path) -> Path:
    path = folder / "cmp.yaml"
    path.write_text(yaml.safe_dump(CONFIG), encoding="utf-8")
    return path


def the_sweep_dir(runs_dir: Path) -> Path:
    (sweep_dir,) = [p for p in (runs_dir / "cmp-compare").iterdir() if p.is_dir()]
    return sweep_dir


def run_dirs(sweep_dir: Path) -> list[Path]:
    return sorted(path.parent for path in sweep_dir.rglob("result.json"))


def results(sweep_dir: Path) -> dict[Path, dict[str, Any]]:
    return {
        run_dir: json.loads((run_dir / "result.json").read_text())
        for run_dir in run_dirs(sweep_dir)
    }


def snapshot(sweep_dir: Path) -> dict[str, tuple[int, bytes]]:
    """Every file of every run folder, with its modification time and bytes."""
    return {
        str(path.relative_to(sweep_dir)): (path.stat().st_mtime_ns, path.read_bytes())
        for run_dir in run_dirs(sweep_dir)
        for path in sorted(run_dir.rglob("*"))
        if path.is_file()
    }


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def grid_line(done: int, to_run: int, resumed: int = 0, seeds: int = 2) -> str:
    total = done + to_run
    activations = total // seeds
    return (
        f"grid: activation ({activations}) x {seeds} seed(s) = {total} runs; "
        f"{done} already done, {to_run} to run ({resumed} resumed)"
    )


def no_claims_left(sweep_dir: Path) -> bool:
    return not list((sweep_dir / ".claims").glob("*.lock"))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The shared sweep: relu and tanh, seeds 11 and 12, trained once."""
    root = tmp_path_factory.mktemp("compare")
    config = write_config(root)
    runs_dir = root / "runs"
    result = compare(config, runs_dir, "--seeds", "2")
    sweep_dir = the_sweep_dir(runs_dir)
    return SimpleNamespace(
        config=config,
        runs_dir=runs_dir,
        result=result,
        sweep_dir=sweep_dir,
        snapshot=snapshot(sweep_dir),
    )


@pytest.fixture
def sweep_copy(sweep: SimpleNamespace, tmp_path: Path) -> SimpleNamespace:
    """A private copy of the shared sweep, to damage and resume."""
    runs_dir = tmp_path / "runs"
    shutil.copytree(sweep.runs_dir, runs_dir)
    return SimpleNamespace(
        config=sweep.config, runs_dir=runs_dir, sweep_dir=the_sweep_dir(runs_dir)
    )


# --------------------------------------------------------------------------
# The first sweep
# --------------------------------------------------------------------------


def test_first_sweep_trains_every_run_and_prints_the_table(
    sweep: SimpleNamespace,
) -> None:
    result = sweep.result
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert grid_line(done=0, to_run=4) in out
    assert f"sweep folder: {sweep.sweep_dir}" in out
    assert "(continuing)" not in out
    for column in ("activation", "final val acc %", "95% CI", "p (Holm)", "verdict"):
        assert column in out
    assert "relu" in out and "tanh" in out
    assert "best" in out
    assert "did not complete" not in out
    assert "Traceback" not in result.output


def test_first_sweep_folder_holds_every_run_and_report(
    sweep: SimpleNamespace,
) -> None:
    sweep_dir = sweep.sweep_dir
    assert sweep_dir.parent == sweep.runs_dir / "cmp-compare"
    for name in REPORT_FILES:
        assert (sweep_dir / name).is_file(), name
        assert (sweep_dir / name).stat().st_size > 0, name
    for name in ("curves.png", "final.png"):
        assert (sweep_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    folders = run_dirs(sweep_dir)
    assert len(folders) == 4
    assert sorted(folder.parent.name for folder in folders) == RUN_NAMES
    for run_dir, result in results(sweep_dir).items():
        assert result["status"] == "completed", run_dir
        assert result["epochs_completed"] == 1
        assert result["name"] == run_dir.parent.name
        for name in ("config.yaml", "metrics.csv", "model.keras", "checkpoint.npz"):
            assert (run_dir / name).is_file(), name
    assert no_claims_left(sweep_dir)


def test_sweep_yaml_lists_the_planned_runs(sweep: SimpleNamespace) -> None:
    described = yaml.safe_load((sweep.sweep_dir / "sweep.yaml").read_text())
    assert described["name"] == "cmp"
    assert described["axes"] == [
        {"key": "model.activation", "values": ["relu", "tanh"]}
    ]
    assert described["seeds"] == [11, 12]
    assert [run["run_name"] for run in described["runs"]] == RUN_NAMES
    by_name = {result["name"]: result for result in results(sweep.sweep_dir).values()}
    for run in described["runs"]:
        assert by_name[run["run_name"]]["config_hash"] == run["config_hash"]


def test_compare_csv_has_one_row_per_run(sweep: SimpleNamespace) -> None:
    header, rows = read_csv(sweep.sweep_dir / "compare.csv")
    assert header == RUN_HEADER
    assert len(rows) == 4
    assert [(r["point"], r["seed"], r["activation"]) for r in rows] == [
        ("relu", "11", "relu"),
        ("relu", "12", "relu"),
        ("tanh", "11", "tanh"),
        ("tanh", "12", "tanh"),
    ]
    for row in rows:
        assert row["status"] == "completed"
        assert row["message"] == ""
        assert row["total_params"] == str(TOTAL_PARAMS)
        assert row["epochs_completed"] == "1"
        result = json.loads((Path(row["run_dir"]) / "result.json").read_text())
        assert result["name"] == f"{row['point']}-s{row['seed']}"
        assert row["config_hash"] == result["config_hash"]
        assert float(row["final_val_accuracy"]) == result["final"]["val_accuracy"]
        assert float(row["test_accuracy"]) == result["test"]["accuracy"]


def hand_aggregate(sweep_dir: Path) -> list[dict[str, Any]]:
    """The summary rows recomputed from result.json alone, best first."""
    by_point: dict[str, list[dict[str, Any]]] = {}
    for result in results(sweep_dir).values():
        if result["status"] == "completed":
            point = result["name"].rsplit("-s", 1)[0]
            by_point.setdefault(point, []).append(result)

    def metric(result: dict[str, Any], name: str) -> float:
        return {
            "final_val_accuracy": result["final"]["val_accuracy"],
            "best_val_accuracy": result["best"]["val_accuracy"],
            "test_accuracy": result["test"]["accuracy"],
            "final_val_loss": result["final"]["val_loss"],
            "best_epoch": result["best"]["epoch"],
            "seconds_per_epoch": result["seconds_per_epoch"],
        }[name]

    rows = []
    for point, runs in by_point.items():
        row: dict[str, Any] = {"point": point, "completed": len(runs)}
        for name in METRICS:
            values = [float(metric(run, name)) for run in runs]
            n = len(values)
            mean = sum(values) / n
            std = statistics.stdev(values)
            row[f"{name}_mean"] = mean
            row[f"{name}_std"] = std
            row[f"{name}_ci95"] = scipy_stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
            row[f"{name}_values"] = values
        rows.append(row)
    order = ["relu", "tanh"]
    rows.sort(key=lambda r: (-r["final_val_accuracy_mean"], order.index(r["point"])))

    best = rows[0]["final_val_accuracy_values"]
    other = rows[1]["final_val_accuracy_values"]
    if max(best) == min(best) and max(other) == min(other):
        p = 1.0 if best[0] == other[0] else 0.0
    else:
        n1, n2 = len(other), len(best)
        m1, m2 = sum(other) / n1, sum(best) / n2
        v1 = sum((v - m1) ** 2 for v in other) / (n1 - 1) / n1
        v2 = sum((v - m2) ** 2 for v in best) / (n2 - 1) / n2
        t = (m1 - m2) / math.sqrt(v1 + v2)
        df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
        p = 2 * scipy_stats.t.sf(abs(t), df)
    rows[0].update(rank=1, p_value=math.nan, p_holm=math.nan, verdict="best")
    # Holm over a single comparison leaves p as it is.
    verdict = "tied with best" if p >= 0.05 else "worse"
    rows[1].update(rank=2, p_value=p, p_holm=p, verdict=verdict)
    return rows


def test_compare_summary_matches_numbers_recomputed_from_results(
    sweep: SimpleNamespace,
) -> None:
    header, rows = read_csv(sweep.sweep_dir / "compare_summary.csv")
    assert header == SUMMARY_HEADER
    assert len(rows) == 2
    expected = hand_aggregate(sweep.sweep_dir)
    for row, want in zip(rows, expected, strict=True):
        assert row["rank"] == str(want["rank"])
        assert row["point"] == row["activation"] == want["point"]
        assert (row["seeds"], row["completed"], row["failed"]) == ("2", "2", "0")
        assert (row["diverged"], row["unfinished"]) == ("0", "0")
        assert row["total_params"] == str(TOTAL_PARAMS)
        for name in METRICS:
            for stat in ("mean", "std", "ci95"):
                column = f"{name}_{stat}"
                assert float(row[column]) == pytest.approx(
                    want[column], rel=1e-9, abs=1e-12
                ), column
        for column in ("p_value", "p_holm"):
            if math.isnan(want[column]):
                assert math.isnan(float(row[column])), column
            else:
                assert float(row[column]) == pytest.approx(want[column], rel=1e-6)
        assert row["verdict"] == want["verdict"]


def test_compare_md_and_json_agree_with_the_csv(sweep: SimpleNamespace) -> None:
    _, summary = read_csv(sweep.sweep_dir / "compare_summary.csv")
    markdown = (sweep.sweep_dir / "compare.md").read_text()
    assert markdown.startswith("# cmp: sweep report")
    assert "| # | activation | final val acc % | 95% CI |" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 2
    assert table[1].startswith(f"| 1 | {summary[0]['point']} |")
    assert table[2].startswith(f"| 2 | {summary[1]['point']} |")

    document = json.loads((sweep.sweep_dir / "compare.json").read_text())
    assert document["rank_metric"] == "final_val_accuracy"
    assert document["seeds"] == [11, 12]
    assert [p["point"] for p in document["points"]] == [r["point"] for r in summary]
    assert [p["values"] for p in document["points"]] == [
        {"model.activation": r["point"]} for r in summary
    ]
    assert len(document["runs"]) == 4
    assert {run["status"] for run in document["runs"]} == {"completed"}
    means = [p["final_val_accuracy_mean"] for p in document["points"]]
    assert means == [float(r["final_val_accuracy_mean"]) for r in summary]


# --------------------------------------------------------------------------
# Running again: nothing to do, or only what did not finish
# --------------------------------------------------------------------------


def test_rerun_trains_nothing_and_leaves_runs_unchanged(
    sweep: SimpleNamespace,
) -> None:
    result = compare(sweep.config, sweep.runs_dir, "--seeds", "2")
    assert result.exit_code == 0, result.output
    assert grid_line(done=4, to_run=0) in result.stdout
    assert f"sweep folder: {sweep.sweep_dir} (continuing)" in result.stdout
    assert "final val acc %" in result.stdout
    assert the_sweep_dir(sweep.runs_dir) == sweep.sweep_dir
    assert snapshot(sweep.sweep_dir) == sweep.snapshot


def _mark_failed(run_dir: Path) -> None:
    result = json.loads((run_dir / "result.json").read_text())
    result["status"] = "failed"
    (run_dir / "result.json").write_text(json.dumps(result))
    (run_dir / "checkpoint.npz").unlink()


def _delete_result(run_dir: Path) -> None:
    (run_dir / "result.json").unlink()
    (run_dir / "checkpoint.npz").unlink()


def _mark_interrupted(run_dir: Path) -> None:
    result = json.loads((run_dir / "result.json").read_text())
    result["status"] = "interrupted"
    (run_dir / "result.json").write_text(json.dumps(result))


@pytest.mark.parametrize(
    ("damage", "resumed"),
    [
        pytest.param(_mark_failed, False, id="failed-without-checkpoint"),
        pytest.param(_delete_result, False, id="result-and-checkpoint-deleted"),
        pytest.param(_mark_interrupted, True, id="interrupted-with-checkpoint"),
    ],
)
def test_rerun_trains_only_the_unfinished_run(
    sweep_copy: SimpleNamespace,
    damage: Callable[[Path], None],
    resumed: bool,
) -> None:
    sweep_dir = sweep_copy.sweep_dir
    victim = next(d for d in run_dirs(sweep_dir) if d.parent.name == "tanh-s12")
    damage(victim)
    untouched = {
        key: value
        for key, value in snapshot(sweep_dir).items()
        if not key.startswith("tanh-s12/")
    }

    result = compare(sweep_copy.config, sweep_copy.runs_dir, "--seeds", "2")
    assert result.exit_code == 0, result.output
    assert grid_line(done=3, to_run=1, resumed=int(resumed)) in result.stdout
    assert "(continuing)" in result.stdout

    after = snapshot(sweep_dir)
    assert {
        k: v for k, v in after.items() if not k.startswith("tanh-s12/")
    } == untouched
    tanh_folders = [d for d in run_dirs(sweep_dir) if d.parent.name == "tanh-s12"]
    finished = results(sweep_dir)
    if resumed:
        assert tanh_folders == [victim]
        assert finished[victim]["status"] == "completed"
        assert len(finished[victim]["resumed_at"]) == 1
    else:
        new = [d for d in tanh_folders if d != victim]
        assert len(new) == 1
        assert finished[new[0]]["status"] == "completed"
    _, rows = read_csv(sweep_dir / "compare.csv")
    assert [row["status"] for row in rows] == ["completed"] * 4
    assert no_claims_left(sweep_dir)


def test_run_that_raises_is_recorded_failed_and_the_sweep_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nnexp.experiment as experiment

    original = experiment._train_into

    def crash_tanh(config: Any, *args: Any, **kwargs: Any) -> Any:
        if config.name == "tanh-s11":
            raise RuntimeError("simulated crash in tanh-s11")
        return original(config, *args, **kwargs)

    monkeypatch.setattr(experiment, "_train_into", crash_tanh)
    config = write_config(tmp_path)
    runs_dir = tmp_path / "runs"
    result = compare(config, runs_dir, "--seeds", "1", "--jobs", "1")
    assert result.exit_code == 1, result.output
    assert "1 of 2 runs did not complete" in result.stdout
    assert "simulated crash in tanh-s11" in result.stdout

    sweep_dir = the_sweep_dir(runs_dir)
    by_name = {r["name"]: r for r in results(sweep_dir).values()}
    assert by_name["relu-s11"]["status"] == "completed"
    assert by_name["tanh-s11"]["status"] == "failed"
    assert by_name["tanh-s11"]["message"] == "RuntimeError: simulated crash in tanh-s11"
    _, runs = read_csv(sweep_dir / "compare.csv")
    assert [(r["point"], r["status"]) for r in runs] == [
        ("relu", "completed"),
        ("tanh", "failed"),
    ]
    assert runs[1]["message"] == "RuntimeError: simulated crash in tanh-s11"
    _, summary = read_csv(sweep_dir / "compare_summary.csv")
    assert [
        (r["point"], r["completed"], r["failed"], r["verdict"]) for r in summary
    ] == [
        ("relu", "1", "0", "best"),
        ("tanh", "0", "1", "no completed runs"),
    ]
    assert no_claims_left(sweep_dir)
    listing = invoke("summary", runs_dir)
    assert listing.exit_code == 0, listing.output
    assert "2/2 (1 failed)" in listing.stdout

    # Fixed: the rerun trains only the failed run; with one seed, no test.
    monkeypatch.undo()
    result = compare(config, runs_dir, "--seeds", "1")
    assert result.exit_code == 0, result.output
    assert grid_line(done=1, to_run=1, seeds=1) in result.stdout
    assert "no test (1 seed)" in result.stdout
    statuses = sorted((r["name"], r["status"]) for r in results(sweep_dir).values())
    assert statuses == [
        ("relu-s11", "completed"),
        ("tanh-s11", "completed"),
        ("tanh-s11", "failed"),
    ]
    _, summary = read_csv(sweep_dir / "compare_summary.csv")
    assert sorted(r["verdict"] for r in summary) == ["best", "no test (1 seed)"]
    assert all(r["completed"] == "1" and r["failed"] == "0" for r in summary)


def test_diverged_run_exits_1_and_is_not_retried(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    runs_dir = tmp_path / "runs"
    blow_up = "training.optimizer={name: sgd, learning_rate: 1.0e+12}"
    args = ("--seeds", "1", "--set", blow_up)
    result = compare(config, runs_dir, *args, activations="relu")
    assert result.exit_code == 1, result.output
    assert "1 of 1 runs did not complete" in result.stdout
    sweep_dir = the_sweep_dir(runs_dir)
    (finished,) = results(sweep_dir).values()
    assert finished["status"] == "diverged"
    assert "the training loss became" in finished["message"]
    _, summary = read_csv(sweep_dir / "compare_summary.csv")
    assert [(r["completed"], r["diverged"], r["verdict"]) for r in summary] == [
        ("0", "1", "no completed runs")
    ]

    # The same config and seed would diverge again: the rerun skips it.
    before = snapshot(sweep_dir)
    result = compare(config, runs_dir, *args, activations="relu")
    assert result.exit_code == 1, result.output
    assert grid_line(done=1, to_run=0, seeds=1) in result.stdout
    assert snapshot(sweep_dir) == before


def test_jobs_2_trains_in_worker_processes(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    runs_dir = tmp_path / "runs"
    result = compare(
        config, runs_dir, "--seeds", "2", "--jobs", "2", activations="relu"
    )
    assert result.exit_code == 0, result.output
    assert grid_line(done=0, to_run=2) in result.stdout
    sweep_dir = the_sweep_dir(runs_dir)
    finished = results(sweep_dir)
    assert sorted(r["name"] for r in finished.values()) == ["relu-s11", "relu-s12"]
    assert {r["status"] for r in finished.values()} == {"completed"}
    for name in REPORT_FILES:
        assert (sweep_dir / name).is_file(), name
    _, summary = read_csv(sweep_dir / "compare_summary.csv")
    assert [(r["point"], r["completed"], r["verdict"]) for r in summary] == [
        ("relu", "2", "best")
    ]
    assert no_claims_left(sweep_dir)


# --------------------------------------------------------------------------
# nnexp summary on sweeps
# --------------------------------------------------------------------------


def test_summary_of_a_sweep_folder_prints_the_table_without_training(
    sweep: SimpleNamespace,
) -> None:
    result = invoke("summary", sweep.sweep_dir)
    assert result.exit_code == 0, result.output
    assert "cmp: 4 runs" in result.stdout
    for text in ("final val acc %", "95% CI", "verdict", "relu", "tanh", "best"):
        assert text in result.stdout
    assert "grid:" not in result.stdout
    assert snapshot(sweep.sweep_dir) == sweep.snapshot

    result = invoke("summary", sweep.sweep_dir, "--json")
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    document = json.loads(result.stdout, parse_constant=refuse)
    assert [p["rank"] for p in document["points"]] == [1, 2]
    # The best row is not tested against itself: null, not NaN.
    assert document["points"][0]["p_value"] is None
    assert {p["point"] for p in document["points"]} == {"relu", "tanh"}


def test_summary_of_the_runs_folder_lists_the_sweep(sweep: SimpleNamespace) -> None:
    result = invoke("summary", sweep.runs_dir)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "sweeps under" in out
    assert str(sweep.sweep_dir.relative_to(sweep.runs_dir)) in out
    assert "4/4" in out
    assert snapshot(sweep.sweep_dir) == sweep.snapshot


# --------------------------------------------------------------------------
# Mistakes: one error line, exit 2, nothing trained
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            ["--activations", "relu,relux"],
            "error: --activations: unknown activation 'relux' (did you mean 'relu'?)",
            id="unknown-activation",
        ),
        pytest.param(
            ["--activations", " , "],
            "error: --activations: give at least one activation name",
            id="no-activation",
        ),
        pytest.param(
            ["--vary", "model.batch_norm"],
            "error: --vary 'model.batch_norm': expected KEY=V1,V2",
            id="vary-without-equals",
        ),
        pytest.param(
            ["--vary", "model.batch_norm=after,,before"],
            "error: --vary model.batch_norm: give at least one non-empty value",
            id="vary-empty-value",
        ),
        pytest.param(
            ["--vary", "model.batchnorm=after"],
            "error: --vary model.batchnorm: unknown key 'model.batchnorm'",
            id="vary-unknown-key",
        ),
        pytest.param(
            ["--vary", "model.batch_norm=[after"],
            "error: --vary model.batch_norm: not valid YAML",
            id="vary-broken-yaml",
        ),
        pytest.param(
            ["--vary", "model.batch_norm=after,sideways"],
            "error: grid point model.activation='relu', model.batch_norm='sideways':",
            id="invalid-grid-point",
        ),
        pytest.param(
            ["--activations", "leaky_relu,tanh"]
            + ["--vary", "model.activation.negative_slope=0.1,0.2"],
            "error: grid point model.activation='tanh', "
            "model.activation.negative_slope=0.1: model.activation.negative_slope: "
            "not an argument of tanh",
            id="argument-of-another-activation",
        ),
        pytest.param(
            ["--vary", "seed=1,2"],
            "error: --vary seed: use --seeds for seeds",
            id="vary-seed",
        ),
    ],
)
def test_bad_grid_options_are_one_error_line(
    tmp_path: Path, options: list[str], message: str
) -> None:
    config = write_config(tmp_path)
    runs_dir = tmp_path / "runs"
    if "--activations" not in options:
        options = ["--activations", "relu,tanh", *options]
    result = invoke(
        "compare", config, "--runs-dir", runs_dir, "--data-dir", DATA_DIR, *options
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message), lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    # Every grid point is checked before anything is created or trained.
    assert not runs_dir.exists()
