"""Observation normalisation (``IQLConfig.normalize_observations``): every observation dimension
shifted by the offline dataset's mean and divided by its standard deviation plus 1e-3, as CORL's
IQL does in all its configurations (the official IQL does not normalise).

The statistics come from the offline observations once, in float64, and are kept as float32.
They are applied once to the stored training rows (so an update, eager, compiled or captured,
costs nothing more), to every row added online, and to the policy's and the value function's
inputs; they travel in checkpoints, ``config.json`` and the W&B config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

#: Added to each dimension's standard deviation (CORL's ``eps``): a constant dimension stays finite.
STD_EPS = 1e-3


@dataclass(frozen=True)
class ObservationStats:
    """Per-dimension mean and scale (std + :data:`STD_EPS`) of a dataset's observations."""

    mean: np.ndarray
    std: np.ndarray
    _moments: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, observations: np.ndarray) -> ObservationStats:
        """The statistics of ``observations [N, obs]`` (computed in float64)."""
        obs = np.asarray(observations, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[0] == 0:
            raise ValueError(
                f"observation statistics need a non-empty [N, obs] array, got {obs.shape}"
            )
        mean = obs.mean(axis=0)
        std = obs.std(axis=0) + STD_EPS
        return cls(mean.astype(np.float32), std.astype(np.float32))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def moments(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std as float32 tensors on ``device``, copied there once (acting normalises
        at every environment step)."""
        if device not in self._moments:
            self._moments[device] = (
                torch.as_tensor(self.mean, device=device),
                torch.as_tensor(self.std, device=device),
            )
        return self._moments[device]

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """``(obs - mean) / std`` of float32 ``obs`` on its device, over its last dimension."""
        mean, std = self.moments(obs.device)
        return (obs - mean) / std

    def denormalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalised observations back in the environment's units (float32 rounding aside)."""
        mean, std = self.moments(obs.device)
        return obs * std + mean

    def state(self) -> dict[str, list[float]]:
        """Plain lists, for checkpoints, ``config.json`` and the W&B config."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> ObservationStats | None:
        if state is None:
            return None
        return cls(
            np.asarray(state["mean"], dtype=np.float32), np.asarray(state["std"], dtype=np.float32)
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ObservationStats)
            and np.array_equal(self.mean, other.mean)
            and np.array_equal(self.std, other.std)
        )

    __hash__ = None  # type: ignore[assignment]
