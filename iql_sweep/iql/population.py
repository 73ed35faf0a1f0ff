"""K IQL configurations trained as one set of kernels.

Every network is a stack of independent MLPs whose weights are ``[E, in, out]`` tensors, run with
batched matrix multiplies (``baddbmm``). Members differ in expectile tau, inverse temperature
beta and seed, given as per-member tensors. Because IQL's critic never depends on the actor,
members with the same tau and seed share one critic (V, twin Q and their targets, and one
minibatch stream) and differ only in their actors: a tau x beta grid costs one critic per tau.

Each member computes exactly what a solo :class:`~iql_sweep.iql.agent.IQLAgent` with the same
seed computes: the same initial weights (taken from a solo agent built with that seed), the same
minibatches (a :class:`BatchSampler` per critic group seeded like the solo run's), the same
update order, and Adam applied to stacked tensors, which is elementwise and so K independent
Adams. Summing the members' losses leaves each member's gradient its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from iql_sweep.data.transitions import BatchSampler
from iql_sweep.iql.agent import METRIC_KEYS, IQLAgent, cosine_factor
from iql_sweep.iql.config import IQLConfig

#: Fields a population shares: everything but expectile, beta (and the seed, which is not a field).
MEMBER_FIELDS = ("expectile", "beta")


@dataclass(frozen=True)
class Member:
    """One configuration of the population."""

    expectile: float
    beta: float
    seed: int


class StackedMLP(nn.Module):
    """``E`` independent ReLU MLPs; input ``[E, B, in]``, output ``[E, B, out]``."""

    def __init__(self, layers: list[list[nn.Linear]]):
        super().__init__()
        depth = len(layers[0])
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([m[i].weight.detach().t() for m in layers]).contiguous())
            for i in range(depth)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([m[i].bias.detach()[None, :] for m in layers]).contiguous())
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
        return x

    def member_state(self, e: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Member ``e``'s layers as (weight ``[out, in]``, bias ``[out]``), nn.Linear's layout."""
        return [(w[e].t(), b[e, 0]) for w, b in zip(self.weights, self.biases)]


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


