"""Small datasets in OGBench's exact ``.npz`` layout from uniform random actions in the real
OGBench environments, written by the project's writer (``iql_sweep.data.ogbench_make``)."""

from __future__ import annotations

from pathlib import Path

from iql_sweep.data.ogbench_make import write_trajectories


def write_ogbench(
    folder: Path, data_name: str, episodes: int = 3, steps: int = 60, seed: int = 0
) -> tuple[Path, Path]:
    """``<data_name>.npz`` and ``<data_name>-val.npz`` (e.g. ``pointmaze-medium-navigate-v0``)
    in ``folder``, stepped in the dataset's goal-conditioned environment."""
    base, version = data_name.rsplit("-", 2)[0], data_name.rsplit("-", 1)[1]
    train, val = folder / f"{data_name}.npz", folder / f"{data_name}-val.npz"
    write_trajectories(train, f"{base}-{version}", episodes, steps, seed, planner=False)
    write_trajectories(val, f"{base}-{version}", episodes, steps, seed + 1000, planner=False)
    return train, val
