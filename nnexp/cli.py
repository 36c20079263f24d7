"""The ``nnexp`` command line.

Commands parse their options and call the pipeline stages; the user's mistakes
(any :class:`~nnexp.errors.NnexpError`) become one line on stderr and exit
status 2. TensorFlow is imported only by commands that build or train a model,
so ``--help``, ``check`` and config errors answer at once.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from nnexp import __version__
from nnexp.backends import default_jobs
from nnexp.config import Config, load_config
from nnexp.errors import ConfigError, NnexpError

DEFAULT_RUNS_DIR = Path("runs")

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1
EXIT_INTERRUPTED = 130


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class _Path(click.Path):
    """A path argument or option; an empty one is a mistake, not the current
    folder (which is what ``Path("")`` would silently become)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path", param, ctx)
        return super().convert(value, param, ctx)


class NnexpGroup(click.Group):
    """A click group that turns the project's errors into exit status 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        # Click's own report of a bad option is four lines (usage, a hint, a
        # blank line, "Error: ..."); nnexp reports every mistake the same way:
        # one line starting with "error:", exit status 2.
        try:
            status = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            # Plain ``nnexp``: the help is the answer, not an error.
            click.echo(exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(EXIT_RUN_FAILED)
        sys.exit(status if isinstance(status, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        # SIGTERM (a scheduler stopping the job) is handled like Ctrl-C, so the
        # run folder is marked interrupted and stays resumable.
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            return super().invoke(ctx)
        except NnexpError as exc:
            # One line per problem (a config may have several), each marked.
            for line in str(exc).splitlines() or [""]:
                click.echo(f"error: {line}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _config_options(function: Callable) -> Callable:
    """Options shared by every command that reads a config."""
    function = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config key (dotted, YAML-typed); repeatable, "
        "e.g. --set model.activation=selu.",
    )(function)
    function = click.option(
        "--epochs",
        type=click.IntRange(min=1),
        help="Shortcut for --set training.epochs=N.",
    )(function)
    return function


def _load(config_path: Path, overrides: tuple[str, ...], epochs: int | None) -> Config:
    all_overrides = list(overrides)
    if epochs is not None:
        all_overrides.append(f"training.epochs={epochs}")
    return load_config(config_path, all_overrides)


def _runs_dir_option(help_text: str) -> Callable:
    return click.option(
        "--runs-dir",
        type=_Path(),
        default=DEFAULT_RUNS_DIR,
        show_default=True,
        help=help_text,
    )


def _data_dir_option(function: Callable) -> Callable:
    return click.option(
        "--data-dir",
        type=_Path(),
        envvar="NNEXP_DATA_DIR",
        help="Folder with the four Fashion-MNIST .gz files (searched first).",
    )(function)


def _lint(config: Config, strict: bool) -> None:
    """Print the config's lint warnings on stderr; with --strict they are errors."""
    from nnexp.diagnostics import lint_config

    warnings = lint_config(config)
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if warnings and strict:
        raise ConfigError(
            f"{len(warnings)} lint warning(s) and --strict given; fix them or drop "
            "--strict"
        )


def _strict_option(function: Callable) -> Callable:
    return click.option(
        "--strict", is_flag=True, help="Treat config lint warnings as errors."
    )(function)


def _diagnostics_options(function: Callable) -> Callable:
    function = click.option(
        "--diagnostics",
        is_flag=True,
        help="Record per-layer statistics, gradient norms and clipping every "
        "epoch (same as diagnostics: true in the config).",
    )(function)
    return function


def _escape(value: Any) -> str:
    """``value`` as text that rich prints literally: a ``[`` in a path or a
    message is not markup."""
    from rich.markup import escape

    return escape(str(value))


