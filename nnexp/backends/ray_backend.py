"""Running a sweep's runs as Ray tasks, on a local Ray instance or a cluster.

Each run is one Ray task with its own CPU request. A worker trains into a
private temporary folder (workers need not share a filesystem with the
driver), then sends that folder back packed as a tar archive; the driver
unpacks it into the sweep folder, where it looks exactly as if the local
backend had written it. To resume an interrupted run, the driver sends the run
folder along with the task.

A task whose worker process dies is retried by Ray (``max_retries``); if it
still fails, the driver records the run ``failed`` and the sweep goes on.

The dataset on workers: by default each worker finds Fashion-MNIST by the
usual search order (data dir, Keras cache, the Debian package, download). With
``ship_data`` the driver decodes it once and puts the arrays into Ray's object
store, and every task reads them from there.

Ray is an optional dependency (``pip install 'nnexp[ray]'``); this module is
imported only by ``nnexp compare --backend ray``.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from nnexp.backends.base import RunTask, TaskResult
from nnexp.errors import NnexpError

TASK_RETRIES = 2

DEFAULT_RUNTIME_ENV: dict[str, Any] | None = None
"""Ray runtime environment used when none is given (tests set a worker hook)."""


def import_ray() -> Any:
    """Import Ray, or explain how to install it."""
    try:
        import ray
    except ImportError:
        raise NnexpError(
            "--backend ray needs Ray: pip install 'nnexp[ray]' (or pip install "
            "'ray[default]')"
        ) from None
    return ray


def pack_folder(folder: Path) -> bytes:
    """A folder's content as an uncompressed tar archive in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(Path(folder).iterdir()):
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


