"""The IQL learner: K >= 1 configurations (tau, beta, seed) trained as stacked networks.

One engine for every path. Members with the same tau and seed share one critic (V, twin Q and
their targets, and one minibatch stream): IQL's critic never depends on the actor, so a
tau x beta grid costs one critic per tau. Member ``k`` computes exactly what a solo run with its
seed computes (the same initial weights from :func:`~iql_sweep.iql.networks.initial_weights`, the
same minibatches from its critic group's generator, the same update order); Adam on stacked
tensors is elementwise, i.e. K independent Adams, and summing the members' losses leaves each
member's gradient its own, so a member whose losses turn NaN never touches the others.

Speed is a setting of this one learner, never a second copy of the maths
(:mod:`iql_sweep.iql.losses` holds every objective once):

- ``eager``: the three stages run as written;
- ``compiled``: the V, actor and Q stages are compiled with ``torch.compile`` (forward and
  backward), the optimisers are fused Adam;
- ``graph`` (CUDA): as ``compiled``, and the *whole* update, i.e. the minibatch draw, dropout
  masks, the three stages, the three optimiser steps (the actor's learning rate a device
  tensor), the Polyak update and the metric sums, is captured once as one CUDA graph and
  replayed, with no host synchronisation until the metrics are read.

:meth:`IQLLearner.advance` runs many updates per call (to the next evaluation, checkpoint or
online step), so Python is not on the per-update path of the graph mode.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from iql_sweep.errors import ConfigError
from iql_sweep.iql.config import IQLConfig, Member, critic_keys, unsupported
from iql_sweep.iql.networks import Layer, StackedMLP, initial_weights, stacked_mlp
from iql_sweep.iql.observations import ObservationStats
from iql_sweep.iql.replay import ReplayBuffer, make_generator
from iql_sweep.iql.stages import Batch, Net, actor_stage, forward, q_stage, value_stage
from iql_sweep.seeds import DROPOUT_SEED_OFFSET

logger = logging.getLogger(__name__)

Speed = Literal["eager", "compiled", "graph"]
SPEEDS: tuple[str, ...] = ("eager", "compiled", "graph")
#: ``training.compile``: ``auto`` picks the speed from the device and the run's length.
Compile = bool | Literal["auto"]
#: On the CPU, ``auto`` compiles packs of at least this many configurations running at least
#: this many updates; one configuration stays eager. Measured by benchmarks/compile_payback.py
#: (2 cores, 256x256, batch 256): compiled one configuration 0.98-1.00x eager, so its ~17 s
#: cold compile never pays back; a 3 tau x 3 beta pack 1.08x, paying back after ~15,000
#: updates (figures in benchmarks/RESULTS.md).
CPU_COMPILE_MIN_MEMBERS = 9
CPU_COMPILE_PAYBACK_UPDATES = 20_000

#: Per-member metrics of every update, in the order of the learner's metric rows.
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
#: Eager updates before a CUDA graph is captured (compilation and optimiser state happen here).
GRAPH_WARMUP = 3


def _compile_stages(stages: tuple) -> tuple:
    """The stages compiled whole (fullgraph: a graph break, such as a host read or an unsupported
    op, is an error, not a slow path). Many learners of different shapes in one process (tests,
    benchmarks) recompile the stages, and without a higher limit dynamo would silently fall
    back to eager after 8 shapes; the limits are raised here, beside the compile that needs
    them, not at import."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    return tuple(torch.compile(f, dynamic=False, fullgraph=True) for f in stages)


def choose_speed(
    compile: Compile, device: str | torch.device, updates: int, members: int = 1
) -> tuple[Speed, str]:
    """The speed a run of ``updates`` updates of ``members`` configurations on ``device`` gets
    with ``training.compile``, and why (the run's console line and ``config.json`` say both)."""
    cuda = torch.device(device).type == "cuda"
    if compile is False:
        return "eager", "compile: false"
    if compile is True:
        if cuda:
            return "graph", "compile: true on a GPU: the whole update as one captured CUDA graph"
        return "compiled", "compile: true on the CPU: the three stages compiled"
    if cuda:
        return "graph", "compile: auto on a GPU: the whole update as one captured CUDA graph"
    if members < CPU_COMPILE_MIN_MEMBERS:
        return "eager", (
            f"compile: auto on the CPU: compiling {members} configuration(s) does not pay back "
            f"(it pays for packs of {CPU_COMPILE_MIN_MEMBERS}+ over "
            f"{CPU_COMPILE_PAYBACK_UPDATES:,}+ updates)"
        )
    if updates < CPU_COMPILE_PAYBACK_UPDATES:
        return "eager", (
            f"compile: auto on the CPU: {updates:,} updates are too few to pay back the "
            f"compile (it pays from {CPU_COMPILE_PAYBACK_UPDATES:,})"
        )
    return "compiled", (
        f"compile: auto on the CPU: a pack of {members} over {updates:,} updates pays back "
        "the compile"
    )


