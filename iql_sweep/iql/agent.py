"""The IQL agent: one update = V step, actor step, Q step, target update (the official order)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from iql_sweep.iql.config import IQLConfig
from iql_sweep.iql.losses import (
    awr_actor_loss,
    awr_weights,
    expectile_loss,
    td_target,
    twin_q_loss,
)
from iql_sweep.iql.networks import GaussianActor, TwinQ, ValueNet

Batch = dict[str, torch.Tensor]

#: Names of the per-update metrics :meth:`IQLAgent.update` returns (as 0-d tensors).
METRIC_KEYS = (
    "value_loss",
    "q_loss",
    "actor_loss",
    "advantage_mean",
    "awr_clip_fraction",
    "v_mean",
    "q_mean",
    "actor_lr",
)


def cosine_factor(step: int, horizon: int) -> float:
    """0.5 * (1 + cos(pi * t / T)), held at 0 after the horizon (optax.cosine_decay_schedule)."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, horizon) / horizon))


class IQLAgent:
    """Twin Q with Polyak targets, V by expectile regression, actor by AWR.

    ``update(batch)`` never synchronises with the host: it returns detached 0-d tensors, so a
    training loop can accumulate them on the device and read them at its logging interval.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: IQLConfig,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        self.config = config
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.device = torch.device(device)
        self.step = 0
        torch.manual_seed(seed)
        c = config
        self.value = ValueNet(obs_dim, c.hidden_dims, c.orthogonal_init).to(self.device)
        self.q = TwinQ(obs_dim, act_dim, c.hidden_dims, c.orthogonal_init).to(self.device)
        self.actor = GaussianActor(
            obs_dim,
            act_dim,
            c.hidden_dims,
            dropout=c.actor_dropout,
            log_std_min=c.log_std_min,
            log_std_max=c.log_std_max,
            orthogonal_init=c.orthogonal_init,
        ).to(self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=c.value_lr)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.actor_lr)
        schedule = (
            (lambda t: cosine_factor(t, c.max_steps))
            if c.cosine_actor_schedule
            else (lambda t: 1.0)
        )
        self.actor_schedule = torch.optim.lr_scheduler.LambdaLR(self.actor_opt, schedule)

    # --- the three objectives -------------------------------------------------------------
    def _update_value(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            target_q = self.q_target.min_q(batch["observations"], batch["actions"])
        v = self.value(batch["observations"])
        loss = expectile_loss(target_q - v, self.config.expectile)
        self.value_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.value_opt.step()
        return loss.detach(), target_q, v.detach().mean()

    def _update_actor(self, batch: Batch, target_q: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            advantage = target_q - self.value(batch["observations"])  # the *updated* V
            weights = awr_weights(advantage, self.config.beta, self.config.max_awr_weight)
        log_prob = self.actor.log_prob(batch["observations"], batch["actions"])
        loss = awr_actor_loss(log_prob, weights)
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        self.actor_schedule.step()
        clipped = (weights >= self.config.max_awr_weight).float().mean()
        return {
            "actor_loss": loss.detach(),
            "advantage_mean": advantage.mean(),
            "awr_clip_fraction": clipped,
        }

    def _update_q(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            next_v = self.value(batch["next_observations"])
            target = td_target(batch["rewards"], batch["terminals"], next_v, self.config.discount)
        q1, q2 = self.q(batch["observations"], batch["actions"])
        loss = twin_q_loss(q1, q2, target)
        self.q_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.q_opt.step()
        return loss.detach(), q1.detach().mean()

    @torch.no_grad()
    def _update_targets(self) -> None:
        online = list(self.q.parameters())
        target = list(self.q_target.parameters())
        torch._foreach_lerp_(target, online, self.config.polyak)

    def update(self, batch: Batch) -> dict[str, torch.Tensor]:
        """One IQL gradient step on a minibatch; returns detached metrics (no host sync)."""
        self.actor.train()
        lr = torch.tensor(self.actor_opt.param_groups[0]["lr"])
        value_loss, target_q, v_mean = self._update_value(batch)
        actor_metrics = self._update_actor(batch, target_q)
        q_loss, q_mean = self._update_q(batch)
        self._update_targets()
        self.step += 1
        return {
            "value_loss": value_loss,
            "q_loss": q_loss,
            "v_mean": v_mean,
            "q_mean": q_mean,
            "actor_lr": lr,
            **actor_metrics,
        }

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic actions (the Gaussian's mean) for a batch of flat observations."""
        self.actor.eval()
        return self.actor.act(obs.to(self.device, torch.float32))

    @torch.no_grad()
    def sample_actions(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Actions sampled from the Gaussian policy (online exploration), clipped to [-1, 1]."""
        self.actor.eval()
        dist = self.actor.distribution(obs.to(self.device, torch.float32))
        noise = torch.randn(
            dist.mean.shape, device=self.device, generator=generator, dtype=dist.mean.dtype
        )
        return (dist.mean + dist.stddev * noise).clamp(-1.0, 1.0)

    # --- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: nets, targets, optimisers, schedule."""
        return {
            "config": self.config.model_dump(mode="json"),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "step": self.step,
            "value": self.value.state_dict(),
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "actor": self.actor.state_dict(),
            "value_opt": self.value_opt.state_dict(),
            "q_opt": self.q_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "actor_schedule": self.actor_schedule.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into an agent built with the same shapes and config."""
        if state.get("path") == "fast":
            from iql_sweep.errors import ConfigError

            raise ConfigError(
                "checkpoint: it was written by the fast path (compile: true); resume it with the "
                "same setting"
            )
        if (state["obs_dim"], state["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError(
                f"checkpoint is for obs_dim={state['obs_dim']}, act_dim={state['act_dim']}; "
                f"this agent has obs_dim={self.obs_dim}, act_dim={self.act_dim}"
            )
        self.step = int(state["step"])
        self.value.load_state_dict(state["value"])
        self.q.load_state_dict(state["q"])
        self.q_target.load_state_dict(state["q_target"])
        self.actor.load_state_dict(state["actor"])
        self.value_opt.load_state_dict(state["value_opt"])
        self.q_opt.load_state_dict(state["q_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.actor_schedule.load_state_dict(state["actor_schedule"])

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], device: str | torch.device = "cpu") -> IQLAgent:
        """Build an agent from a checkpoint alone."""
        agent = cls(state["obs_dim"], state["act_dim"], IQLConfig(**state["config"]), device=device)
        agent.load_state_dict(state)
        return agent
