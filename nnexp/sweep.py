"""Sweeps: expanding a config into a grid of runs, and finding what is left to do.

A grid is the Cartesian product of its axes (activations first, then each
``--vary`` key in the order given), times the seeds ``seed, seed+1, ...``.
Every grid point is an ordinary config, validated before anything trains.

A sweep lives in ``<runs_dir>/<name>-compare/<timestamp>/`` with ``sweep.yaml``
(the grid) and one ordinary run folder per grid point and seed. Running the
same command again finds that folder by the grid's hash and trains only the
runs that have not finished: a run is finished when a run folder in the sweep
holds the same resolved-config hash with status ``completed`` or ``diverged``
(both would come out the same again). An interrupted run resumes from its
checkpoint; a failed one trains again from scratch in a new run folder (the
failed folder stays, as a record): resuming the state it failed with would
only fail the same way.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import itertools
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nnexp.config import (
    ACTIVATIONS,
    Config,
    _describe,
    apply_override,
    build_config,
    default_name_for,
    parse_override,
    parse_yaml,
    read_config_file,
    resolve_component,
)
from nnexp.errors import ConfigError, RunError
from nnexp.runs import (
    FINISHED,
    ensure_writable_dir,
    iter_run_dirs,
    read_run,
    write_text,
)

CLASSIC_ACTIVATIONS = ("selu", "elu", "leaky_relu", "relu", "tanh", "sigmoid")
"""The classic ranking study: usually SELU > ELU > leaky ReLU > ReLU > tanh >
logistic, when each gets the initialisation that suits it."""

# The initializer that suits each activation family (``--pairing recommended``):
# Glorot for the saturating ones, He for the ReLU family and its smooth cousins,
# LeCun normal (with standardized inputs) for SELU's self-normalisation.
RECOMMENDED_INITIALIZER = {
    "tanh": "glorot_uniform",
    "sigmoid": "glorot_uniform",
    "relu": "he_normal",
    "leaky_relu": "he_normal",
    "prelu": "he_normal",
    "rrelu": "he_normal",
    "elu": "he_normal",
    "gelu": "he_normal",
    "swish": "he_normal",
    "softplus": "he_normal",
    "selu": "lecun_normal",
}

ACTIVATION_KEY = "model.activation"


@dataclass(frozen=True)
class Axis:
    """One grid dimension: a dotted config key and the values it takes."""

    key: str
    values: tuple[Any, ...]

    @property
    def short_name(self) -> str:
        return self.key.rsplit(".", 1)[-1]


@dataclass
class GridPoint:
    """One cell of the grid (all axes fixed), with one config per seed."""

    values: dict[str, Any]
    label: str
    configs: list[Config] = field(default_factory=list)


@dataclass
class Grid:
    """The expanded sweep: its axes, seeds and every run's config."""

    base: Config
    axes: list[Axis]
    seeds: list[int]
    pairing: str
    points: list[GridPoint]

    @property
    def runs(self) -> list[tuple[GridPoint, Config]]:
        return [(point, config) for point in self.points for config in point.configs]

    @property
    def hash(self) -> str:
        """Identifies the grid: the same command on the same config gives the same."""
        payload = json.dumps(
            sorted(config.hash for _, config in self.runs), separators=(",", ":")
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def describe(self) -> dict[str, Any]:
        """What ``sweep.yaml`` holds."""
        return {
            "name": self.base.name,
            "grid_hash": self.hash,
            "axes": [{"key": a.key, "values": list(a.values)} for a in self.axes],
            "seeds": self.seeds,
            "pairing": self.pairing,
            "runs": [
                {
                    "point": point.label,
                    "values": point.values,
                    "seed": config.seed,
                    "run_name": config.name,
                    "config_hash": config.hash,
                }
                for point, config in self.runs
            ],
            "base_config": self.base.to_dict(),
        }


MAX_VALUE_LABEL = 40
"""Longest label of one axis value; a longer one becomes a prefix and a hash."""

LABEL_HASH_LENGTH = 8

MAX_RUN_NAME = 100
"""What :class:`nnexp.config.Config` allows for a name (``<label>-s<seed>``)."""


def _label_text(value: Any) -> str:
    """An axis value as text, before it is made folder-safe."""
    if isinstance(value, dict):
        # A mapping keeps its keys ({value: 1.0} and {norm: 1.0} differ); a
        # named component starts with its name.
        parts = [str(value["name"])] if value.get("name") not in (None, "") else []
        parts += [f"{k}{_label_text(v)}" for k, v in value.items() if k != "name"]
        return "_".join(parts)
    if isinstance(value, list | tuple):
        return "_".join(_label_text(item) for item in value)
    if value is None:
        return "none"
    return str(value)


def _value_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:LABEL_HASH_LENGTH]


