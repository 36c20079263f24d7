"""The report of a sweep, computed from its folder alone.

:func:`collect_sweep` reads ``sweep.yaml`` and every run folder in the sweep;
:func:`aggregate` turns the runs into one row per grid point (seeds pooled,
failed and diverged runs counted apart and left out of the means) with
confidence intervals and Welch tests against the best row (see
:mod:`nnexp.stats`). :func:`export_sweep` writes ``compare.csv``,
``compare_summary.csv``, ``compare.md``, ``compare.json``, ``curves.png`` and
``final.png``. Nothing here needs the process that trained.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from nnexp.diagnostics import headline as diagnostics_headline
from nnexp.diagnostics import read_diagnostics
from nnexp.errors import RunError
from nnexp.runs import (
    is_whole,
    iter_run_dirs,
    read_metrics,
    read_run,
    write_csv,
    write_json,
    write_text,
    wrong_type,
)
from nnexp.stats import ALPHA, Summary, holm_adjust, summarize, welch_test

RANK_METRIC = "final_val_accuracy"
"""Rows are ranked by the mean validation accuracy after the last epoch. The
best-epoch accuracy is reported too, but picking the maximum over noisy epochs
biases it upward, so it does not decide the ranking."""

METRICS = (
    "final_val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "final_val_loss",
    "best_epoch",
    "seconds_per_epoch",
)

DIAGNOSTIC_METRICS = ("gradient_ratio", "max_dead_fraction")
"""Added to the report when the runs recorded diagnostics: the ratio of the
first hidden layer's kernel-gradient norm to the output layer's, and the
largest dead-unit fraction of any layer, both at the last epoch."""

RUN_COLUMNS = [
    "point",
    "seed",
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


@dataclass
class RunRow:
    """One run of the sweep, flattened."""

    point: str
    values: dict[str, Any]
    seed: int
    status: str
    metrics: dict[str, float]
    run_dir: Path | None
    config_hash: str
    message: str = ""
    total_params: int | None = None
    epochs_completed: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    has_diagnostics: bool = False

    def as_csv_row(self, axis_names: list[str]) -> dict[str, Any]:
        row = {
            "point": self.point,
            "seed": self.seed,
            "status": self.status,
            **{name: _flat(self.values.get(key)) for key, name in axis_names},
            **self.metrics,
            "epochs_completed": self.epochs_completed,
            "total_params": self.total_params,
            "config_hash": self.config_hash,
            "run_dir": str(self.run_dir) if self.run_dir else "",
            "message": self.message,
        }
        return row


@dataclass
class PointRow:
    """One grid point with its seeds aggregated."""

    point: str
    values: dict[str, Any]
    runs: list[RunRow]
    summaries: dict[str, Summary]
    total_params: int | None
    rank: int = 0
    p_value: float = math.nan
    p_holm: float = math.nan
    verdict: str = ""

    @property
    def gradient_flag(self) -> str:
        from nnexp.diagnostics import gradient_flag

        summary = self.summaries.get("gradient_ratio")
        return gradient_flag(summary.mean) if summary else ""

    def count(self, status: str) -> int:
        return sum(1 for run in self.runs if run.status == status)

    @property
    def missing(self) -> int:
        return sum(
            1
            for run in self.runs
            if run.status in ("missing", "running", "interrupted")
        )

    def as_csv_row(self, axis_names: list[tuple[str, str]]) -> dict[str, Any]:
        row: dict[str, Any] = {"rank": self.rank, "point": self.point}
        for key, name in axis_names:
            row[name] = _flat(self.values.get(key))
        row.update(
            {
                "seeds": len(self.runs),
                "completed": self.count("completed"),
                "failed": self.count("failed"),
                "diverged": self.count("diverged"),
                "unfinished": self.missing,
            }
        )
        for metric in METRICS:
            summary = self.summaries[metric]
            row[f"{metric}_mean"] = summary.mean
            row[f"{metric}_std"] = summary.std
            row[f"{metric}_ci95"] = summary.ci95
        for metric in DIAGNOSTIC_METRICS:
            if metric in self.summaries:
                row[f"{metric}_mean"] = self.summaries[metric].mean
        if "gradient_ratio" in self.summaries:
            row["gradient_flag"] = self.gradient_flag
        row.update(
            {
                "total_params": self.total_params,
                "p_value": self.p_value,
                "p_holm": self.p_holm,
                "verdict": self.verdict,
            }
        )
        return row


def _flat(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


@dataclass
class SweepReport:
    """Everything the sweep report shows."""

    sweep_dir: Path
    description: dict[str, Any]
    runs: list[RunRow]
    points: list[PointRow]

    @property
    def axis_names(self) -> list[tuple[str, str]]:
        names = []
        for axis in self.description.get("axes", []):
            key = axis["key"]
            names.append(
                (
                    key,
                    key.replace("model.", "")
                    .replace("training.", "")
                    .replace("data.", ""),
                )
            )
        return names

    @property
    def has_diagnostics(self) -> bool:
        return any(run.has_diagnostics for run in self.runs)

    @property
    def all_succeeded(self) -> bool:
        return all(run.status == "completed" for run in self.runs)


def read_sweep_description(sweep_dir: Path) -> dict[str, Any]:
    path = Path(sweep_dir) / "sweep.yaml"
    try:
        described = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{sweep_dir} is not a sweep folder (no sweep.yaml)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise RunError(f"{path} is unreadable: {exc}") from None
    if not isinstance(described, dict) or "runs" not in described:
        raise RunError(f"{path} is unreadable: not a sweep description")
    problem = sweep_description_problem(described)
    if problem:
        raise RunError(f"{path} is malformed: {problem}")
    return described


def sweep_description_problem(described: dict[str, Any]) -> str | None:
    """What is wrong with the structure of a parsed ``sweep.yaml`` (the first
    problem, as ``'runs[0].seed' should be a whole number, got a string``), or
    None. A file cut short usually still parses as YAML, so the plan is also
    checked to be whole: ``base_config`` (written last) is there and the runs
    listed are every combination of the axes' values and the seeds."""

    for key in ("name", "axes", "seeds", "runs", "base_config"):
        if key not in described:
            return f"'{key}' is missing (is the file cut short?)"
    if not isinstance(described["name"], str):
        return wrong_type("name", "a string", described["name"])
    axes = described["axes"]
    if not isinstance(axes, list):
        return wrong_type("axes", "a list", axes)
    for index, axis in enumerate(axes):
        where = f"axes[{index}]"
        if not isinstance(axis, dict):
            return wrong_type(where, "a mapping", axis)
        for key in ("key", "values"):
            if key not in axis:
                return f"'{where}.{key}' is missing"
        if not isinstance(axis["key"], str):
            return wrong_type(f"{where}.key", "a string", axis["key"])
        if not isinstance(axis["values"], list):
            return wrong_type(f"{where}.values", "a list", axis["values"])
        if not axis["values"]:
            return f"'{where}.values' is empty"
    seeds = described["seeds"]
    if not isinstance(seeds, list):
        return wrong_type("seeds", "a list", seeds)
    if not seeds:
        return "'seeds' is empty"
    for index, seed in enumerate(seeds):
        if not is_whole(seed):
            return wrong_type(f"seeds[{index}]", "a whole number", seed)
    runs = described["runs"]
    if not isinstance(runs, list):
        return wrong_type("runs", "a list", runs)
    fields = {
        "point": (str, "a string"),
        "values": (dict, "a mapping"),
        "seed": (int, "a whole number"),
        "config_hash": (str, "a string"),
    }
    for index, run in enumerate(runs):
        where = f"runs[{index}]"
        if not isinstance(run, dict):
            return wrong_type(where, "a mapping", run)
        for key, (kind, expected) in fields.items():
            if key not in run:
                return f"'{where}.{key}' is missing"
            value = run[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                return wrong_type(f"{where}.{key}", expected, value)
    if not isinstance(described["base_config"], dict):
        return wrong_type("base_config", "a mapping", described["base_config"])
    planned = len(seeds) * math.prod(len(axis["values"]) for axis in axes)
    if len(runs) != planned:
        return (
            f"it lists {len(runs)} run(s), but its axes and seeds make {planned} "
            "(is the file cut short?)"
        )
    return None


def _run_metrics(result: dict[str, Any] | None) -> dict[str, float]:
    result = result or {}
    final = result.get("final") or {}
    best = result.get("best") or {}
    test = result.get("test") or {}

    def number(value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return {
        "final_val_accuracy": number(final.get("val_accuracy")),
        "best_val_accuracy": number(best.get("val_accuracy")),
        "best_epoch": number(best.get("epoch")),
        "final_val_loss": number(final.get("val_loss")),
        "test_accuracy": number(test.get("accuracy")),
        "test_loss": number(test.get("loss")),
        "seconds_per_epoch": number(result.get("seconds_per_epoch")),
    }


def collect_sweep(sweep_dir: Path) -> tuple[dict[str, Any], list[RunRow]]:
    """Read the sweep's plan and the result of every planned run.

    A run with several folders (a retry after a failure) is represented by its
    best-status folder: completed, then diverged, then the newest other.
    """
    sweep_dir = Path(sweep_dir)
    description = read_sweep_description(sweep_dir)
    records: dict[str, list] = {}
    for run_dir in iter_run_dirs(sweep_dir):
        record = read_run(run_dir)
        if record.config_hash:
            records.setdefault(record.config_hash, []).append(record)

    order = {"completed": 0, "diverged": 1}
    rows = []
    for planned in description["runs"]:
        found = records.get(planned["config_hash"], [])
        # Best status first; among equals the newest folder (timestamps sort
        # lexically, and Python's sort is stable).
        found.sort(key=lambda r: r.path.name, reverse=True)
        found.sort(key=lambda r: order.get(r.status, 2))
        record = found[0] if found else None
        result = record.result if record else None
        history = []
        diagnostic_rows: list[dict[str, Any]] = []
        if record is not None:
            try:
                history = read_metrics(record.path)
            except RunError:
                history = []
            diagnostic_rows = read_diagnostics(record.path)
        metrics = _run_metrics(result)
        if diagnostic_rows:
            metrics.update(diagnostics_headline(diagnostic_rows))
        rows.append(
            RunRow(
                point=planned["point"],
                values=planned["values"],
                seed=int(planned["seed"]),
                status=record.status if record else "missing",
                metrics=metrics,
                run_dir=record.path if record else None,
                config_hash=planned["config_hash"],
                message=(result or {}).get("message", "") if record else "",
                total_params=((result or {}).get("params") or {}).get("total_params"),
                epochs_completed=int((result or {}).get("epochs_completed") or 0),
                history=history,
                has_diagnostics=bool(diagnostic_rows),
            )
        )
    return description, rows


def aggregate(description: dict[str, Any], runs: list[RunRow]) -> list[PointRow]:
    """One row per grid point, ranked, with tests against the best row."""
    points: dict[str, PointRow] = {}
    for run in runs:
        if run.point not in points:
            points[run.point] = PointRow(run.point, run.values, [], {}, None)
        points[run.point].runs.append(run)

    for point in points.values():
        completed = [run for run in point.runs if run.status == "completed"]
        for metric in METRICS:
            point.summaries[metric] = summarize(
                [run.metrics[metric] for run in completed]
            )
        if any(run.has_diagnostics for run in point.runs):
            for metric in DIAGNOSTIC_METRICS:
                point.summaries[metric] = summarize(
                    [run.metrics.get(metric, math.nan) for run in completed]
                )
        params = [run.total_params for run in point.runs if run.total_params]
        point.total_params = params[0] if params else None

    def rank_key(point: PointRow) -> tuple[int, float]:
        # Rows with two or more completed seeds come first: a row that kept a
        # single lucky seed (the others failed or diverged) must not become
        # the best row, which every other row is tested against.
        summary = point.summaries[RANK_METRIC]
        tier = 0 if summary.n >= 2 else 1 if summary.n == 1 else 2
        return tier, -summary.mean if math.isfinite(summary.mean) else math.inf

    ordered = sorted(points.values(), key=rank_key)
    for rank, point in enumerate(ordered, start=1):
        point.rank = rank
    if not ordered:
        return ordered
    best = ordered[0]
    _test_against_best(ordered)

    for point in ordered:
        n = point.summaries[RANK_METRIC].n
        if n == 0:
            point.verdict = "no completed runs"
        elif point is best:
            point.verdict = "best"
        elif n < 2 or best.summaries[RANK_METRIC].n < 2:
            point.verdict = "no test (1 seed)"
        elif math.isnan(point.p_holm):
            point.verdict = "no test"
        elif point.p_holm >= ALPHA:
            point.verdict = "tied with best"
        else:
            point.verdict = "worse"
    return ordered


def _test_against_best(ordered: list[PointRow]) -> None:
    """Set each row's raw and Holm-adjusted p-value against the best row.

    The best row is chosen on the same runs it is tested on, so the family
    corrected for is every pair of testable rows, not only the pairs with the
    best: Holm over all pairs bounds the chance of calling any row worse when
    all are equal at 5%, whichever row happens to come out on top. Only the
    pairs with the best row are reported.
    """
    values = {
        point.point: [
            run.metrics[RANK_METRIC] for run in point.runs if run.status == "completed"
        ]
        for point in ordered
    }
    best = ordered[0]
    pairs = [
        (a, b)
        for i, a in enumerate(ordered)
        for b in ordered[i + 1 :]
        if a.summaries[RANK_METRIC].n >= 2 and b.summaries[RANK_METRIC].n >= 2
    ]
    raw = [welch_test(values[a.point], values[b.point]).p for a, b in pairs]
    adjusted = holm_adjust(raw)
    for (a, b), p, p_holm in zip(pairs, raw, adjusted, strict=True):
        if a is best:
            b.p_value, b.p_holm = p, p_holm


def build_report(sweep_dir: Path) -> SweepReport:
    """Read a sweep folder into a :class:`SweepReport`."""
    description, runs = collect_sweep(sweep_dir)
    return SweepReport(Path(sweep_dir), description, runs, aggregate(description, runs))


# --------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------


def _format_mean(summary: Summary, percent: bool = True, digits: int = 2) -> str:
    if summary.n == 0:
        return "-"
    scale = 100.0 if percent else 1.0
    text = f"{summary.mean * scale:.{digits}f}"
    if summary.n > 1:
        text += f" ± {summary.std * scale:.{digits}f}"
    return text


def _format_ci(summary: Summary, percent: bool = True, digits: int = 2) -> str:
    if summary.n < 2:
        return "-"
    scale = 100.0 if percent else 1.0
    return f"[{summary.low * scale:.{digits}f}, {summary.high * scale:.{digits}f}]"


def _format_p(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def table_rows(report: SweepReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the sweep table (shared by the console and Markdown)."""
    header = (
        ["#"]
        + [name for _, name in report.axis_names]
        + [
            "final val acc %",
            "95% CI",
            "best val acc %",
            "test acc %",
            "val loss",
            "best epoch",
            "s/epoch",
            "params",
            "ok/failed/diverged",
            "p (Holm)",
            "verdict",
        ]
    )
    if report.has_diagnostics:
        header[-3:-3] = ["grad first/out", "max dead %", "gradients"]
    rows = []
    for point in report.points:
        s = point.summaries
        rows.append(
            [str(point.rank)]
            + [value_text(point.values.get(key)) for key, _ in report.axis_names]
            + [
                _format_mean(s["final_val_accuracy"]),
                _format_ci(s["final_val_accuracy"]),
                _format_mean(s["best_val_accuracy"]),
                _format_mean(s["test_accuracy"]),
                _format_mean(s["final_val_loss"], percent=False, digits=3),
                _format_mean(s["best_epoch"], percent=False, digits=1),
                _format_mean(s["seconds_per_epoch"], percent=False, digits=2),
                f"{point.total_params:,}" if point.total_params else "-",
                f"{point.count('completed')}/{point.count('failed')}/{point.count('diverged')}"
                + (f" (+{point.missing} unfinished)" if point.missing else ""),
                _format_p(point.p_holm),
                point.verdict,
            ]
        )
        if report.has_diagnostics:
            ratio = s.get("gradient_ratio")
            dead = s.get("max_dead_fraction")
            rows[-1][-3:-3] = [
                f"{ratio.mean:.3g}" if ratio and ratio.n else "-",
                f"{100 * dead.mean:.1f}" if dead and dead.n else "-",
                point.gradient_flag or "ok" if ratio and ratio.n else "-",
            ]
    return header, rows


def value_text(value: Any) -> str:
    if isinstance(value, dict):
        args = ", ".join(f"{k}={v}" for k, v in value.items() if k != "name")
        return f"{value.get('name')}({args})" if args else str(value.get("name"))
    return str(value)


def markdown_table(report: SweepReport) -> str:
    header, rows = table_rows(report)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def export_sweep(report: SweepReport) -> list[Path]:
    """Write the sweep's CSV, Markdown, JSON and figures; return their paths."""
    from nnexp.plots import plot_sweep_curves, plot_sweep_final

    sweep_dir = report.sweep_dir
    axis_names = report.axis_names
    axis_columns = [name for _, name in axis_names]

    run_rows = [run.as_csv_row(axis_names) for run in report.runs]
    write_csv(
        sweep_dir / "compare.csv",
        run_rows,
        RUN_COLUMNS[:2] + axis_columns + RUN_COLUMNS[2:],
    )

    summary_rows = [point.as_csv_row(axis_names) for point in report.points]
    summary_columns = list(summary_rows[0]) if summary_rows else ["rank", "point"]
    write_csv(sweep_dir / "compare_summary.csv", summary_rows, summary_columns)

    title = f"# {report.description.get('name', sweep_dir.name)}: sweep report\n\n"
    notes = (
        "\nRanked by mean final validation accuracy over completed seeds (± sample "
        "std); rows with fewer than 2 completed seeds come after the others. 95% "
        "CI: Student t interval of the mean. p (Holm): two-sided Welch t-test "
        "against the best row, Holm-adjusted over all pairs of rows, since the "
        "best row is chosen on these same runs. 'tied with best' means p (Holm) "
        ">= 0.05: not shown to differ, which is not the same as equal; with few "
        "seeds only large differences can be shown. Failed and diverged runs are "
        "excluded from the means.\n"
    )
    write_text(sweep_dir / "compare.md", title + markdown_table(report) + notes)

    write_json(
        sweep_dir / "compare.json",
        {
            "sweep_dir": str(sweep_dir),
            "rank_metric": RANK_METRIC,
            "axes": report.description.get("axes", []),
            "seeds": report.description.get("seeds", []),
            "points": [
                {
                    **point.as_csv_row(axis_names),
                    "values": point.values,
                }
                for point in report.points
            ],
            "runs": [
                {**run.as_csv_row(axis_names), "values": run.values}
                for run in report.runs
            ],
        },
    )

    curves = {}
    for point in report.points:
        histories = [
            run.history
            for run in point.runs
            if run.status == "completed" and run.history
        ]
        curves[point.point] = histories
    plot_sweep_curves(curves, sweep_dir / "curves.png")
    plot_sweep_final(
        [
            (point.point, point.summaries["final_val_accuracy"], point.verdict)
            for point in report.points
        ],
        sweep_dir / "final.png",
    )
    return [
        sweep_dir / name
        for name in (
            "compare.csv",
            "compare_summary.csv",
            "compare.md",
            "compare.json",
            "curves.png",
            "final.png",
        )
    ]


def mean_curves(
    histories: list[list[dict[str, float]]], key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Epochs, mean and std of ``key`` over runs (up to the shortest run)."""
    length = min(len(h) for h in histories)
    values = np.array([[row[key] for row in h[:length]] for h in histories], float)
    epochs = np.arange(1, length + 1)
    std = values.std(axis=0, ddof=1) if len(histories) > 1 else np.zeros(length)
    return epochs, values.mean(axis=0), std
