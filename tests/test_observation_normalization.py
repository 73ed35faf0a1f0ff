"""Observation normalisation (``iql.normalize_observations``): statistics equal an independent
computation; training equals a run on hand-normalised data (eager and compiled); evaluation,
online actions and value queries see normalised inputs; statistics survive checkpoints, resume
and packing; specs sweep the setting and the report compares its values."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

from iql_sweep.checkpoint import load_checkpoint, value_function
from iql_sweep.data.minari_io import flatten_observations, load_transitions
from iql_sweep.errors import ConfigError
from iql_sweep.evaluation import Evaluator, dataset_env_spec
from iql_sweep.iql.config import IQLConfig, Member
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.observations import STD_EPS, ObservationStats
from iql_sweep.iql.replay import ReplayBuffer, split_rows
from iql_sweep.loop import CLOCK_KEYS
from iql_sweep.report import tables as aggregates
from iql_sweep.seeds import EPISODE_SEED_OFFSET
from iql_sweep.spec import validate_spec
from iql_sweep.training import cli_trial, train
from iql_sweep.trial_config import RunSettings
from tests.helpers import ACT, OBS, random_tensors, small_config
from tests.interrupt import kill_update_at

MEMBERS = [
    Member(expectile=0.7, beta=3.0, seed=0),
    Member(expectile=0.9, beta=10.0, seed=1),
    Member(expectile=0.7, beta=0.5, seed=0),
]


def skewed_tensors(n: int = 400) -> dict[str, torch.Tensor]:
    """Random transitions whose observation dimensions have very different means and scales
    (so normalising changes what the networks see)."""
    data = random_tensors(n)
    scale = torch.tensor([0.1, 1.0, 5.0, 30.0, 2.0, 0.5])
    shift = torch.tensor([3.0, -1.0, 10.0, 0.0, -50.0, 0.2])
    for key in ("observations", "next_observations"):
        data[key] = data[key] * scale + shift
    return data


def by_hand(obs: np.ndarray, observations: np.ndarray) -> np.ndarray:
    """Normalised by statistics computed with exact sums (math.fsum), column by column."""
    rows = np.asarray(observations, dtype=np.float64)
    out = np.empty_like(np.asarray(obs, dtype=np.float64))
    for j in range(rows.shape[1]):
        column = rows[:, j].tolist()
        mean = math.fsum(column) / len(column)
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in column) / len(column)) + 1e-3
        out[..., j] = (np.asarray(obs, dtype=np.float64)[..., j] - mean) / std
    return out.astype(np.float32)


def test_statistics_equal_an_independent_computation(umaze_id):
    data = load_transitions(umaze_id)
    stats = ObservationStats.of(data.observations)
    for j in range(data.obs_dim):
        column = data.observations[:, j].astype(np.float64).tolist()
        mean = math.fsum(column) / len(column)
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in column) / len(column))
        assert stats.mean[j] == pytest.approx(mean, rel=1e-6, abs=1e-7)
        assert stats.std[j] == pytest.approx(std + STD_EPS, rel=1e-6)
    # a constant dimension divides by the epsilon, never by zero
    constant = np.column_stack([np.full(10, 4.0), np.arange(10.0)])
    flat = ObservationStats.of(constant)
    assert flat.std[0] == pytest.approx(STD_EPS)
    assert torch.isfinite(flat.normalize(torch.tensor(constant, dtype=torch.float32))).all()
    assert ObservationStats.from_state(json.loads(json.dumps(stats.state()))) == stats


@pytest.mark.parametrize("speed", ["eager", "compiled"])
def test_training_equals_a_run_on_hand_normalised_data(speed):
    data = skewed_tensors()
    on = IQLLearner(OBS, ACT, small_config(normalize_observations=True), MEMBERS, data, speed=speed)
    hand = dict(data)
    for key in ("observations", "next_observations"):
        hand[key] = torch.from_numpy(by_hand(data[key].numpy(), data["observations"].numpy()))
    off = IQLLearner(OBS, ACT, small_config(), MEMBERS, hand)
    on.advance(20)
    off.advance(20)
    for k in range(len(MEMBERS)):
        mine, ref = on.member_layers(k), off.member_layers(k)
        for net in ("value", "q1", "q2", "q1_target", "actor"):
            for (w, b), (rw, rb) in zip(mine[net], ref[net]):
                torch.testing.assert_close(w, rw, rtol=1e-4, atol=2e-5, msg=f"{k} {net}")
                torch.testing.assert_close(b, rb, rtol=1e-4, atol=2e-5, msg=f"{k} {net}")
    # acting and values take raw observations and normalise them
    raw = data["observations"][:16]
    normalised = torch.from_numpy(by_hand(raw.numpy(), data["observations"].numpy()))
    torch.testing.assert_close(on.act(raw), off.act(normalised), rtol=1e-4, atol=2e-5)
    torch.testing.assert_close(on.values(raw), off.values(normalised), rtol=1e-4, atol=2e-4)
    assert not torch.allclose(on.act(raw), off.act(raw), atol=1e-3)  # the setting matters
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(
        on.sample_actions(raw, 1, g1), off.sample_actions(normalised, 1, g2), rtol=1e-4, atol=2e-5
    )


def test_pack_members_share_the_statistics_and_equal_solo_runs():
    data = skewed_tensors()
    config = small_config(normalize_observations=True)
    pack = IQLLearner(OBS, ACT, config, MEMBERS, data)
    pack.advance(10)
    for k, member in enumerate(MEMBERS):
        solo = IQLLearner(OBS, ACT, config, [member], data)
        solo.advance(10)
        assert solo.obs_stats == pack.obs_stats
        for net in ("value", "q1", "actor"):
            for (w, b), (sw, sb) in zip(pack.member_layers(k)[net], solo.member_layers(0)[net]):
                torch.testing.assert_close(w, sw, rtol=1e-5, atol=1e-6)
                torch.testing.assert_close(b, sb, rtol=1e-5, atol=1e-6)


def test_the_buffer_stores_normalised_rows_and_gives_raw_ones_back():
    data = skewed_tensors(50)
    stats = ObservationStats.of(data["observations"].numpy())
    buffer = ReplayBuffer(data, 8, [0], online_capacity=2, obs_stats=stats)
    stored = split_rows(buffer.storage[:50], OBS, ACT)
    expected = by_hand(data["next_observations"].numpy(), data["observations"].numpy())
    np.testing.assert_allclose(stored["next_observations"].numpy(), expected, rtol=1e-5, atol=1e-5)
    raw_obs = np.arange(OBS, dtype=np.float32) * 3.0
    buffer.add(raw_obs, np.zeros(ACT), 1.0, raw_obs + 1.0, False, False)
    expected = by_hand(raw_obs[None], data["observations"].numpy())[0]
    np.testing.assert_allclose(
        buffer.online_rows("observations")[0].numpy(), expected, rtol=1e-5, atol=1e-5
    )
    back = buffer.raw_rows(50, 51)
    np.testing.assert_allclose(back["observations"][0].numpy(), raw_obs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(back["next_observations"][0].numpy(), raw_obs + 1, rtol=1e-5)
    assert back["rewards"].tolist() == [1.0]


def test_evaluation_sees_the_normalised_input(umaze_id):
    data = load_transitions(umaze_id)
    tensors = data.to_tensors()
    on = IQLLearner(
        data.obs_dim, data.act_dim, small_config(normalize_observations=True), MEMBERS[:2], tensors
    )
    hand = dict(tensors)
    for key in ("observations", "next_observations"):
        hand[key] = torch.from_numpy(by_hand(tensors[key].numpy(), data.observations))
    off = IQLLearner(data.obs_dim, data.act_dim, small_config(), MEMBERS[:2], hand)
    on.advance(30)
    off.advance(30)
    gaps = {"hand": 0.0, "raw": 0.0}

    def act(obs, members):
        """The normalising learner's actions, compared at every step with the plain learner's
        on the same observations normalised by hand, and raw."""
        actions = on.act(obs, members)
        normalised = torch.from_numpy(by_hand(obs.numpy(), data.observations))
        gaps["hand"] = max(gaps["hand"], (actions - off.act(normalised, members)).abs().max())
        gaps["raw"] = max(gaps["raw"], (actions - off.act(obs, members)).abs().max())
        return actions

    evaluator = Evaluator(data, episodes=2, seeds=[10, 11])
    try:
        mine = evaluator.evaluate(act, [0, 1])
        ref = evaluator.evaluate(
            lambda obs, m: off.act(torch.from_numpy(by_hand(obs.numpy(), data.observations)), m),
            [0, 1],
        )
    finally:
        evaluator.close()
    assert gaps["hand"] < 1e-4 < 1e-2 < gaps["raw"]
    for k in (0, 1):
        np.testing.assert_allclose(mine[k].returns, ref[k].returns, rtol=1e-6)


def _batch(obs):
    """One observation (a dict of arrays) as a batch of one."""
    return {k: np.asarray(v)[None] for k, v in obs.items()}


def fine_tune(umaze_id, out):
    settings = RunSettings(steps=60, eval_every=30, eval_episodes=2, online_steps=150)
    overrides = {"batch_size": 32, "hidden_dims": (64, 64), "normalize_observations": True}
    return train(
        cli_trial(umaze_id, settings, seed=3, preset="maze", overrides=overrides),
        device="cpu",
        out_dir=out,
        progress=False,
    )


def test_fine_tuning_normalises_online_rows_and_resumes_exactly(umaze_id, tmp_path, monkeypatch):
    straight = fine_tune(umaze_id, tmp_path / "a")
    data = load_transitions(umaze_id)
    stats = ObservationStats.of(data.observations)
    info = json.loads((tmp_path / "a" / "config.json").read_text())
    assert info["iql"]["normalize_observations"] is True
    assert ObservationStats.from_state(info["observation_stats"]) == stats
    state = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert ObservationStats.from_state(state["learner"]["observation_stats"]) == stats

    # the online rows hold the environment's observations, normalised: replay the episode
    online = split_rows(state["learner"]["buffer"]["online"], data.obs_dim, data.act_dim)
    env = gym.make(dataset_env_spec(data))
    meta = data.metadata
    obs, _ = env.reset(seed=3 + EPISODE_SEED_OFFSET)
    raw = [obs]
    for action in online["actions"].numpy():  # PointMaze's action box is [-1, 1]
        obs, *_ = env.step(action.astype(np.float64))
        raw.append(obs)
    env.close()
    raw = np.concatenate(
        [flatten_observations(_batch(o), meta["observation_space"], meta["obs_keys"]) for o in raw]
    )
    np.testing.assert_allclose(
        online["observations"].numpy(), by_hand(raw[:-1], data.observations), atol=1e-4
    )

    # value queries (the stitching analysis) normalise too: V by hand from the raw layers
    v = value_function(state, 0)(raw[:5])
    x = torch.from_numpy(by_hand(raw[:5], data.observations))
    learner = IQLLearner.from_state(state["learner"], IQLConfig(**state["config"]))
    layers = learner.member_layers(0)["value"]
    for i, (w, b) in enumerate(layers):
        x = x @ w.t() + b
        if i < len(layers) - 1:
            x = torch.relu(x)
    np.testing.assert_allclose(v, x.squeeze(-1).numpy(), rtol=1e-5, atol=1e-5)

    # killed mid-episode during fine-tuning, resumed: the same run
    restore = kill_update_at(monkeypatch, 130)
    with pytest.raises(KeyboardInterrupt):
        fine_tune(umaze_id, tmp_path / "b")
    restore()
    resumed = fine_tune(umaze_id, tmp_path / "b")
    state_b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    for net in ("value", "q", "actor"):
        for key, value in state["learner"][net].items():
            assert torch.equal(value, state_b["learner"][net][key]), (net, key)
    timing = CLOCK_KEYS
    strip = [{k: v for k, v in r.items() if k not in timing} for r in straight.history]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in resumed.history]


def test_checkpoints_refuse_another_setting():
    data = skewed_tensors()
    on = IQLLearner(OBS, ACT, small_config(normalize_observations=True), MEMBERS, data)
    off = IQLLearner(OBS, ACT, small_config(), MEMBERS, data)
    with pytest.raises(ConfigError, match="normalize_observations"):
        off.load_state_dict(on.state_dict())
    with pytest.raises(ConfigError, match="normalize_observations"):
        on.load_state_dict(off.state_dict())
    with pytest.raises(ConfigError, match="observation_stats"):
        IQLLearner(OBS, ACT, small_config(normalize_observations=True), MEMBERS)
    restored = IQLLearner.from_state(on.state_dict(), on.config)
    assert restored.obs_stats == on.obs_stats


def spec(**grid) -> dict:
    return {
        "name": "norm",
        "datasets": ["iql-sweep/pointmaze/umaze-v0"],
        "training": {"steps": 60, "eval_every": 30},
        "search": {"grid": grid},
        "resources": {"pack": "auto"},
    }


def test_a_grid_over_the_setting_splits_packs_and_strict_values():
    ok = validate_spec(
        spec(expectile=[0.7, 0.9], normalize_observations=[False, True], seed=[0, 1]),
        check_datasets=False,
        check_output=False,
    )
    plan = ok.pack_plan()
    assert [p["overrides"] for p in plan] == [
        {"normalize_observations": False},
        {"normalize_observations": True},
    ]
    assert all(len(p["members"]) == 4 for p in plan)
    for bad in ([0, 1], ["yes", "no"]):
        with pytest.raises(ConfigError, match=r"search\.grid\.normalize_observations\[0\]"):
            validate_spec(
                spec(normalize_observations=bad), check_datasets=False, check_output=False
            )
    raw = {**spec(expectile=[0.7]), "iql": {"normalize_observations": 1}}
    with pytest.raises(ConfigError, match=r"iql\.normalize_observations"):
        validate_spec(raw, check_datasets=False, check_output=False)


def test_the_report_compares_the_setting_against_its_baseline():
    rng = np.random.default_rng(0)
    rows = []
    for norm in (False, True):
        for tau in (0.7, 0.9):
            for seed in range(4):
                score = 40 + 20 * norm + rng.normal()  # on is better on every seed
                rows.append(
                    {
                        "dataset": "d",
                        "expectile": tau,
                        "beta": 3.0,
                        "seed": seed,
                        "normalize_observations": norm,
                        "status": "TERMINATED",
                        "evaluations": 2,
                        "last_score": score,
                        "best_score": score,
                    }
                )
    agg = aggregates.compute(pd.DataFrame(rows), ["d"], ["normalize_observations"], reps=200)
    pairs = agg.improvement[agg.improvement["ablation"] == "normalize_observations"]
    assert len(pairs) == 4  # per tau, last and best
    assert set(pairs["x"]) == {
        "τ 0.7, β 3, normalize_observations True",
        "τ 0.9, β 3, normalize_observations True",
    }
    assert (pairs["probability"] == 1.0).all()
    assert "normalize_observations" in aggregates.markdown(agg)


def test_optuna_searches_the_setting_as_a_choice():
    raw = {
        **spec(),
        "search": {
            "optuna": {
                "num_samples": 4,
                "params": {"normalize_observations": {"type": "choice", "values": [False, True]}},
            }
        },
        "resources": {"pack": 1},
    }
    ok = validate_spec(raw, check_datasets=False, check_output=False)
    assert ok.search.optuna.params["normalize_observations"].values == [False, True]
    for wrong in (
        {"type": "uniform", "low": 0.0, "high": 1.0},
        {"type": "choice", "values": [0, 1]},
    ):
        raw["search"]["optuna"]["params"]["normalize_observations"] = wrong
        with pytest.raises(ConfigError, match=r"search\.optuna\.params\.normalize_observations"):
            validate_spec(raw, check_datasets=False, check_output=False)
