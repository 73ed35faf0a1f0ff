"""Offline-to-online fine-tuning: the buffer grows by the environment steps taken, online rewards
get the offline transform, and a run killed mid-fine-tuning (mid-episode) resumes exactly."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from iql_sweep.checkpoint import load_checkpoint
from iql_sweep.data.minari_io import load_transitions
from iql_sweep.data.transitions import reward_transform
from iql_sweep.errors import ConfigError
from iql_sweep.iql.agent import IQLAgent
from iql_sweep.online import ReplayBuffer
from iql_sweep.training import RunSettings, train
from tests.interrupt import kill_update_at

OVERRIDES = {"batch_size": 32, "hidden_dims": (64, 64)}
OFFLINE, ONLINE = 60, 150


def settings(umaze_id, out, **kw):
    base = RunSettings(
        dataset_id=umaze_id,
        steps=OFFLINE,
        eval_every=30,
        eval_episodes=2,
        seed=3,
        device="cpu",
        out_dir=out,
        progress=False,
        online_steps=ONLINE,
    )
    return replace(base, **kw)


def test_fine_tuning_grows_the_buffer_and_resumes_exactly_mid_episode(
    umaze_id, tmp_path, monkeypatch
):
    straight = train(settings(umaze_id, tmp_path / "a"), preset="maze", overrides=OVERRIDES)
    rows = straight.history
    assert [r["phase"] for r in rows] == ["offline"] * 2 + ["online"] * 5
    assert [r["env_steps"] for r in rows] == [0, 0, 30, 60, 90, 120, 150]
    offline_rows = load_transitions(umaze_id).size
    assert [r["buffer_size"] for r in rows] == [offline_rows + r["env_steps"] for r in rows]
    assert straight.fine_tuned and straight.offline_score == rows[1]["normalized_score"]

    state_a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    online = state_a["sampler"]["online"]
    assert online["rewards"].shape[0] == ONLINE
    # The eval env's horizon is 300 steps: 150 online steps are one unfinished episode whose
    # transitions chain (each next observation is the following observation).
    assert torch.equal(online["next_observations"][:-1], online["observations"][1:])
    assert state_a["extra"]["collector"]["in_episode"]
    assert state_a["agent"]["step"] == OFFLINE + ONLINE

    # killed after the checkpoint at step 120 (60 env steps in)
    restore = kill_update_at(monkeypatch, IQLAgent, 130)
    with pytest.raises(KeyboardInterrupt):
        train(settings(umaze_id, tmp_path / "b"), preset="maze", overrides=OVERRIDES)
    mid = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert mid["agent"]["step"] == 120 and mid["extra"]["collector"]["in_episode"]
    assert mid["sampler"]["online"]["rewards"].shape[0] == 60

    restore()
    resumed = train(settings(umaze_id, tmp_path / "b"), preset="maze", overrides=OVERRIDES)
    state_b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for net in ("value", "q", "q_target", "actor"):
        for key, value in state_a["agent"][net].items():
            assert torch.equal(value, state_b["agent"][net][key]), (net, key)
    for key, value in online.items():
        assert torch.equal(value, state_b["sampler"]["online"][key]), key
    timing = {"updates_per_second", "wall_seconds"}
    strip = [{k: v for k, v in r.items() if k not in timing} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in resumed.history]


def test_online_rewards_get_the_offline_transform(umaze_id, tmp_path):
    """AntMaze-style shift: every stored online reward is raw reward - 1, and the raw rewards
    are the environment's (sparse 0/1 in PointMaze)."""
    train(
        settings(umaze_id, tmp_path, online_steps=40, eval_every=20, steps=20),
        preset="maze",
        overrides={**OVERRIDES, "reward_shift": -1.0},
    )
    rewards = load_checkpoint(tmp_path / "checkpoint.pt")["sampler"]["online"]["rewards"]
    assert rewards.shape[0] == 40
    assert set(np.unique(rewards.numpy()).tolist()) <= {-1.0, 0.0}
    data = load_transitions(umaze_id)
    assert reward_transform(data, "none", -1.0) == (1.0, -1.0)
    spread = data.episode_returns.max() - data.episode_returns.min()
    assert reward_transform(data, "return_range", 0.0)[0] == pytest.approx(1000.0 / spread)


