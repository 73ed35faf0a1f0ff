"""Sweep plots: score against tau (the paper's ablation), tau x beta heatmaps, learning curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _per_dataset(
    frame: pd.DataFrame, path: Path, draw: Callable[[plt.Figure, plt.Axes, pd.DataFrame], None]
) -> None:
    """One panel per dataset (up to 3 per row), titled with the dataset id, saved as PNG."""
    if frame.empty:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no evaluations yet", ha="center", va="center")
        ax.axis("off")
    else:
        datasets = sorted(frame["dataset"].unique())
        cols = min(len(datasets), 3)
        rows = int(np.ceil(len(datasets) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
        for ax in axes.flat[len(datasets) :]:
            ax.set_visible(False)
        for ax, dataset in zip(axes.flat, datasets):
            draw(fig, ax, frame[frame["dataset"] == dataset])
            ax.set_title(dataset, fontsize=9)
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_tau_ablation(summary: pd.DataFrame, path: Path) -> None:
    """Per dataset: last score (mean over seeds, band = ±1 std) against tau, a line per beta."""

    def draw(fig, ax, block):
        for beta, g in block.groupby("beta"):
            g = g.groupby("expectile")[["last_mean", "last_std"]].mean().sort_index()
            x, y, s = g.index.to_numpy(), g["last_mean"].to_numpy(), g["last_std"].to_numpy()
            ax.plot(x, y, marker="o", label=f"β = {beta:g}")
            ax.fill_between(x, y - s, y + s, alpha=0.2)
        ax.set_xlabel("expectile τ")
        ax.set_ylabel("normalised score (last)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)

    _per_dataset(summary, path, draw)


def plot_heatmaps(summary: pd.DataFrame, path: Path) -> None:
    """Per dataset: a tau x beta heatmap of the mean last score, values written in the cells."""

    def draw(fig, ax, block):
        table = block.pivot_table(index="expectile", columns="beta", values="last_mean")
        table = table.sort_index()
        image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(table.shape[1]), [f"{b:g}" for b in table.columns])
        ax.set_yticks(range(table.shape[0]), [f"{t:g}" for t in table.index])
        for (i, j), value in np.ndenumerate(table.to_numpy()):
            if np.isfinite(value):
                ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xlabel("β")
        ax.set_ylabel("τ")
        fig.colorbar(image, ax=ax, label="normalised score (last)")

    _per_dataset(summary, path, draw)


def plot_learning_curves(history: pd.DataFrame, path: Path) -> None:
    """Per dataset: score against gradient steps for every trial, coloured by tau."""
    taus = sorted(history["expectile"].unique()) if not history.empty else []
    colours = {t: plt.cm.plasma(i / max(1, len(taus) - 1) * 0.85) for i, t in enumerate(taus)}

    def draw(fig, ax, block):
        seen = set()
        for _, trial in block.groupby("trial_id"):
            tau = trial["expectile"].iloc[0]
            label = f"τ = {tau:g}" if tau not in seen else None
            seen.add(tau)
            ax.plot(trial["step"], trial["score"], color=colours[tau], alpha=0.7, label=label)
        if "phase" in block and (block["phase"] == "online").any():
            boundary = block.loc[block["phase"] == "offline", "step"].max()
            ax.axvline(boundary, color="0.4", ls="--", lw=1, label="online fine-tuning starts")
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)

    _per_dataset(history, path, draw)


def plot_performance_profiles(profiles: pd.DataFrame, path: Path, most: int = 10) -> None:
    """Fraction of runs above each score threshold, a line (and 95 % band) per configuration;
    with more than ``most`` configurations, the ``most`` with the largest area under the curve."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if profiles.empty:
        ax.text(0.5, 0.5, "no finished run yet", ha="center", va="center")
        ax.axis("off")
    else:
        area = profiles.groupby("configuration")["fraction"].sum().sort_values(ascending=False)
        for name in area.index[:most]:
            curve = profiles[profiles["configuration"] == name]
            ax.plot(curve["threshold"], curve["fraction"], label=name)
            ax.fill_between(curve["threshold"], curve["ci_low"], curve["ci_high"], alpha=0.15)
        ax.set_xlabel("normalised score / 100 (threshold)")
        ax.set_ylabel("fraction of runs above the threshold")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        shown = min(most, len(area))
        title = "performance profiles, last evaluation, all datasets"
        ax.set_title(
            title + (f" (top {shown} of {len(area)})" if len(area) > shown else ""), fontsize=9
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_expected_max(expected: pd.DataFrame, path: Path) -> None:
    """Per dataset: the expected best mean score after trying B configurations of the grid
    (last evaluation solid, best evaluation dashed)."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if expected.empty:
        ax.text(0.5, 0.5, "no finished run yet", ha="center", va="center")
        ax.axis("off")
    else:
        for i, (dataset, block) in enumerate(expected.groupby("dataset")):
            colour = plt.cm.tab10(i % 10)
            ax.plot(block["budget"], block["last"], marker="o", color=colour, label=dataset)
            ax.plot(block["budget"], block["best"], ls="--", color=colour, alpha=0.6)
        ax.set_xlabel("configurations tried (B)")
        ax.set_ylabel("expected best normalised score")
        ax.set_title(
            "expected best after B random configurations (solid: last, dashed: best)", fontsize=9
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
