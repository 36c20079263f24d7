"""What a person reads: progress display, tables of models and results."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from nnexp.config import Config
from nnexp.errors import RunError
from nnexp.runs import iter_run_dirs, read_run


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}f}"


def _percent(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * value:.2f}%"


def _progress(console: Console, *extra_columns: Any) -> Progress:
    """A progress display: name, bar, done of total, status text, time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        *extra_columns,
        console=console,
    )


class TrainingDisplay:
    """A rich progress display for one run: epochs, and steps within the epoch."""

    def __init__(self, console: Console, config: Config) -> None:
        self.console = console
        self.config = config
        self.progress = _progress(console, TimeRemainingColumn())
        self.epoch_task = None
        self.step_task = None

    def __enter__(self) -> TrainingDisplay:
        self.progress.start()
        self.epoch_task = self.progress.add_task(
            "epochs", total=self.config.training.epochs, status=""
        )
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.progress.stop()

    def on_epoch_begin(self, epoch: int, steps: int) -> None:
        if self.step_task is None:
            self.step_task = self.progress.add_task(
                f"epoch {epoch}", total=steps, status=""
            )
            self.progress.update(self.epoch_task, completed=epoch - 1)
        else:
            self.progress.reset(
                self.step_task, total=steps, description=f"epoch {epoch}"
            )

    def on_progress(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        self.progress.update(
            self.step_task,
            completed=step,
            status=f"loss {loss:.4f}  acc {accuracy:.4f}",
        )

    def on_epoch_end(self, metrics: Any, trainer: Any) -> None:
        self.progress.update(
            self.epoch_task,
            completed=metrics.epoch,
            status=f"val_loss {metrics.val_loss:.4f}  "
            f"val_acc {metrics.val_accuracy:.4f}",
        )


def render_run_result(console: Console, run_dir: Path, result: dict[str, Any]) -> None:
    """The end-of-run table: final and best validation metrics, test, sizes, time."""
    # escape(): "[completed]" would otherwise be read as rich markup and vanish.
    table = Table(
        title=escape(f"{result.get('name', run_dir.name)}  [{result.get('status')}]")
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    final = result.get("final") or {}
    best = result.get("best") or {}
    test = result.get("test") or {}
    params = result.get("params") or {}
    rows = [
        ("final val_loss", _number(final.get("val_loss"))),
        ("final val_accuracy", _percent(final.get("val_accuracy"))),
        (
            f"best val_accuracy (epoch {best.get('epoch', '-')})",
            _percent(best.get("val_accuracy")),
        ),
        ("best-epoch val_loss", _number(best.get("val_loss"))),
        ("test accuracy (final weights)", _percent(test.get("accuracy"))),
        ("test loss", _number(test.get("loss"))),
        (
            "epochs",
            f"{result.get('epochs_completed', 0)} / {result.get('epochs_planned')}",
        ),
        ("total params", f"{params.get('total_params', 0):,}"),
        ("trainable params", f"{params.get('trainable_params', 0):,}"),
        ("non-trainable params", f"{params.get('non_trainable_params', 0):,}"),
        ("seconds per epoch", _number(result.get("seconds_per_epoch"), 2)),
        ("wall time (s)", _number(result.get("wall_seconds"), 1)),
    ]
    for name, value in rows:
        table.add_row(escape(name), escape(value))
    console.print(table)
    console.print(f"run folder: {escape(str(run_dir))}")


def render_model_summary(
    console: Console,
    config: Config,
    layers: list[dict[str, Any]],
    counts: dict[str, int],
    variables: bool = False,
) -> None:
    """The layer table of a model, then its parameter totals."""
    table = Table(title=escape(f"model {config.name}"))
    table.add_column("layer")
    table.add_column("type")
    table.add_column("output shape")
    table.add_column("params", justify="right")
    table.add_column("trainable", justify="right")
    for layer in layers:
        shape = layer["output_shape"]
        shape_text = (
            "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
            if shape
            else "-"
        )
        trainable = layer["trainable_params"]
        if layer["params"] == 0:
            trainable_text = "-"
        elif trainable == layer["params"]:
            trainable_text = "yes"
        elif trainable == 0:
            trainable_text = "no"
        else:
            trainable_text = f"{trainable:,} of {layer['params']:,}"
        table.add_row(
            escape(layer["name"]),
            escape(layer["type"]),
            shape_text,
            f"{layer['params']:,}",
            trainable_text,
        )
    console.print(table)
    console.print(f"Total params: {counts['total_params']:,}")
    console.print(f"Trainable params: {counts['trainable_params']:,}")
    console.print(f"Non-trainable params: {counts['non_trainable_params']:,}")
    if variables:
        variable_table = Table(title="variables")
        variable_table.add_column("variable")
        variable_table.add_column("shape")
        variable_table.add_column("trained by backprop")
        for layer in layers:
            for variable in layer["variables"]:
                variable_table.add_row(
                    escape(variable["name"]),
                    "(" + ", ".join(str(d) for d in variable["shape"]) + ")",
                    "yes"
                    if variable["trainable"]
                    else "no (moving average)"
                    if "moving" in variable["name"]
                    else "no",
                )
        console.print(variable_table)
        console.print(
            "BatchNormalization trains gamma and beta; moving_mean and "
            "moving_variance are updated as v <- v * momentum + v_batch * "
            "(1 - momentum), not by gradients."
        )


def _echo_json(console: Console, data: Any) -> None:
    """Print strict JSON, undecorated (no colour, no wrapping), for machines."""
    from nnexp.runs import strict_json

    console.file.write(strict_json(data) + "\n")
    console.file.flush()


def summarize_folder(console: Console, folder: Path, as_json: bool = False) -> None:
    """Print one run's results, or list every run under a folder."""
    from nnexp.runs import is_run_dir

    if (folder / "sweep.yaml").is_file():
        from nnexp.sweep_report import build_report

        report = build_report(folder)
        if as_json:
            from nnexp.sweep_report import RANK_METRIC

            _echo_json(
                console,
                {
                    "sweep_dir": str(folder),
                    "rank_metric": RANK_METRIC,
                    "points": [p.as_csv_row(report.axis_names) for p in report.points],
                },
            )
        else:
            render_sweep_report(console, report)
        return
    if is_run_dir(folder):
        record = read_run(folder)
        if record.result is None:
            raise RunError(record.problem or f"{folder} is unreadable")
        if as_json:
            extra = {"problem": record.problem} if record.problem else {}
            _echo_json(console, {**record.result, **extra})
        else:
            render_run_result(console, folder, record.result)
            if record.problem:
                console.print(f"[yellow]warning:[/] {escape(record.problem)}")
        return
    list_runs(console, folder, as_json=as_json)


def _status_text(record: Any) -> str:
    if record.problem is None:
        return record.status
    if record.result is None:
        return f"unreadable: {record.problem}"
    return f"{record.status}; {record.problem}"


def list_runs(console: Console, folder: Path, as_json: bool = False) -> None:
    """Every run under ``folder``, newest first, with status and headline metric."""
    sweep_dirs = sorted(path.parent for path in Path(folder).rglob("sweep.yaml"))
    records = [
        read_run(path)
        for path in iter_run_dirs(folder)
        if not any(sweep in path.parents for sweep in sweep_dirs)
    ]
    # str(): read_result checks the type, but a listing must never stop on one run.
    records.sort(
        key=lambda r: str((r.result or {}).get("started_at", "")), reverse=True
    )
    sweeps = [_sweep_headline(path) for path in sweep_dirs]
    sweeps.sort(key=lambda row: row["started"], reverse=True)
    if as_json:
        rows = [
            {
                "path": str(r.path),
                "status": r.status,
                "problem": r.problem,
                **(r.result or {}),
            }
            for r in records
        ]
        _echo_json(console, {"sweeps": sweeps, "runs": rows})
        return
    if sweeps:
        sweep_table = Table(title=escape(f"sweeps under {folder}"))
        for column in ("created", "sweep", "runs done", "best point", "final val acc"):
            sweep_table.add_column(column)
        for row in sweeps:
            sweep_table.add_row(
                *(
                    escape(str(cell))
                    for cell in (
                        row["started"],
                        Path(row["path"]).relative_to(folder),
                        row["progress"],
                        row["best_point"],
                        row["best_metric"],
                    )
                )
            )
        console.print(sweep_table)
    if not records:
        if sweeps:
            return
        console.print(f"no runs under {escape(str(folder))}")
        return
    table = Table(title=escape(f"runs under {folder}"))
    table.add_column("started")
    table.add_column("run")
    table.add_column("status")
    table.add_column("epochs", justify="right")
    table.add_column("best val acc", justify="right")
    table.add_column("test acc", justify="right")
    for record in records:
        result = record.result or {}
        best = result.get("best") or {}
        test = result.get("test") or {}
        cells = (
            str(result.get("started_at", "-")),
            str(record.path.relative_to(folder)) if record.path != folder else ".",
            _status_text(record),
            f"{result.get('epochs_completed', '-')}/"
            f"{result.get('epochs_planned', '-')}",
            _percent(best.get("val_accuracy")),
            _percent(test.get("accuracy")),
        )
        table.add_row(*(escape(cell) for cell in cells))
    console.print(table)


class SweepDisplay:
    """One progress display for a sweep: runs done of total, and a line per
    worker with its current run and epoch."""

    def __init__(
        self, console: Console, labels: dict[int, str], epochs: dict[int, int]
    ) -> None:
        self.console = console
        self.labels = labels
        self.epochs = epochs
        self.progress = _progress(console)
        self.overall = None
        self.workers: dict[int, Any] = {}
        self.counts = {"completed": 0, "failed": 0, "diverged": 0, "interrupted": 0}

    def __enter__(self) -> SweepDisplay:
        self.progress.start()
        self.overall = self.progress.add_task("runs", total=len(self.labels), status="")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.progress.stop()

    def on_event(
        self, worker: int, index: int, kind: str, a: Any, b: Any, c: Any
    ) -> None:
        if worker not in self.workers:
            self.workers[worker] = self.progress.add_task(
                f"worker {len(self.workers) + 1}", total=1, status=""
            )
        task = self.workers[worker]
        label = escape(self.labels.get(index, str(index)))
        total = self.epochs.get(index, 1)
        if kind == "start":
            self.progress.update(
                task, total=total, completed=0, status=f"{label}: starting"
            )
        elif kind == "epoch":
            self.progress.update(
                task, total=total, completed=a - 1, status=f"{label}: epoch {a}/{total}"
            )
        elif kind == "step" and c is not None:
            self.progress.update(
                task, status=f"{label}: epoch {a}/{total}  loss {c:.4f}"
            )
        elif kind == "epoch_end":
            self.progress.update(
                task, completed=a, status=f"{label}: epoch {a}/{total}  val_acc {b:.4f}"
            )

    def on_result(self, result: Any) -> None:
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        status = ", ".join(f"{k} {v}" for k, v in self.counts.items() if v)
        self.progress.update(self.overall, advance=1, status=status)
        label = self.labels.get(result.index, str(result.index))
        if result.status != "completed":
            self.console.print(
                f"[yellow]{escape(f'{label}: {result.status}')}[/] "
                f"{escape(str(result.message))}"
            )
        elif result.message:
            # A completed run with something to say ("trained again from
            # scratch: its checkpoint was unreadable", ...).
            self.console.print(f"[dim]{escape(f'{label}: {result.message}')}[/]")


def render_sweep_report(console: Console, report: Any) -> None:
    """The sweep table, best row first."""
    from nnexp.sweep_report import table_rows

    header, rows = table_rows(report)
    table = Table(
        title=escape(f"{report.description.get('name')}: {len(report.runs)} runs"),
        show_lines=False,
    )
    left_aligned = {name for _, name in report.axis_names} | {"verdict"}
    for column in header:
        table.add_column(
            escape(column), justify="left" if column in left_aligned else "right"
        )
    for row in rows:
        style = (
            "bold green"
            if row[-1] == "best"
            else ("green" if row[-1] == "tied with best" else None)
        )
        table.add_row(*(escape(cell) for cell in row), style=style)
    console.print(table)
    console.print(
        "Ranked by mean final validation accuracy (± std over seeds); 95% CI of the "
        "mean (Student t); p: Welch t-test against the best row, Holm-adjusted "
        "over all pairs of rows; tied with best: p >= 0.05 (not shown to differ)."
    )


def _sweep_headline(sweep_dir: Path) -> dict[str, Any]:
    """One line about a sweep: how far it got and which point leads."""
    from nnexp.sweep_report import build_report

    stamp = sweep_dir.name
    try:
        report = build_report(sweep_dir)
    except RunError as exc:
        return {
            "path": str(sweep_dir),
            "started": stamp,
            "progress": f"unreadable: {exc}",
            "best_point": "-",
            "best_metric": "-",
        }
    statuses = [run.status for run in report.runs]
    done = sum(status in ("completed", "diverged", "failed") for status in statuses)
    progress = f"{done}/{len(report.runs)}"
    # Finished is not the same as successful: say how many did not complete.
    troubles = [
        f"{statuses.count(status)} {status}"
        for status in ("failed", "diverged")
        if status in statuses
    ]
    if troubles:
        progress += f" ({', '.join(troubles)})"
    best = report.points[0] if report.points else None
    summary = best.summaries["final_val_accuracy"] if best else None
    return {
        "path": str(sweep_dir),
        "started": stamp,
        "progress": progress,
        "best_point": best.point if best and summary and summary.n else "-",
        "best_metric": _percent(summary.mean) if summary and summary.n else "-",
    }


def render_init_stats(
    console: Console, config: Config, rows: list[dict[str, Any]]
) -> None:
    """Each layer of the untrained model: activation mean/std, gradient norm."""
    table = Table(title=escape(f"{config.name}: one batch through the untrained model"))
    for column in (
        "layer",
        "pre-act mean",
        "pre-act std",
        "act mean",
        "act std",
        "dead",
        "saturated",
        "kernel grad norm",
    ):
        table.add_column(column, justify="left" if column == "layer" else "right")

    def cell(row: dict[str, Any], key: str, percent: bool = False) -> str:
        value = row.get(key)
        if value is None:
            return "-"
        return _percent(value) if percent else f"{value:.4g}"

    for row in rows:
        table.add_row(
            escape(str(row["layer"])),
            cell(row, "preactivation_mean"),
            cell(row, "preactivation_std"),
            cell(row, "activation_mean"),
            cell(row, "activation_std"),
            cell(row, "dead_fraction", percent=True),
            cell(row, "saturated_fraction", percent=True),
            cell(row, "gradient_norm"),
        )
    console.print(table)
    console.print(
        "A healthy stack keeps the activation std roughly constant with depth and "
        "the gradient norm of the first layer close to the last one's; a shrinking "
        "std or gradient means vanishing, a growing one exploding."
    )
