"""Evaluation plots as PNG files, drawn from the frames churnml.modeling.evaluation returns."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from churnml.data.io import atomic_path  # noqa: E402

Baselines = dict[str, dict[str, pd.DataFrame]]
_SPLIT_MARKERS = ("o", "s", "^", "D", "v", "P")


def save_figure(fig: Figure, path: Path) -> Path:
    try:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            # atomic_path keeps the suffix, but say the format so it never depends on the name
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path


def new_axes(title: str, xlabel: str, ylabel: str) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def _curve_plot(name: str, x: str, y: str, title: str, xlabel: str, ylabel: str, curves: dict[str, pd.DataFrame],
                baselines: Baselines, diagonal: bool) -> Figure:
    """One curve for the model, one per baseline that has it, and optionally the chance line."""
    fig, ax = new_axes(title, xlabel, ylabel)
    ax.plot(curves[name][x], curves[name][y], label="model", linewidth=2)
    for label, other in baselines.items():
        if name in other:
            ax.plot(other[name][x], other[name][y], label=label, linewidth=1.2, alpha=0.8)
    if diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="best")
    return fig


def _calibration_plot(table: pd.DataFrame) -> Figure:
    fig, ax = new_axes("Calibration (10 equal-width bins)", "Mean predicted probability", "Observed churn rate")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    ax.plot(table["mean_probability"], table["churn_rate"], marker="o", label="model")
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="best")
    return fig


def _lift_plot(table: pd.DataFrame) -> Figure:
    fig, ax = new_axes("Lift by decile (1 = highest scores)", "Decile", "Lift over the overall churn rate")
    ax.bar(table["decile"], table["lift"], color="tab:blue")
    ax.axhline(1.0, linestyle="--", color="grey", label="no lift")
    ax.set_xticks(table["decile"])
    ax.legend(loc="best")
    return fig


def _profit_plot(profit: pd.DataFrame) -> Figure:
    fig, ax = new_axes("Campaign profit by share contacted", "Share of customers contacted", "Profit")
    ax.plot(profit["share_contacted"], profit["profit"], label="realised", linewidth=2)
    ax.plot(profit["share_contacted"], profit["expected_profit"], label="expected (model)", linestyle="--")
    if len(profit):
        best = profit.loc[profit["profit"].idxmax()]
        ax.scatter([best["share_contacted"]], [best["profit"]], color="tab:red", zorder=3,
                   label=f"optimum: {best['share_contacted']:.1%} contacted, threshold {best['threshold']:.3f}")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.legend(loc="best")
    return fig


def _per_cutoff_plot(per_cutoff: pd.DataFrame) -> Figure:
    # Cutoffs sit at evenly spaced positions in time order: one tick each, whatever their type
    # (dates or strings, which matplotlib would otherwise order by first appearance).
    cutoffs = sorted(per_cutoff["cutoff"].unique())
    position = {c: i for i, c in enumerate(cutoffs)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, metric, title in zip(axes, ("roc_auc", "pr_auc"), ("ROC AUC", "PR AUC"), strict=True):
        for i, (split, group) in enumerate(per_cutoff.groupby("split", sort=True)):
            group = group.sort_values("cutoff")
            ax.plot(group["cutoff"].map(position), group[metric], marker=_SPLIT_MARKERS[i % len(_SPLIT_MARKERS)],
                    label=str(split))
        ax.set(title=f"{title} by cutoff", xlabel="Cutoff", ylabel=title)
        ax.set_xticks(range(len(cutoffs)), [_label(c) for c in cutoffs], rotation=45, ha="right")
        ax.grid(alpha=0.3)
        if len(per_cutoff):
            ax.legend(title="split", loc="best")
    return fig


def _label(cutoff: object) -> str:
    return f"{pd.Timestamp(cutoff):%Y-%m-%d}" if isinstance(cutoff, (pd.Timestamp, np.datetime64)) else str(cutoff)


def save_evaluation_plots(curves: dict[str, pd.DataFrame], profit: pd.DataFrame, per_cutoff: pd.DataFrame,
                          out_dir: Path, baselines: Baselines | None = None) -> list[Path]:
    """Write roc, pr, calibration, gains, lift, profit and per_cutoff PNGs; return their paths."""
    out_dir, baselines = Path(out_dir), baselines or {}
    figures = {
        "roc": lambda: _curve_plot("roc", "fpr", "tpr", "ROC curve", "False positive rate", "True positive rate",
                                   curves, baselines, diagonal=True),
        "pr": lambda: _curve_plot("pr", "recall", "precision", "Precision-recall curve", "Recall", "Precision",
                                  curves, baselines, diagonal=False),
        "calibration": lambda: _calibration_plot(curves["calibration"]),
        "gains": lambda: _curve_plot("gains", "share_contacted", "share_of_churners_caught", "Cumulative gains",
                                     "Share of customers contacted", "Share of churners caught",
                                     curves, baselines, diagonal=True),
        "lift": lambda: _lift_plot(curves["lift"]),
        "profit": lambda: _profit_plot(profit),
        "per_cutoff": lambda: _per_cutoff_plot(per_cutoff),
    }
    # build each figure only when it is about to be saved, so at most one is open at a time
    return [save_figure(draw(), out_dir / f"{name}.png") for name, draw in figures.items()]
