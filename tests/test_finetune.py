"""Offline-to-online fine-tuning: the buffer grows by the environment steps taken, online rewards
get the offline transform, and a run killed mid-fine-tuning (mid-episode) resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iql_sweep.checkpoint import load_checkpoint
from iql_sweep.data.minari_io import load_transitions
from iql_sweep.data.transitions import reward_transform
from iql_sweep.errors import ConfigError
from iql_sweep.iql.replay import FIELDS, ReplayBuffer, split_rows
from iql_sweep.loop import CLOCK_KEYS
from iql_sweep.training import cli_trial, train
from iql_sweep.trial_config import RunSettings
from tests.interrupt import kill_update_at

OVERRIDES = {"batch_size": 32, "hidden_dims": (64, 64)}
OFFLINE, ONLINE = 60, 150
OBS_DIM, ACT_DIM = 6, 2  # PointMaze: observation (4) + desired goal (2); 2-d force


def fine_tune(umaze_id, out, overrides=OVERRIDES, **kw):
    settings = RunSettings(
        **{"steps": OFFLINE, "eval_every": 30, "eval_episodes": 2, "online_steps": ONLINE, **kw}
    )
    return train(
        cli_trial(umaze_id, settings, seed=3, preset="maze", overrides=overrides),
        device="cpu",
        out_dir=out,
        progress=False,
    )


def online_rows(state) -> dict:
    return split_rows(state["learner"]["buffer"]["online"], OBS_DIM, ACT_DIM)


def test_fine_tuning_grows_the_buffer_and_resumes_exactly_mid_episode(
    umaze_id, tmp_path, monkeypatch
):
    straight = fine_tune(umaze_id, tmp_path / "a")
    rows = straight.history
    assert [r["phase"] for r in rows] == ["offline"] * 2 + ["online"] * 5
    assert [r["env_steps"] for r in rows] == [0, 0, 30, 60, 90, 120, 150]
    offline_rows = load_transitions(umaze_id).size
    assert [r["buffer_size"] for r in rows] == [offline_rows + r["env_steps"] for r in rows]
    assert straight.fine_tuned and straight.offline_score == rows[1]["normalized_score"]

    state_a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    online = online_rows(state_a)
    assert online["rewards"].shape[0] == ONLINE
    # The eval env's horizon is 300 steps: 150 online steps are one unfinished episode whose
    # transitions chain (each next observation is the following observation).
    assert torch.equal(online["next_observations"][:-1], online["observations"][1:])
    assert state_a["loop"]["collector"]["in_episode"]
    assert state_a["learner"]["step"] == OFFLINE + ONLINE

    # killed after the checkpoint at step 120 (60 env steps in); sequential evaluations, so that
    # checkpoint is surely written (overlapped, the evaluation of 120 could still be in flight:
    # tests/test_training.py), then resumed overlapped
    restore = kill_update_at(monkeypatch, 130)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(umaze_id, tmp_path / "b", overlap_eval=False)
    mid = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert mid["learner"]["step"] == 120 and mid["loop"]["collector"]["in_episode"]
    assert online_rows(mid)["rewards"].shape[0] == 60

    restore()
    resumed = fine_tune(umaze_id, tmp_path / "b")
    state_b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for net in ("value", "q", "q_target", "actor"):
        for key, value in state_a["learner"][net].items():
            assert torch.equal(value, state_b["learner"][net][key]), (net, key)
    for key, value in online.items():
        assert torch.equal(value, online_rows(state_b)[key]), key
    timing = CLOCK_KEYS
    strip = [{k: v for k, v in r.items() if k not in timing} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in resumed.history]


def test_online_rewards_get_the_offline_transform(umaze_id, tmp_path):
    """AntMaze-style shift: every stored online reward is raw reward - 1, and the raw rewards
    are the environment's (sparse 0/1 in PointMaze)."""
    fine_tune(
        umaze_id,
        tmp_path,
        {**OVERRIDES, "reward_shift": -1.0},
        online_steps=40,
        eval_every=20,
        steps=20,
    )
    rewards = online_rows(load_checkpoint(tmp_path / "checkpoint.pt"))["rewards"]
    assert rewards.shape[0] == 40
    assert set(np.unique(rewards.numpy()).tolist()) <= {-1.0, 0.0}
    data = load_transitions(umaze_id)
    assert reward_transform(data, "none", -1.0) == (1.0, -1.0)
    spread = data.episode_returns.max() - data.episode_returns.min()
    assert reward_transform(data, "return_range", 0.0)[0] == pytest.approx(1000.0 / spread)


