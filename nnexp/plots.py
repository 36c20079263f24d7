"""Figures, rendered headless with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnexp.runs import write_atomic

FAR_BEHIND = 20.0
"""Percentage points behind the best point from which final.png stops
stretching its axis to show a point and marks it on the edge instead."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> None:
    """Save a figure as PNG, atomically, and free it."""
    plt = _pyplot()
    try:
        write_atomic(
            path, lambda f: figure.savefig(f, format="png", dpi=110), binary=True
        )
    finally:
        plt.close(figure)


def _whole_epoch_ticks(axes: Any) -> None:
    """Tick the epoch axis at whole epochs only (no "epoch 1.5")."""
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


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
        axes.plot(
            epochs, [row[f"val_{key}"] for row in history], "o-", label="validation"
        )
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        _whole_epoch_ticks(axes)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)


def plot_sweep_curves(
    curves: dict[str, list[list[dict[str, float]]]], path: Path
) -> None:
    """Validation accuracy and loss per epoch for each grid point: the mean
    over seeds with a band of ±1 standard deviation.

    As in final.png, points whose final accuracy is far behind the best are
    kept off the scale (their legend entry says where they ended), so that
    one network that did not learn leaves the others readable.
    """
    import numpy as np

    from nnexp.sweep_report import mean_curves

    plt = _pyplot()
    figure, (accuracy_axes, loss_axes) = plt.subplots(1, 2, figsize=(12, 4.5))
    series = {}
    for label, histories in curves.items():
        if histories:
            series[label] = {
                key: mean_curves(histories, key) for key in ("val_accuracy", "val_loss")
            }
    finals = {label: 100 * s["val_accuracy"][1][-1] for label, s in series.items()}
    best = max(finals.values(), default=0.0)
    far = {label for label, final in finals.items() if best - final > FAR_BEHIND}

    for label, by_key in series.items():
        legend = f"{label} (off scale: {finals[label]:.1f}%)" if label in far else label
        for axes, key, scale in (
            (accuracy_axes, "val_accuracy", 100.0),
            (loss_axes, "val_loss", 1.0),
        ):
            epochs, mean, std = by_key[key]
            (line,) = axes.plot(epochs, scale * mean, "o-", markersize=3, label=legend)
            axes.fill_between(
                epochs,
                scale * (mean - std),
                scale * (mean + std),
                alpha=0.15,
                color=line.get_color(),
            )
    if far and len(far) < len(series):
        for axes, key, scale in (
            (accuracy_axes, "val_accuracy", 100.0),
            (loss_axes, "val_loss", 1.0),
        ):
            shown = [
                scale * np.concatenate([mean - std, mean + std])
                for label, by_key in series.items()
                if label not in far
                for _, mean, std in [by_key[key]]
            ]
            low = min(float(np.nanmin(v)) for v in shown)
            high = max(float(np.nanmax(v)) for v in shown)
            margin = max(0.05 * (high - low), 1e-3)
            axes.set_ylim(low - margin, high + margin)
    for axes, name in (
        (accuracy_axes, "validation accuracy (%)"),
        (loss_axes, "validation loss"),
    ):
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        _whole_epoch_ticks(axes)
        axes.grid(alpha=0.3)
    if accuracy_axes.get_legend_handles_labels()[0]:
        accuracy_axes.legend(fontsize="small")
    figure.suptitle("mean over seeds, band = ±1 std")
    figure.tight_layout()
    save_figure(figure, path)


VERDICT_COLORS = {"best": "tab:blue", "tied with best": "tab:green", "worse": "tab:red"}
"""Marker colour of each verdict in final.png; other verdicts are grey."""