def _console() -> Any:
    """The one console for people. Wide tables stay whole when piped to a file."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 200))
    return console


@click.group(cls=NnexpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nnexp")
def cli() -> None:
    """Experiments on how deep feed-forward networks train on Fashion-MNIST.

    Write a YAML config (see configs/), then: train it, compare it across
    activations and seeds, or summarize a model or finished runs.
    """


@cli.command()
@click.argument("config_path", metavar="CONFIG", type=_Path())
@_config_options
@_strict_option
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and warnings.")
def check(
    config_path: Path,
    overrides: tuple[str, ...],
    epochs: int | None,
    strict: bool,
    quiet: bool,
) -> None:
    """Validate CONFIG without training: errors, lint warnings, resolved config.

    A config with a compare: section also has its grid expanded and every grid
    point validated, as nnexp compare would before training anything.
    """
    config = _load(config_path, overrides, epochs)
    _lint(config, strict)
    grid = None
    if config.compare is not None:
        from nnexp.sweep import expand_grid, load_sweep_base

        extra = [f"training.epochs={epochs}"] if epochs else []
        grid = expand_grid(*load_sweep_base(config_path, list(overrides) + extra))
    if not quiet:
        click.echo(f"{config_path}: valid (config hash {config.short_hash})")
        if grid is not None:
            click.echo(
                f"compare grid: {len(grid.points)} point(s) x {len(grid.seeds)} "
                f"seed(s) = {len(grid.runs)} runs, every one valid"
            )
        click.echo(config.to_yaml(), nl=False)


@cli.command()
@click.argument("config_path", metavar="[CONFIG]", required=False, type=_Path())
@_config_options
@_runs_dir_option("Where run folders are created.")
@_data_dir_option
@click.option(
    "--resume",
    "resume_dir",
    type=_Path(),
    help="Continue an interrupted run folder instead of starting a new run.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="CPU threads for TensorFlow. One is fastest for networks of a few "
    "hundred units (bench/BENCHMARKS.md); raise it for much wider layers.",
)
@_diagnostics_options
@click.option(
    "--tensorboard",
    is_flag=True,
    help="Also write TensorBoard logs into the run folder.",
)
@_strict_option
def train(
    config_path: Path | None,
    overrides: tuple[str, ...],
    epochs: int | None,
    runs_dir: Path,
    data_dir: Path | None,
    resume_dir: Path | None,
    threads: int,
    diagnostics: bool,
    tensorboard: bool,
    strict: bool,
) -> None:
    """Train CONFIG on Fashion-MNIST and write a run folder.

    The run folder (runs/<name>/<timestamp>-<hash>/) holds the resolved config,
    metrics.csv, result.json, model.keras and curves.png.
    """
    from nnexp.runs import ensure_writable_dir, read_result

    if tensorboard:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise NnexpError(
                "--tensorboard needs the tensorboard package: "
                "pip install 'nnexp[tensorboard]' (or pip install tensorboard)"
            )
    if resume_dir is not None:
        from nnexp.experiment import check_resumable, load_run_config

        if config_path is not None or overrides or epochs is not None:
            raise click.UsageError("--resume takes no CONFIG, --set or --epochs")
        previous = read_result(resume_dir)
        if previous.get("status") in ("completed", "diverged"):
            raise NnexpError(
                f"{resume_dir} is already {previous.get('status')}; nothing to resume"
            )
        config = load_run_config(resume_dir)
        # A damaged checkpoint or a run another process trains is reported
        # now, before TensorFlow starts and the progress display opens.
        check_resumable(resume_dir)
    else:
        if config_path is None:
            raise click.UsageError("missing CONFIG (or --resume RUN_DIR)")
        extra = ("diagnostics=true",) if diagnostics else ()
        config = _load(config_path, overrides + extra, epochs)
        _lint(config, strict)
        ensure_writable_dir(runs_dir)

    from nnexp.data import load_splits

    splits = load_splits(
        validation_size=config.data.validation_size,
        train_size=config.data.train_size,
        scaling=config.data.scaling,
        data_dir=data_dir,
    )

    from nnexp.experiment import execute_run
    from nnexp.report import TrainingDisplay, render_run_result
    from nnexp.training import start_tensorflow

    start_tensorflow(threads)
    console = _console()
    with TrainingDisplay(console, config) as display:
        outcome = execute_run(
            config,
            runs_dir,
            splits=splits,
            display=display,
            resume_dir=resume_dir,
            tensorboard=tensorboard,
        )
    render_run_result(console, outcome.run_dir, outcome.result)
    if outcome.status != "completed":
        message = _escape(outcome.result["message"])
        console.print(f"[bold red]{outcome.status}[/]: {message}")
        sys.exit(EXIT_RUN_FAILED)


@cli.command()
@click.argument("target", metavar="CONFIG_OR_DIR", type=_Path())
@_config_options
@click.option("--variables", is_flag=True, help="List every variable of every layer.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--init-stats",
    is_flag=True,
    help="Push a batch of validation images through the untrained model and show "
    "each layer's activation mean/std and gradient norm.",
)
@_data_dir_option
def summary(
    target: Path,
    overrides: tuple[str, ...],
    epochs: int | None,
    variables: bool,
    as_json: bool,
    init_stats: bool,
    data_dir: Path | None,
) -> None:
    """Summarize a model (CONFIG) or finished runs (a run, sweep or runs folder).

    For a config, the model is built (no data, no training) and its layers and
    parameter counts are printed. For a folder, the results are read back.
    """
    if not target.exists():
        raise NnexpError(f"{target} does not exist")
    if target.is_dir():
        from nnexp.report import summarize_folder

        config_only = [
            name
            for name, given in (
                ("--set", overrides),
                ("--epochs", epochs is not None),
                ("--variables", variables),
                ("--init-stats", init_stats),
            )
            if given
        ]
        if config_only:
            verb = "applies" if len(config_only) == 1 else "apply"
            raise click.UsageError(
                f"{', '.join(config_only)} {verb} to a CONFIG file, not to a folder"
            )

        summarize_folder(_console(), target, as_json=as_json)
        return

    config = _load(target, overrides, epochs)
    if init_stats:
        _print_init_stats(config, data_dir, as_json)
        return
    from nnexp.training import start_tensorflow

    start_tensorflow()
    from nnexp.model import build_model, count_parameters, describe_layers

    model = build_model(config)
    counts = count_parameters(model)
    layers = describe_layers(model)
    if as_json:
        click.echo(
            json.dumps({"name": config.name, **counts, "layers": layers}, indent=2)
        )
        return
    from nnexp.report import render_model_summary

    render_model_summary(_console(), config, layers, counts, variables=variables)


def _print_init_stats(config: Config, data_dir: Path | None, as_json: bool) -> None:
    from nnexp.data import load_splits
    from nnexp.diagnostics import init_stats

    splits = load_splits(
        validation_size=config.data.validation_size,
        train_size=config.data.train_size,
        scaling=config.data.scaling,
        data_dir=data_dir,
    )
    from nnexp.training import start_tensorflow

    start_tensorflow()
    rows = init_stats(config, splits.x_val, splits.y_val)
    if as_json:
        click.echo(json.dumps({"name": config.name, "layers": rows}, indent=2))
        return
    from nnexp.report import render_init_stats

    render_init_stats(_console(), config, rows)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="nnexp")


@cli.command()
@click.argument("config_path", metavar="CONFIG", type=_Path())
@click.option(
    "--activations",
    metavar="A,B,...",
    help="Activations to compare (default: the config's compare.activations, "
    "else selu,elu,leaky_relu,relu,tanh,sigmoid).",
)
@click.option(
    "--vary",
    multiple=True,
    metavar="KEY=V1,V2",
    help="Another grid axis, e.g. model.batch_norm=before,after; repeatable.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1, max=1000),
    help="Seeds per grid point, 1 to 1000 (default 3).",
)
@click.option(
    "--pairing",
    type=click.Choice(["none", "recommended"]),
    help="recommended: give each activation the initializer that suits it "
    "(Glorot for tanh/sigmoid, He for the ReLU family and ELU, LeCun normal "
    "plus standardized inputs for SELU).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Runs trained at once in separate processes, each with cores/N "
    "TensorFlow threads (default: one per core, fewer if memory is short).",
)
@click.option(
    "--new", is_flag=True, help="Start a new sweep folder even if one matches."
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: worker processes on this machine; ray: Ray tasks (pip install "
    "'nnexp[ray]').",
)
@click.option(
    "--address",
    metavar="auto|HOST:PORT|ray://HOST:PORT",
    help="Ray cluster to use (with --backend ray); default: start a local Ray.",
)
@click.option(
    "--cpus-per-run",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="CPUs each Ray task requests (and TensorFlow threads it uses).",
)
@click.option(
    "--ship-data",
    is_flag=True,
    help="With --backend ray: decode the data once on this machine and share it "
    "through Ray's object store instead of each worker finding it.",
)
@_diagnostics_options
@_strict_option
@_config_options
@_runs_dir_option("Where the sweep folder is created.")
@_data_dir_option
def compare(
    config_path: Path,
    activations: str | None,
    vary: tuple[str, ...],
    seeds: int | None,
    pairing: str | None,
    jobs: int | None,
    new: bool,
    backend: str,
    address: str | None,
    cpus_per_run: int,
    ship_data: bool,
    diagnostics: bool,
    strict: bool,
    overrides: tuple[str, ...],
    epochs: int | None,
    runs_dir: Path,
    data_dir: Path | None,
) -> None:
    """Train CONFIG across activations (and any --vary axis) and several seeds,
    then rank the grid points with confidence intervals and Welch t-tests.

    Rerunning the same command skips finished runs and completes the rest.
    """
    if backend == "local" and (address or ship_data or cpus_per_run != 1):
        raise click.UsageError(
            "--address, --ship-data and --cpus-per-run need --backend ray"
        )
    if backend == "ray" and jobs:
        raise click.UsageError(
            "--jobs is for --backend local; Ray schedules by --cpus-per-run"
        )
    from nnexp.sweep import (
        RUNNING_ELSEWHERE,
        expand_grid,
        find_or_create_sweep_dir,
        load_sweep_base,
        parse_activations,
        parse_vary,
        plan_line,
        plan_runs,
        wait_for_other_commands,
    )

    all_overrides = list(overrides) + ([f"training.epochs={epochs}"] if epochs else [])
    if diagnostics:
        all_overrides.append("diagnostics=true")
    data, base = load_sweep_base(config_path, all_overrides)
    grid = expand_grid(
        data,
        base,
        activations=parse_activations(activations) if activations is not None else None,
        vary=[parse_vary(option) for option in vary],
        seeds=seeds,
        pairing=pairing,
    )
    _lint_grid(grid, strict)
    if backend == "ray" and address:
        from nnexp.backends.ray_backend import check_reachable

        check_reachable(address)
    sweep_dir, existed = find_or_create_sweep_dir(runs_dir, grid, new=new)
    planned = plan_runs(sweep_dir, grid)
    console = _console()
    to_do = [p for p in planned if p.action != "skip"]
    console.print(_escape(plan_line(grid, planned)))
    continuing = " (continuing)" if existed else ""
    console.print(f"sweep folder: {_escape(sweep_dir)}{continuing}")

    backend_options = {
        "backend": backend,
        "jobs": jobs or default_jobs(),
        "address": address,
        "cpus_per_run": cpus_per_run,
        "ship_data": ship_data,
    }
    status = _run_sweep(console, sweep_dir, to_do, backend_options, data_dir)
    wait_for_other_commands(
        sweep_dir,
        [
            (p.config.name, p.config.hash)
            for p in planned
            if p.status == RUNNING_ELSEWHERE
        ],
        click.echo,
    )

    from nnexp.report import render_sweep_report
    from nnexp.sweep_report import build_report, export_sweep

    report = build_report(sweep_dir)
    export_sweep(report)
    render_sweep_report(console, report)
    console.print(f"sweep folder: {_escape(sweep_dir)}")
    if status != 0 or not report.all_succeeded:
        bad = [r for r in report.runs if r.status != "completed"]
        console.print(
            f"[bold red]{len(bad)} of {len(report.runs)} runs did not complete[/]"
        )
        sys.exit(EXIT_RUN_FAILED)


def _lint_grid(grid: Any, strict: bool) -> None:
    """Lint every grid point once (the seeds don't matter), naming the point."""
    from nnexp.diagnostics import lint_config

    count = 0
    for point in grid.points:
        for warning in lint_config(point.configs[0]):
            click.echo(f"warning: {point.label}: {warning}", err=True)
            count += 1
    if count and strict:
        raise ConfigError(
            f"{count} lint warning(s) and --strict given; fix them or drop --strict"
        )


def _run_sweep(
    console: Any,
    sweep_dir: Path,
    to_do: list,
    options: dict[str, Any],
    data_dir: Path | None,
) -> int:
    """Claim the runs, hand them to the chosen backend, wait for runs that
    another ``nnexp compare`` on the same sweep is training."""
    from nnexp.backends.base import RunTask
    from nnexp.sweep import claim, finished_run, release, wait_for_other_commands

    tasks = []
    elsewhere: list[tuple[str, str]] = []
    for index, planned in enumerate(to_do):
        if not claim(sweep_dir, planned.config.hash):
            # Claimed by another command between planning and claiming.
            elsewhere.append((planned.config.name, planned.config.hash))
            continue
        if finished_run(sweep_dir, planned.config.hash):
            # Finished by another command between planning and claiming.
            release(sweep_dir, planned.config.hash)
            continue
        tasks.append(
            RunTask(
                index=index,
                config_yaml=planned.config.to_yaml(),
                sweep_dir=str(sweep_dir),
                label=planned.config.name,
                resume_dir=str(planned.run_dir) if planned.action == "resume" else None,
                data_dir=str(data_dir) if data_dir else None,
            )
        )
    if tasks:
        _train_tasks(console, sweep_dir, to_do, tasks, options)
    wait_for_other_commands(sweep_dir, elsewhere, click.echo)
    return 0


def _train_tasks(
    console: Any, sweep_dir: Path, to_do: list, tasks: list, options: dict[str, Any]
) -> None:
    import os

    from nnexp.backends.base import RunTask
    from nnexp.report import SweepDisplay
    from nnexp.sweep import release

    labels = {task.index: task.label for task in tasks}
    epochs = {i: p.config.training.epochs for i, p in enumerate(to_do)}
    try:
        with SweepDisplay(console, labels, epochs) as display:
            if options["backend"] == "ray":
                from nnexp.backends.ray_backend import run_ray
                from nnexp.experiment import record_failed_run

                def on_failure(task: RunTask, message: str) -> None:
                    record_failed_run(to_do[task.index].config, sweep_dir, message)

                run_ray(
                    tasks,
                    address=options["address"],
                    cpus_per_run=options["cpus_per_run"],
                    ship_data=options["ship_data"],
                    on_event=display.on_event,
                    on_result=display.on_result,
                    on_failure=on_failure,
                )
            else:
                from nnexp.backends.local import run_local

                jobs = min(options["jobs"], len(tasks))
                threads = max(1, (os.cpu_count() or 1) // jobs)
                run_local(tasks, jobs, threads, display.on_event, display.on_result)
    finally:
        for task in tasks:
            release(sweep_dir, to_do[task.index].config.hash)
