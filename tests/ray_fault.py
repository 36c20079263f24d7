"""A Ray worker set-up hook for tests: makes one named run raise inside training.

Ray runs this in every worker process it starts (``worker_process_setup_hook``),
so the fault happens on the worker, exactly where a real bug would.
"""

from __future__ import annotations

import os

FAILING_RUN = "relu-s7"


def install() -> None:
    from nnexp import experiment

    original = experiment._train_into

    def train_or_fail(config, *args, **kwargs):  # type: ignore[no-untyped-def]
        if config.name == os.environ.get("NNEXP_TEST_FAILING_RUN", FAILING_RUN):
            raise RuntimeError("injected failure on the worker")
        return original(config, *args, **kwargs)

    experiment._train_into = train_or_fail
