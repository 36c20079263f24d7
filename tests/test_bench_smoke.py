"""Smoke test of the benchmark runner: ``bench/run.py --quick`` runs its
sections on a tiny slice of the data and writes its JSON. Timings are never
checked here (the machine is shared); only that it works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNNER = REPO / "bench" / "run.py"
# --quick leaves out the equivalence section (it would add ~10 s).
SECTIONS = ("train", "sweep", "data", "startup", "flops")
DATA_DIR = Path("/usr/share/datasets/fashion-mnist")


def _have_data() -> bool:
    """The runner reads the data like nnexp: Keras' cache or the Debian package."""
    import os

    for folder in (
        DATA_DIR,
        Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
        / "datasets"
        / "fashion-mnist",
    ):
        if (folder / "train-images-idx3-ubyte.gz").is_file():
            return True
    return False


@pytest.mark.skipif(
    not _have_data(),
    reason="needs Fashion-MNIST: apt-get install dataset-fashion-mnist",
)
def test_quick_benchmark_runs_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(RUNNER),
            "--quick",
            "--quiet",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, (
        completed.stdout[-2000:] + completed.stderr[-3000:]
    )
    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert results["failures"] == []
    for section in SECTIONS:
        assert section in results, section
    arms = results["train"]["arms"]
    assert set(arms) == {"plain", "nnexp"}
    assert all(arm["steps_per_second"] > 0 for arm in arms.values())
    assert all(arm["peak_rss_mb"] > 0 for arm in arms.values())
    assert results["sweep"]["arms"]["jobs1"]["wall_seconds"] > 0
    assert results["data"]["load_raw_first_call"] > 0
    assert results["startup"]["tensorflow_imported"] is False
    assert "TARGETS" in completed.stdout
