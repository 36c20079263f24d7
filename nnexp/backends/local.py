"""Running a sweep's runs on this machine, in one or several worker processes.

With ``jobs=1`` runs train one after another in this process (TensorFlow and
the data are loaded once). With ``jobs=N`` they train in N spawned worker
processes, each limited to ``cores / N`` TensorFlow threads so the machine is
not oversubscribed, each loading the data once and keeping it for every run it
trains. Workers report progress through a queue; the driver draws it.

A run that raises is recorded ``failed`` in its own run folder (by
:func:`nnexp.experiment.execute_run`) and the sweep goes on.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from nnexp.backends.base import RunTask, TaskResult, execute_task

WORKER_DIED = "the worker process died (killed or out of memory)"

_worker_events: Any = None
_parent_pid: int | None = None
_worker_threads: int | None = None


class _QueueDisplay:
    """Forwards a run's progress from a worker to the driver's queue."""

    def __init__(self, events: Any, index: int) -> None:
        self.events = events
        self.index = index
        self.pid = os.getpid()

    def _send(self, *event: Any) -> None:
        try:
            self.events.put_nowait((self.pid, self.index, *event))
        except Exception:  # noqa: BLE001 - progress must never break training
            pass

    def on_epoch_begin(self, epoch: int, steps: int) -> None:
        self._send("epoch", epoch, 0, steps)

    def on_progress(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        self._send("step", epoch, step, loss)

    def on_epoch_end(self, metrics: Any, trainer: Any) -> None:
        self._send("epoch_end", metrics.epoch, metrics.val_accuracy, None)


def _stop_with_parent(parent_pid: int) -> None:
    """Have the kernel interrupt this worker when the driver dies (Linux).

    A driver killed with SIGKILL cannot tell its workers; without this they
    would train on, orphaned, while a rerun of the sweep trains the same runs.
    SIGINT makes the worker mark its run interrupted, so the rerun resumes it.
    """
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        set_parent_death_signal = 1  # PR_SET_PDEATHSIG
        libc.prctl(set_parent_death_signal, int(signal.SIGINT), 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: orphans finish their current run, then exit
    if os.getppid() != parent_pid:
        # The driver died before prctl took effect.
        os.kill(os.getpid(), signal.SIGINT)


def _watch_parent(parent_pid: int, grace_seconds: float = 15.0) -> None:
    """Backstop for :func:`_stop_with_parent`: once the driver is gone, give the
    interrupted run ``grace_seconds`` to mark itself, then leave for certain.

    The interrupt can land where it is swallowed or where the worker then waits
    on a pipe nobody reads; a worker must never outlive its driver for long.
    """
    import signal
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(grace_seconds)
        os._exit(130)

    threading.Thread(target=watch, name="nnexp-parent-watch", daemon=True).start()


def _initialize_worker(events: Any, threads: int | None, parent_pid: int) -> None:
    global _worker_events, _worker_threads, _parent_pid
    _parent_pid = parent_pid
    # Progress events are a courtesy: if the driver is gone, nobody drains the
    # queue, and a worker must still be able to exit rather than wait forever
    # for its queued events to be read.
    events.cancel_join_thread()
    _stop_with_parent(parent_pid)
    _watch_parent(parent_pid)
    _worker_events = events
    _worker_threads = threads
    from nnexp.training import start_tensorflow

    start_tensorflow(threads)


def _run_in_worker(task: RunTask) -> TaskResult:
    display = _QueueDisplay(_worker_events, task.index)
    display._send("start", 0, 0, None)
    try:
        return execute_task(task, display)
    except KeyboardInterrupt:
        if os.getppid() != _parent_pid:
            # The driver is gone: the run is marked interrupted; nobody is left
            # to receive a result, so leave at once instead of waiting for one.
            os._exit(130)
        raise


def run_local(
    tasks: list[RunTask],
    jobs: int,
    threads_per_job: int | None,
    on_event: Any,
    on_result: Any,
) -> None:
    """Train ``tasks`` with ``jobs`` workers, reporting events and results.

    Args:
        tasks: the runs to train or resume.
        jobs: worker processes; 1 trains in this process.
        threads_per_job: TensorFlow threads per run.
        on_event: called with ``(worker_pid, task_index, kind, a, b, c)``.
        on_result: called with each :class:`TaskResult` as it finishes.
    """
    if jobs <= 1:
        from nnexp.training import start_tensorflow

        start_tensorflow(threads_per_job)
        for task in tasks:
            display = _LocalDisplay(on_event, task.index)
            on_event(os.getpid(), task.index, "start", 0, 0, None)
            on_result(execute_task(task, display))
        return

    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    remaining = list(tasks)
    while remaining:
        broken = _run_pool(
            context, events, remaining, jobs, threads_per_job, on_event, on_result
        )
        # A worker that died (killed, out of memory) breaks the whole pool: the
        # runs it was holding are recorded failed, the rest get a new pool.
        remaining = broken


def _run_pool(
    context: Any,
    events: Any,
    tasks: list[RunTask],
    jobs: int,
    threads: int | None,
    on_event: Any,
    on_result: Any,
) -> list[RunTask]:
    pending_tasks = {task.index: task for task in tasks}
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(tasks)),
        mp_context=context,
        initializer=_initialize_worker,
        initargs=(events, threads, os.getpid()),
    ) as pool:
        futures = {pool.submit(_run_in_worker, task): task for task in tasks}
        not_done = set(futures)
        try:
            while not_done:
                _drain(events, on_event)
                done, not_done = wait(
                    not_done, timeout=0.2, return_when=FIRST_COMPLETED
                )
                broken: list[RunTask] = []
                for future in done:
                    task = futures[future]
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken.append(task)
                        continue
                    pending_tasks.pop(task.index, None)
                    on_result(result)
                if broken:
                    # A worker died (killed, out of memory) and took the pool with
                    # it. Which of the broken tasks it was is unknown, so the
                    # first is recorded failed and the rest train again in a
                    # new pool; each round fails one task, so this ends.
                    blamed = broken[0]
                    pending_tasks.pop(blamed.index, None)
                    on_result(TaskResult(blamed.index, "failed", None, WORKER_DIED))
                    for future in not_done:
                        future.cancel()
                    _drain(events, on_event)
                    return list(pending_tasks.values())
            _drain(events, on_event)
        except KeyboardInterrupt:
            for future in not_done:
                future.cancel()
            _interrupt_workers(pool)
            raise
    return []


def _interrupt_workers(pool: ProcessPoolExecutor) -> None:
    """Pass an interrupt on to the workers, so each marks its run interrupted
    (a SIGTERM to the driver alone would otherwise leave them training)."""
    import signal

    for process in list(getattr(pool, "_processes", {}).values()):
        try:
            os.kill(process.pid, signal.SIGINT)
        except (ProcessLookupError, AttributeError):
            pass


def _drain(events: Any, on_event: Any) -> None:
    while True:
        try:
            event = events.get_nowait()
        except (queue_module.Empty, OSError, EOFError):
            return
        on_event(*event)


class _LocalDisplay:
    """The in-process counterpart of :class:`_QueueDisplay`."""

    def __init__(self, on_event: Any, index: int) -> None:
        self.on_event = on_event
        self.index = index
        self.pid = os.getpid()

    def on_epoch_begin(self, epoch: int, steps: int) -> None:
        self.on_event(self.pid, self.index, "epoch", epoch, 0, steps)

    def on_progress(self, epoch: int, step: int, loss: float, accuracy: float) -> None:
        self.on_event(self.pid, self.index, "step", epoch, step, loss)

    def on_epoch_end(self, metrics: Any, trainer: Any) -> None:
        self.on_event(
            self.pid, self.index, "epoch_end", metrics.epoch, metrics.val_accuracy, None
        )
