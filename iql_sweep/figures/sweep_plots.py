"""Sweep plots: score against tau (the paper's ablation), tau x beta heatmaps, learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _grid(n: int) -> tuple[plt.Figure, np.ndarray]:
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


def _empty(path: Path, message: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_tau_ablation(summary: pd.DataFrame, path: Path) -> None:
    """Per dataset: last score (mean over seeds, band = ±1 std) against tau, a line per beta."""
    if summary.empty:
        return _empty(path, "no evaluations yet")
    datasets = sorted(summary["dataset"].unique())
    fig, axes = _grid(len(datasets))
    for ax, dataset in zip(axes, datasets):
        block = summary[summary["dataset"] == dataset]
        for beta, g in block.groupby("beta"):
            g = g.groupby("expectile")[["last_mean", "last_std"]].mean().sort_index()
            x, y, s = g.index.to_numpy(), g["last_mean"].to_numpy(), g["last_std"].to_numpy()
            ax.plot(x, y, marker="o", label=f"β = {beta:g}")
            ax.fill_between(x, y - s, y + s, alpha=0.2)
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("expectile τ")
        ax.set_ylabel("normalised score (last)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_heatmaps(summary: pd.DataFrame, path: Path) -> None:
    """Per dataset: a tau x beta heatmap of the mean last score, values written in the cells."""
    if summary.empty:
        return _empty(path, "no evaluations yet")
    datasets = sorted(summary["dataset"].unique())
    fig, axes = _grid(len(datasets))
    for ax, dataset in zip(axes, datasets):
        table = (
            summary[summary["dataset"] == dataset]
            .pivot_table(index="expectile", columns="beta", values="last_mean")
            .sort_index()
        )
        image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(table.shape[1]), [f"{b:g}" for b in table.columns])
        ax.set_yticks(range(table.shape[0]), [f"{t:g}" for t in table.index])
        for (i, j), value in np.ndenumerate(table.to_numpy()):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xlabel("β")
        ax.set_ylabel("τ")
        ax.set_title(dataset, fontsize=9)
        fig.colorbar(image, ax=ax, label="normalised score (last)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(history: pd.DataFrame, path: Path) -> None:
    """Per dataset: score against gradient steps for every trial, coloured by tau."""
    if history.empty:
        return _empty(path, "no evaluations yet")
    datasets = sorted(history["dataset"].unique())
    taus = sorted(history["expectile"].unique())
    colours = {t: plt.cm.plasma(i / max(1, len(taus) - 1) * 0.85) for i, t in enumerate(taus)}
    fig, axes = _grid(len(datasets))
    for ax, dataset in zip(axes, datasets):
        seen = set()
        for _, trial in history[history["dataset"] == dataset].groupby("trial_id"):
            tau = trial["expectile"].iloc[0]
            label = f"τ = {tau:g}" if tau not in seen else None
            seen.add(tau)
            ax.plot(trial["step"], trial["score"], color=colours[tau], alpha=0.7, label=label)
        ax.set_title(dataset, fontsize=9)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
