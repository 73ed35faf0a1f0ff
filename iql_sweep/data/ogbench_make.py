"""Datasets in OGBench's exact ``.npz`` layout, made here in OGBench's real environments, for runs
without OGBench's files (the local spec, the tests).

Their type is ``local`` (``ogbench/pointmaze-medium-local-singletask-task1-v0`` reads
``pointmaze-medium-local-v0.npz``), so they never stand in for OGBench's own ``navigate`` files.
In a maze a noisy planner heads for a random free cell per trajectory, cell by cell along a
breadth-first path (OGBench's ``navigate`` datasets are noisy goal-reaching too, by an expert);
elsewhere actions are uniform. Each row holds an observation, the action taken in it and the
simulator state it was observed in (``qpos``, ``qvel``, and ``button_states`` for scene and
puzzle); a trajectory's last observation has ``terminals`` 1 (its action leads nowhere), as
OGBench writes them. OGBench's loader relabels these files like its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iql_sweep.data.ogbench_io import OGBenchTask, check_files, needs_button_states
from iql_sweep.errors import ConfigError

LOCAL_TYPE = "local"


@dataclass
class OGBenchMakeReport:
    """What :func:`make_ogbench` wrote (the training file's trajectories and steps)."""

    dataset_id: str
    files: tuple[Path, Path]
    episodes: int
    steps: int


def _next_waypoint(maze: np.ndarray, start: tuple[int, int], goal: tuple[int, int]):
    """The next cell on a shortest path from ``start`` to ``goal`` over free cells (0)."""
    if start == goal:
        return goal
    parents = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        i, j = cell
        for nxt in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
            if nxt not in parents and maze[nxt] == 0:
                parents[nxt] = cell
                queue.append(nxt)
    if goal not in parents:
        return goal
    cell = goal
    while parents[cell] != start:
        cell = parents[cell]
    return cell


def write_trajectories(
    path: Path,
    env_id: str,
    trajectories: int,
    steps: int,
    seed: int,
    planner: bool = True,
    noise: float = 0.5,
) -> None:
    """``trajectories`` of ``steps`` observations each in OGBench's layout at ``path``, by the
    noisy planner in a point maze (``planner``), else by uniform actions."""
    import gymnasium as gym
    import ogbench

    gym.register_envs(ogbench)
    env = gym.make(env_id)
    inner = env.unwrapped
    maze = getattr(inner, "maze_map", None) if planner else None
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    keys = ["qpos", "qvel"] + (["button_states"] if needs_button_states(env_id) else [])
    rows: dict[str, list] = {k: [] for k in ["observations", "actions", "terminals", *keys]}
    free = np.argwhere(maze == 0) if maze is not None else None
    for t_index in range(trajectories):
        ob, _ = env.reset(seed=seed + t_index)
        goal = tuple(free[rng.integers(len(free))]) if free is not None else None
        for t in range(steps):
            if goal is not None:
                here = inner.xy_to_ij(inner.get_xy())
                target = np.asarray(inner.ij_to_xy(_next_waypoint(maze, here, goal)))
                heading = target - inner.get_xy()
                action = heading / max(np.linalg.norm(heading), 1e-6)
                action = np.clip(action + noise * rng.standard_normal(2), -1.0, 1.0)
                if action.shape != env.action_space.shape:  # legged: the planner cannot steer
                    action = env.action_space.sample()

            else:
                action = env.action_space.sample()
            next_ob, _, _, _, info = env.step(action.astype(np.float32))
            rows["observations"].append(ob)
            rows["actions"].append(action)
            rows["terminals"].append(float(t == steps - 1))
            for key in keys:  # the state the observation was taken in
                rows[key].append(np.asarray(info[f"prev_{key}"]))
            ob = next_ob
    env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:  # a file object: numpy keeps the name
        np.savez(
            fh,
            observations=np.asarray(rows["observations"], dtype=np.float32),
            actions=np.asarray(rows["actions"], dtype=np.float32),
            terminals=np.asarray(rows["terminals"], dtype=np.float32),
            **{key: np.asarray(rows[key]) for key in keys},
        )


def make_ogbench(
    dataset_id: str, trajectories: int = 100, steps: int = 500, seed: int = 0
) -> OGBenchMakeReport:
    """Both files of a ``local`` OGBench id, in OGBench's dataset folder, checked."""
    task = OGBenchTask.parse(dataset_id)
    if task.data_type != LOCAL_TYPE:
        raise ConfigError(
            f"dataset: {dataset_id!r} is OGBench's own data; the project makes only "
            f"'{LOCAL_TYPE}' ones (e.g. ogbench/pointmaze-medium-local-singletask-task1-v0)"
        )
    env_id = f"{task.env_base}-{task.version}"
    train, val = task.files
    write_trajectories(train, env_id, trajectories, steps, seed)
    write_trajectories(val, env_id, max(1, trajectories // 10), steps, seed + 10**6)
    check_files(task)
    return OGBenchMakeReport(dataset_id, task.files, trajectories, trajectories * steps)
