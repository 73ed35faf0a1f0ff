"""The networks: ReLU MLPs for V and twin Q and a tanh-mean Gaussian actor, as one configuration's
modules (the reference) and as stacked weights for many (the learner), with one initialisation.

:func:`initial_weights` is the single source of initial parameters: a pure function of the
config, the shapes and the seed (its own generator; the global RNG is never touched). The
reference modules load them; the learner stacks them, so member ``k`` of a population starts
exactly where a solo run with its seed starts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from iql_sweep.iql.config import IQLConfig

#: One linear layer in nn.Linear's layout: weight ``[out, in]``, bias ``[out]``.
Layer = tuple[torch.Tensor, torch.Tensor]
#: LayerNorm's epsilon where ``layer_norm`` is on (flax's default, OGBench's reference IQL).
LAYER_NORM_EPS = 1e-6


def mlp(
    in_dim: int,
    hidden_dims: Sequence[int],
    out_dim: int,
    dropout: float = 0.0,
    orthogonal_init: bool = True,
    layer_norm: bool = False,
) -> nn.Sequential:
    """Dense -> ReLU (-> LayerNorm) (-> Dropout) per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    dim = in_dim
    for width in hidden_dims:
        layers += [nn.Linear(dim, width), nn.ReLU()]
        if layer_norm:
            layers.append(nn.LayerNorm(width, eps=LAYER_NORM_EPS))
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


# --- initial parameters ------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberWeights:
    """Initial parameters of one configuration's networks (nn.Linear layout)."""

    value: list[Layer]
    q1: list[Layer]
    q2: list[Layer]
    actor: list[Layer]
    log_std: torch.Tensor


def _layers(dims: Sequence[int], orthogonal: bool, generator: torch.Generator) -> list[Layer]:
    out = []
    for fan_in, fan_out in zip(dims[:-1], dims[1:]):
        weight = torch.empty(fan_out, fan_in)
        if orthogonal:  # the official default_init: orthogonal, gain sqrt(2), zero bias
            nn.init.orthogonal_(weight, gain=math.sqrt(2.0), generator=generator)
            bias = torch.zeros(fan_out)
        else:  # nn.Linear's own reset_parameters
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5.0), generator=generator)
            bound = 1.0 / math.sqrt(fan_in)
            bias = torch.empty(fan_out).uniform_(-bound, bound, generator=generator)
        out.append((weight, bias))
    return out


def initial_weights(config: IQLConfig, obs_dim: int, act_dim: int, seed: int) -> MemberWeights:
    """A configuration's initial parameters: a pure function of (config, shapes, seed)."""
    generator = torch.Generator().manual_seed(int(seed))
    hidden, ortho = list(config.hidden_dims), config.orthogonal_init
    return MemberWeights(
        value=_layers([obs_dim, *hidden, 1], ortho, generator),
        q1=_layers([obs_dim + act_dim, *hidden, 1], ortho, generator),
        q2=_layers([obs_dim + act_dim, *hidden, 1], ortho, generator),
        actor=_layers([obs_dim, *hidden, act_dim], ortho, generator),
        log_std=torch.zeros(act_dim),
    )


