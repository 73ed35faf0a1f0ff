"""Shared test pieces: random transitions, small configs, the reference agent's layers next to a
learner member's, and solo reference runs on the minibatches a learner's group draws."""

from __future__ import annotations

import torch
from torch import nn

from iql_sweep.iql.config import IQLConfig, Member, make_config
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.reference import IQLAgent
from iql_sweep.iql.replay import ReplayBuffer

OBS, ACT = 6, 2  # PointMaze's shapes, as the tests on generated data


def random_tensors(n: int = 500, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randn(n, OBS, generator=g),
        "actions": torch.rand(n, ACT, generator=g) * 2 - 1,
        "rewards": torch.randn(n, generator=g),
        "next_observations": torch.randn(n, OBS, generator=g),
        "terminals": (torch.rand(n, generator=g) < 0.1).float(),
        "timeouts": (torch.rand(n, generator=g) < 0.05).float(),
    }


def small_config(preset: str = "default", **kw) -> IQLConfig:
    base = {"hidden_dims": (32, 32), "batch_size": 32, "max_steps": 100}
    return make_config(preset, **{**base, **kw})


def linears(net: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(m.weight.detach(), m.bias.detach()) for m in net.modules() if isinstance(m, nn.Linear)]


def layer_norms(net: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (m.weight.detach(), m.bias.detach()) for m in net.modules() if isinstance(m, nn.LayerNorm)
    ]


def reference_layers(agent: IQLAgent) -> dict:
    """A reference agent's networks in the layout of :meth:`IQLLearner.member_layers`."""
    out = {
        "value": linears(agent.value),
        "q1": linears(agent.q.q1),
        "q2": linears(agent.q.q2),
        "q1_target": linears(agent.q_target.q1),
        "q2_target": linears(agent.q_target.q2),
        "actor": linears(agent.actor.net),
        "log_std": agent.actor.log_std.detach(),
    }
    if agent.config.layer_norm:
        out["value_norms"] = layer_norms(agent.value)
        out["q1_norms"] = layer_norms(agent.q.q1)
        out["q2_norms"] = layer_norms(agent.q.q2)
    return out


def assert_member_equals(learner: IQLLearner, k: int, agent: IQLAgent, **tol) -> None:
    """Every network of member ``k`` equals the reference agent's, to float tolerance."""
    tol = tol or {"rtol": 1e-4, "atol": 2e-6}
    mine, ref = learner.member_layers(k), reference_layers(agent)
    assert mine.keys() == ref.keys()
    nets = ("value", "q1", "q2", "q1_target", "q2_target", "actor")
    for net in nets + tuple(k for k in mine if k.endswith("_norms")):
        assert len(mine[net]) == len(ref[net])
        for i, ((w, b), (rw, rb)) in enumerate(zip(mine[net], ref[net])):
            torch.testing.assert_close(w, rw, **tol, msg=f"member {k} {net}[{i}].weight")
            torch.testing.assert_close(b, rb, **tol, msg=f"member {k} {net}[{i}].bias")
    torch.testing.assert_close(mine["log_std"], ref["log_std"], **tol)


def member_config(config: IQLConfig, member: Member) -> IQLConfig:
    return config.model_copy(update={"expectile": member.expectile, "beta": member.beta})


def solo_reference(
    config: IQLConfig, member: Member, data: dict[str, torch.Tensor], updates: int
) -> IQLAgent:
    """The reference agent after ``updates`` updates on the minibatches a solo run with the
    member's seed draws."""
    agent = IQLAgent(OBS, ACT, member_config(config, member), seed=member.seed)
    buffer = ReplayBuffer(data, config.batch_size, [member.seed])
    for _ in range(updates):
        agent.update({k: v[0] for k, v in buffer.sample().items()})
    return agent


def dropout_masks(generator_state: torch.Tensor, learner: IQLLearner, rows: int):
    """The masks the learner drew from its dropout generator in one update, recomputed
    independently: per hidden layer ``(U[0,1) >= p) * 1/(1 - p)`` of shape ``[K, rows, width]``."""
    p = learner.config.actor_dropout
    g = torch.Generator().manual_seed(0)
    g.set_state(generator_state)
    return [
        (torch.rand((learner.num_members, rows, w), generator=g) >= p).float() * (1.0 / (1.0 - p))
        for w in learner.config.hidden_dims
    ]


def leave_no_ray_in_this_process() -> None:
    """Before ``ray stop`` (which stops every Ray on the host): the tests' in-process Ray
    (conftest's ``shared_ray``) is shut down cleanly first; it starts again when next needed."""
    import ray

    ray.shutdown()
