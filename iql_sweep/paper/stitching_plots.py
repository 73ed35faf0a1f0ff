"""The stitching figure: V* and the learned V per tau over the maze, value against distance to the
goal, and each tau's normalised score."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from iql_sweep.paper.stitching import GOAL_RADIUS, StitchingResult, wall_boxes  # noqa: E402


def _goal_normalised(values: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """Values divided by their mean over the points inside the goal region."""
    near = distance <= GOAL_RADIUS
    base = values[near].mean() if near.any() else values.max()
    return values / base if base != 0 else values


def _maze_panel(ax, result: StitchingResult, values: np.ndarray, title: str) -> None:
    for x0, y0, x1, y1 in wall_boxes(result.maze_map):
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, color="0.25"))
    sc = ax.scatter(
        result.points[:, 0],
        result.points[:, 1],
        c=values,
        s=9,
        marker="s",
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
    )
    ax.plot(*result.goal_xy, marker="*", color="red", markersize=12)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return sc


def plot_stitching(result: StitchingResult, path: Path) -> None:
    """Top: V* and mean learned V per (tau, beta) on the maze (each divided by its value at the
    goal). Bottom: the same against the geodesic distance to the goal, and the scores."""
    groups = list(result.values.groupby(["expectile", "beta"]))
    betas = {b for (_, b), _ in groups}
    cols = len(groups) + 1
    fig = plt.figure(figsize=(3.1 * cols, 6.6))
    grid = fig.add_gridspec(2, cols, height_ratios=[1.0, 0.9])
    sc = _maze_panel(
        fig.add_subplot(grid[0, 0]),
        result,
        _goal_normalised(result.reference, result.distance),
        "reference optimal V*",
    )
    curves = []
    for c, ((tau, beta), g) in enumerate(groups, start=1):
        mean = g.groupby("point")["value"].mean().sort_index().to_numpy()
        norm = _goal_normalised(mean, result.distance)
        label = f"τ = {tau:g}" + (f", β = {beta:g}" if len(betas) > 1 else "")
        seeds = g["trial_id"].nunique()
        _maze_panel(fig.add_subplot(grid[0, c]), result, norm, f"IQL V, {label} ({seeds} seeds)")
        curves.append((label, norm))
    fig.colorbar(sc, ax=fig.axes, shrink=0.5, label="V / V(goal)")

    ax = fig.add_subplot(grid[1, : max(1, cols // 2 + 1)])
    bins = np.linspace(0, result.distance.max() + 1e-9, 25)
    which = np.digitize(result.distance, bins)

    def binned(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = [b for b in np.unique(which)]
        xs = np.array([result.distance[which == b].mean() for b in keep])
        ys = np.array([v[which == b].mean() for b in keep])
        return xs, ys

    ref = _goal_normalised(result.reference, result.distance)
    ax.plot(*binned(ref), "k--", lw=2, label="optimal V*")
    lowest = 0.0
    for label, norm in curves:
        xs, ys = binned(norm)
        lowest = min(lowest, float(ys.min()))
        ax.plot(xs, ys, lw=1.6, label=label)
    ax.set_xlabel("shortest-path (L∞) distance to the goal")
    ax.set_ylabel("V / V(goal)")
    ax.set_ylim(lowest - 0.05, 1.15)
    ax.legend(fontsize=8)
    ax.set_title("value against distance (mean over seeds)", fontsize=9)

    ax = fig.add_subplot(grid[1, max(1, cols // 2 + 1) :])
    table = result.table
    labels = [
        f"τ {r.expectile:g}" + (f"\nβ {r.beta:g}" if len(betas) > 1 else "")
        for r in table.itertuples()
    ]
    ax.bar(labels, table["score_mean"], yerr=table["score_std"], color="tab:blue", capsize=4)
    top = max(0.0, float((table["score_mean"] + table["score_std"]).max()))
    for i, r in enumerate(table.itertuples()):
        ax.text(
            i,
            top + 2.0,
            f"far/goal V\n{r.decay_ratio:.2f}\n(V*: {r.optimal_decay_ratio:.2f})",
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_ylim(top=top * 1.4 + 15.0)
    ax.set_ylabel("normalised score")
    ax.set_title("policy score per τ (± std over seeds)", fontsize=9)
    fig.suptitle(f"Stitching on {result.dataset_id}", fontsize=11)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
