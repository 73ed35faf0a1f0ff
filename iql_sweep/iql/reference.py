"""The reference IQL agent: one configuration, written to be read next to the paper.

Nothing trains through this class: the CLI, the Ray trials and the benchmarks use
:class:`~iql_sweep.iql.learner.IQLLearner`. It is the oracle the tests compare the learner
against (every member of a population, eager or compiled, must end where this agent ends from
the same initial weights and batches) and the baseline the benchmarks time.

One update, in the official order: V by expectile regression on the minimum of the target twin
Q; the actor by AWR with the advantage from the target Q and the *updated* V; Q towards
r + gamma (1 - terminal) V_new(s'); Polyak targets.
"""

from __future__ import annotations

import copy
import math

import torch

from iql_sweep.iql.config import IQLConfig
from iql_sweep.iql.losses import (
    awr_actor_loss,
    awr_weights,
    expectile_loss,
    gaussian_log_prob,
    td_target,
    twin_q_loss,
)
from iql_sweep.iql.networks import GaussianActor, TwinQ, ValueNet, initial_weights, load_layers

Batch = dict[str, torch.Tensor]


def cosine_factor(step: int, horizon: int) -> float:
    """0.5 * (1 + cos(pi * t / T)), held at 0 after the horizon (optax.cosine_decay_schedule)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, horizon) / horizon))


class IQLAgent:
    """Twin Q with Polyak targets, V by expectile regression, actor by AWR (one configuration)."""

    def __init__(self, obs_dim: int, act_dim: int, config: IQLConfig, seed: int = 0):
        self.config = config
        self.step = 0
        c = config
        self.value = ValueNet(obs_dim, c.hidden_dims, layer_norm=c.layer_norm)
        self.q = TwinQ(obs_dim, act_dim, c.hidden_dims, layer_norm=c.layer_norm)
        self.actor = GaussianActor(
            obs_dim, act_dim, c.hidden_dims, c.actor_dropout, c.log_std_min, c.log_std_max
        )
        start = initial_weights(config, obs_dim, act_dim, seed)
        load_layers(self.value, start.value)
        load_layers(self.q.q1, start.q1)
        load_layers(self.q.q2, start.q2)
        load_layers(self.actor.net, start.actor)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=c.value_lr)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr)
        factor = (lambda t: cosine_factor(t, c.max_steps)) if c.cosine_actor_schedule else None
        self.actor_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.actor_opt, factor or (lambda t: 1.0)
        )

    def update(self, batch: Batch, actor_masks: list[torch.Tensor] | None = None):
        """One IQL step; ``actor_masks`` (per hidden layer, scaled by 1/(1-p)) fix the actor's
        dropout draws (else its Dropout modules draw from the global RNG)."""
        c = self.config
        s, a = batch["observations"], batch["actions"]
        lr = self.actor_opt.param_groups[0]["lr"]
        # V: expectile regression towards the target critics' minimum
        with torch.no_grad():
            target_q = self.q_target.min_q(s, a)
        v = self.value(s)
        value_loss = expectile_loss(target_q - v, c.expectile)
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()
        # actor: AWR with the advantage from the target Q and the updated V
        self.actor.train()
        with torch.no_grad():
            advantage = target_q - self.value(s)
            weights = awr_weights(advantage, c.beta, c.max_awr_weight)
        log_prob = gaussian_log_prob(
            self.actor.mean(s, actor_masks), self.actor.clipped_log_std(), a
        )
        actor_loss = awr_actor_loss(log_prob, weights)
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.actor_schedule.step()
        # Q: MSE towards r + gamma (1 - terminal) V_new(s')
        with torch.no_grad():
            next_v = self.value(batch["next_observations"])
            target = td_target(batch["rewards"], batch["terminals"], next_v, c.discount)
        q1, q2 = self.q(s, a)
        q_loss = twin_q_loss(q1, q2, target)
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        # Polyak targets
        with torch.no_grad():
            torch._foreach_lerp_(
                list(self.q_target.parameters()), list(self.q.parameters()), c.polyak
            )
        self.step += 1
        return {
            "value_loss": value_loss.detach(),
            "q_loss": q_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "advantage_mean": advantage.mean(),
            "awr_clip_fraction": (weights >= c.max_awr_weight).float().mean(),
            "v_mean": v.detach().mean(),
            "q_mean": q1.detach().mean(),
            "actor_lr": torch.tensor(lr),
        }

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic actions (the Gaussian's mean) for a batch of flat observations."""
        self.actor.eval()
        return self.actor.act(obs.float())

    @torch.no_grad()
    def sample_actions(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Actions sampled from the Gaussian policy, clipped to [-1, 1]."""
        self.actor.eval()
        mean = self.actor.mean(obs.float())
        std = self.actor.clipped_log_std().exp()
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return (mean + std * noise).clamp(-1.0, 1.0)
