"""Where a sweep's runs execute: local worker processes, or a Ray cluster."""

from __future__ import annotations

import os

MEMORY_PER_JOB = 2 * 1024**3
"""What one training worker may need: about 1.25 GB peak for the reference
model on the full data (bench/BENCHMARKS.md), plus headroom."""


def default_jobs() -> int:
    """One worker per core, as many as memory allows.

    Measured on 2 cores (bench/BENCHMARKS.md): 6 activations x 1 epoch took
    21% of the plain script's time with 2 single-threaded workers and 34% with
    one two-threaded worker; small models do not use two threads well, so a
    worker per core wins.
    """
    cores = os.cpu_count() or 1
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return cores
    return max(1, min(cores, available // MEMORY_PER_JOB))