def load_layers(net: nn.Module, layers: list[Layer]) -> None:
    """Copy ``layers`` into the nn.Linear modules of ``net``, in order."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if len(linears) != len(layers):
        raise ValueError(f"{len(layers)} layers for a network with {len(linears)}")
    with torch.no_grad():
        for module, (weight, bias) in zip(linears, layers):
            module.weight.copy_(weight)
            module.bias.copy_(bias)


# --- one configuration (the reference modules) ------------------------------------------------


class ValueNet(nn.Module):
    """V(s)."""

    def __init__(
        self,
        obs_dim: int,
        hidden_dims: Sequence[int],
        orthogonal_init: bool = True,
        layer_norm: bool = False,
    ):
        super().__init__()
        self.net = mlp(
            obs_dim, hidden_dims, 1, orthogonal_init=orthogonal_init, layer_norm=layer_norm
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class TwinQ(nn.Module):
    """Two independent critics Q1(s, a), Q2(s, a)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_dims: Sequence[int],
        orthogonal_init: bool = True,
        layer_norm: bool = False,
    ):
        super().__init__()
        kw = {"orthogonal_init": orthogonal_init, "layer_norm": layer_norm}
        self.q1 = mlp(obs_dim + act_dim, hidden_dims, 1, **kw)
        self.q2 = mlp(obs_dim + act_dim, hidden_dims, 1, **kw)

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

    def mean(self, obs: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """tanh of the MLP; ``masks`` (one per hidden layer, already scaled by 1/(1-p)) replace
        the Dropout modules' own draws."""
        if masks is None:
            return torch.tanh(self.net(obs))
        x, pending = obs, iter(masks)
        for module in self.net:
            x = x * next(pending) if isinstance(module, nn.Dropout) else module(x)
        return torch.tanh(x)

    def clipped_log_std(self) -> torch.Tensor:
        return self.log_std.clamp(self.log_std_min, self.log_std_max)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The deterministic evaluation action: the mean, clipped to [-1, 1]."""
        return self.mean(obs).clamp(-1.0, 1.0)


# --- many configurations (the learner's stacked weights) -------------------------------------


def stacked_mlp(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor] | None = None,
    norms: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``E`` independent ReLU MLPs: ``x [E, B, in]`` -> ``[E, B, out]``; weights ``[E, in, out]``,
    biases ``[E, 1, out]``; ``norms`` (scale and shift ``[E, 1, width]`` per hidden layer, in
    turn) apply a LayerNorm with each network's own affine after each hidden ReLU; ``masks``
    (one ``[E, B, width]`` per hidden layer, scaled by 1/(1-p)) apply dropout after that."""
    last = len(weights) - 1
    for i, (w, b) in enumerate(zip(weights, biases)):
        x = torch.baddbmm(b, x, w)
        if i < last:
            x = torch.relu(x)
            if norms:
                scale, shift = norms[2 * i], norms[2 * i + 1]
                x = F.layer_norm(x, x.shape[-1:], eps=LAYER_NORM_EPS) * scale + shift
            if masks is not None:
                x = x * masks[i]
    return x


class StackedMLP(nn.Module):
    """``E`` MLPs held as stacked parameters; :func:`stacked_mlp` computes them. With
    ``layer_norm`` each hidden layer has a LayerNorm of its own per network (scale 1, shift 0
    at the start, as nn.LayerNorm).

    The parameters are made on ``device`` tensor by tensor (never ``Module.to``), so the same
    code builds them as fake CUDA tensors in the CPU proofs of the GPU path."""

    def __init__(
        self,
        members: Sequence[Sequence[Layer]],
        device: str | torch.device = "cpu",
        requires_grad: bool = True,
        layer_norm: bool = False,
    ):
        super().__init__()
        depth = len(members[0])

        def stacked(parts: list[torch.Tensor]) -> nn.Parameter:
            tensor = torch.stack(parts).contiguous().to(device)
            return nn.Parameter(tensor, requires_grad=requires_grad)

        self.weights = nn.ParameterList(
            stacked([m[i][0].t() for m in members]) for i in range(depth)
        )
        self.biases = nn.ParameterList(
            stacked([m[i][1][None, :] for m in members]) for i in range(depth)
        )
        norms = []
        if layer_norm:
            for i in range(depth - 1):
                width = members[0][i][0].shape[0]
                norms.append(stacked([torch.ones(1, width) for _ in members]))
                norms.append(stacked([torch.zeros(1, width) for _ in members]))
        self.norms = nn.ParameterList(norms)

    def params(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        return list(self.weights), list(self.biases), list(self.norms)

    def forward(self, x: torch.Tensor, masks: Sequence[torch.Tensor] | None = None):
        return stacked_mlp(x, list(self.weights), list(self.biases), masks, list(self.norms))

    def member_layers(self, e: int) -> list[Layer]:
        """Network ``e``'s layers in nn.Linear's layout (copies)."""
        return [
            (w[e].t().detach().clone(), b[e, 0].detach().clone())
            for w, b in zip(self.weights, self.biases)
        ]

    def member_norms(self, e: int) -> list[Layer]:
        """Network ``e``'s LayerNorms as (weight, bias) in nn.LayerNorm's layout (copies)."""
        return [
            (self.norms[2 * i][e, 0].detach().clone(), self.norms[2 * i + 1][e, 0].detach().clone())
            for i in range(len(self.norms) // 2)
        ]
