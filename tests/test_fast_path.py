"""The fast path (fused twin critics, fused Adam, torch.compile) computes the reference path's
function: from the same initial parameters and batches, the same parameters after several
updates, to float tolerance; and it drives a real training run and its resume."""

from __future__ import annotations

import pytest
import torch

from iql_sweep.checkpoint import load_checkpoint
from iql_sweep.data.transitions import BatchSampler
from iql_sweep.errors import ConfigError
from iql_sweep.iql.agent import IQLAgent
from iql_sweep.iql.config import make_config
from iql_sweep.iql.fast import FastAgent
from iql_sweep.iql.population import IQLPopulation, Member
from iql_sweep.training import RunSettings, train
from tests.interrupt import kill_update_at
from tests.test_agent import ACT, OBS, random_tensors

CONFIG = make_config(
    "default", hidden_dims=(32, 32), batch_size=16, max_steps=40, expectile=0.8, beta=5.0
)


def test_fast_agent_matches_the_reference_agent_after_many_updates():
    data = random_tensors(400)
    reference = IQLAgent(OBS, ACT, CONFIG, seed=3)
    fast = FastAgent(OBS, ACT, CONFIG, seed=3, compile=True)
    assert fast.population.fast and fast.population.value_opt.defaults["fused"]
    sampler = BatchSampler(data, CONFIG.batch_size, seed=3)
    for _ in range(25):
        batch = sampler.sample()
        ref_metrics = reference.update(batch)
        fast_metrics = fast.update(batch)
    for key, value in ref_metrics.items():
        torch.testing.assert_close(fast_metrics[key], value.float(), rtol=1e-4, atol=1e-6)
    mine = fast.population.member_state(0)
    for net in ("value", "q", "q_target", "actor"):
        for key, value in getattr(reference, net).state_dict().items():
            torch.testing.assert_close(mine[net][key], value, rtol=1e-4, atol=2e-6, msg=key)
    obs = torch.randn(7, OBS)
    torch.testing.assert_close(fast.act(obs), reference.act(obs))
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    torch.testing.assert_close(
        fast.sample_actions(obs, gen_a), reference.sample_actions(obs, gen_b), atol=1e-6, rtol=0
    )


def test_compiled_population_matches_the_eager_one_with_shared_critics():
    members = [Member(0.7, 3.0, 0), Member(0.7, 10.0, 0), Member(0.9, 3.0, 1)]
    data = random_tensors(300)
    eager = IQLPopulation(OBS, ACT, CONFIG, members, data)
    fast = IQLPopulation(OBS, ACT, CONFIG, members, data, fast=True)
    for _ in range(12):
        eager.update(eager.sample())
        fast.update(fast.sample())
    for k in range(len(members)):
        a, b = eager.member_state(k), fast.member_state(k)
        for net in ("value", "q", "actor"):
            for key, value in a[net].items():
                torch.testing.assert_close(b[net][key], value, rtol=1e-4, atol=2e-6)


def test_fast_training_run_resumes_exactly_and_refuses_the_other_path(
    umaze_id, tmp_path, monkeypatch
):
    def settings(out, compile=True):
        return RunSettings(
            dataset_id=umaze_id,
            steps=60,
            eval_every=20,
            eval_episodes=2,
            seed=1,
            device="cpu",
            out_dir=out,
            progress=False,
            compile=compile,
        )

    overrides = {"batch_size": 32, "hidden_dims": (32, 32)}
    straight = train(settings(tmp_path / "a"), preset="maze", overrides=overrides)
    assert [r["step"] for r in straight.history] == [20, 40, 60]
    state_a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert state_a["agent"]["path"] == "fast" and state_a["agent"]["step"] == 60

    restore = kill_update_at(monkeypatch, FastAgent, 50)
    with pytest.raises(KeyboardInterrupt):
        train(settings(tmp_path / "b"), preset="maze", overrides=overrides)
    restore()
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["agent"]["step"] == 40
    resumed = train(settings(tmp_path / "b"), preset="maze", overrides=overrides)
    state_b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for net in ("value", "q", "q_target", "actor"):
        for key, value in state_a["agent"]["population"][net].items():
            assert torch.equal(value, state_b["agent"]["population"][net][key]), (net, key)
    assert [r["normalized_score"] for r in resumed.history] == [
        r["normalized_score"] for r in straight.history
    ]
    with pytest.raises(ConfigError, match="fast path"):
        train(settings(tmp_path / "a", compile=False), preset="maze", overrides=overrides)


def test_fast_path_refuses_actor_dropout_before_training():
    with pytest.raises(ConfigError, match="actor dropout"):
        FastAgent(OBS, ACT, make_config("adroit"), seed=0)