class Policy:
    """Deterministic actions (the Gaussians' means) of stacked actors: the learner's live
    parameters, or a copy taken at one update (:meth:`IQLLearner.frozen_policy`) that acts on
    its own CUDA ``stream``, so rollouts never wait behind the training queued on the learner's.
    """

    def __init__(
        self,
        actor: Net,
        normalize: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        stream: torch.cuda.Stream | None = None,
    ):
        self.actor, self.normalize, self.device, self.stream = actor, normalize, device, stream

    @property
    def num_members(self) -> int:
        return int(self.actor.weights[0].shape[0])

    @torch.no_grad()
    def act(self, obs: torch.Tensor, members: Sequence[int] | None = None) -> torch.Tensor:
        """``obs [m, N, obs]`` (or ``[N, obs]`` for every member alike) -> ``[m, N, act]``."""
        with self.acting():
            obs = self.normalize(obs)
            weights, biases = self.actor.weights, self.actor.biases
            m = self.num_members
            if members is not None:
                index = torch.as_tensor(list(members), device=self.device)
                weights, biases = [w[index] for w in weights], [b[index] for b in biases]
                m = len(members)
            if obs.dim() == 2:
                obs = obs.expand(m, *obs.shape)
            return torch.tanh(stacked_mlp(obs, weights, biases)).clamp(-1.0, 1.0)

    def acting(self) -> AbstractContextManager:
        """Where this policy's work runs: its stream (rollouts put their host-to-device copies
        there too), else wherever the caller is."""
        return nullcontext() if self.stream is None else torch.cuda.stream(self.stream)


@dataclass
class _Snapshot:
    """The learner's mutable state before a capture attempt (copies) and its generators'."""

    tensors: list[torch.Tensor]
    generators: list[torch.Tensor]


