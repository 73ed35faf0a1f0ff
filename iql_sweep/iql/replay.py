"""The training data on the device: uniform minibatches for every critic group, drawn without the
host, from the offline transitions plus (during online fine-tuning) the rows added since.

All fields live in one packed ``[capacity, D]`` float tensor, so a minibatch for ``C`` groups is
one gather. Each group draws its row indices with its own generator, seeded with its seed: a
group of a population sees exactly the minibatches a solo run with that seed sees. The number of
valid rows is a device tensor, so the draw can run inside a captured CUDA graph while the buffer
grows; indices are ``randint(0, 2^62) mod size`` (bias below 1e-12).

With observation statistics (``IQLConfig.normalize_observations``) the observation fields are
stored normalised: once for the offline rows, and on :meth:`ReplayBuffer.add` for online rows, so
a minibatch costs nothing more; :meth:`ReplayBuffer.raw_rows` gives them back in the
environment's units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from iql_sweep.errors import ConfigError
from iql_sweep.iql.observations import ObservationStats

#: The transition fields, in storage order (observations and actions are vectors).
FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")
#: The fields observation statistics apply to.
OBSERVATION_FIELDS = ("observations", "next_observations")
_DRAW_HIGH = 2**62

Batch = dict[str, torch.Tensor]


def make_generator(device: str | torch.device, seed: int) -> torch.Generator:
    """A random generator on ``device`` seeded with ``seed`` (the one place generators are made:
    the CPU proofs of the GPU path put CPU generators here, since ``torch.Generator("cuda")``
    cannot be faked)."""
    return torch.Generator(device=device).manual_seed(int(seed))


def field_slices(obs_dim: int, act_dim: int) -> dict[str, slice | int]:
    """Where each field sits in a packed row (vectors as slices, scalars as columns)."""
    widths = {"observations": obs_dim, "actions": act_dim, "next_observations": obs_dim}
    out: dict[str, slice | int] = {}
    start = 0
    for name in FIELDS:
        width = widths.get(name, 1)
        out[name] = slice(start, start + width) if name in widths else start
        start += width
    return out


def split_rows(rows: torch.Tensor, obs_dim: int, act_dim: int) -> Batch:
    """Packed rows ``[..., D]`` as named fields (views)."""
    return {name: rows[..., where] for name, where in field_slices(obs_dim, act_dim).items()}


class ReplayBuffer:
    """Offline rows followed by up to ``online_capacity`` rows added with :meth:`add`."""

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        batch_size: int,
        seeds: Sequence[int],
        online_capacity: int = 0,
        obs_stats: ObservationStats | None = None,
        device: str | torch.device | None = None,
    ):
        """``tensors`` may live on the host: they are copied to ``device`` (default: theirs)
        column by column, so the device never holds the data twice."""
        if not seeds:
            raise ValueError("a replay buffer needs at least one generator seed")
        self.obs_dim = int(tensors["observations"].shape[1])
        self.act_dim = int(tensors["actions"].shape[1])
        self.slices = field_slices(self.obs_dim, self.act_dim)
        width = 2 * self.obs_dim + self.act_dim + 3
        n = int(tensors["rewards"].shape[0])
        self.device = torch.device(device) if device is not None else tensors["rewards"].device
        self.obs_stats = obs_stats
        self.storage = torch.zeros(n + online_capacity, width, device=self.device)
        for name in FIELDS:
            column = tensors[name].to(self.device, torch.float32)
            if obs_stats is not None and name in OBSERVATION_FIELDS:
                column = obs_stats.normalize(column)
            self.storage[:n, self.slices[name]] = column
            del column
        self.batch_size = int(batch_size)
        self.offline_size = n
        self.size = n
        self.size_t = torch.tensor(n, dtype=torch.int64, device=self.device)
        self.capacity = n + online_capacity
        self.generators = [make_generator(self.device, s) for s in seeds]
        self._fingerprint: list[float] | None = None

    @property
    def num_groups(self) -> int:
        return len(self.generators)

    @property
    def online_size(self) -> int:
        return self.size - self.offline_size

    def split(self, rows: torch.Tensor) -> Batch:
        """Packed rows ``[..., D]`` as named fields (views)."""
        return split_rows(rows, self.obs_dim, self.act_dim)

    def sample(self) -> Batch:
        """One minibatch per group: every field ``[C, B, ...]``; no host synchronisation."""
        index = torch.stack(
            [
                torch.randint(0, _DRAW_HIGH, (self.batch_size,), device=self.device, generator=g)
                for g in self.generators
            ]
        ).remainder_(self.size_t)
        return self.split(self.storage[index])

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminal: bool,
        timeout: bool,
    ) -> None:
        """Append one transition (raw observations, policy-space action, transformed
        reward); the observations are normalised here when the buffer has statistics."""
        if self.size >= self.capacity:
            raise RuntimeError(f"replay buffer is full ({self.capacity} rows)")
        row = np.concatenate(
            [obs, action, [reward], next_obs, [float(terminal)], [float(timeout)]]
        ).astype(np.float32)
        stored = torch.from_numpy(row).to(self.device)
        if self.obs_stats is not None:
            fields = self.split(stored)
            for name in OBSERVATION_FIELDS:
                fields[name].copy_(self.obs_stats.normalize(fields[name]))
        self.storage[self.size] = stored
        self.size += 1
        self.size_t.fill_(self.size)

    def raw_rows(self, start: int, stop: int) -> Batch:
        """Rows ``start..stop`` as fields in the environment's units (observations
        un-normalised; exact up to float32 rounding when the buffer normalises)."""
        fields = self.split(self.storage[start:stop])
        if self.obs_stats is not None:
            for name in OBSERVATION_FIELDS:
                fields[name] = self.obs_stats.denormalize(fields[name])
        return fields

    def online_rows(self, name: str) -> torch.Tensor:
        """The rows added online, one field, as stored (normalised observations when the
        buffer normalises)."""
        return self.split(self.storage[self.offline_size : self.size])[name]

    @property
    def fingerprint(self) -> list[float]:
        """A cheap content check of the offline rows: the row count and every column's sum
        (computed once, when a checkpoint first needs it)."""
        if self._fingerprint is None:
            sums = self.storage[: self.offline_size].sum(dim=0, dtype=torch.float64)
            self._fingerprint = [float(self.offline_size), *sums.cpu().tolist()]
        return self._fingerprint

    def state_dict(self) -> dict[str, Any]:
        """Generators, sizes and the online rows (the offline rows are the dataset)."""
        return {
            "generators": [g.get_state() for g in self.generators],
            "batch_size": self.batch_size,
            "offline_size": self.offline_size,
            "fingerprint": self.fingerprint,
            "online": self.storage[self.offline_size : self.size].cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["generators"]) != len(self.generators):
            raise ConfigError(
                f"checkpoint: its replay buffer draws for {len(state['generators'])} critic "
                f"groups, this run has {len(self.generators)}; resume with the same members"
            )
        if state["offline_size"] != self.offline_size or not np.allclose(
            state["fingerprint"], self.fingerprint, rtol=1e-9, atol=1e-6
        ):
            raise ConfigError(
                "checkpoint: its replay buffer was built on other offline data "
                f"({state['offline_size']} rows) than this run's ({self.offline_size}); resume "
                "with the dataset the run started from"
            )
        online = state["online"]
        count = int(online.shape[0])
        if self.offline_size + count > self.capacity:
            raise ConfigError(
                f"checkpoint: its replay buffer holds {count} online rows, more than this run's "
                f"online_steps ({self.capacity - self.offline_size}) allow"
            )
        for g, g_state in zip(self.generators, state["generators"]):
            g.set_state(g_state)
        self.storage[self.offline_size : self.offline_size + count] = online.to(self.device)
        self.size = self.offline_size + count
        self.size_t.fill_(self.size)