def plot_sweep_final(points: list[tuple[str, Any, str]], path: Path) -> None:
    """Final validation accuracy per grid point with 95% confidence intervals.

    Args:
        points: (label, :class:`nnexp.stats.Summary` of the final validation
            accuracy, verdict) per grid point, best first. The marker's colour
            is the verdict; a point with one seed has no interval and is drawn
            hollow; the tick label gives the number of completed seeds.
        path: where to write the PNG.

    When some points are far behind the rest (a network that did not learn),
    the axis zooms on the leading group so its intervals stay readable, and the
    others are drawn as labelled markers on the bottom edge.
    """
    import math

    plt = _pyplot()
    means = [100 * s.mean if s.n else math.nan for _, s, _ in points]
    errors = [
        100 * s.ci95 if s.n > 1 and math.isfinite(s.ci95) else 0.0 for _, s, _ in points
    ]
    colors = [VERDICT_COLORS.get(verdict, "tab:gray") for _, _, verdict in points]
    labels = [
        f"{label}\n(n={s.n})" if s.n else f"{label}\n(no runs)"
        for label, s, _ in points
    ]
    figure, axes = plt.subplots(figsize=(max(5, 0.9 * len(points) + 2), 4.8))
    positions = list(range(len(points)))
    finite = [m for m in means if math.isfinite(m)]
    best = max(finite) if finite else math.nan
    leading = [
        (m, e)
        for m, e in zip(means, errors, strict=True)
        if math.isfinite(m) and best - m <= FAR_BEHIND
    ]
    far = [i for i, m in enumerate(means) if math.isfinite(m) and best - m > FAR_BEHIND]
    for i in positions:
        if i in far or not math.isfinite(means[i]):
            continue
        single = points[i][1].n < 2
        axes.errorbar(
            positions[i],
            means[i],
            yerr=errors[i],
            fmt="o",
            capsize=5,
            color=colors[i],
            markerfacecolor="white" if single else colors[i],
        )
    if far and leading:
        low = min(m - e for m, e in leading)
        high = max(m + e for m, e in leading)
        margin = max(0.5, 0.15 * (high - low))
        bottom = low - margin
        axes.set_ylim(bottom, high + margin)
        for i in far:
            axes.plot(positions[i], bottom, "v", color=colors[i], clip_on=False)
            axes.annotate(
                f"{means[i]:.1f}%",
                (positions[i], bottom),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                color=colors[i],
                fontsize="small",
            )
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=color, label=verdict)
        for verdict, color in VERDICT_COLORS.items()
        if any(v == verdict for _, _, v in points)
    ]
    if handles:
        axes.legend(handles=handles, fontsize="small", loc="best")
    axes.set_xticks(positions)
    axes.set_xticklabels(labels, rotation=30, ha="right")
    axes.set_ylabel("final validation accuracy (%)")
    axes.set_title("mean over seeds, error bars = 95% CI (Student t)")
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    save_figure(figure, path)


def plot_diagnostics(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Per-layer gradient norm and activation std over the epochs, and the
    dead/saturated fractions (epoch 0 = the untrained model)."""
    plt = _pyplot()
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for row in rows:
        series.setdefault((row["quantity"], row["layer"]), []).append(
            (row["epoch"], row["value"])
        )

    panels = [
        ("gradient_norm", "kernel gradient L2 norm", True),
        ("activation_std", "activation std (probe batch)", False),
        ("dead_fraction", "dead units (fraction)", False),
        ("saturated_fraction", "saturated units (fraction)", False),
    ]
    panels = [p for p in panels if any(q == p[0] for q, _ in series)]
    figure, axes_list = plt.subplots(
        1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False
    )
    for axes, (quantity, label, log_scale) in zip(axes_list[0], panels, strict=True):
        layers = [layer for q, layer in series if q == quantity]
        colors = plt.cm.viridis(
            [i / max(1, len(layers) - 1) for i in range(len(layers))]
        )
        for color, layer in zip(colors, layers, strict=True):
            points = sorted(series[(quantity, layer)])
            axes.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                "o-",
                markersize=3,
                color=color,
                label=layer,
            )
        if log_scale:
            axes.set_yscale("log")
        _whole_epoch_ticks(axes)
        axes.set_xlabel("epoch")
        axes.set_title(label, fontsize="medium")
        axes.grid(alpha=0.3)
        if len(layers) <= 12:
            axes.legend(fontsize="x-small")
    figure.suptitle(f"{title}: first layers dark, last layers light")
    figure.tight_layout()
    save_figure(figure, path)
