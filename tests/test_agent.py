"""One IQL update against a hand-written step (the reference agent and the learner), the
learning-rate schedule, bootstrapping through time-outs, exact resume of the learner."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from iql_sweep.checkpoint import atomic_torch_save
from iql_sweep.data.transitions import Transitions, preprocess_rewards
from iql_sweep.iql.config import Member
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.reference import IQLAgent, cosine_factor
from tests.helpers import ACT, OBS, assert_member_equals, random_tensors, small_config


def hand_written_step(agent: IQLAgent, batch, cfg) -> IQLAgent:
    """One update written out by hand in the reference order, on copies of ``agent``: V step on
    target-min-Q; actor step with advantage from the target Q and the *updated* V; Q step
    towards r + gamma (1 - terminal) V_new(s'); Polyak targets."""
    out = copy.deepcopy(agent)
    value, q, q_target, actor = out.value, out.q, out.q_target, out.actor
    opt_v = torch.optim.Adam(value.parameters(), lr=cfg.value_lr)
    opt_q = torch.optim.Adam(q.parameters(), lr=cfg.critic_lr)
    opt_a = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr)
    s, a = batch["observations"], batch["actions"]
    tau, beta = cfg.expectile, cfg.beta

    with torch.no_grad():
        tq = torch.minimum(*q_target(s, a))
    u = tq - value(s)
    w = torch.where(u < 0, 1 - tau, tau)
    opt_v.zero_grad()
    (w * u**2).mean().backward()
    opt_v.step()

    with torch.no_grad():
        adv = tq - value(s)
        weights = torch.exp(beta * adv).clamp(max=100.0)
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
    return out


def test_one_update_matches_a_hand_written_step_in_reference_order():
    cfg = small_config(expectile=0.8, beta=2.0)
    batch = {k: v[:16] for k, v in random_tensors().items()}
    expected = hand_written_step(IQLAgent(OBS, ACT, cfg, seed=1), batch, cfg)
    agent = IQLAgent(OBS, ACT, cfg, seed=1)
    agent.update(batch)
    learner = IQLLearner(OBS, ACT, cfg, [Member(expectile=0.8, beta=2.0, seed=1)])
    learner.update(batch)
    tol = {"rtol": 1e-5, "atol": 1e-6}
    assert_member_equals(learner, 0, expected, **tol)
    for mine, ref in (
        (agent.value, expected.value),
        (agent.q, expected.q),
        (agent.q_target, expected.q_target),
        (agent.actor, expected.actor),
    ):
        for (k, x), (_, y) in zip(mine.state_dict().items(), ref.state_dict().items()):
            torch.testing.assert_close(x, y, **tol, msg=k)


def test_timeouts_do_not_stop_bootstrapping():
    """The Q target reads terminals only: flipping timeouts changes nothing, flipping a
    terminal does."""
    cfg = small_config()
    batch = {k: v[:16] for k, v in random_tensors().items()}
    batch["terminals"] = torch.zeros(16)

    def q_after(b):
        learner = IQLLearner(OBS, ACT, cfg, [Member(expectile=0.7, beta=3.0, seed=0)])
        learner.update(b)
        return torch.cat([p.flatten() for p in learner.q.parameters()])

    base = q_after(batch)
    assert torch.equal(base, q_after({**batch, "timeouts": torch.ones(16)}))
    assert not torch.equal(base, q_after({**batch, "terminals": torch.ones(16)}))


def test_actor_learning_rate_follows_cosine_to_zero():
    """Update t uses actor_lr * cos-factor(t); once the horizon is reached the actor stops
    moving while the critics keep their constant rate."""
    cfg = small_config(max_steps=10)
    learner = IQLLearner(OBS, ACT, cfg, [Member(expectile=0.7, beta=3.0, seed=0)], random_tensors())
    lrs = []
    for _ in range(10):
        learner.advance(1)
        means, _ = learner.pop_metrics()
        lrs.append(float(means[-1, 0]))
    expected = [cfg.actor_lr * cosine_factor(t, 10) for t in range(10)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6, atol=1e-12)
    actor = [w.detach().clone() for w in learner.actor.parameters()]
    value = [w.detach().clone() for w in learner.value.parameters()]
    learner.advance(3)  # past the horizon: learning rate 0
    assert all(torch.equal(a, b) for a, b in zip(actor, learner.actor.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(value, learner.value.parameters()))
    assert learner.value_opt.param_groups[0]["lr"] == cfg.value_lr
    assert cosine_factor(10, 10) == pytest.approx(0.0) and cosine_factor(5, 10) == 0.5
    assert cosine_factor(2, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))


def all_tensors(learner: IQLLearner) -> dict[str, torch.Tensor]:
    state = learner.state_dict()
    out = {}
    for name in ("value", "q", "q_target", "actor"):
        out.update({f"{name}.{k}": v for k, v in state[name].items()})
    for name in ("value_opt", "q_opt", "actor_opt"):
        for pid, st in state[name]["state"].items():
            out.update({f"{name}.{pid}.{k}": torch.as_tensor(v) for k, v in st.items()})
    out["log_std"] = state["log_std"]
    return out


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_exact_resume(tmp_path, dropout):
    """N updates, save, load into a fresh learner, N more == 2N straight (bitwise, CPU)."""
    cfg = small_config(actor_dropout=dropout)
    data = random_tensors()
    member = [Member(expectile=0.7, beta=3.0, seed=3)]
    n = 25
    straight = IQLLearner(OBS, ACT, cfg, member, data)
    straight.advance(2 * n)
    first = IQLLearner(OBS, ACT, cfg, member, data)
    first.advance(n)
    atomic_torch_save(first.state_dict(), tmp_path / "ckpt.pt")
    torch.manual_seed(12345)  # the global RNG plays no part
    resumed = IQLLearner(OBS, ACT, cfg, member, data)
    resumed.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=False))
    assert resumed.step == n
    resumed.advance(n)
    a, b = all_tensors(straight), all_tensors(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight.step == resumed.step == 2 * n
    assert torch.equal(straight.actor_lr, resumed.actor_lr)


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
