"""The three IQL objectives, written as the paper states them."""

from __future__ import annotations

import torch


def expectile_loss(diff: torch.Tensor, expectile: float | torch.Tensor) -> torch.Tensor:
    """Asymmetric squared loss L2^tau(u) = |tau - 1(u < 0)| * u^2, averaged; u = Q(s,a) - V(s)."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff.square()).mean()


def awr_weights(
    advantage: torch.Tensor, beta: float | torch.Tensor, max_weight: float = 100.0
) -> torch.Tensor:
    """Advantage-weighted-regression weights exp(beta * A), clipped from above at ``max_weight``."""
    return torch.exp(beta * advantage).clamp(max=max_weight)


def awr_actor_loss(log_prob: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted negative log-likelihood of the dataset actions; the weights carry no gradient."""
    return -(weights.detach() * log_prob).mean()


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
    return ((q1 - target).square() + (q2 - target).square()).mean()
