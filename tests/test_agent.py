"""The agent: update order and semantics, gradient isolation, exact resume."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from iql_sweep.checkpoint import (
    atomic_torch_save,
    load_checkpoint,
    restore_training_state,
    training_state,
)
from iql_sweep.data.transitions import BatchSampler, Transitions, preprocess_rewards
from iql_sweep.iql.agent import IQLAgent, cosine_factor
from iql_sweep.iql.config import make_config

OBS, ACT = 5, 2


def random_tensors(n: int = 500, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randn(n, OBS, generator=g),
        "actions": torch.rand(n, ACT, generator=g) * 2 - 1,
        "rewards": torch.randn(n, generator=g),
        "next_observations": torch.randn(n, OBS, generator=g),
        "terminals": (torch.rand(n, generator=g) < 0.1).float(),
        "timeouts": (torch.rand(n, generator=g) < 0.05).float(),
    }


def small_config(**kw):
    base = {"hidden_dims": (32, 32), "batch_size": 16, "max_steps": 100}
    return make_config("default", **{**base, **kw})


def all_tensors(agent: IQLAgent) -> dict[str, torch.Tensor]:
    out = {}
    for name in ("value", "q", "q_target", "actor"):
        for k, v in getattr(agent, name).state_dict().items():
            out[f"{name}.{k}"] = v
    for name in ("value_opt", "q_opt", "actor_opt"):
        for pid, st in getattr(agent, name).state_dict()["state"].items():
            for k, v in st.items():
                out[f"{name}.{pid}.{k}"] = torch.as_tensor(v)
    return out


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_exact_resume(tmp_path, dropout):
    """N steps, save, load into fresh objects, N more == 2N straight (bitwise, CPU)."""
    cfg = small_config(actor_dropout=dropout)
    data = random_tensors()
    n = 25

    straight = IQLAgent(OBS, ACT, cfg, seed=3)
    s_sampler = BatchSampler(data, cfg.batch_size, seed=7)
    for _ in range(2 * n):
        straight.update(s_sampler.sample())

    first = IQLAgent(OBS, ACT, cfg, seed=3)
    f_sampler = BatchSampler(data, cfg.batch_size, seed=7)
    for _ in range(n):
        first.update(f_sampler.sample())
    atomic_torch_save(training_state(first, f_sampler), tmp_path / "ckpt.pt")
    torch.manual_seed(12345)  # disturb the global RNG: the checkpoint must restore it

    resumed = IQLAgent(OBS, ACT, cfg, seed=99)  # different init: everything comes from the file
    r_sampler = BatchSampler(data, cfg.batch_size, seed=0)
    restore_training_state(load_checkpoint(tmp_path / "ckpt.pt"), resumed, r_sampler)
    assert resumed.step == n
    for _ in range(n):
        resumed.update(r_sampler.sample())

    a, b = all_tensors(straight), all_tensors(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight.step == resumed.step == 2 * n
    assert straight.actor_opt.param_groups[0]["lr"] == resumed.actor_opt.param_groups[0]["lr"]


def test_update_matches_a_hand_written_step_in_reference_order():
    """One update equals: V step on target-min-Q; actor step with advantage from the target Q
    and the *updated* V; Q step towards r + gamma (1 - terminal) V_new(s'); Polyak targets."""
    cfg = small_config(expectile=0.8, beta=2.0)
    agent = IQLAgent(OBS, ACT, cfg, seed=1)
    batch = {k: v[:16] for k, v in random_tensors().items()}
    value, q, q_target, actor = (
        copy.deepcopy(m) for m in (agent.value, agent.q, agent.q_target, agent.actor)
    )
    opt_v = torch.optim.Adam(value.parameters(), lr=cfg.value_lr)
    opt_q = torch.optim.Adam(q.parameters(), lr=cfg.critic_lr)
    opt_a = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr)
    s, a = batch["observations"], batch["actions"]

    with torch.no_grad():
        tq = torch.minimum(*q_target(s, a))
    u = tq - value(s)
    w = torch.where(u < 0, 0.2, 0.8)
    opt_v.zero_grad()
    (w * u**2).mean().backward()
    opt_v.step()

    with torch.no_grad():
        adv = tq - value(s)
        weights = torch.exp(2.0 * adv).clamp(max=100.0)
    mean = torch.tanh(actor.net(s))
    std = actor.log_std.clamp(-5, 2).exp()
    logp = torch.distributions.Normal(mean, std).log_prob(a).sum(-1)
    opt_a.zero_grad()
    (-(weights * logp).mean()).backward()
    opt_a.step()

    with torch.no_grad():
        y = batch["rewards"] + 0.99 * (1 - batch["terminals"]) * value(batch["next_observations"])
    q1, q2 = q(s, a)
    opt_q.zero_grad()
    ((q1 - y) ** 2 + (q2 - y) ** 2).mean().backward()
    opt_q.step()
    with torch.no_grad():
        for pt, p in zip(q_target.parameters(), q.parameters()):
            pt.mul_(1 - cfg.polyak).add_(cfg.polyak * p)

    agent.update(batch)
    for mine, ref in (
        (agent.value, value),
        (agent.q, q),
        (agent.q_target, q_target),
        (agent.actor, actor),
    ):
        for (k, x), (_, y_) in zip(mine.state_dict().items(), ref.state_dict().items()):
            torch.testing.assert_close(x, y_, rtol=1e-5, atol=1e-6, msg=k)


