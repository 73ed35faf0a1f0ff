"""The IQL objectives against hand-computed values and independent solutions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iql_sweep.iql.config import make_config
from iql_sweep.iql.losses import (
    awr_actor_loss,
    awr_weights,
    expectile_loss,
    gaussian_log_prob,
    td_target,
    twin_q_loss,
)
from iql_sweep.iql.networks import ValueNet


def test_expectile_loss_hand_computed():
    u = torch.tensor([-2.0, -1.0, 0.5, 3.0])
    # tau = 0.8: weights 0.2 on the negatives, 0.8 on the positives.
    # 0.2*4 + 0.2*1 + 0.8*0.25 + 0.8*9 = 0.8 + 0.2 + 0.2 + 7.2 = 8.4; mean over 4 = 2.1
    assert expectile_loss(u, 0.8).item() == pytest.approx(2.1)
    # tau = 0.1 flips the weighting: 0.9*4 + 0.9*1 + 0.1*0.25 + 0.1*9 = 5.425; / 4
    assert expectile_loss(u, 0.1).item() == pytest.approx(5.425 / 4)


def test_expectile_half_is_half_mse():
    u = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert expectile_loss(u, 0.5).item() == pytest.approx(0.5 * u.square().mean().item())


def test_expectile_of_zero_difference_is_zero():
    assert expectile_loss(torch.zeros(5), 0.9).item() == 0.0


def _normal_expectile(mu: float, sigma: float, tau: float) -> float:
    """Solve tau * E[(X-m)+] = (1-tau) * E[(m-X)+] for X ~ N(mu, sigma^2) by bisection."""

    def pdf(z: float) -> float:
        return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    def cdf(z: float) -> float:
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))

    def gap(m: float) -> float:
        d = (mu - m) / sigma
        upper = sigma * pdf(d) + (mu - m) * cdf(d)  # E[(X - m)+]
        lower = upper - (mu - m)  # E[(m - X)+] = E[(X-m)+] - E[X - m]
        return tau * upper - (1 - tau) * lower

    lo, hi = mu - 10 * sigma, mu + 10 * sigma
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if gap(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("tau", [0.5, 0.7, 0.9])
def test_value_net_converges_to_expectile(tau: float):
    """V(s) fitted with the expectile loss on y|s ~ N(mu_s, sigma_s^2) reaches its tau-expectile."""
    torch.manual_seed(0)
    mus, sigmas = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.5])
    net = ValueNet(2, (32,))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    eye = torch.eye(2)
    for step in range(3000):
        s = torch.randint(0, 2, (512,))
        y = mus[s] + sigmas[s] * torch.randn(512)
        loss = expectile_loss(y - net(eye[s]), tau)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 2000:
            for g in opt.param_groups:
                g["lr"] = 3e-4
    fitted = net(eye).detach().numpy()
    expected = [_normal_expectile(float(m), float(sd), tau) for m, sd in zip(mus, sigmas)]
    np.testing.assert_allclose(fitted, expected, atol=0.05)
    if tau == 0.9:
        # A high expectile sits well above the mean (0.86 sigma above it at 0.9).
        assert fitted[0] > 0.8


def test_awr_weights_clip_at_bound():
    adv = torch.tensor([-1.0, 0.0, 0.5, 10.0])
    w = awr_weights(adv, beta=3.0, max_weight=100.0)
    np.testing.assert_allclose(w[:3].numpy(), np.exp(3.0 * adv[:3].numpy()), rtol=1e-6)
    assert w[3].item() == 100.0  # exp(30) is clipped
    assert awr_weights(torch.tensor([0.3]), beta=0.0).item() == 1.0  # beta 0 is behaviour cloning


def test_awr_loss_gradient_reaches_only_the_log_prob():
    log_prob = torch.tensor([-1.0, -2.0], requires_grad=True)
    adv = torch.tensor([0.5, -0.5], requires_grad=True)
    loss = awr_actor_loss(log_prob, awr_weights(adv, 2.0))
    loss.backward()
    assert adv.grad is None
    expected = -torch.exp(torch.tensor([1.0, -1.0])) / 2
    np.testing.assert_allclose(log_prob.grad.numpy(), expected.numpy(), rtol=1e-6)


def test_td_target_terminal_versus_timeout():
    rewards = torch.tensor([1.0, 1.0, 0.0])
    terminals = torch.tensor([1.0, 0.0, 0.0])  # row 1 is a time-limit truncation: it bootstraps
    next_v = torch.tensor([5.0, 5.0, 2.0])
    target = td_target(rewards, terminals, next_v, 0.99)
    np.testing.assert_allclose(target.numpy(), [1.0, 1.0 + 0.99 * 5.0, 0.99 * 2.0], rtol=1e-6)


def test_twin_q_loss_sums_both_critics():
    q1, q2, y = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 2.0]), torch.tensor([1.0, 1.0])
    # ((0 + 1) + (1 + 1)) / 2 = 1.5
    assert twin_q_loss(q1, q2, y).item() == pytest.approx(1.5)


def test_losses_reduce_the_batch_axis_only():
    """Member-batched: a [G, B] input gives one loss per row, each equal to the row alone."""
    g = torch.Generator().manual_seed(3)
    diff = torch.randn(3, 50, generator=g)
    tau = torch.tensor([[0.5], [0.7], [0.9]])
    batched = expectile_loss(diff, tau)
    assert batched.shape == (3,)
    for i in range(3):
        assert batched[i].item() == pytest.approx(expectile_loss(diff[i], float(tau[i])).item())
    q1, q2, y = (torch.randn(4, 20, generator=g) for _ in range(3))
    losses = twin_q_loss(q1, q2, y)
    assert losses.shape == (4,)
    torch.testing.assert_close(losses[2], twin_q_loss(q1[2], q2[2], y[2]))
    log_prob, weights = torch.randn(2, 8, generator=g), torch.rand(2, 8, generator=g)
    expected = -(weights[1] * log_prob[1]).mean()
    torch.testing.assert_close(awr_actor_loss(log_prob, weights)[1], expected)


def test_gaussian_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(4)
    mean, actions = torch.randn(3, 6, 2, generator=g), torch.randn(3, 6, 2, generator=g)
    log_std = torch.randn(3, 1, 2, generator=g)
    expected = torch.distributions.Normal(mean, log_std.exp()).log_prob(actions).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(mean, log_std, actions), expected)
    # by hand for one 1-d action: log N(1; 0, 2^2) = -1/8 - log 2 - log(2 pi)/2
    one = gaussian_log_prob(torch.zeros(1), torch.tensor([math.log(2.0)]), torch.ones(1))
    assert one.item() == pytest.approx(-1 / 8 - math.log(2.0) - 0.5 * math.log(2 * math.pi))


def test_config_rejects_bad_values_with_field_names():
    from iql_sweep.errors import ConfigError

    with pytest.raises(ConfigError, match="expectile"):
        make_config("maze", expectile=1.0)
    with pytest.raises(ConfigError, match="expectile"):
        make_config(expectile=0.0)
    with pytest.raises(ConfigError, match="beta"):
        make_config(beta=-0.5)
    with pytest.raises(ConfigError, match="preset: unknown preset 'mujoco'"):
        make_config("mujoco")
    with pytest.raises(ConfigError, match="temperature"):
        make_config(temperature=3.0)


def test_presets_carry_reference_values():
    loco = make_config("locomotion")
    assert (loco.expectile, loco.beta, loco.reward_norm) == (0.7, 3.0, "return_range")
    ant = make_config("antmaze")
    assert (ant.expectile, ant.beta, ant.reward_shift) == (0.9, 10.0, -1.0)
    for name in ("kitchen", "adroit"):
        cfg = make_config(name)
        assert (cfg.expectile, cfg.beta, cfg.actor_dropout) == (0.7, 0.5, 0.1)
    over = make_config("antmaze", beta=4.0)
    assert (over.expectile, over.beta) == (0.9, 4.0)
    default = make_config()
    assert default.hidden_dims == (256, 256) and default.batch_size == 256
    assert default.discount == 0.99 and default.max_steps == 1_000_000
    assert default.action_clip == pytest.approx(1 - 1e-5)


@settings(max_examples=200, deadline=None)
@given(
    u=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=50),
    tau=st.floats(0.01, 0.99),
)
def test_expectile_loss_properties(u, tau):
    """Non-negative; mirroring u swaps tau and 1 - tau; tau >= 0.5 weighs positives more."""
    t = torch.tensor(u, dtype=torch.float64)
    loss = expectile_loss(t, tau).item()
    assert loss >= 0.0
    assert loss == pytest.approx(expectile_loss(-t, 1.0 - tau).item(), rel=1e-9, abs=1e-9)
    pos, neg = expectile_loss(t.abs(), tau).item(), expectile_loss(-t.abs(), tau).item()
    assert (pos >= neg) if tau >= 0.5 else (pos <= neg)