def _shorten(text: str, limit: int, digest: str) -> str:
    """``text`` cut to ``limit`` characters, ending in ``_<digest>``."""
    keep = max(0, limit - len(digest) - 1)
    prefix = text[:keep]
    if text[keep : keep + 1] not in ("", "_", "-"):
        # Cut at a separator rather than in the middle of a number or word.
        cut = max(prefix.rfind("_"), prefix.rfind("-"))
        if cut >= keep // 2:
            prefix = prefix[:cut]
    prefix = prefix.rstrip("._-")
    return f"{prefix}_{digest}" if prefix else digest


def value_label(value: Any, limit: int = MAX_VALUE_LABEL) -> str:
    """A short, folder-safe label for an axis value (``leaky_relu_negative_slope0.2``).

    A label longer than ``limit`` becomes a readable prefix and a short hash
    of the whole value, so distinct long values keep distinct labels.
    """
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", _label_text(value))
    # '..' is not allowed in a run name; a leading '-' is kept so -0.25 and
    # 0.25 get different labels (the activation, a name, always comes first).
    text = re.sub(r"\.{2,}", ".", text).strip("._").rstrip("-")
    text = text or "value"
    if len(text) > limit:
        text = _shorten(text, limit, _value_hash(value))
    return text


def _axis_labels(axis: Axis) -> list[str]:
    """The labels of an axis's values, distinct wherever the values are: two
    values that read alike (``a b`` and ``a_b``) get a hash of each added."""
    labels = [value_label(value) for value in axis.values]
    for label in {label for label in labels if labels.count(label) > 1}:
        for index, value in enumerate(axis.values):
            if labels[index] == label:
                digest = _value_hash(value)
                labels[index] = _shorten(
                    label, min(MAX_VALUE_LABEL, len(label) + len(digest) + 1), digest
                )
    return labels


def _point_labels(axes: list[Axis], seeds: list[int]) -> list[str]:
    """One label per grid point, in :func:`itertools.product` order, short
    enough that every ``<label>-s<seed>`` is a valid run name."""
    budget = MAX_RUN_NAME - len(f"-s{max(seeds)}")
    labels = []
    for parts in itertools.product(*(_axis_labels(axis) for axis in axes)):
        label = "-".join(parts)
        if len(label) > budget:
            label = _shorten(label, budget, _value_hash(label))
        labels.append(label)
    return labels


def parse_vary(option: str) -> Axis:
    """Parse ``KEY=V1,V2,...`` (or ``KEY=[...]`` as YAML) into an :class:`Axis`."""
    if "=" not in option:
        raise ConfigError(
            f"--vary {option!r}: expected KEY=V1,V2,..., e.g. "
            "model.batch_norm=before,after"
        )
    key, _, raw = option.partition("=")
    key = key.strip()
    raw = raw.strip()
    if not key:
        raise ConfigError(f"--vary {option!r}: the key is empty")
    if raw.startswith("["):
        values = parse_yaml(raw, f"--vary {key}")
        if not isinstance(values, list):
            raise ConfigError(f"--vary {key}: expected a YAML list, got {raw!r}")
    else:
        values = [parse_yaml(part, f"--vary {key}") for part in raw.split(",")]
    if not values or any(
        v is None and p.strip() == ""
        for v, p in zip(values, raw.split(","), strict=False)
    ):
        raise ConfigError(
            f"--vary {key}: give at least one non-empty value, e.g. {key}=a,b"
        )
    return Axis(key, tuple(values))


