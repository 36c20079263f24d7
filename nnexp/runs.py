"""Run folders: layout, atomic writes, reading back and listing.

One run is one folder, ``<runs_dir>/<name>/<YYYYmmdd-HHMMSS>-<hash8>/``::

    config.yaml      the fully resolved config (defaults filled in)
    metrics.csv      one row per finished epoch
    result.json      status, final/best/test metrics, parameters, versions
    model.keras      the trained model (Keras' own format)
    curves.png       loss and accuracy, train vs validation
    checkpoint.npz   every variable after the last finished epoch (for --resume)

``status`` in result.json is one of ``running``, ``completed``, ``diverged``,
``failed`` or ``interrupted``. Every file is written to a temporary name in the
same folder and renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nnexp.errors import RunError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()

STATUSES = ("running", "completed", "diverged", "failed", "interrupted")
FINISHED = ("completed", "diverged")
"""Statuses that another attempt would not change (same config, same seed)."""


def write_atomic(
    path: Path, write: Callable[[Any], None], binary: bool = False
) -> None:
    """Write a file whole or not at all: to a temporary sibling, then rename.

    Args:
        path: the final file.
        write: called with an open file object to fill in.
        binary: open the temporary file in binary mode.

    Raises:
        RunError: naming ``path`` when the file system refuses (a full disk, a
            vanished folder); the old file, if any, is left intact.
    """

    def save(temporary: Path) -> None:
        encoding = {} if binary else {"encoding": "utf-8"}
        with open(temporary, "wb" if binary else "w", **encoding) as f:
            write(f)

    save_atomic(path, save)


def save_atomic(path: Path, save: Callable[[Path], None]) -> None:
    """Write a file whole or not at all through a writer that takes a path
    (Keras' ``model.save``): to a temporary sibling, then rename.

    The temporary name ends like ``path`` (``.model.<random>.tmp.keras``), as
    Keras insists on the suffix. On any failure the temporary file is removed,
    so a full disk does not keep the space a half-written file took.

    Raises:
        RunError: naming ``path`` when the file system refuses (a full disk, a
            vanished folder). Other exceptions of ``save`` propagate unchanged.
    """
    path = Path(path)
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        os.close(descriptor)
    except OSError as exc:
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        # mkstemp creates the file readable by its owner only; give it the
        # permissions an ordinary file would get under the user's umask.
        os.chmod(temporary, 0o666 & ~_UMASK)
        save(Path(temporary))
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        # A full disk or a vanished folder: the old file (if any) is intact.
        Path(temporary).unlink(missing_ok=True)
        raise RunError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Atomically write a text file."""
    write_atomic(path, lambda f: f.write(text))


def _finite_or_null(value: Any) -> Any:
    """NaN and infinity become null: strict JSON has no token for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(item) for item in value]
    return value


def strict_json(data: Any) -> str:
    """Strict JSON text: indented, keys in insertion order, NaN and infinity
    as null (which every JSON parser accepts)."""
    return json.dumps(_finite_or_null(data), indent=2, allow_nan=False)


def write_json(path: Path, data: Any) -> None:
    """Atomically write :func:`strict_json` text."""
    write_text(path, strict_json(data) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Atomically write a CSV with a header row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def ensure_writable_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and check that files can be written there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(
            dir=path, prefix=".write-test-", delete=True
        )
        probe.close()
    except FileExistsError:
        raise RunError(f"runs folder {path} exists but is not a folder") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RunError(f"cannot write into runs folder {path}: {reason}") from None
    return path


def create_run_dir(runs_dir: Path, name: str, short_hash: str) -> Path:
    """Create a new, empty run folder ``<runs_dir>/<name>/<timestamp>-<hash>``.

    The folder is claimed with ``mkdir``, which fails if it exists, so two
    processes can never write into the same run.
    """
    parent = ensure_writable_dir(Path(runs_dir) / name)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        suffix = "" if attempt == 0 else f"-{attempt}"
        candidate = parent / f"{stamp}-{short_hash}{suffix}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunError(f"could not create a new run folder under {parent}")


@dataclass
class RunRecord:
    """A run folder read back from disk."""

    path: Path
    result: dict[str, Any] | None
    problem: str | None = None

    @property
    def status(self) -> str:
        if self.result is None:
            return "unreadable"
        return str(self.result.get("status", "unknown"))

    @property
    def config_hash(self) -> str | None:
        return None if self.result is None else self.result.get("config_hash")


def type_name(value: Any) -> str:
    """What a value read from a file is, for a message (``a string``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def wrong_type(key: str, expected: str, value: Any) -> str:
    """A field read from a file has the wrong type:
    ``'best' should be a mapping, got a string``."""
    return f"'{key}' should be {expected}, got {type_name(value)}"


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TEXT_FIELDS = (
    "status",
    "name",
    "config_hash",
    "started_at",
    "updated_at",
    "finished_at",
    "message",
    "platform",
    "python_executable",
)
_WHOLE_FIELDS = ("seed", "epochs_planned", "epochs_completed", "train_images")
_NUMBER_FIELDS = ("seconds_per_epoch", "seconds_first_epoch", "wall_seconds")
_METRIC_FIELDS = ("final", "best", "test")


def result_problem(result: dict[str, Any]) -> str | None:
    """The first field of a ``result.json`` whose type is not what nnexp
    writes, as ``'best' should be a mapping, got a string``; None if all fit.

    Absent fields are fine (a run that has not finished an epoch has no
    ``final``), and so is null where nnexp writes it (``final`` before the first
    epoch, a NaN metric); fields nnexp does not know are not checked.
    """

    for key in _TEXT_FIELDS:
        if key in result and not isinstance(result[key], str):
            return wrong_type(key, "a string", result[key])
    for key in _WHOLE_FIELDS:
        if key in result and not is_whole(result[key]):
            return wrong_type(key, "a whole number", result[key])
    for key in _NUMBER_FIELDS:
        value = result.get(key)
        if value is not None and not is_number(value):
            return wrong_type(key, "a number", value)
    for key in _METRIC_FIELDS:
        metrics = result.get(key)
        if metrics is None:
            continue
        if not isinstance(metrics, dict):
            return wrong_type(key, "a mapping", metrics)
        for name, value in metrics.items():
            if value is None:
                continue
            if name == "epoch" and not is_whole(value):
                return wrong_type(f"{key}.{name}", "a whole number", value)
            if not is_number(value):
                return wrong_type(f"{key}.{name}", "a number", value)
    params = result.get("params")
    if params is not None:
        if not isinstance(params, dict):
            return wrong_type("params", "a mapping", params)
        for name, value in params.items():
            if not is_whole(value):
                return wrong_type(f"params.{name}", "a whole number", value)
    versions = result.get("versions")
    if versions is not None:
        if not isinstance(versions, dict):
            return wrong_type("versions", "a mapping", versions)
        for name, value in versions.items():
            if not isinstance(value, str):
                return wrong_type(f"versions.{name}", "a string", value)
    if "resumed_at" in result:
        resumed = result["resumed_at"]
        if not isinstance(resumed, list):
            return wrong_type("resumed_at", "a list", resumed)
        for index, value in enumerate(resumed):
            if not isinstance(value, str):
                return wrong_type(f"resumed_at[{index}]", "a string", value)
    return None


def read_result(run_dir: Path) -> dict[str, Any]:
    """Read ``result.json`` of a run folder.

    Raises:
        RunError: if it is missing, not valid JSON or malformed (a field of
            the wrong type, see :func:`result_problem`), naming the file.
    """
    path = Path(run_dir) / "result.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{run_dir} is not a run folder (no result.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path} is unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise RunError(f"{path} is unreadable: expected a JSON object")
    problem = result_problem(data)
    if problem:
        raise RunError(f"{path} is malformed: {problem}")
    return data


def read_run(run_dir: Path) -> RunRecord:
    """Read a run folder, recording (not raising) a problem with its files.

    A completed run's ``model.keras`` is checked to be a whole zip archive (the
    format Keras saves), without loading it.
    """
    try:
        result = read_result(run_dir)
    except RunError as exc:
        return RunRecord(Path(run_dir), None, str(exc))
    problem = None
    model = Path(run_dir) / "model.keras"
    if result.get("status") == "completed":
        if not model.exists():
            problem = "model.keras is missing"
        elif not zipfile.is_zipfile(model):
            problem = "model.keras is corrupt (not a Keras archive)"
    return RunRecord(Path(run_dir), result, problem)


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """The per-epoch rows of ``metrics.csv`` as numbers (empty if none yet).

    ``epoch`` is read back as an int, so a resumed run rewrites it as ``1``,
    not ``1.0``; every other column is a float.
    """
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return []
    try:
        return [
            {
                key: int(value) if key == "epoch" else float(value)
                for key, value in row.items()
            }
            for row in read_csv(path)
        ]
    except (OSError, ValueError, TypeError) as exc:
        raise RunError(f"{path} is unreadable: {exc}") from None


def iter_run_dirs(root: Path) -> Iterator[Path]:
    """Every run folder (a folder holding result.json) under ``root``."""
    root = Path(root)
    if (root / "result.json").exists():
        yield root
        return
    for result in sorted(root.rglob("result.json")):
        yield result.parent


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "result.json").is_file() or (
        Path(path) / "config.yaml"
    ).is_file()