def unpack_into(archive_bytes: bytes, destination: Path) -> None:
    """Unpack a :func:`pack_folder` archive into ``destination``.

    Each top-level entry is unpacked next to its destination first and then
    renamed into place, so a reader never sees half a run folder.
    """
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=destination))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r") as archive:
            archive.extractall(staging, filter="data")
        _merge_tree(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge_tree(source: Path, destination: Path) -> None:
    """Move every run folder of ``source`` into the same place under ``destination``."""
    for name_dir in source.iterdir():
        target_parent = destination / name_dir.name
        target_parent.mkdir(exist_ok=True)
        for run_dir in name_dir.iterdir():
            target = target_parent / run_dir.name
            if target.exists():
                # A resumed run comes back whole: swap it in, then drop the old.
                old = target.with_name(f".{target.name}.old")
                target.rename(old)
                run_dir.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                run_dir.rename(target)


REACH_TIMEOUT_SECONDS = 5.0


def check_reachable(address: str) -> None:
    """Fail fast if a ``HOST:PORT`` or ``ray://HOST:PORT`` address does not answer.

    ``ray.init`` retries an unreachable address for minutes while printing
    connection warnings; a plain TCP connection says within seconds whether
    anything listens there. ``auto`` is left to Ray, which finds the local
    cluster's address itself and fails at once when there is none.

    Raises:
        NnexpError: the address is malformed or nothing answers there.
    """
    import socket

    if address == "auto":
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise NnexpError(
            f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT"
        )
    try:
        with socket.create_connection(
            (host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_SECONDS
        ):
            pass
    except OSError as exc:
        raise NnexpError(
            f"cannot reach Ray at {address}: {exc.strerror or exc}; start the "
            "cluster first (ray start --head) or check the address"
        ) from None


def _run_task_on_worker(
    task: RunTask, resume_archive: bytes | None, splits: Any, threads: int
) -> tuple[TaskResult, bytes]:
    """The body of a Ray task: train into a private folder, return it packed."""
    from nnexp.backends.base import execute_task
    from nnexp.training import start_tensorflow

    start_tensorflow(threads)
    with tempfile.TemporaryDirectory(prefix="nnexp-ray-") as scratch:
        scratch_path = Path(scratch)
        resume_dir = None
        if resume_archive is not None and task.resume_dir:
            original = Path(task.resume_dir)
            relative = Path(original.parent.name) / original.name
            unpack_into(resume_archive, scratch_path)
            resume_dir = str(scratch_path / relative)
        local_task = RunTask(
            index=task.index,
            config_yaml=task.config_yaml,
            sweep_dir=str(scratch_path),
            label=task.label,
            resume_dir=resume_dir,
            data_dir=task.data_dir,
        )
        result = execute_task(local_task, display=None, splits=splits)
        packed = pack_folder(scratch_path)
    run_dir = None
    if result.run_dir:
        relative_run = Path(result.run_dir).relative_to(scratch_path)
        run_dir = str(Path(task.sweep_dir) / relative_run)
    return TaskResult(result.index, result.status, run_dir, result.message), packed


def run_ray(
    tasks: list[RunTask],
    *,
    address: str | None,
    cpus_per_run: int,
    ship_data: bool,
    on_event: Any,
    on_result: Any,
    on_failure: Any,
    runtime_env: dict[str, Any] | None = None,
) -> None:
    """Submit every task to Ray and write results into the sweep folder.

    Args:
        tasks: the runs to train or resume.
        address: ``None`` starts a local Ray instance; ``auto``, ``HOST:PORT``
            or ``ray://HOST:PORT`` connect to a running cluster.
        cpus_per_run: CPUs each task requests (and TensorFlow threads it uses).
        ship_data: put the decoded data into Ray's object store once.
        on_event: progress events, as with the local backend (Ray tasks report
            only when they finish).
        on_result: called with each :class:`TaskResult`.
        on_failure: called with ``(task, message)`` for a task Ray gave up on;
            it records the run as failed.
        runtime_env: passed to ``ray.init`` (e.g. environment variables).
    """
    ray = import_ray()
    init_options: dict[str, Any] = {
        "ignore_reinit_error": True,
        "include_dashboard": False,
        "logging_level": "ERROR",
        "log_to_driver": False,
    }
    runtime_env = runtime_env or DEFAULT_RUNTIME_ENV
    if runtime_env:
        init_options["runtime_env"] = runtime_env
    if address:
        init_options["address"] = address
    else:
        init_options["num_cpus"] = os.cpu_count() or 1
    # A caller that already connected (a notebook, a test) keeps its Ray.
    started_here = not ray.is_initialized()
    try:
        if started_here:
            ray.init(**init_options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise NnexpError(
            f"cannot connect to Ray at {address or 'a new local instance'}: {exc}"
        ) from None

    remote_run = ray.remote(num_cpus=cpus_per_run, max_retries=TASK_RETRIES)(
        _run_task_on_worker
    )
    shipped: dict[tuple, Any] = {}
    pending = {}
    for task in tasks:
        splits_ref = None
        if ship_data:
            splits_ref = _shipped_splits(ray, task, shipped)
        resume_archive = None
        if task.resume_dir:
            resume_archive = _pack_single_run(Path(task.resume_dir))
        reference = remote_run.remote(task, resume_archive, splits_ref, cpus_per_run)
        pending[reference] = task

    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for reference in done:
                task = pending.pop(reference)
                try:
                    result, archive = ray.get(reference)
                except Exception as exc:  # noqa: BLE001 - Ray wraps worker deaths
                    message = (
                        f"Ray gave up after {TASK_RETRIES} retries: "
                        f"{type(exc).__name__}"
                    )
                    on_failure(task, message)
                    on_result(TaskResult(task.index, "failed", None, message))
                    continue
                unpack_into(archive, Path(task.sweep_dir))
                on_result(result)
    except KeyboardInterrupt:
        for reference in pending:
            ray.cancel(reference, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


def _pack_single_run(run_dir: Path) -> bytes:
    """``<name>/<run>`` of a run folder, packed like a worker's scratch folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(run_dir, arcname=f"{run_dir.parent.name}/{run_dir.name}")
    return buffer.getvalue()


def _shipped_splits(ray: Any, task: RunTask, shipped: dict[tuple, Any]) -> Any:
    """Decode the data a task needs once and share it through the object store."""
    from nnexp.backends.base import load_splits_cached
    from nnexp.config import config_from_yaml_text

    config = config_from_yaml_text(task.config_yaml, f"run {task.label}")
    key = (
        config.data.validation_size,
        config.data.train_size,
        config.data.scaling,
        task.data_dir,
    )
    if key not in shipped:
        shipped[key] = ray.put(load_splits_cached(config, task.data_dir))
    return shipped[key]
