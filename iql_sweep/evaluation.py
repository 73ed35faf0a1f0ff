"""Rollouts of the deterministic policy in a dataset's evaluation environment."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.registration import EnvSpec

from iql_sweep.data.minari_io import flatten_observations
from iql_sweep.data.normalization import normalized_score
from iql_sweep.data.transitions import Transitions
from iql_sweep.errors import DatasetError

ActFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EvalResult:
    """Returns of N seeded episodes, raw and D4RL-normalised (None without reference scores)."""

    returns: np.ndarray
    normalized: np.ndarray | None

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def normalized_score(self) -> float | None:
        return None if self.normalized is None else float(self.normalized.mean())

    @property
    def normalized_std(self) -> float | None:
        return None if self.normalized is None else float(self.normalized.std())

    def row(self) -> dict[str, float | None]:
        """The figures a metrics row records of an evaluation."""
        return {
            "normalized_score": self.normalized_score,
            "normalized_score_std": self.normalized_std,
            "return_mean": self.mean_return,
            "return_std": float(self.returns.std()),
        }


def env_spec_from_metadata(spec: str | EnvSpec | None, dataset_id: str) -> EnvSpec:
    """The dataset's evaluation env spec (Minari stores it as JSON)."""
    if spec is None:
        raise DatasetError(
            f"dataset {dataset_id!r} records no eval_env_spec or env_spec, so it cannot be "
            "evaluated; recreate it with an eval_env "
            "(minari.create_dataset_from_buffers(eval_env=...))"
        )
    if isinstance(spec, EnvSpec):
        return spec
    return EnvSpec.from_json(spec) if isinstance(spec, str) else EnvSpec(**json.loads(spec))


def dataset_env_spec(data: Transitions) -> EnvSpec:
    """The env a dataset is evaluated (and fine-tuned) in: its eval_env_spec, else env_spec;
    gymnasium-robotics' envs are registered first."""
    from iql_sweep.data.pointmaze import register_robotics_envs

    register_robotics_envs()
    meta = data.metadata
    return env_spec_from_metadata(
        meta.get("eval_env_spec") or meta.get("env_spec"), meta["dataset_id"]
    )


def to_env_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A policy action in [-1, 1] mapped affinely to the env's action box [low, high]."""
    return low + (action.astype(np.float64) + 1.0) * 0.5 * (high - low)


class Evaluator:
    """Runs ``episodes`` seeded episodes in ``num_envs`` synchronous vector envs, batching the
    policy's forward pass across envs; actions are mapped back to the env's action box."""

    def __init__(
        self,
        data: Transitions,
        episodes: int = 10,
        seed: int = 0,
        max_envs: int = 25,
    ):
        meta = data.metadata
        self.dataset_id = meta["dataset_id"]
        self.spec = dataset_env_spec(data)
        self.obs_space = meta["observation_space"]
        self.obs_keys = meta["obs_keys"]
        self.low = data.action_low.astype(np.float64)
        self.high = data.action_high.astype(np.float64)
        self.ref_min, self.ref_max = meta.get("ref_min_score"), meta.get("ref_max_score")
        self.episodes = episodes
        self.seed = seed
        self.num_envs = max(1, min(episodes, max_envs))
        spec = self.spec
        self.envs = gym.vector.SyncVectorEnv(
            [lambda: gym.make(spec) for _ in range(self.num_envs)],
            autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
        )

    def _to_env_action(self, action: np.ndarray) -> np.ndarray:
        return to_env_action(action, self.low, self.high)

    def __call__(self, act: ActFn, device: str | torch.device = "cpu") -> EvalResult:
        returns: list[float] = []
        for start in range(0, self.episodes, self.num_envs):
            seeds = [self.seed + start + i for i in range(self.num_envs)]
            obs, _ = self.envs.reset(seed=seeds)
            totals = np.zeros(self.num_envs)
            done = np.zeros(self.num_envs, dtype=bool)
            while not done.all():
                flat = flatten_observations(obs, self.obs_space, self.obs_keys)
                action = act(torch.as_tensor(flat, device=device)).cpu().numpy()
                obs, reward, terminated, truncated, _ = self.envs.step(
                    self._to_env_action(action.astype(np.float64))
                )
                totals += np.where(done, 0.0, reward)
                done |= terminated | truncated
            returns.extend(totals[: self.episodes - start].tolist())
        arr = np.asarray(returns)
        norm = None
        if self.ref_min is not None and self.ref_max is not None:
            norm = normalized_score(arr, self.ref_min, self.ref_max)
        return EvalResult(arr, norm)

    def close(self) -> None:
        self.envs.close()
