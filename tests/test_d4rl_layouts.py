"""The D4RL conventions of Minari's ports, checked on small datasets written in exactly their
layouts with Minari's own writer (``DataCollector``, random actions) in the real environments:
``D4RL/antmaze/*-v1`` (Dict observation: achieved_goal, observation, desired_goal; AntMaze-v4 as
a continuing task), ``D4RL/kitchen/*-v2`` (FrankaKitchen-v1, nested goal dicts) and the Adroit
``D4RL/<task>/*-v2`` (flat Box). Each is trained and evaluated through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import minari
import numpy as np
import pytest

from iql_sweep.data.minari_io import flatten_observations, load_transitions, observation_keys
from iql_sweep.data.profile import DatasetProfile
from iql_sweep.envs import register_robotics_envs

UMAZE = [[1, 1, 1, 1, 1], [1, "g", 0, 0, 1], [1, 1, 1, 0, 1], [1, "r", 0, 0, 1], [1, 1, 1, 1, 1]]
KITCHEN_COMPLETE = ["microwave", "kettle", "light switch", "slide cabinet"]

# id, evaluation env (id, kwargs) as Minari's ports set them, expected flat observation width,
# expected preset values.
LAYOUTS = {
    "D4RL/antmaze/umaze-v1": (
        "AntMaze_UMaze-v4",
        {"maze_map": UMAZE, "continuing_task": True, "reset_target": False},
        2 + 27 + 2,
        {"expectile": 0.9, "beta": 10.0, "reward_shift": -1.0},
    ),
    "D4RL/kitchen/complete-v2": (
        "FrankaKitchen-v1",
        {"tasks_to_complete": KITCHEN_COMPLETE, "remove_task_when_completed": False},
        59 + 1 + 7 + 2 + 1,  # observation + goals: microwave, kettle (pose), light, slide
        {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1},
    ),
    "D4RL/pen/human-v2": (
        "AdroitHandPen-v1",
        {},
        45,
        {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1},
    ),
    "D4RL/door/cloned-v2": (
        "AdroitHandDoor-v1",
        {},
        39,
        {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1},
    ),
}


def _stack(items: list):
    """Per-step observations (arrays or nested dicts of arrays) as one array per leaf."""
    if isinstance(items[0], dict):
        return {k: _stack([x[k] for x in items]) for k in items[0]}
    return np.stack([np.array(x, copy=True) for x in items])  # the envs reuse their arrays


def write_port(dataset_id: str, episodes: int = 3, steps: int = 80) -> None:
    """A few random-action episodes of the port's environment, written by Minari's writer
    (``create_dataset_from_buffers``), with the port's evaluation env and D4RL's reference scores
    in the metadata."""
    from minari.data_collector import EpisodeBuffer

    env_id, kwargs, _, _ = LAYOUTS[dataset_id]
    register_robotics_envs()
    env = gym.make(env_id, max_episode_steps=steps, **kwargs)
    env.action_space.seed(0)
    buffers = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        while True:
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated)
            if terminated or truncated:
                break
        buffers.append(
            EpisodeBuffer(
                id=episode,
                observations=_stack(observations),
                actions=np.stack(actions),
                rewards=np.asarray(rewards, dtype=np.float64),
                terminations=np.asarray(terms),
                truncations=np.asarray(truncs),
            )
        )
    low, high = DatasetProfile.from_id(dataset_id).d4rl_scores
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=buffers,
            env=env.spec,
            eval_env=gym.make(env_id, **kwargs).spec,
            ref_min_score=low,
            ref_max_score=high,
            algorithm_name="random actions (iql-sweep layout test)",
        )
    env.close()


@pytest.mark.parametrize("dataset_id", sorted(LAYOUTS))
def test_a_d4rl_port_layout_loads_trains_and_evaluates(dataset_id, tmp_path, monkeypatch):
    # A private Minari root: these ids must stay absent from the session's (other tests ask for
    # them as missing datasets).
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env_id, kwargs, width, preset = LAYOUTS[dataset_id]
    write_port(dataset_id)
    dataset = minari.load_dataset(dataset_id)
    data = load_transitions(dataset_id)
    assert data.obs_dim == width
    # The flat rows are the episodes' observations in the documented key order.
    keys = observation_keys(dataset_id, dataset.observation_space)
    if dataset_id.startswith("D4RL/antmaze"):
        assert keys == ["achieved_goal", "observation", "desired_goal"]
    first = next(dataset.iterate_episodes())
    expected = flatten_observations(first.observations, dataset.observation_space, keys)
    np.testing.assert_allclose(data.observations[: len(first.actions)], expected[:-1], rtol=1e-6)
    spec = json.loads(dataset.storage.metadata["eval_env_spec"])
    assert spec["id"] == env_id
    assert (dataset.storage.metadata["ref_min_score"], dataset.storage.metadata["ref_max_score"]) \
        == DatasetProfile.from_id(dataset_id).d4rl_scores  # fmt: skip

    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "iql_sweep.cli", "train", "--dataset", dataset_id,
         "--steps", "200", "--eval-every", "200", "--eval-episodes", "1", "--batch-size", "64",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    config = json.loads((out / "config.json").read_text())
    flat = json.dumps(config)
    for key, value in preset.items():  # the domain's preset, from the id
        assert f'"{key}": {json.dumps(value)}' in flat, (key, value, flat[:500])
    row = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    low, high = DatasetProfile.from_id(dataset_id).d4rl_scores
    assert row["step"] == 200
    assert row["normalized_score"] == pytest.approx(100 * (row["return_mean"] - low) / (high - low))