def test_replay_buffer_samples_the_same_rows_until_it_grows():
    """Added rows change nothing about earlier draws' streams; afterwards they are drawn; the
    state restores the generators and the online rows; other offline data is refused."""
    gen = torch.Generator().manual_seed(0)
    tensors = {
        k: torch.randn(50, 3, generator=gen)
        for k in ("observations", "actions", "next_observations")
    }
    tensors.update(
        {k: torch.randn(50, generator=gen) for k in ("rewards", "terminals", "timeouts")}
    )
    plain = ReplayBuffer(tensors, 8, [1])
    growing = ReplayBuffer(tensors, 8, [1], online_capacity=10)
    for _ in range(3):
        a, b = plain.sample(), growing.sample()
        assert all(torch.equal(a[k], b[k]) for k in FIELDS)
    row = np.full(3, 7.0, dtype=np.float32)
    growing.add(row, row, 2.0, row, True, False)
    assert growing.size == 51 and growing.online_size == 1
    assert growing.online_rows("rewards").tolist() == [2.0]
    assert growing.online_rows("terminals").tolist() == [1.0]
    seen = torch.cat([growing.sample()["rewards"].flatten() for _ in range(60)])
    assert (seen == 2.0).any()  # the new row is drawn (60 x 8 draws from 51 rows)
    state = growing.state_dict()
    other = ReplayBuffer(tensors, 8, [5], online_capacity=10)
    other.load_state_dict(state)
    assert other.size == 51
    assert torch.equal(other.sample()["actions"], growing.sample()["actions"])
    changed = {k: v.clone() for k, v in tensors.items()}
    changed["rewards"][0] += 1.0
    with pytest.raises(ConfigError, match="other offline data"):
        ReplayBuffer(changed, 8, [1], online_capacity=10).load_state_dict(state)


def test_negative_online_steps_are_refused_before_any_work(umaze_id, tmp_path):
    from pydantic import ValidationError
    from typer.testing import CliRunner

    from iql_sweep.cli import app

    with pytest.raises(ValidationError, match="online_steps"):
        RunSettings(steps=10, eval_every=5, online_steps=-5)
    result = CliRunner().invoke(
        app, ["train", "--dataset", umaze_id, "--online-steps", "-5", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and "--online-steps:" in result.output
    assert not (tmp_path / "x").exists()


def test_fine_tuning_sweep_reports_offline_and_fine_tuned_scores(
    umaze_id, tmp_path, cli_in_process
):
    """A real Ray sweep with online_steps: both scores in the tables and report.md, the phase
    and the environment steps in each W&B run's history."""
    import pandas as pd

    from tests.test_sweep import tiny_spec, write_spec
    from tests.wandb_files import run_contents

    spec = tiny_spec(
        "ft", [umaze_id], {"grid": {"expectile": [0.7], "seed": [0, 1]}}, online_steps=60
    )
    result = cli_in_process("run", str(write_spec(tmp_path, spec)), cwd=tmp_path)
    assert result.exit_code == 0, result.output[-3000:]
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
    from iql_sweep.report.dashboard import build

    (board,) = build(tmp_path / "results" / "ft")
    (section,) = [s for s in board.workspace.sections if s.name.startswith("Offline → online")]
    assert "update **60**" in section.panels[0].markdown  # where the online phase starts
    assert [p.y for p in section.panels[1:]] == [
        ["normalized_score"],
        ["online_phase"],
        ["online_return"],
    ]


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
