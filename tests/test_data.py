"""Minari I/O: generated datasets in the genuine format, fast loading, bad data, scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from iql_sweep.data.minari_io import cache_dir, dataset_path, load_transitions
from iql_sweep.data.normalization import (
    d4rl_reference_scores,
    normalized_score,
    reference_scores,
)
from iql_sweep.data.transitions import ARRAY_FIELDS
from iql_sweep.errors import DatasetError, DatasetNotFoundError
from tests.conftest import SMALL_STEPS

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)


def test_generated_dataset_round_trips_through_minari(umaze_id):
    ds = minari.load_dataset(umaze_id)
    assert ds.total_steps == SMALL_STEPS
    meta = ds.storage.metadata
    assert meta["data_format"] == "hdf5"
    assert meta["ref_max_score"] > meta["ref_min_score"] > 0
    assert meta["num_episodes_average_score"] == 30
    eval_spec = json.loads(meta["eval_env_spec"])
    assert eval_spec["max_episode_steps"] == 300
    assert eval_spec["kwargs"]["maze_map"][1][1] == "g"
    assert eval_spec["kwargs"]["reset_target"] is False
    episodes = list(ds.iterate_episodes())
    assert len(episodes) == ds.total_episodes
    ep = episodes[0]
    assert set(ep.observations) == {"observation", "achieved_goal", "desired_goal"}
    assert len(ep.observations["observation"]) == len(ep.actions) + 1
    assert not any(e.terminations.any() for e in episodes)  # continuing task: no terminals
    # Every episode but the last (cut at the step budget) ends at a goal with reward 1.
    assert all(e.truncations[-1] and e.rewards[-1] == 1.0 for e in episodes[:-1])
    assert np.abs(np.concatenate([e.actions for e in episodes])).max() <= 1.0
    env = ds.recover_environment(eval_env=True)
    assert env.spec.max_episode_steps == 300
    env.close()


def test_minari_show_reads_the_generated_dataset(umaze_id):
    minari_cli = Path(sys.executable).parent / "minari"  # the console script Minari installs
    out = subprocess.run([str(minari_cli), "show", umaze_id], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Total Steps" in out.stdout and str(SMALL_STEPS) in out.stdout


def test_flat_load_matches_minari_episodes_and_cache(umaze_id):
    fresh = load_transitions(umaze_id, use_cache=False)
    ds = minari.load_dataset(umaze_id)
    episodes = list(ds.iterate_episodes())
    rewards = np.concatenate([e.rewards for e in episodes])
    actions = np.concatenate([e.actions for e in episodes])
    timeouts = np.concatenate([e.truncations for e in episodes])
    np.testing.assert_allclose(fresh.rewards, rewards)
    np.testing.assert_allclose(fresh.actions, actions, rtol=1e-6)
    np.testing.assert_array_equal(fresh.timeouts, timeouts)
    assert fresh.size == SMALL_STEPS and fresh.obs_dim == 6 and fresh.act_dim == 2
    assert fresh.num_episodes == ds.total_episodes
    np.testing.assert_allclose(fresh.episode_returns, [e.rewards.sum() for e in episodes])
    first = load_transitions(umaze_id)  # writes the cache
    assert len(list((cache_dir() / "flat").glob("*.npz"))) >= 1
    cached = load_transitions(umaze_id)  # reads it
    for name in ARRAY_FIELDS:
        np.testing.assert_array_equal(getattr(first, name), getattr(cached, name), err_msg=name)
        np.testing.assert_array_equal(getattr(fresh, name), getattr(cached, name), err_msg=name)


def test_observation_order_and_episode_boundaries(umaze_id):
    data = load_transitions(umaze_id)
    ds = minari.load_dataset(umaze_id)
    ep = next(iter(ds.iterate_episodes()))
    n = len(ep.actions)
    expect = np.concatenate([ep.observations["observation"], ep.observations["desired_goal"]], 1)
    np.testing.assert_allclose(data.observations[:n], expect[:-1], rtol=1e-6)
    np.testing.assert_allclose(data.next_observations[:n], expect[1:], rtol=1e-6)
    # Within an episode, s' of one row is s of the next; the goal is constant per episode.
    starts = set(data.episode_starts.tolist())
    inner = np.array([i for i in range(data.size - 1) if i + 1 not in starts])
    np.testing.assert_array_equal(data.next_observations[inner], data.observations[inner + 1])
    for s, e in zip(data.episode_starts[:-1], data.episode_starts[1:]):
        goals = data.observations[s:e, 4:]
        assert np.all(goals == goals[0])


def _write(dataset_id, episodes, fmt="hdf5", action_space=None):
    minari.create_dataset_from_buffers(
        dataset_id=dataset_id,
        buffer=[EpisodeBuffer(**ep) for ep in episodes],
        observation_space=BOX_OBS,
        action_space=action_space or gym.spaces.Box(-1, 1, (2,), np.float32),
        data_format=fmt,
    )


def _episode(i, n=10, seed=0):
    rng = np.random.default_rng(seed + i)
    return {
        "id": i,
        "observations": rng.normal(size=(n + 1, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        "rewards": rng.normal(size=n),
        "terminations": np.eye(1, n, n - 1, dtype=bool)[0] if i % 2 else np.zeros(n, bool),
        "truncations": np.zeros(n, bool) if i % 2 else np.eye(1, n, n - 1, dtype=bool)[0],
    }


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_arrow_dataset_from_another_writer_loads():
    eps = [_episode(i) for i in range(4)]
    _write("other/arrow-box-v0", eps, fmt="arrow")
    data = load_transitions("other/arrow-box-v0", use_cache=False)
    np.testing.assert_allclose(data.observations[:10], eps[0]["observations"][:-1])
    np.testing.assert_allclose(data.next_observations[30:40], eps[3]["observations"][1:])
    np.testing.assert_allclose(data.rewards, np.concatenate([e["rewards"] for e in eps]), rtol=1e-6)
    assert data.terminals.sum() == 2 and data.timeouts.sum() == 2
    assert data.metadata["ref_min_score"] is None  # no metadata, no D4RL match


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_nan_rewards_are_refused():
    eps = [_episode(i) for i in range(3)]
    eps[1]["rewards"][4] = np.nan
    _write("bad/nan-rewards-v0", eps)
    with pytest.raises(DatasetError, match=r"'rewards'.*transition 14 \(episode 1\)"):
        load_transitions("bad/nan-rewards-v0")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_actions_outside_the_space_are_refused():
    eps = [_episode(i) for i in range(2)]
    eps[1]["actions"][3] = [0.2, 1.7]
    _write("bad/actions-v0", eps, action_space=gym.spaces.Box(-2, 2, (2,), np.float32))
    # Inside a [-2, 2] box, 1.7 is legal: it is mapped to [-1, 1] for the policy.
    data = load_transitions("bad/actions-v0")
    np.testing.assert_allclose(data.actions[13], [0.1, 0.85], rtol=1e-6)
    assert data.action_high.tolist() == [2.0, 2.0]
    eps[1]["actions"][3] = [0.2, 2.5]
    _write("bad/actions-v1", eps, action_space=gym.spaces.Box(-2, 2, (2,), np.float32))
    with pytest.raises(DatasetError, match=r"'actions' has 1 actions outside the action space"):
        load_transitions("bad/actions-v1")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_empty_and_damaged_datasets_are_refused():
    _write("bad/damaged-v0", [_episode(0)])
    with h5py.File(dataset_path("bad/damaged-v0") / "main_data.hdf5", "a") as f:
        del f["episode_0"]
    with pytest.raises(DatasetError, match="episodes could not be read"):
        load_transitions("bad/damaged-v0")
    # Minari refuses to write a dataset without steps; make one by emptying a valid one.
    _write("bad/empty-v0", [_episode(0)])
    path = dataset_path("bad/empty-v0")
    with h5py.File(path / "main_data.hdf5", "a") as f:
        del f["episode_0"]
    meta = json.loads((path / "metadata.json").read_text())
    meta.update(total_episodes=0, total_steps=0)
    (path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="no transitions"):
        load_transitions("bad/empty-v0")


def test_missing_dataset_lists_what_is_present(umaze_id):
    with pytest.raises(DatasetNotFoundError) as err:
        load_transitions("D4RL/antmaze/umaze-v1")
    msg = str(err.value)
    assert "D4RL/antmaze/umaze-v1" in msg and umaze_id in msg
    assert "minari download" in msg
    with pytest.raises(DatasetNotFoundError, match="iql-sweep datasets make pointmaze-large"):
        load_transitions("iql-sweep/pointmaze/large-v0")
    with pytest.raises(DatasetNotFoundError, match="not a Minari dataset id"):
        load_transitions("../etc")


def test_normalized_scores():
    assert normalized_score(218.56, 14.18, 218.56) == pytest.approx(100.0)
    assert normalized_score(14.18, 14.18, 218.56) == pytest.approx(0.0)
    assert reference_scores("x/y-v0", {"ref_min_score": 1.0, "ref_max_score": 3.0}) == (1.0, 3.0)
    assert d4rl_reference_scores("hopper-medium-v2") == (-20.272305, 3234.3)
    assert d4rl_reference_scores("D4RL/door/human-v2") == (-56.512833, 2880.5693087298737)
    assert d4rl_reference_scores("D4RL/antmaze/umaze-v1") == (0.0, 1.0)
    assert d4rl_reference_scores("mujoco/ant/medium-v0") == (-325.6, 3879.7)
    assert d4rl_reference_scores("maze2d-umaze-dense-v1")[0] == pytest.approx(68.537689)
    assert d4rl_reference_scores("iql-sweep/pointmaze/umaze-v0") is None
    # Metadata wins over the table.
    assert reference_scores(
        "D4RL/antmaze/umaze-v1", {"ref_min_score": 0.1, "ref_max_score": 0.9}
    ) == (0.1, 0.9)


def test_a_sweep_makes_its_missing_datasets_once_before_ray_starts(monkeypatch, tmp_path):
    """The driver's preparation step (sweep.prepare_datasets, before Ray starts): a missing
    dataset the project can make is made into the Minari root, then found present."""
    from dataclasses import replace

    from rich.console import Console

    from iql_sweep.data import generators
    from iql_sweep.spec import validate_spec
    from iql_sweep.sweep import prepare_datasets

    name = "pointmaze-umaze-dense"
    small = replace(generators.GENERATORS[name], default_steps=3_000)
    monkeypatch.setitem(generators.GENERATORS, name, small)
    spec = validate_spec(
        {
            "name": "prepare",
            "datasets": [small.dataset_id],
            "search": {"grid": {"seed": [0]}},
            "training": {"steps": 10, "eval_every": 10},
            "output": str(tmp_path),
        },
        check_datasets=False,
    )
    assert small.dataset_id not in minari.list_local_datasets()
    console = Console(record=True, width=200)
    prepare_datasets(spec, console)
    said = console.export_text()
    assert f"dataset {small.dataset_id}: was missing; made it (3000 steps" in said
    assert load_transitions(small.dataset_id).size == 3_000
    prepare_datasets(spec, console)
    assert f"dataset {small.dataset_id}: present" in console.export_text()
