"""The three IQL objectives, written once, as the paper states them.

Every function is member-batched: tensors carry any leading axes (critic groups, members) before
the batch axis, which is always the last one, and each loss reduces the batch axis only. One
configuration is the case without leading axes (a 0-d loss).
"""

from __future__ import annotations

import math

import torch

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def expectile_loss(diff: torch.Tensor, expectile: float | torch.Tensor) -> torch.Tensor:
    """Asymmetric squared loss L2^tau(u) = |tau - 1(u < 0)| * u^2, averaged over the batch;
    u = Q(s,a) - V(s). ``expectile`` is a float or broadcasts against ``diff`` (e.g. ``[G, 1]``)."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.square()).mean(dim=-1)


def awr_weights(
    advantage: torch.Tensor, beta: float | torch.Tensor, max_weight: float = 100.0
) -> torch.Tensor:
    """Advantage-weighted-regression weights exp(beta * A), clipped from above at ``max_weight``."""
    return torch.exp(beta * advantage).clamp(max=max_weight)


def gaussian_log_prob(
    mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor
) -> torch.Tensor:
    """log N(a; mean, exp(log_std)^2) of a diagonal Gaussian, summed over the action axis."""
    var = torch.exp(log_std).square()
    return (-(actions - mean).square() / (2.0 * var) - log_std - _HALF_LOG_2PI).sum(dim=-1)


def awr_actor_loss(log_prob: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted negative log-likelihood of the dataset actions; the weights carry no gradient."""
    return -(weights.detach() * log_prob).mean(dim=-1)


def td_target(
    rewards: torch.Tensor,
    terminals: torch.Tensor,
    next_values: torch.Tensor,
    discount: float,
) -> torch.Tensor:
    """r + gamma * (1 - terminal) * V(s').

    Time-limit truncations are not terminals: they bootstrap."""
    return rewards + discount * (1.0 - terminals) * next_values


def twin_q_loss(q1: torch.Tensor, q2: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum of both critics' mean squared TD errors, as the reference: mean((q1-y)^2 + (q2-y)^2)."""
    return ((q1 - target).square() + (q2 - target).square()).mean(dim=-1)
