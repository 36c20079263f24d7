"""Figures, rendered headless with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnexp.runs import write_atomic


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    """Save a figure as PNG, atomically, and free it."""
    plt = _pyplot()
    try:
        write_atomic(path, lambda f: figure.savefig(f, format="png", dpi=110), binary=True)
    finally:
        plt.close(figure)


def plot_run_curves(history: list[dict[str, float]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch, training vs validation, side by side."""
    plt = _pyplot()
    epochs = [int(row["epoch"]) for row in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    for axes, key, label in (
        (loss_axes, "loss", "loss"),
        (accuracy_axes, "accuracy", "accuracy"),
    ):
        axes.plot(epochs, [row[key] for row in history], "o-", label="train")
        axes.plot(epochs, [row[f"val_{key}"] for row in history], "o-", label="validation")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)