def parse_activations(text: str) -> tuple[str, ...]:
    """Split ``--activations selu,elu,...`` and check every name."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise ConfigError("--activations: give at least one activation name")
    for name in names:
        try:
            resolve_component(ACTIVATIONS, name, "--activations")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return names


def expand_grid(
    base_data: dict[str, Any],
    base: Config,
    *,
    activations: tuple[Any, ...] | None = None,
    vary: list[Axis] | None = None,
    seeds: int | None = None,
    pairing: str | None = None,
) -> Grid:
    """Expand a config into every run of a sweep, validating each one.

    Args:
        base_data: the raw config mapping (with ``--set`` overrides applied), so
            grid values are applied before defaults are filled in.
        base: ``base_data`` validated.
        activations: from ``--activations``; when None, the config's
            ``compare.activations``, else :data:`CLASSIC_ACTIVATIONS`.
        vary: ``--vary`` axes, added after the config's ``compare.vary`` axes
            (a key given on the command line replaces the config's).
        seeds: seeds per grid point; when None, ``compare.seeds`` (default 3).
        pairing: ``none`` or ``recommended``; when None, ``compare.pairing``.

    Raises:
        ConfigError: for an invalid axis or any invalid grid point, naming it.
    """
    compare = base.compare
    activations_from_command = activations is not None
    if activations is None:
        activations = compare.activations if compare and compare.activations else None
    if activations is None:
        activations = CLASSIC_ACTIVATIONS
    seeds = seeds if seeds is not None else (compare.seeds if compare else 3)
    pairing = pairing or (compare.pairing if compare else "none")

    axes = [Axis(ACTIVATION_KEY, tuple(activations))]
    config_vary = [
        Axis(k, tuple(v)) for k, v in (compare.vary if compare else {}).items()
    ]
    command_keys = {axis.key for axis in vary or []}
    if activations_from_command and ACTIVATION_KEY in command_keys:
        raise ConfigError(
            f"--vary {ACTIVATION_KEY}: --activations already gives the "
            "activations; use one of the two"
        )
    if activations_from_command:
        command_keys.add(ACTIVATION_KEY)
    # The command line wins: a config axis whose key is also given there is
    # dropped (compared by key, so repeating the config's axis keeps it once).
    config_vary = [axis for axis in config_vary if axis.key not in command_keys]
    # Errors name the axis where the user wrote it.
    where = {id(axis): f"compare.vary.{axis.key}" for axis in config_vary}
    config_keys = {axis.key for axis in config_vary}
    for axis in config_vary + list(vary or []):
        name = where.get(id(axis), f"--vary {axis.key}")
        if axis.key == ACTIVATION_KEY:
            axes[0] = axis
            continue
        if axis.key in {a.key for a in axes}:
            raise ConfigError(f"{name}: the key is varied twice")
        if axis.key == "seed" or axis.key == "name":
            raise ConfigError(f"{name}: use --seeds for seeds; names are set per run")
        if not axis.values:
            raise ConfigError(f"{name}: no values")
        axes.append(axis)
    if pairing == "recommended" and any(
        a.key in ("model.initializer", "data.scaling") for a in axes
    ):
        raise ConfigError(
            "--pairing recommended chooses model.initializer (and data.scaling for "
            "SELU) itself; do not also vary them"
        )

    seed_values = [base.seed + offset for offset in range(seeds)]
    points: list[GridPoint] = []
    combinations = itertools.product(*(axis.values for axis in axes))
    labels = _point_labels(axes, seed_values)
    for combination, label in zip(combinations, labels, strict=True):
        values = {
            axis.key: value for axis, value in zip(axes, combination, strict=True)
        }
        point = GridPoint(values, label)
        for seed in seed_values:
            data = copy.deepcopy(base_data)
            data.pop("compare", None)
            for key, value in values.items():
                prefix = "compare.vary." if key in config_keys else "--vary "
                _apply_axis_value(data, key, value, prefix)
            if pairing == "recommended":
                _apply_pairing(data, values[ACTIVATION_KEY])
            data["seed"] = seed
            data["name"] = f"{label}-s{seed}"
            source = ", ".join(f"{k}={_describe(v)}" for k, v in values.items())
            try:
                point.configs.append(build_config(data))
            except ConfigError as exc:
                raise ConfigError(f"grid point {source}: {exc}") from None
        points.append(point)

    seen: dict[str, GridPoint] = {}
    for point in points:
        first_hash = point.configs[0].hash
        if first_hash in seen:
            first, second = _describe_pair(seen[first_hash], point)
            raise ConfigError(
                f"grid points {first} and {second} are the same run "
                "(aliases or repeated values); list each setting once"
            )
        seen[first_hash] = point
    labels = [point.label for point in points]
    if len(set(labels)) != len(labels):
        raise ConfigError(
            "two grid points would share a folder name; use distinct values"
        )
    return Grid(base, axes, seed_values, pairing, points)


def _describe_pair(first: GridPoint, second: GridPoint) -> tuple[str, str]:
    """Two grid points by the axis values where they differ (all if none do)."""
    keys = [k for k in first.values if first.values[k] != second.values[k]]
    keys = keys or list(first.values)

    def describe(point: GridPoint) -> str:
        return ", ".join(f"{k}={_describe(point.values[k])}" for k in keys)

    return describe(first), describe(second)


def _apply_axis_value(
    data: dict[str, Any], key: str, value: Any, prefix: str = "--vary "
) -> None:
    """Set one axis value; errors name the axis as ``prefix`` + key."""
    try:
        apply_override(data, key, copy.deepcopy(value))
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("--set ", prefix, 1)) from None


def _apply_pairing(data: dict[str, Any], activation: Any) -> None:
    name = activation["name"] if isinstance(activation, dict) else activation
    name = resolve_component(ACTIVATIONS, name, ACTIVATION_KEY)["name"]
    apply_override(data, "model.initializer", RECOMMENDED_INITIALIZER[name])
    if name == "selu":
        apply_override(data, "data.scaling", "standardize")


# --------------------------------------------------------------------------
# Sweep folders and resumption
# --------------------------------------------------------------------------


def find_or_create_sweep_dir(
    runs_dir: Path, grid: Grid, new: bool = False
) -> tuple[Path, bool]:
    """The sweep folder for this grid: the newest one with the same grid hash,
    else a new ``<runs_dir>/<name>-compare/<timestamp>/``.

    Returns:
        The folder and whether it already existed.
    """
    parent = ensure_writable_dir(Path(runs_dir) / f"{grid.base.name}-compare")
    # Two commands started together must agree on one folder: look and create
    # under an exclusive lock.
    with open(parent / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _find_or_create_locked(parent, grid, new)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _find_or_create_locked(parent: Path, grid: Grid, new: bool) -> tuple[Path, bool]:
    if not new:
        for candidate in sorted(parent.iterdir(), reverse=True):
            sweep_file = candidate / "sweep.yaml"
            if not sweep_file.is_file():
                continue
            try:
                described = yaml.safe_load(sweep_file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(described, dict) and described.get("grid_hash") == grid.hash:
                return candidate, True
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        candidate = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        write_text(
            candidate / "sweep.yaml", yaml.safe_dump(grid.describe(), sort_keys=False)
        )
        return candidate, False
    raise RunError(f"could not create a sweep folder under {parent}")


@dataclass
class PlannedRun:
    """One run of a sweep and what to do about it."""

    point: GridPoint
    config: Config
    action: str  # "skip", "train" or "resume"
    run_dir: Path | None = None
    status: str | None = None


RESUMABLE = ("interrupted", "running")
"""Statuses of a run that stopped from outside (Ctrl-C, SIGTERM, a crash or
SIGKILL leave ``running``) and can go on from its last checkpoint."""

RUNNING_ELSEWHERE = "running elsewhere"


def plan_runs(sweep_dir: Path, grid: Grid) -> list[PlannedRun]:
    """Decide, for every run of the grid, whether to skip, resume or train it.

    A finished run (completed or diverged) is skipped. An interrupted run (or
    one left ``running`` by a crash) whose folder holds a checkpoint is
    resumed; a failed run, or one without a checkpoint, is trained again in a
    new folder. A run claimed by a live process (another ``nnexp compare`` on
    the same sweep) is left alone, with status :data:`RUNNING_ELSEWHERE`.
    """
    by_hash: dict[str, list] = {}
    for run_dir in iter_run_dirs(sweep_dir):
        record = read_run(run_dir)
        if record.config_hash:
            by_hash.setdefault(record.config_hash, []).append(record)

    planned = []
    for point, config in grid.runs:
        records = by_hash.get(config.hash, [])
        finished = [r for r in records if r.status in FINISHED]
        if finished:
            planned.append(
                PlannedRun(point, config, "skip", finished[0].path, finished[0].status)
            )
            continue
        if is_claimed(sweep_dir, config.hash):
            planned.append(PlannedRun(point, config, "skip", None, RUNNING_ELSEWHERE))
            continue
        resumable = [
            r
            for r in records
            if r.status in RESUMABLE and (r.path / "checkpoint.npz").exists()
        ]
        if resumable:
            newest = max(resumable, key=lambda r: r.path.name)
            planned.append(
                PlannedRun(point, config, "resume", newest.path, newest.status)
            )
        else:
            planned.append(PlannedRun(point, config, "train"))
    return planned


def plan_line(grid: Grid, planned: list[PlannedRun]) -> str:
    """The line ``compare`` prints before training: the grid, and how many
    runs are done, to train, resumed and trained by another command."""
    axes = " x ".join(f"{a.short_name} ({len(a.values)})" for a in grid.axes)
    elsewhere = sum(p.status == RUNNING_ELSEWHERE for p in planned)
    to_do = [p for p in planned if p.action != "skip"]
    done = len(planned) - len(to_do) - elsewhere
    line = (
        f"grid: {axes} x {len(grid.seeds)} seed(s) = {len(planned)} runs; "
        f"{done} already done, {len(to_do)} to run "
        f"({sum(p.action == 'resume' for p in to_do)} resumed)"
    )
    if elsewhere:
        line += f", {elsewhere} being trained by another nnexp compare"
    return line


def wait_for_other_commands(
    sweep_dir: Path,
    waiting: list[tuple[str, str]],
    echo: Any = print,
    poll_seconds: float = 1.0,
) -> None:
    """Wait until runs claimed by another ``nnexp compare`` are released,
    saying first which runs and which process it waits for.

    Args:
        sweep_dir: the sweep folder.
        waiting: ``(run name, config hash)`` of each run to wait for.
        echo: prints one line.
        poll_seconds: how often the claims are looked at.
    """
    pending = [(name, h) for name, h in waiting if is_claimed(sweep_dir, h)]
    for name, config_hash in pending:
        pid = claim_owner(sweep_dir, config_hash)
        by = f" (pid {pid})" if pid else ""
        echo(f"{name}: being trained by another nnexp compare{by}; waiting for it")
    while any(is_claimed(sweep_dir, config_hash) for _, config_hash in pending):
        time.sleep(poll_seconds)


# --------------------------------------------------------------------------
# Claiming a run, so two sweeps on one folder never train the same run
# --------------------------------------------------------------------------

CLAIMS_DIR = ".claims"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_PROC = Path("/proc")


def _process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, field 22 of
    ``/proc/<pid>/stat``); None if there is no such live process (a zombie
    counts as gone) or no ``/proc`` to ask."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = stat.rpartition(")")[2].split()
    try:
        state, start = fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None
    return None if state in ("Z", "X") else start


def _boot_id() -> str | None:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _have_proc() -> bool:
    return _process_start(os.getpid()) is not None


def _claim_payload(pid: int) -> dict[str, Any]:
    """Who claims: pid and host, and (where ``/proc`` says) the process's start
    time and the boot, so a pid reused by another process is not mistaken for
    the claimant."""
    return {
        "pid": pid,
        "host": os.uname().nodename,
        "start_time": _process_start(pid),
        "boot_id": _boot_id(),
    }


def _owner_is_live(owner: Any) -> bool:
    """Whether a claim's owner is a live process on this machine.

    With ``/proc``, the pid must still be the process that claimed: same start
    time, same boot. A claim without a start time (written by an older nnexp,
    or a pid that then had none) is stale: the pid alone cannot tell.
    """
    if not isinstance(owner, dict):
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # os.kill(-1 or 0, 0) would ask about a whole group
    if owner.get("host") != os.uname().nodename:
        return False
    if not _have_proc():
        return _process_alive(pid)
    start = owner.get("start_time")
    if not isinstance(start, int) or isinstance(start, bool):
        return False
    if owner.get("boot_id") != _boot_id():
        return False
    return _process_start(pid) == start


def _claim_file(sweep_dir: Path, config_hash: str) -> Path:
    return Path(sweep_dir) / CLAIMS_DIR / f"{config_hash[:16]}.lock"


def _read_claim(sweep_dir: Path, config_hash: str) -> Any:
    try:
        return json.loads(_claim_file(sweep_dir, config_hash).read_text())
    except (OSError, ValueError):
        return None


def is_claimed(sweep_dir: Path, config_hash: str) -> bool:
    """Whether a live process on this machine is training that run."""
    return _owner_is_live(_read_claim(sweep_dir, config_hash))


def claim_owner(sweep_dir: Path, config_hash: str) -> int | None:
    """The pid of the live process that holds the claim on that run, if any."""
    owner = _read_claim(sweep_dir, config_hash)
    return owner["pid"] if _owner_is_live(owner) else None


def claim(sweep_dir: Path, config_hash: str, pid: int | None = None) -> bool:
    """Atomically claim a run (a hard link that fails if the claim exists);
    False if a live process has it.

    A stale claim (its process is gone, or its pid now belongs to another
    process) is replaced.
    """
    lock = _claim_file(sweep_dir, config_hash)
    lock.parent.mkdir(exist_ok=True)
    payload = json.dumps(_claim_payload(pid or os.getpid()))
    # The claim appears whole or not at all: written to a private file, then
    # hard-linked to the claim's name, which fails if the name exists.
    descriptor, staged = tempfile.mkstemp(prefix=".claim-", dir=lock.parent)
    try:
        with os.fdopen(descriptor, "w") as f:
            f.write(payload)
        for _ in range(2):
            try:
                os.link(staged, lock)
                return True
            except FileExistsError:
                if is_claimed(sweep_dir, config_hash):
                    return False
                _remove_stale_claim(lock)
        return False
    finally:
        Path(staged).unlink(missing_ok=True)


def _remove_stale_claim(lock: Path) -> None:
    """Remove a dead process's claim, unless someone replaced it meanwhile."""
    stale = lock.with_name(f".{lock.name}.{os.getpid()}.stale")
    try:
        os.rename(lock, stale)
    except FileNotFoundError:
        return
    try:
        alive = _owner_is_live(json.loads(stale.read_text()))
    except (OSError, ValueError):
        alive = False
    if alive:
        # A live claim slipped in between our check and the rename: put it back.
        try:
            os.link(stale, lock)
        except FileExistsError:
            pass
    stale.unlink(missing_ok=True)


def release(sweep_dir: Path, config_hash: str, pid: int | None = None) -> None:
    """Give back a run claimed by this process (or ``pid``).

    A claim held by another live process is left alone: a sweep that found a
    run claimed, and skipped it, must not free it for a third process.
    """
    lock = _claim_file(sweep_dir, config_hash)
    try:
        owner = json.loads(lock.read_text())
    except (OSError, ValueError):
        return  # gone, or unreadable: claim() replaces what no live process holds
    if (
        isinstance(owner, dict)
        and owner.get("pid") == (pid or os.getpid())
        and owner.get("host") == os.uname().nodename
    ):
        lock.unlink(missing_ok=True)


def finished_run(sweep_dir: Path, config_hash: str) -> Path | None:
    """A finished (completed or diverged) run folder of that config, if any."""
    for run_dir in iter_run_dirs(sweep_dir):
        record = read_run(run_dir)
        if record.config_hash == config_hash and record.status in FINISHED:
            return run_dir
    return None


def load_sweep_base(
    path: Path, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[dict[str, Any], Config]:
    """The raw config mapping (overrides applied) and its validated form.

    Grid values are applied to the raw mapping, so a grid point differs from
    the base exactly where the user asked. The base is validated as ``train``
    and ``check`` validate the file (:func:`nnexp.config.load_config`), with
    the same default name when the file has none.
    """
    path = Path(path)
    data = read_config_file(path)
    for override in overrides:
        key, value = parse_override(override)
        apply_override(data, key, value)
    data.setdefault("name", default_name_for(path))
    return data, build_config(data)
