"""The three stages of one IQL update, in the paper's order, as pure functions.

Read after :mod:`iql_sweep.iql.losses` (each objective, once) and before
:mod:`iql_sweep.iql.learner` (which calls these in order, steps the optimisers and updates the
targets). Shapes: ``C`` critic groups (members sharing tau and seed share one critic), ``K``
members, ``B`` the batch; the twin Q nets of a group are stacked as ``2C`` networks. Each stage
returns the sum of its per-network losses (one backward) and detached figures for the metrics.
The learner compiles these functions unchanged for its fast settings.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from iql_sweep.iql.losses import (
    awr_actor_loss,
    awr_weights,
    expectile_loss,
    gaussian_log_prob,
    td_target,
    twin_q_loss,
)
from iql_sweep.iql.networks import stacked_mlp


class Net(NamedTuple):
    """A stacked MLP's parameters as the stages take them: one tensor per layer (and the
    LayerNorms' scales and shifts, in turn, where the network has them)."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    norms: list[torch.Tensor] | None = None


def forward(net: Net, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """``net`` on ``x [E, B, in]`` (its LayerNorms, where it has them; ``masks``: dropout)."""
    return stacked_mlp(x, net.weights, net.biases, masks, net.norms)


class Batch(NamedTuple):
    """One minibatch per critic group, ``[C, B, ...]``."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminals: torch.Tensor
    next_observations: torch.Tensor


def twin_q(q: Net, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Both critics of every group: ``[C, 2, B]``."""
    groups = obs.shape[0]
    x = torch.cat([obs, act], dim=-1).repeat_interleave(2, dim=0)
    return forward(q, x).squeeze(-1).view(groups, 2, -1)


def value_stage(value: Net, q_target: Net, batch: Batch, *, expectile: torch.Tensor):
    """V by expectile regression on the minimum of the target twin Q, per critic group.

    Returns (loss sum, losses ``[C]``, mean V ``[C]``, the target Q ``[C, B]`` for the actor)."""
    obs, act = batch.observations, batch.actions
    with torch.no_grad():
        target_q = twin_q(q_target, obs, act).min(dim=1).values
    v = forward(value, obs).squeeze(-1)
    losses = expectile_loss(target_q - v, expectile)
    return losses.sum(), losses.detach(), v.detach().mean(dim=-1), target_q


def actor_stage(
    actor: Net,
    log_std: torch.Tensor,
    value: Net,
    batch: Batch,
    target_q: torch.Tensor,
    *,
    group_of: torch.Tensor,
    beta: torch.Tensor,
    dropout_masks: list[torch.Tensor] | None,
    max_weight: float,
    log_std_min: float,
    log_std_max: float,
):
    """The actor by AWR, per member: advantage = target Q - the *updated* V, weights
    exp(beta A) clipped at ``max_weight``, a tanh-mean Gaussian's log-likelihood.

    Returns (loss sum, losses ``[K]``, mean advantage ``[K]``, share of clipped weights ``[K]``)."""
    obs, act = batch.observations, batch.actions
    with torch.no_grad():
        v = forward(value, obs).squeeze(-1)
        advantage = (target_q - v)[group_of]  # [K, B]
        weights = awr_weights(advantage, beta, max_weight)
    mean = torch.tanh(forward(actor, obs[group_of], dropout_masks))
    clamped = log_std.clamp(log_std_min, log_std_max)[:, None, :]
    log_prob = gaussian_log_prob(mean, clamped, act[group_of])
    losses = awr_actor_loss(log_prob, weights)
    clipped = (weights >= max_weight).float().mean(dim=-1)
    return losses.sum(), losses.detach(), advantage.mean(dim=-1), clipped


def q_stage(q: Net, value: Net, batch: Batch, *, discount: float):
    """Twin Q by MSE to r + gamma (1 - terminal) V_new(s'), per critic group.

    Returns (loss sum, losses ``[C]``, mean of the first Q ``[C]``)."""
    with torch.no_grad():
        next_v = forward(value, batch.next_observations).squeeze(-1)
        target = td_target(batch.rewards, batch.terminals, next_v, discount)
    pair = twin_q(q, batch.observations, batch.actions)
    losses = twin_q_loss(pair[:, 0], pair[:, 1], target)
    return losses.sum(), losses.detach(), pair.detach()[:, 0].mean(dim=-1)