class IQLLearner:
    """K members sharing one IQLConfig but for tau, beta and the seed (see the module docs)."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        config: IQLConfig,
        members: Sequence[Member],
        data: dict[str, torch.Tensor] | None = None,
        *,
        device: str | torch.device = "cpu",
        share_critics: bool = True,
        speed: Speed = "eager",
        online_capacity: int = 0,
        obs_stats: ObservationStats | None = None,
    ):
        if not members:
            raise ConfigError("members: a learner needs at least one configuration")
        if speed not in SPEEDS:
            raise ConfigError(f"speed: unknown setting {speed!r}; use one of {', '.join(SPEEDS)}")
        self.device = torch.device(device)
        if speed == "graph" and self.device.type != "cuda":
            raise ConfigError("speed: the captured-graph update needs a CUDA device; use compiled")
        problems = unsupported(len(members), online_capacity)
        if problems:
            raise ConfigError("\n".join(problems))
        self.config, self.members = config, list(members)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.share_critics, self.speed = share_critics, speed
        self.obs_stats = self._observation_stats(config, obs_dim, data, obs_stats)
        self.step = 0
        k = len(self.members)
        # Critic groups: one per distinct (tau, seed) when sharing, else one per member.
        keys = critic_keys(members, share_critics)
        self.group_keys = list(dict.fromkeys(keys))
        self.groups = [self.group_keys.index(key) for key in keys]
        leaders = [keys.index(key) for key in self.group_keys]  # first member of each group
        self.group_of = torch.tensor(self.groups, device=self.device)
        starts = {}
        for m in self.members:
            if m.seed not in starts:
                starts[m.seed] = initial_weights(config, obs_dim, act_dim, m.seed)
        lead = [starts[self.members[i].seed] for i in leaders]
        twins = [net for w in lead for net in (w.q1, w.q2)]
        norm = config.layer_norm
        self.value = StackedMLP([w.value for w in lead], self.device, layer_norm=norm)
        self.q = StackedMLP(twins, self.device, layer_norm=norm)
        self.q_target = StackedMLP(twins, self.device, requires_grad=False, layer_norm=norm)
        self.actor = StackedMLP([starts[m.seed].actor for m in self.members], self.device)
        self.log_std = nn.Parameter(
            torch.stack([starts[m.seed].log_std for m in self.members]).to(self.device)
        )
        self.expectile = torch.tensor(
            [[self.members[i].expectile] for i in leaders], device=self.device
        )
        self.beta = torch.tensor([[m.beta] for m in self.members], device=self.device)
        c = config
        self.actor_lr = torch.tensor(float(c.actor_lr), device=self.device)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=c.value_lr, fused=True)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=c.critic_lr, fused=True)
        self.actor_opt = torch.optim.Adam(
            [*self.actor.parameters(), self.log_std], lr=c.actor_lr, fused=True
        )
        self._arm_optimisers()
        self._step_t = torch.zeros((), dtype=torch.float64, device=self.device)
        self.dropout_generator: torch.Generator | None = None
        if c.actor_dropout > 0:
            seed = self.members[0].seed + DROPOUT_SEED_OFFSET
            self.dropout_generator = make_generator(self.device, seed)
        self.buffer: ReplayBuffer | None = None
        if data is not None:  # host or device tensors: the buffer copies them to the device
            seeds = [self.members[i].seed for i in leaders]
            self.buffer = ReplayBuffer(
                data,
                c.batch_size,
                seeds,
                online_capacity,
                obs_stats=self.obs_stats,
                device=self.device,
            )
        self._sums = torch.zeros(len(METRIC_KEYS), k, device=self.device)
        self._count = 0
        self._graph: Any = None
        self._capture_stream: Any = None
        self._warmup_left = GRAPH_WARMUP
        #: why the captured graph was given up for the compiled stages (None while it was not)
        self.capture_failure: str | None = None
        # parameters as the stages take them (the tensors stay the same objects)
        self._value_net = Net(*self.value.params())
        self._q_net = Net(*self.q.params())
        self._q_target_net = Net(*self.q_target.params())
        self._actor_net = Net(*self.actor.params())
        self._policy = Policy(self._actor_net, self.normalize, self.device)
        self._eval_stream: Any = None
        self._q_params = list(self.q.parameters())
        self._q_target_params = list(self.q_target.parameters())
        stages = (value_stage, actor_stage, q_stage)
        if speed in ("compiled", "graph"):
            stages = _compile_stages(stages)
        self._value_stage, self._actor_stage, self._q_stage = stages

    @staticmethod
    def _observation_stats(
        config: IQLConfig,
        obs_dim: int,
        data: dict[str, torch.Tensor] | None,
        given: ObservationStats | None,
    ) -> ObservationStats | None:
        """The statistics the learner normalises with: none unless the config asks; else the
        given ones (a checkpoint's), or those of the offline observations it trains on."""
        if not config.normalize_observations:
            if given is not None:
                raise ConfigError(
                    "iql.normalize_observations: statistics were given to a learner whose "
                    "config does not normalise observations"
                )
            return None
        if given is None:
            if data is None:
                raise ConfigError(
                    "iql.normalize_observations: a learner without data needs the statistics "
                    "of the data it was trained on (a checkpoint's observation_stats)"
                )
            given = ObservationStats.of(data["observations"].detach().cpu().numpy())
        if given.dim != obs_dim:
            raise ConfigError(
                f"observation statistics: they are for {given.dim} dimensions, the "
                f"observations have {obs_dim}"
            )
        return given

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw observations as the networks see them (unchanged without normalisation)."""
        obs = obs.to(self.device, torch.float32)
        return obs if self.obs_stats is None else self.obs_stats.normalize(obs)

    # --- shape facts ---------------------------------------------------------------------------
    @property
    def num_members(self) -> int:
        return len(self.members)

    @property
    def num_critics(self) -> int:
        return len(self.group_keys)

    # --- one update ----------------------------------------------------------------------------
    def _dropout_masks(self, rows: int) -> list[torch.Tensor] | None:
        """Independent dropout masks per member and hidden layer, scaled by 1/(1-p)."""
        p = self.config.actor_dropout
        if self.dropout_generator is None:
            return None
        shape = (self.num_members, rows)
        return [
            (
                torch.rand((*shape, width), generator=self.dropout_generator, device=self.device)
                >= p
            ).float()
            * (1.0 / (1.0 - p))
            for width in self.config.hidden_dims
        ]

    def _learning_rate(self) -> None:
        """The actor's learning rate for this update: a cosine from actor_lr to 0 over
        max_steps (held at 0 after), computed on the device from the update counter."""
        c = self.config
        if not c.cosine_actor_schedule:
            return
        t = torch.clamp(self._step_t, max=float(c.max_steps)) / c.max_steps
        self.actor_lr.copy_(c.actor_lr * 0.5 * (1.0 + torch.cos(math.pi * t)))

    def _step_on(self, batch: dict[str, torch.Tensor], masks) -> torch.Tensor:
        """One IQL update on ``[C, B, ...]`` minibatches; returns the metrics ``[M, K]``."""
        c, g = self.config, self.group_of
        data = Batch(**{name: batch[name] for name in Batch._fields})
        # 1. V by expectile regression on the target critics
        total, value_losses, v_mean, target_q = self._value_stage(
            self._value_net, self._q_target_net, data, expectile=self.expectile
        )
        self.value_opt.zero_grad(set_to_none=True)
        total.backward()
        self.value_opt.step()
        # 2. the actor by AWR, with the updated V
        self._learning_rate()
        total, actor_losses, advantage, clipped = self._actor_stage(
            self._actor_net,
            self.log_std,
            self._value_net,
            data,
            target_q,
            group_of=g,
            beta=self.beta,
            dropout_masks=masks,
            max_weight=c.max_awr_weight,
            log_std_min=c.log_std_min,
            log_std_max=c.log_std_max,
        )
        self.actor_opt.zero_grad(set_to_none=True)
        total.backward()
        self.actor_opt.step()
        # 3. twin Q by MSE to r + gamma (1 - terminal) V_new(s')
        total, q_losses, q_mean = self._q_stage(
            self._q_net, self._value_net, data, discount=c.discount
        )
        self.q_opt.zero_grad(set_to_none=True)
        total.backward()
        self.q_opt.step()
        with torch.no_grad():
            # 4. Polyak averaging of the target critics towards the critics
            torch._foreach_lerp_(self._q_target_params, self._q_params, c.polyak)
            self._step_t.add_(1.0)
            metrics = {
                "value_loss": value_losses[g],
                "q_loss": q_losses[g],
                "actor_loss": actor_losses,
                "advantage_mean": advantage,
                "awr_clip_fraction": clipped,
                "v_mean": v_mean[g],
                "q_mean": q_mean[g],
                "actor_lr": self.actor_lr.expand(self.num_members),
            }
            return torch.stack([metrics[key] for key in METRIC_KEYS])

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One update on a given minibatch (fields ``[C, B, ...]``, or ``[B, ...]`` for every
        group); per-member metrics ``[K]`` on the device. Not captured: the reference for the
        graph mode and the tests' way to feed identical batches to every path."""
        vectors = ("observations", "actions", "next_observations")
        batch = {
            k: v.expand(self.num_critics, *v.shape) if v.dim() == 1 + (k in vectors) else v
            for k, v in batch.items()
        }
        metrics = self._step_on(batch, self._dropout_masks(batch["rewards"].shape[-1]))
        self.step += 1
        return dict(zip(METRIC_KEYS, metrics.unbind(0)))

    def _advance_one(self) -> None:
        assert self.buffer is not None
        batch = self.buffer.sample()
        self._sums.add_(self._step_on(batch, self._dropout_masks(self.config.batch_size)))

    def _run(self, updates: int) -> None:
        for _ in range(updates):
            self._advance_one()
            self.step += 1

    def advance(self, updates: int) -> None:
        """``updates`` updates on minibatches drawn from the learner's buffer; the per-member
        metric sums stay on the device until :meth:`pop_metrics`."""
        if self.buffer is None:
            raise RuntimeError("this learner was built without data; use update(batch)")
        self._count += updates
        if self.speed != "graph":
            self._run(updates)
            return
        with torch.cuda.device(self.device):  # cuda:N: warm-up, capture and replay on card N
            if self._graph is None:
                warm = min(updates, self._warmup_left)
                if warm:
                    self._warm_up(warm)
                    updates -= warm
                if updates > 0:
                    if not self._capture_or_fall_back():
                        self._run(updates)  # compiled stages from here on
                        return
                    self._graph.replay()
                    self.step += 1
                    updates -= 1
                    self._check_engaged()
            for _ in range(updates):
                self._graph.replay()
                self.step += 1

    # --- the captured graph (CUDA) ---------------------------------------------------------
    def _stream(self) -> torch.cuda.Stream:
        """The learner's own side stream on its card, for warm-up and capture."""
        if self._capture_stream is None:
            self._capture_stream = torch.cuda.Stream(self.device)
        return self._capture_stream

    def _warm_up(self, updates: int) -> None:
        """Eager updates on the side stream before capture (compilation and optimiser state
        happen here, as CUDA graphs require)."""
        side, main = self._stream(), torch.cuda.current_stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            self._run(updates)
        main.wait_stream(side)
        self._warmup_left -= updates

    def _generators(self) -> list[torch.Generator]:
        assert self.buffer is not None
        extra = [] if self.dropout_generator is None else [self.dropout_generator]
        return [*self.buffer.generators, *extra]

    def _capture(self) -> None:
        """Record one whole update (draw, masks, stages, optimisers, targets, metric sums)."""
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        for generator in self._generators():
            graph.register_generator_state(generator)
        # thread-local: Ray Tune runs a trial's function in its own thread of the actor
        with torch.cuda.graph(graph, stream=self._stream(), capture_error_mode="thread_local"):
            self._advance_one()
        self._graph = graph

    def _check_engaged(self) -> None:
        """After the first replay: the graph really updated (an empty graph, captured on
        another card or stream, would leave the update counter behind). One host read."""
        done = int(self._step_t.item())
        if done != self.step:
            raise RuntimeError(
                f"the captured CUDA graph did not run the update on {self.device} (update "
                f"counter {done}, expected {self.step}): the graph is empty; report this with "
                "the device and torch version, and use training.compile: false meanwhile"
            )

    def _state_tensors(self) -> list[torch.Tensor]:
        """Every tensor an update changes (updated in place, so captured addresses hold)."""
        out = [
            *self.value.parameters(),
            *self.q.parameters(),
            *self.q_target.parameters(),
            *self.actor.parameters(),
            self.log_std,
            self._step_t,
            self.actor_lr,
            self._sums,
        ]
        for optimiser in self._optimisers():
            for state in optimiser.state.values():
                out.extend(v for v in state.values() if isinstance(v, torch.Tensor))
        if self.buffer is not None:
            out.append(self.buffer.size_t)
        return out

    def _snapshot(self) -> _Snapshot:
        with torch.no_grad():
            tensors = [t.detach().clone() for t in self._state_tensors()]
        return _Snapshot(tensors, [g.get_state() for g in self._generators()])

    def _capture_or_fall_back(self) -> bool:
        """Capture the update; when anything fails inside (a host sync, a recompile, an
        inductor assertion), put the learner back exactly as it was before the attempt and go
        on with the compiled stages, saying why. True when the graph was captured."""
        snapshot = self._snapshot()
        try:
            self._capture()
            return True
        except Exception as err:  # noqa: BLE001 - whatever fails, the run must stay consistent
            self._graph = None
            self._recover(snapshot)
            message = str(err).strip().splitlines()
            cause = f"{type(err).__name__}: {message[0] if message else ''}".strip(": ")
            self.capture_failure = cause
            self.speed = "compiled"
            logger.warning("CUDA graph capture failed (%s); continuing compiled", cause)
            warnings.warn(
                f"CUDA graph capture failed ({cause}); the run goes on with compiled stages",
                RuntimeWarning,
                stacklevel=3,
            )
            return False

    def _recover(self, snapshot: _Snapshot) -> None:
        """After a failed capture: the thread back on the default stream with nothing in
        capture mode, the state copied back, the random streams continued by fresh
        generators (the old ones may still be registered with the broken capture)."""
        if self.device.type == "cuda":
            torch.cuda.set_stream(torch.cuda.default_stream(self.device))
            torch.cuda.synchronize(self.device)
            if torch.cuda.is_current_stream_capturing():
                raise RuntimeError("CUDA graph capture failed and the stream is still capturing")
        with torch.no_grad():
            for live, saved in zip(self._state_tensors(), snapshot.tensors, strict=True):
                live.copy_(saved)
        fresh = []
        for state in snapshot.generators:
            generator = make_generator(self.device, 0)
            generator.set_state(state)
            fresh.append(generator)
        assert self.buffer is not None
        groups = self.buffer.num_groups
        self.buffer.generators = fresh[:groups]
        if self.dropout_generator is not None:
            self.dropout_generator = fresh[groups]

    def _optimisers(self) -> tuple[torch.optim.Adam, ...]:
        return (self.value_opt, self.q_opt, self.actor_opt)

    def _arm_optimisers(self) -> None:
        """Fused Adam, capturable when the update is captured (a loaded optimiser state keeps
        the flags it was saved with, so they are set again after every load); the actor's
        learning rate is the learner's device tensor."""
        for optimiser in self._optimisers():
            for group in optimiser.param_groups:
                group["fused"] = True
                group["capturable"] = self.speed == "graph"
        self.actor_opt.param_groups[0]["lr"] = self.actor_lr

    def pop_metrics(self) -> tuple[np.ndarray, int]:
        """Mean of every metric over the updates since the last call: ``[M, K]`` (host) and
        the number of updates; the one host synchronisation of a training interval."""
        count = self._count
        means = (self._sums / max(count, 1)).cpu().numpy()
        self._sums.zero_()
        self._count = 0
        return means, count

    def synchronize(self) -> None:
        """Wait until the device has finished the work queued so far (timings read after)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # --- acting --------------------------------------------------------------------------------
    def act(self, obs: torch.Tensor, members: Sequence[int] | None = None) -> torch.Tensor:
        """Deterministic actions (the Gaussian's mean) of ``members`` (default: all):
        ``obs [m, N, obs]`` (or ``[N, obs]`` for every member alike) -> ``[m, N, act]``.
        Observations are raw (the environment's); the learner normalises them."""
        return self._policy.act(obs, members)

    @torch.no_grad()
    def frozen_policy(self) -> Policy:
        """The actors as they are at this update (a copy the updates after it do not touch),
        for an evaluation that runs while training goes on. On a GPU it acts on the learner's
        evaluation stream, ordered after the work queued so far."""
        net = Net(
            [w.detach().clone() for w in self._actor_net.weights],
            [b.detach().clone() for b in self._actor_net.biases],
        )
        stream = None
        if self.device.type == "cuda":
            if self._eval_stream is None:
                self._eval_stream = torch.cuda.Stream(self.device)
            stream = self._eval_stream
            stream.wait_stream(torch.cuda.current_stream(self.device))
        return Policy(net, self.normalize, self.device, stream)

    @torch.no_grad()
    def sample_actions(
        self, obs: torch.Tensor, member: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Actions of ``member`` sampled from its Gaussian policy, clipped to [-1, 1]."""
        mean = self.act(obs, [member])[0]
        c = self.config
        std = self.log_std[member].clamp(c.log_std_min, c.log_std_max).exp()
        noise = torch.randn(mean.shape, device=self.device, generator=generator, dtype=mean.dtype)
        return (mean + std * noise).clamp(-1.0, 1.0)

    @torch.no_grad()
    def values(self, obs: torch.Tensor) -> torch.Tensor:
        """V of every member (its critic group's) at raw ``obs [N, obs]``: ``[K, N]``."""
        x = self.normalize(obs).expand(self.num_critics, *obs.shape)
        return forward(self._value_net, x).squeeze(-1)[self.group_of]

    # --- state ---------------------------------------------------------------------------------
    def member_layers(self, k: int) -> dict[str, Any]:
        """Member ``k``'s networks as nn.Linear layers (for comparison with a solo agent), and
        with ``layer_norm`` their LayerNorms as (weight, bias) under ``<net>_norms``."""
        g = self.groups[k]
        out = {
            "value": self.value.member_layers(g),
            "q1": self.q.member_layers(2 * g),
            "q2": self.q.member_layers(2 * g + 1),
            "q1_target": self.q_target.member_layers(2 * g),
            "q2_target": self.q_target.member_layers(2 * g + 1),
            "actor": self.actor.member_layers(k),
            "log_std": self.log_std.detach()[k].clone(),
        }
        if self.config.layer_norm:
            out["value_norms"] = self.value.member_norms(g)
            out["q1_norms"] = self.q.member_norms(2 * g)
            out["q2_norms"] = self.q.member_norms(2 * g + 1)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything to continue exactly: stacked nets and targets, optimisers, the update
        counter, the dropout generator and the buffer (generators and online rows)."""
        return {
            "members": [m.model_dump() for m in self.members],
            "share_critics": self.share_critics,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "step": self.step,
            "value": self.value.state_dict(),
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "actor": self.actor.state_dict(),
            "log_std": self.log_std.detach().clone(),
            "value_opt": self.value_opt.state_dict(),
            "q_opt": self.q_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "dropout_generator": (
                None if self.dropout_generator is None else self.dropout_generator.get_state()
            ),
            "buffer": None if self.buffer is None else self.buffer.state_dict(),
            "observation_stats": None if self.obs_stats is None else self.obs_stats.state(),
            "device": self.device.type,  # whose generator states these are
        }

    def load_state_dict(self, state: dict[str, Any], generators: bool = True) -> None:
        """Restore a :meth:`state_dict` into a learner built with the same members and shapes;
        ``generators=False`` leaves the random streams alone (acting and values only).

        A random generator's state belongs to one device type (a CPU state does not fit a CUDA
        generator), so an exact resume across device types is refused in one line."""
        written_on = state.get("device", "cpu")
        if generators and written_on != self.device.type:
            raise ConfigError(
                f"checkpoint: written on {written_on}, this run is on {self.device.type}; its "
                "random streams (minibatch draws, dropout) cannot continue on another device "
                f"type, so an exact resume is impossible: resume with --device {written_on}, or "
                "start a new run in another folder"
            )
        if state["members"] != [m.model_dump() for m in self.members]:
            raise ConfigError(
                "checkpoint: it holds other configurations than this run's; resume with the "
                "same tau, beta and seeds"
            )
        if (state["obs_dim"], state["act_dim"]) != (self.obs_dim, self.act_dim):
            raise ConfigError(
                f"checkpoint: it is for observations of {state['obs_dim']} and actions of "
                f"{state['act_dim']} dimensions; this data has {self.obs_dim} and {self.act_dim}"
            )
        if state["share_critics"] != self.share_critics:
            raise ConfigError("checkpoint: it was written with another share_critics setting")
        saved_stats = ObservationStats.from_state(state.get("observation_stats"))
        if saved_stats != self.obs_stats:
            raise ConfigError(
                "checkpoint: its observation statistics differ from this run's "
                f"(normalised then: {saved_stats is not None}, now: {self.obs_stats is not None}); "
                "resume with the same normalize_observations setting and dataset"
            )
        for name in ("value", "q", "q_target", "actor"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_std.copy_(state["log_std"])
        self.value_opt.load_state_dict(state["value_opt"])
        self.q_opt.load_state_dict(state["q_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        # the loaded groups carry the writer's flags and a copy of the lr tensor: a checkpoint
        # written eager or compiled resumes captured in a graph learner
        self._arm_optimisers()
        self.step = int(state["step"])
        self._step_t.fill_(float(self.step))
        if generators:
            if self.dropout_generator is not None and state["dropout_generator"] is not None:
                self.dropout_generator.set_state(state["dropout_generator"])
            if self.buffer is not None and state.get("buffer") is not None:
                self.buffer.load_state_dict(state["buffer"])
        self._graph, self._warmup_left = None, GRAPH_WARMUP  # optimiser state tensors changed

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: IQLConfig, device: str | torch.device = "cpu"
    ) -> IQLLearner:
        """A learner (without data) holding a checkpoint's networks, for acting and values."""
        learner = cls(
            state["obs_dim"],
            state["act_dim"],
            config,
            [Member(**m) for m in state["members"]],
            device=device,
            share_critics=state["share_critics"],
            obs_stats=ObservationStats.from_state(state.get("observation_stats")),
        )
        learner.load_state_dict({**state, "buffer": None}, generators=False)
        return learner


__all__ = ["IQLLearner", "Policy", "Member", "METRIC_KEYS", "SPEEDS", "Layer", "choose_speed"]