def test_actor_step_changes_only_the_actor():
    cfg = small_config()
    agent = IQLAgent(OBS, ACT, cfg, seed=0)
    batch = {k: v[:16] for k, v in random_tensors().items()}
    before = {n: copy.deepcopy(getattr(agent, n).state_dict()) for n in ("value", "q", "actor")}
    with torch.no_grad():
        target_q = agent.q_target.min_q(batch["observations"], batch["actions"])
    agent._update_actor(batch, target_q)
    for name in ("value", "q"):
        for p in getattr(agent, name).parameters():
            assert p.grad is None, f"actor loss leaked a gradient into {name}"
        for k, v in getattr(agent, name).state_dict().items():
            assert torch.equal(v, before[name][k])
    changed = any(
        not torch.equal(v, before["actor"][k]) for k, v in agent.actor.state_dict().items()
    )
    assert changed


def test_timeouts_do_not_stop_bootstrapping():
    """The Q target reads terminals only: flipping timeouts changes nothing, flipping a
    terminal does."""
    cfg = small_config()
    batch = {k: v[:16] for k, v in random_tensors().items()}
    batch["terminals"] = torch.zeros(16)

    def q_after(b):
        agent = IQLAgent(OBS, ACT, cfg, seed=0)
        agent.update(b)
        return torch.cat([p.flatten() for p in agent.q.parameters()])

    base = q_after(batch)
    assert torch.equal(base, q_after({**batch, "timeouts": torch.ones(16)}))
    assert not torch.equal(base, q_after({**batch, "terminals": torch.ones(16)}))


def test_actor_learning_rate_follows_cosine_to_zero():
    cfg = small_config(max_steps=10)
    agent = IQLAgent(OBS, ACT, cfg, seed=0)
    sampler = BatchSampler(random_tensors(), 16, seed=0)
    lrs = []
    for _ in range(10):
        agent.update(sampler.sample())
        lrs.append(agent.actor_opt.param_groups[0]["lr"])
    np.testing.assert_allclose(lrs, [cfg.actor_lr * cosine_factor(t, 10) for t in range(1, 11)])
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert agent.value_opt.param_groups[0]["lr"] == cfg.value_lr  # critics keep a constant rate


def _toy_transitions(returns: list[float]) -> Transitions:
    n = len(returns) * 2
    rewards = np.repeat(np.asarray(returns, dtype=np.float32) / 2, 2)
    z = np.zeros((n, 1), np.float32)
    return Transitions(
        z,
        z,
        rewards,
        z,
        z[:, 0],
        z[:, 0],
        np.arange(0, n, 2),
        np.asarray(returns),
        np.array([-1.0], np.float32),
        np.array([1.0], np.float32),
    )


def test_reward_preprocessing_of_presets():
    data = _toy_transitions([10.0, 30.0])
    scaled = preprocess_rewards(data, "return_range", 0.0)  # locomotion: * 1000 / (30 - 10)
    np.testing.assert_allclose(scaled, data.rewards * 50.0)
    shifted = preprocess_rewards(data, "none", -1.0)  # antmaze: r - 1
    np.testing.assert_allclose(shifted, data.rewards - 1.0)