class IQLPopulation:
    """K members (tau, beta, seed) sharing one IQLConfig otherwise; see the module docstring."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: IQLConfig,
        members: list[Member],
        data: dict[str, torch.Tensor] | None,
        device: str | torch.device = "cpu",
        share_critics: bool = True,
        fast: bool = False,
    ):
        if not members:
            raise ValueError("a population needs at least one member")
        if config.actor_dropout > 0:
            raise ValueError("populations do not support actor dropout yet; train those solo")
        self.config, self.members, self.device = config, list(members), torch.device(device)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.step = 0
        # Critic groups: one per distinct (tau, seed) when sharing, else one per member.
        keys = [(m.expectile, m.seed) if share_critics else (i,) for i, m in enumerate(members)]
        self.group_keys = list(dict.fromkeys(keys))
        self.group_of = torch.tensor([self.group_keys.index(k) for k in keys], device=self.device)
        leaders = [keys.index(k) for k in self.group_keys]  # first member of each group
        # Solo agents give the exact initial weights each seed would have.
        solo = [
            IQLAgent(obs_dim, act_dim, config.model_copy(update=_fields(m)), seed=m.seed)
            for m in members
        ]
        self.value = StackedMLP([_linears(solo[i].value) for i in leaders]).to(self.device)
        twin = [[_linears(solo[i].q.q1), _linears(solo[i].q.q2)] for i in leaders]
        self.q = StackedMLP([net for pair in twin for net in pair]).to(self.device)
        self.q_target = StackedMLP([net for pair in twin for net in pair]).to(self.device)
        self.q_target.requires_grad_(False)
        self.actor = StackedMLP([_linears(a.actor.net) for a in solo]).to(self.device)
        self.log_std = nn.Parameter(torch.stack([a.actor.log_std.detach() for a in solo]))
        self.log_std.data = self.log_std.data.to(self.device)
        self.expectile = torch.tensor([members[i].expectile for i in leaders], device=self.device)[
            :, None
        ]
        self.beta = torch.tensor([m.beta for m in members], device=self.device)[:, None]
        # Without data the caller feeds batches itself (the fast single-configuration agent).
        self.samplers = (
            [BatchSampler(data, config.batch_size, seed=members[i].seed) for i in leaders]
            if data is not None
            else []
        )
        c = config
        # The fast path: fused Adam (one kernel per network) and the three stages compiled.
        adam = {"fused": True} if fast else {}
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=c.value_lr, **adam)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.critic_lr, **adam)
        self.actor_opt = torch.optim.Adam(
            [*self.actor.parameters(), self.log_std], lr=c.actor_lr, **adam
        )
        self.fast = fast
        if fast:
            mode = "reduce-overhead" if self.device.type == "cuda" else None  # CUDA graphs
            self._stage_value = torch.compile(self._value_loss, mode=mode, dynamic=False)
            self._stage_actor = torch.compile(self._actor_loss, mode=mode, dynamic=False)
            self._stage_q = torch.compile(self._q_loss, mode=mode, dynamic=False)
        else:
            self._stage_value, self._stage_actor = self._value_loss, self._actor_loss
            self._stage_q = self._q_loss
        schedule = (
            (lambda t: cosine_factor(t, c.max_steps))
            if c.cosine_actor_schedule
            else (lambda t: 1.0)
        )
        self.actor_schedule = torch.optim.lr_scheduler.LambdaLR(self.actor_opt, schedule)

    @property
    def num_critics(self) -> int:
        return len(self.group_keys)

    def sample(self) -> dict[str, torch.Tensor]:
        """One minibatch per critic group, stacked: ``[C, B, ...]``."""
        batches = [s.sample() for s in self.samplers]
        return {k: torch.stack([b[k] for b in batches]) for k in batches[0]}

    def _q_pair(self, net: StackedMLP, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, act], dim=-1).repeat_interleave(2, dim=0)  # [2C, B, in]
        return net(x).squeeze(-1).view(self.num_critics, 2, -1)  # [C, 2, B]

    # The three stages as pure functions of their inputs (compiled on the fast path); each
    # returns the summed loss to differentiate and the detached figures the metrics need.
    def _value_loss(self, obs: torch.Tensor, act: torch.Tensor):
        with torch.no_grad():
            target_q = self._q_pair(self.q_target, obs, act).min(dim=1).values  # [C, B]
        v = self.value(obs).squeeze(-1)
        diff = target_q - v
        weight = torch.where(diff < 0, 1.0 - self.expectile, self.expectile)
        value_losses = (weight * diff.square()).mean(dim=1)  # [C]
        return value_losses.sum(), value_losses.detach(), v.detach().mean(dim=1), target_q

    def _actor_loss(self, obs: torch.Tensor, act: torch.Tensor, target_q: torch.Tensor):
        c, g = self.config, self.group_of
        with torch.no_grad():
            advantage = (target_q - self.value(obs).squeeze(-1))[g]  # [K, B]
            weights = torch.exp(self.beta * advantage).clamp(max=c.max_awr_weight)
        mean = torch.tanh(self.actor(obs[g]))  # [K, B, act]
        log_std = self.log_std.clamp(c.log_std_min, c.log_std_max)[:, None, :]
        log_prob = (
            -0.5 * ((act[g] - mean) / log_std.exp()).square() - log_std - 0.5 * _LOG_2PI
        ).sum(-1)
        actor_losses = -(weights * log_prob).mean(dim=1)  # [K]
        clipped = (weights >= c.max_awr_weight).float().mean(dim=1)
        return actor_losses.sum(), actor_losses.detach(), advantage.mean(dim=1), clipped

    def _q_loss(self, batch: dict[str, torch.Tensor]):
        c = self.config
        with torch.no_grad():
            next_v = self.value(batch["next_observations"]).squeeze(-1)
            y = batch["rewards"] + c.discount * (1.0 - batch["terminals"]) * next_v
        q = self._q_pair(self.q, batch["observations"], batch["actions"])  # [C, 2, B]
        q_losses = (q - y[:, None, :]).square().sum(dim=1).mean(dim=1)  # [C]
        return q_losses.sum(), q_losses.detach(), q.detach()[:, 0].mean(dim=1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One IQL step for every member; metrics are per member, shape ``[K]``, on the device."""
        obs, act = batch["observations"], batch["actions"]
        g = self.group_of
        # V step (expectile regression on the target critics)
        total, value_losses, v_mean, target_q = self._stage_value(obs, act)
        self.value_opt.zero_grad(set_to_none=True)
        total.backward()
        self.value_opt.step()
        # Actor step (AWR with the updated V)
        lr = torch.full((len(self.members),), self.actor_opt.param_groups[0]["lr"])
        total, actor_losses, advantage, clipped = self._stage_actor(obs, act, target_q)
        self.actor_opt.zero_grad(set_to_none=True)
        total.backward()
        self.actor_opt.step()
        self.actor_schedule.step()
        # Q step (MSE to r + gamma (1 - terminal) V_new(s'))
        total, q_losses, q_mean = self._stage_q(batch)
        self.q_opt.zero_grad(set_to_none=True)
        total.backward()
        self.q_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(
                list(self.q_target.parameters()), list(self.q.parameters()), self.config.polyak
            )
        self.step += 1
        return {
            "value_loss": value_losses[g],
            "q_loss": q_losses[g],
            "actor_loss": actor_losses,
            "advantage_mean": advantage,
            "awr_clip_fraction": clipped,
            "v_mean": v_mean[g],
            "q_mean": q_mean[g],
            "actor_lr": lr,
        }

    def state_dict(self) -> dict[str, Any]:
        """The whole pack: stacked nets and targets, optimisers, schedule, samplers, step."""
        return {
            "config": self.config.model_dump(mode="json"),
            "members": [vars(m) for m in self.members],
            "group_keys": [list(k) for k in self.group_keys],
            "step": self.step,
            "value": self.value.state_dict(),
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "actor": self.actor.state_dict(),
            "log_std": self.log_std.detach().clone(),
            "value_opt": self.value_opt.state_dict(),
            "q_opt": self.q_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "actor_schedule": self.actor_schedule.state_dict(),
            "samplers": [s.state_dict() for s in self.samplers],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` into a population built with the same members."""
        if state["members"] != [vars(m) for m in self.members]:
            raise ValueError("the checkpoint holds a population with other members")
        self.step = int(state["step"])
        for name in ("value", "q", "q_target", "actor"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_std.copy_(state["log_std"])
        self.value_opt.load_state_dict(state["value_opt"])
        self.q_opt.load_state_dict(state["q_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.actor_schedule.load_state_dict(state["actor_schedule"])
        for sampler, sampler_state in zip(self.samplers, state["samplers"]):
            sampler.load_state_dict(sampler_state)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic actions of every member for the same observations: ``[K, N, act]``."""
        x = obs.to(self.device, torch.float32).expand(len(self.members), *obs.shape)
        return torch.tanh(self.actor(x)).clamp(-1.0, 1.0)

    @torch.no_grad()
    def act_member(self, obs: torch.Tensor, k: int) -> torch.Tensor:
        """Deterministic actions of member ``k`` alone: ``[N, act]``."""
        x = obs.to(self.device, torch.float32)
        layers = self.actor.member_state(k)
        for i, (w, b) in enumerate(layers):
            x = torch.nn.functional.linear(x, w, b)
            if i < len(layers) - 1:
                x = torch.relu(x)
        return torch.tanh(x).clamp(-1.0, 1.0)

    @torch.no_grad()
    def sample_member(self, obs: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """Actions of member ``k`` sampled from its Gaussian policy, clipped to [-1, 1]."""
        mean = self.act_member(obs, k)  # tanh(mlp(s)) clipped: already within [-1, 1]
        c = self.config
        std = self.log_std[k].clamp(c.log_std_min, c.log_std_max).exp()
        noise = torch.randn(mean.shape, device=self.device, generator=generator, dtype=mean.dtype)
        return (mean + std * noise).clamp(-1.0, 1.0)

    def member_state(self, k: int) -> dict[str, Any]:
        """Member ``k``'s networks in the solo agent's state-dict layout (for comparison/export)."""
        g = int(self.group_of[k])

        def linear_state(layers, prefix: str, stride: int = 2) -> dict[str, torch.Tensor]:
            out = {}
            for i, (w, b) in enumerate(layers):
                out[f"{prefix}{stride * i}.weight"] = w.detach().clone()
                out[f"{prefix}{stride * i}.bias"] = b.detach().clone()
            return out

        return {
            "value": linear_state(self.value.member_state(g), "net."),
            "q": {
                **linear_state(self.q.member_state(2 * g), "q1."),
                **linear_state(self.q.member_state(2 * g + 1), "q2."),
            },
            "q_target": {
                **linear_state(self.q_target.member_state(2 * g), "q1."),
                **linear_state(self.q_target.member_state(2 * g + 1), "q2."),
            },
            "actor": {
                **linear_state(self.actor.member_state(k), "net."),
                "log_std": self.log_std.detach()[k].clone(),
            },
        }


_LOG_2PI = float(torch.log(torch.tensor(2 * torch.pi)))


def _fields(member: Member) -> dict[str, float]:
    return {"expectile": member.expectile, "beta": member.beta}


__all__ = ["IQLPopulation", "Member", "StackedMLP", "METRIC_KEYS"]