def test_replay_buffer_samples_like_the_plain_sampler_until_it_grows():
    from iql_sweep.data.transitions import ARRAY_FIELDS, BatchSampler

    gen = torch.Generator().manual_seed(0)
    tensors = {k: torch.randn(50, 3, generator=gen) for k in ARRAY_FIELDS}
    plain = BatchSampler(tensors, 8, seed=1)
    buffer = ReplayBuffer(tensors, 10, 8, seed=1)
    for _ in range(3):
        a, b = plain.sample(), buffer.sample()
        assert all(torch.equal(a[k], b[k]) for k in ARRAY_FIELDS)
    row = np.full(3, 7.0, dtype=np.float32)
    buffer.add(row, row, 2.0, row, True, False)
    assert buffer.size == 51 and buffer.online_size == 1
    assert buffer.tensors["rewards"][50].tolist() == [2.0, 2.0, 2.0]
    state = buffer.state_dict()
    other = ReplayBuffer(tensors, 10, 8, seed=5)
    other.load_state_dict(state)
    assert other.size == 51 and torch.equal(other.sample()["actions"], buffer.sample()["actions"])
    changed = {k: v.clone() for k, v in tensors.items()}
    changed["rewards"][0] += 1.0
    with pytest.raises(ConfigError, match="other offline data"):
        ReplayBuffer(changed, 10, 8).load_state_dict(state)


def test_negative_online_steps_are_refused_before_any_work(umaze_id, tmp_path):
    with pytest.raises(ConfigError, match="--online-steps"):
        train(settings(umaze_id, tmp_path, online_steps=-5))


def test_fine_tuning_sweep_reports_offline_and_fine_tuned_scores(umaze_id, tmp_path):
    """A real Ray sweep with online_steps: both scores in the tables and report.md, the phase
    and the environment steps in each W&B run's history."""
    import pandas as pd

    from tests.test_sweep import cli, tiny_spec, write_spec
    from tests.wandb_files import run_contents

    spec = tiny_spec(
        "ft", [umaze_id], {"grid": {"expectile": [0.7], "seed": [0, 1]}}, online_steps=60
    )
    result = cli("run", str(write_spec(tmp_path, spec)), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = tmp_path / "results" / "ft" / "report"
    trials = pd.read_csv(report / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"}
    assert (trials["steps_done"] == 120).all()
    assert trials[["offline_score", "finetuned_score"]].notna().all().all()
    assert (trials["finetuned_score"] == trials["last_score"]).all()
    summary = pd.read_csv(report / "summary.csv")
    assert summary["offline_mean"].iloc[0] == pytest.approx(trials["offline_score"].mean())
    assert summary["finetuned_mean"].iloc[0] == pytest.approx(trials["finetuned_score"].mean())
    assert "offline → online fine-tuning" in (report / "report.md").read_text()
    for row in trials.itertuples():
        run_dir = next((tmp_path / "results" / "ft" / "wandb").glob(f"*-{row.trial_id}"))
        config, history = run_contents(run_dir / f"run-{row.trial_id}.wandb")
        assert config["iql"]["max_steps"] == 120  # the cosine horizon spans both phases
        assert [h["online_phase"] for h in history] == [0, 0, 1, 1]
        assert [h["env_steps"] for h in history] == [0, 0, 30, 60]
        assert history[-1]["score"] == pytest.approx(row.finetuned_score)


def test_spec_refuses_packed_fine_tuning():
    from iql_sweep.spec import validate_spec
    from tests.test_sweep import tiny_spec

    spec = tiny_spec("x", ["d"], {"grid": {"expectile": [0.7, 0.9]}}, online_steps=10)
    spec["resources"]["pack"] = 2
    with pytest.raises(ConfigError, match=r"resources.pack: online fine-tuning"):
        validate_spec(spec, check_datasets=False)
    spec["training"]["online_steps"] = -1
    with pytest.raises(ConfigError, match=r"training.online_steps"):
        validate_spec(spec, check_datasets=False)
