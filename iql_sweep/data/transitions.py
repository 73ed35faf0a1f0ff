"""Flat transition arrays, their checks and IQL's reward preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from iql_sweep.errors import DatasetError

ARRAY_FIELDS = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "terminals",
    "timeouts",
)


@dataclass(frozen=True)
class Transitions:
    """A dataset as flat float32 arrays (numpy), one row per transition.

    ``episode_starts[i]`` is the first row of episode i; ``episode_returns`` are the undiscounted
    per-episode sums of the (raw) rewards. Actions are in the policy's [-1, 1] box: datasets whose
    action space has other finite bounds are mapped affinely and ``action_low``/``action_high``
    give the way back.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_starts: np.ndarray
    episode_returns: np.ndarray
    action_low: np.ndarray
    action_high: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def num_episodes(self) -> int:
        return int(self.episode_starts.shape[0])

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(np.append(self.episode_starts, self.size))

    def to_tensors(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The six training arrays as float32 tensors on ``device``."""
        return {k: torch.as_tensor(getattr(self, k), device=device) for k in ARRAY_FIELDS}

    def with_rewards(self, rewards: np.ndarray) -> Transitions:
        return replace(self, rewards=rewards.astype(np.float32))


def validate(data: Transitions, dataset_id: str) -> None:
    """Refuse data that would train silently wrong: empty, non-finite, inconsistent shapes."""
    hint = f"dataset {dataset_id!r}"
    if data.size == 0:
        raise DatasetError(f"{hint} has no transitions; regenerate or re-download it")
    n = data.size
    for name in ARRAY_FIELDS:
        arr = getattr(data, name)
        if arr.shape[0] != n:
            raise DatasetError(f"{hint}: field {name!r} has {arr.shape[0]} rows, expected {n}")
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr.reshape(n, -1)).all(axis=1)).ravel()
            raise DatasetError(
                f"{hint}: field {name!r} holds {len(bad)} non-finite (NaN/inf) rows, first at "
                f"transition {int(bad[0])} (episode {_episode_of(data, int(bad[0]))}); clean the "
                "dataset or filter those episodes before training"
            )
    if np.any(np.abs(data.actions) > 1.0 + 1e-6):
        raise DatasetError(
            f"{hint}: actions fall outside the action space after mapping to [-1, 1]"
        )


def check_actions_in_space(actions: np.ndarray, low: np.ndarray, high: np.ndarray, hint: str):
    """Raise if any dataset action lies outside the declared Box (with a float tolerance)."""
    tol = 1e-5 * np.maximum(1.0, np.abs(high - low))
    outside = np.any((actions < low - tol) | (actions > high + tol), axis=1)
    if outside.any():
        first = int(np.argmax(outside))
        raise DatasetError(
            f"{hint}: field 'actions' has {int(outside.sum())} actions outside the action space "
            f"[{low.tolist()}, {high.tolist()}], first at transition {first} "
            f"({actions[first].tolist()}); the data and its declared action_space disagree"
        )


def _episode_of(data: Transitions, row: int) -> int:
    return int(np.searchsorted(data.episode_starts, row, side="right") - 1)


def reward_transform(
    data: Transitions, reward_norm: str, reward_shift: float
) -> tuple[float, float]:
    """IQL's reward preprocessing as ``r' = scale * r + shift``: locomotion scaling by
    1000 / (max - min episode return) of the offline data, then a constant shift (AntMaze's r - 1).
    Online fine-tuning applies the same (offline-data) transform to new rewards."""
    scale = 1.0
    if reward_norm == "return_range":
        spread = float(data.episode_returns.max() - data.episode_returns.min())
        if spread <= 0:
            raise DatasetError(
                "reward_norm 'return_range' needs episodes with different returns; all "
                f"{data.num_episodes} episodes return {data.episode_returns.max():.4g}. "
                "Use reward_norm: none for this dataset"
            )
        scale = 1000.0 / spread
    elif reward_norm != "none":
        raise DatasetError(
            f"reward_norm: unknown value {reward_norm!r}; use 'none' or 'return_range'"
        )
    return scale, float(reward_shift)


def preprocess_rewards(data: Transitions, reward_norm: str, reward_shift: float) -> np.ndarray:
    """The offline rewards after :func:`reward_transform`."""
    scale, shift = reward_transform(data, reward_norm, reward_shift)
    rewards = data.rewards.astype(np.float64)
    if scale != 1.0:
        rewards = rewards * scale
    return (rewards + shift).astype(np.float32)
