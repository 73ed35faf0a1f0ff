"""The reference networks: ReLU MLPs for V and twin Q, a tanh-mean Gaussian actor."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp(
    in_dim: int,
    hidden_dims: Sequence[int],
    out_dim: int,
    dropout: float = 0.0,
    orthogonal_init: bool = True,
) -> nn.Sequential:
    """Dense -> ReLU (-> Dropout) per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    dim = in_dim
    for width in hidden_dims:
        layers += [nn.Linear(dim, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        dim = width
    layers.append(nn.Linear(dim, out_dim))
    net = nn.Sequential(*layers)
    if orthogonal_init:
        # The official implementation's default_init: orthogonal with gain sqrt(2), zero bias.
        for module in net.modules():
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight, gain=math.sqrt(2.0))
                nn.init.zeros_(module.bias)
    return net


class ValueNet(nn.Module):
    """V(s)."""

    def __init__(self, obs_dim: int, hidden_dims: Sequence[int], orthogonal_init: bool = True):
        super().__init__()
        self.net = mlp(obs_dim, hidden_dims, 1, orthogonal_init=orthogonal_init)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class TwinQ(nn.Module):
    """Two independent critics Q1(s, a), Q2(s, a)."""

    def __init__(
        self, obs_dim: int, act_dim: int, hidden_dims: Sequence[int], orthogonal_init: bool = True
    ):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, hidden_dims, 1, orthogonal_init=orthogonal_init)
        self.q2 = mlp(obs_dim + act_dim, hidden_dims, 1, orthogonal_init=orthogonal_init)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs, act], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def min_q(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        q1, q2 = self(obs, act)
        return torch.minimum(q1, q2)


class GaussianActor(nn.Module):
    """N(tanh(mlp(s)), exp(log_std)) with a state-independent log-std clipped to [min, max].

    This is the official ``NormalTanhPolicy(state_dependent_std=False,
    tanh_squash_distribution=False)``: a Gaussian whose *mean* is squashed, not a TanhNormal.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dims: Sequence[int],
        dropout: float = 0.0,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        orthogonal_init: bool = True,
    ):
        super().__init__()
        self.net = mlp(obs_dim, hidden_dims, act_dim, dropout, orthogonal_init)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.log_std_min = log_std_min
        self.log_std_max = log_std_max

    def mean(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        std = self.log_std.clamp(self.log_std_min, self.log_std_max).exp()
        return torch.distributions.Normal(self.mean(obs), std, validate_args=False)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.distribution(obs).log_prob(act).sum(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic evaluation action: the mean, clipped to [-1, 1]."""
        return self.mean(obs).clamp(-1.0, 1.0)
