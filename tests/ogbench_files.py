"""Small datasets in OGBench's exact ``.npz`` layout, from random actions in the real OGBench
environments: per trajectory, every observation with the action taken in it and the simulator
state it was observed in (``qpos``, ``qvel``, and ``button_states`` for scene and puzzle); the
last observation of a trajectory has ``terminals`` 1 (its action leads nowhere), as OGBench's
collection scripts write them."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np


def write_ogbench(
    folder: Path, data_name: str, episodes: int = 3, steps: int = 60, seed: int = 0
) -> tuple[Path, Path]:
    """``<data_name>.npz`` and ``<data_name>-val.npz`` (e.g. ``pointmaze-medium-navigate-v0``)
    written in ``folder``; the environment is the dataset's goal-conditioned one."""
    import ogbench

    gym.register_envs(ogbench)
    env_name, version = data_name.rsplit("-", 2)[0], data_name.rsplit("-", 1)[1]
    env = gym.make(f"{env_name}-{version}")
    env.action_space.seed(seed)
    paths = []
    for part, offset in (("", 0), ("-val", 1000)):
        rows: dict[str, list] = {"observations": [], "actions": [], "terminals": []}
        info_keys = ["qpos", "qvel"] + (
            ["button_states"] if "puzzle" in env_name or "scene" in env_name else []
        )
        for key in info_keys:
            rows[key] = []
        for episode in range(episodes):
            ob, _ = env.reset(seed=seed + offset + episode)
            for t in range(steps):
                action = env.action_space.sample()
                next_ob, _, _, _, info = env.step(action)
                rows["observations"].append(ob)
                rows["actions"].append(action)
                rows["terminals"].append(float(t == steps - 1))
                for key in info_keys:  # the state the observation was taken in
                    rows[key].append(np.asarray(info[f"prev_{key}"]))
                ob = next_ob
        path = folder / f"{data_name}{part}.npz"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            observations=np.asarray(rows["observations"], dtype=np.float32),
            actions=np.asarray(rows["actions"], dtype=np.float32),
            terminals=np.asarray(rows["terminals"], dtype=np.float32),
            **{key: np.asarray(rows[key]) for key in info_keys},
        )
        paths.append(path)
    env.close()
    return paths[0], paths[1]
