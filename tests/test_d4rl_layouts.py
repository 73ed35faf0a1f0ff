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
from dataclasses import replace as dataclass_replace

import gymnasium as gym
import minari
import numpy as np
import pytest
import torch
from gymnasium.envs.registration import EnvSpec

from iql_sweep.data.minari_io import flatten_observations, load_transitions, observation_keys
from iql_sweep.data.profile import DatasetProfile
from iql_sweep.envs import register_robotics_envs
from iql_sweep.errors import ConfigError, DatasetError
from iql_sweep.evaluation import same_maze

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


def write_port(
    dataset_id: str,
    episodes: int = 3,
    steps: int = 80,
    eval_kwargs: dict | None = None,
    layout: str | None = None,
) -> None:
    """A few random-action episodes of the port's environment, written by Minari's writer
    (``create_dataset_from_buffers``), with the port's evaluation env and D4RL's reference scores
    in the metadata."""
    from minari.data_collector import EpisodeBuffer

    env_id, kwargs, _, _ = LAYOUTS[layout or dataset_id]
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
            eval_env=gym.make(env_id, **(kwargs if eval_kwargs is None else eval_kwargs)).spec,
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


# --- the evaluation env's maze against the data's (Minari issue #304) ----------------------

FLIPPED_UMAZE = UMAZE[::-1]  # goal and reset cells swapped: the same walls, another task


def _maze_spec(env_id: str, maze_map: list) -> EnvSpec:
    register_robotics_envs()
    spec = gym.spec(env_id)
    return dataclass_replace(spec, kwargs={**spec.kwargs, "maze_map": maze_map})


def test_every_maze_layout_the_project_knows_passes_as_it_is():
    """The project's PointMaze data (plain map) with its one-goal evaluation map, and every
    AntMaze and PointMaze layout of gymnasium-robotics evaluated in its own map: unchanged."""
    from iql_sweep.data.pointmaze import MAZES, eval_env_spec

    for recipe in MAZES.values():
        data_spec = gym.spec(recipe.env_id)
        evaluation = eval_env_spec(recipe, dense=False)
        assert same_maze("made", data_spec, evaluation) is evaluation
    for env_id in ("AntMaze_UMaze-v4", "AntMaze_Medium-v4", "AntMaze_Large-v4",
                   "PointMaze_UMaze-v3", "PointMaze_Medium-v3", "PointMaze_Large-v3"):  # fmt: skip
        spec = _maze_spec(env_id, gym.spec(env_id).kwargs["maze_map"])
        assert same_maze(env_id, spec, spec) is spec


@pytest.mark.parametrize("size", ["UMaze", "Medium", "Large"])
def test_a_flipped_evaluation_maze_is_flipped_back_with_a_warning(size, caplog):
    """D4RL's AntMaze maps with a reset and a goal cell; the evaluation map recorded upside
    down (for the u-maze that swaps start and goal): the data's maze is used, and said."""
    base = [list(row) for row in gym.spec(f"AntMaze_{size}-v4").kwargs["maze_map"]]
    free = [(i, j) for i, row in enumerate(base) for j, c in enumerate(row) if c == 0]
    (ri, rj), (gi, gj) = free[0], free[-1]
    base[ri][rj], base[gi][gj] = "r", "g"
    data_spec = _maze_spec(f"AntMaze_{size}-v4", base)
    flipped = _maze_spec(f"AntMaze_{size}-v4", base[::-1])
    fixed = same_maze("D4RL/antmaze/x-v1", data_spec, flipped)
    assert fixed.kwargs["maze_map"] == base
    assert {k: v for k, v in fixed.kwargs.items() if k != "maze_map"} == {
        k: v for k, v in flipped.kwargs.items() if k != "maze_map"
    }
    assert "flipped upside down (Minari issue #304)" in caplog.text
    other = _maze_spec("AntMaze_Medium-v4", gym.spec("AntMaze_Medium-v4").kwargs["maze_map"])
    if size != "Medium":
        with pytest.raises(DatasetError, match="other walls or goal cells"):
            same_maze("D4RL/antmaze/x-v1", data_spec, other)


def test_a_port_with_a_flipped_maze_evaluates_in_the_data_maze_and_another_maze_is_refused(
    tmp_path, monkeypatch
):
    """Datasets written in D4RL/antmaze's layout: one whose evaluation env records the u-maze
    upside down is evaluated in the data's maze; one whose evaluation maze has other walls is
    refused by validation, before any work."""
    from iql_sweep.evaluation import Evaluator
    from iql_sweep.spec import validate_spec

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env_id, kwargs, _, _ = LAYOUTS["D4RL/antmaze/umaze-v1"]
    write_port("D4RL/antmaze/umaze-v1", episodes=1, steps=20,
               eval_kwargs={**kwargs, "maze_map": FLIPPED_UMAZE})  # fmt: skip
    data = load_transitions("D4RL/antmaze/umaze-v1")
    evaluator = Evaluator(data, episodes=1)
    assert evaluator.adapter.spec.kwargs["maze_map"] == UMAZE
    result = evaluator(lambda obs: torch.zeros(obs.shape[0], 8))
    evaluator.close()
    assert result.returns.shape == (1,)

    medium = gym.spec("AntMaze_Medium-v4").kwargs["maze_map"]
    write_port("D4RL/antmaze/umaze-diverse-v1", episodes=1, steps=20,
               eval_kwargs={**kwargs, "maze_map": medium},
               layout="D4RL/antmaze/umaze-v1")  # fmt: skip
    spec = {
        "name": "mazes",
        "datasets": ["D4RL/antmaze/umaze-diverse-v1"],
        "search": {"grid": {"seed": [0]}},
        "training": {"steps": 10, "eval_every": 10},
        "output": str(tmp_path / "results"),
    }
    with pytest.raises(ConfigError, match=r"datasets\[0\]: D4RL/antmaze/umaze-diverse-v1: the "
                       "evaluation env's maze_map has other walls"):  # fmt: skip
        validate_spec(spec)
