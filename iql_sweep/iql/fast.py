"""The fast path for one configuration: :class:`IQLAgent`'s interface on a population of one.

What it changes, not what it computes: the twin critics run as one batched network (stacked
weights, ``baddbmm``), Adam is fused (one kernel per network), and the value, actor and critic
stages are compiled with ``torch.compile`` (forward and backward; on CUDA in ``reduce-overhead``
mode, i.e. replayed as CUDA graphs). Metrics stay on the device. From the same seed and batches it
ends with the reference agent's parameters to float tolerance (tests/test_fast_path.py).
"""

from __future__ import annotations

from typing import Any

import torch

from iql_sweep.errors import ConfigError
from iql_sweep.iql.config import IQLConfig
from iql_sweep.iql.population import IQLPopulation, Member


class FastAgent:
    """Drop-in for :class:`~iql_sweep.iql.agent.IQLAgent` in the training loop (update, act,
    sample_actions, step, state_dict); checkpoints are this path's own."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: IQLConfig,
        seed: int = 0,
        device: str | torch.device = "cpu",
        compile: bool = True,
    ):
        if config.actor_dropout > 0:
            raise ConfigError(
                "compile: the fast path has no actor dropout yet; this config sets actor_dropout "
                f"{config.actor_dropout} (kitchen/adroit presets): use the reference path "
                "(compile: false)"
            )
        self.config = config
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = torch.device(device)
        member = Member(config.expectile, config.beta, seed)
        self.population = IQLPopulation(
            obs_dim, act_dim, config, [member], None, device=self.device, fast=compile
        )

    @property
    def step(self) -> int:
        return self.population.step

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One IQL step on a ``[B, ...]`` minibatch; detached 0-d metrics on the device."""
        metrics = self.population.update({k: v.unsqueeze(0) for k, v in batch.items()})
        return {k: v[0] for k, v in metrics.items()}

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self.population.act_member(obs, 0)

    @torch.no_grad()
    def sample_actions(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.population.sample_member(obs.to(self.device, torch.float32), 0, generator)

    def state_dict(self) -> dict[str, Any]:
        return {
            "path": "fast",
            "config": self.config.model_dump(mode="json"),
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "step": self.step,
            "population": self.population.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("path") != "fast":
            raise ConfigError(
                "checkpoint: it was written by the reference path (compile: false); resume it "
                "with the same setting"
            )
        if (state["obs_dim"], state["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ValueError("checkpoint is for other observation/action sizes")
        self.population.load_state_dict(state["population"])
