"""Episode statistics of our PointMaze replicas against Minari's published D4RL/pointmaze-v2.

    .venv/bin/python benchmarks/pointmaze_stats.py [--steps 1000000] [--mazes umaze medium large]

Collects (without writing) the full 1M steps per maze with the dataset recipe and prints episode
count and mean length beside the official figures, with the relative differences.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from iql_sweep.data.pointmaze import MAZES, collect_pointmaze

#: Published statistics of Minari's D4RL/pointmaze/<maze>-v2 (1M steps each): episodes, mean length.
OFFICIAL = {"umaze": (13210, 75.7), "medium": (4752, 210.4), "large": (3360, 297.6)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--mazes", nargs="+", default=list(OFFICIAL))
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    print(
        f"{'maze':<8}{'episodes':>10}{'official':>10}{'diff':>8}{'mean len':>10}"
        f"{'official':>10}{'diff':>8}{'steps/s':>10}"
    )
    for maze in args.mazes:
        t0 = time.perf_counter()
        episodes = collect_pointmaze(MAZES[maze], False, args.steps, seed=args.seed)
        rate = args.steps / (time.perf_counter() - t0)
        lengths = np.array([len(e["rewards"]) for e in episodes])
        n_off, len_off = OFFICIAL[maze]
        scale = args.steps / 1_000_000
        print(
            f"{maze:<8}{len(episodes):>10}{n_off * scale:>10.0f}"
            f"{100 * (len(episodes) / (n_off * scale) - 1):>7.1f}%{lengths.mean():>10.1f}"
            f"{len_off:>10.1f}{100 * (lengths.mean() / len_off - 1):>7.1f}%{rate:>10,.0f}"
        )


if __name__ == "__main__":
    main()
