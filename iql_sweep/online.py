"""Online fine-tuning after offline training: a replay buffer that starts as the offline data and
grows with environment interaction, and the collector that steps the environment.

The paper's protocol: after offline pre-training, the same IQL losses go on, on a buffer holding
the offline transitions plus every new one; one environment step (an action sampled from the
stochastic policy) is followed by ``updates_per_env_step`` gradient updates (one by default).
Online rewards get the offline data's reward transform (locomotion scale, AntMaze shift).

Exact resume: the buffer's offline rows are the dataset (reloaded, checked by a fingerprint); its
online rows, the sampler's generator, and the collector's episode counters and action generator
are saved. An episode cut by a checkpoint is rebuilt on restore by resetting the environment with
that episode's seed and replaying its recorded actions (MuJoCo is deterministic); the rebuilt
observation is checked against the saved one, so a non-deterministic environment is an error,
never a silent divergence.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from iql_sweep.data.minari_io import flatten_observations
from iql_sweep.data.transitions import ARRAY_FIELDS, BatchSampler, Transitions
from iql_sweep.errors import ConfigError
from iql_sweep.evaluation import dataset_env_spec, to_env_action

#: Offsets that keep the online streams apart from the sampler and the evaluation episodes.
ACTION_SEED_OFFSET = 20_000
EPISODE_SEED_OFFSET = 30_000


class ReplayBuffer(BatchSampler):
    """Uniform minibatches over the offline rows followed by the online rows added so far.

    Storage is preallocated for ``capacity_extra`` online rows on the data's device. Until the
    first :meth:`add` it samples exactly as a :class:`BatchSampler` over the offline data (same
    generator draws), so a run's offline phase does not depend on a later fine-tuning phase.
    """

    def __init__(
        self,
        offline: dict[str, torch.Tensor],
        capacity_extra: int,
        batch_size: int,
        seed: int = 0,
    ):
        n = int(offline["rewards"].shape[0])
        storage = {}
        for key, value in offline.items():
            extra = torch.zeros((capacity_extra, *value.shape[1:]), dtype=value.dtype)
            storage[key] = torch.cat([value, extra.to(value.device)])
        super().__init__(storage, batch_size, seed)
        self.offline_size = n
        self.size = n
        self.capacity = n + capacity_extra
        self.fingerprint = _fingerprint(offline)

    @property
    def online_size(self) -> int:
        return self.size - self.offline_size

    def add(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: float,
        next_obs: np.ndarray,
        terminal: bool,
        timeout: bool,
    ) -> None:
        """Append one transition (policy-space action, transformed reward)."""
        if self.size >= self.capacity:
            raise RuntimeError(f"replay buffer is full ({self.capacity} rows)")
        row = {
            "observations": obs,
            "actions": action,
            "rewards": reward,
            "next_observations": next_obs,
            "terminals": float(terminal),
            "timeouts": float(timeout),
        }
        for key in ARRAY_FIELDS:
            self.tensors[key][self.size] = torch.as_tensor(row[key], dtype=torch.float32)
        self.size += 1

    def online_rows(self, key: str) -> torch.Tensor:
        return self.tensors[key][self.offline_size : self.size]

    def state_dict(self) -> dict[str, Any]:
        """The sampler's state plus the online rows (the offline rows are the dataset)."""
        return {
            **super().state_dict(),
            "offline_size": self.offline_size,
            "fingerprint": self.fingerprint,
            "online": {k: self.online_rows(k).cpu().clone() for k in ARRAY_FIELDS},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        online = state.get("online")
        if online is None:  # a checkpoint from an offline-only run: nothing was added
            return
        if state["offline_size"] != self.offline_size or state["fingerprint"] != self.fingerprint:
            raise ConfigError(
                "checkpoint: its replay buffer was built on other offline data "
                f"({state['offline_size']} rows) than this run's ({self.offline_size}); resume "
                "with the dataset the run started from"
            )
        count = int(online["rewards"].shape[0])
        if self.offline_size + count > self.capacity:
            raise ConfigError(
                f"checkpoint: its replay buffer holds {count} online rows, more than this run's "
                f"online_steps ({self.capacity - self.offline_size}) allow"
            )
        for key in ARRAY_FIELDS:
            end = self.offline_size + count
            self.tensors[key][self.offline_size : end] = online[key].to(self.device)
        self.size = self.offline_size + count


def _fingerprint(tensors: dict[str, torch.Tensor]) -> list[float]:
    """A cheap content check of the offline rows (sums per field and the row count)."""
    return [float(tensors["rewards"].shape[0])] + [
        float(tensors[k].double().sum()) for k in ARRAY_FIELDS
    ]


class OnlineCollector:
    """Steps one environment (the dataset's evaluation env) with the stochastic policy and writes
    each transition into a :class:`ReplayBuffer`.

    Episode ``i`` is reset with seed ``seed + 30000 + i``; actions are sampled with a generator
    seeded ``seed + 20000``. Returns of finished episodes are kept (raw environment reward).
    """

    def __init__(
        self,
        data: Transitions,
        seed: int,
        reward_scale: float,
        reward_shift: float,
        action_clip: float,
        device: str | torch.device = "cpu",
    ):
        meta = data.metadata
        self.dataset_id = meta["dataset_id"]
        self.env = gym.make(dataset_env_spec(data))
        self.obs_space = meta["observation_space"]
        self.obs_keys = meta["obs_keys"]
        self.low = data.action_low.astype(np.float64)
        self.high = data.action_high.astype(np.float64)
        self.seed = seed
        self.reward_scale, self.reward_shift = reward_scale, reward_shift
        self.action_clip = action_clip
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed + ACTION_SEED_OFFSET)
        self.episode = 0
        self.env_steps = 0
        self.obs: np.ndarray | None = None  # None between episodes
        self.episode_start = 0  # buffer row of the current episode's first transition
        self.episode_return = 0.0
        self.returns: list[float] = []

    def _flat(self, obs: Any) -> np.ndarray:
        return flatten_observations(_nested_batch(obs), self.obs_space, self.obs_keys)[0]

    def _to_env_action(self, action: np.ndarray) -> np.ndarray:
        return to_env_action(action, self.low, self.high)

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self.seed + EPISODE_SEED_OFFSET + self.episode)
        return self._flat(obs)

    def step(self, agent, buffer: ReplayBuffer) -> None:
        """One environment step with an action sampled from ``agent``'s policy."""
        if self.obs is None:
            self.obs = self._reset()
            self.episode_start = buffer.size
            self.episode_return = 0.0
        obs_t = torch.as_tensor(self.obs, device=agent.device)[None]
        action = agent.sample_actions(obs_t, self.generator)[0].cpu().numpy()
        action = np.clip(action, -self.action_clip, self.action_clip).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = self.env.step(self._to_env_action(action))
        flat_next = self._flat(next_obs)
        buffer.add(
            self.obs,
            action,
            float(reward) * self.reward_scale + self.reward_shift,
            flat_next,
            bool(terminated),
            bool(truncated),
        )
        self.env_steps += 1
        self.episode_return += float(reward)
        if terminated or truncated:
            self.returns.append(self.episode_return)
            self.episode += 1
            self.obs = None
        else:
            self.obs = flat_next

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "episode": self.episode,
            "env_steps": self.env_steps,
            "in_episode": self.obs is not None,
            "episode_start": self.episode_start,
            "episode_return": self.episode_return,
            "returns": list(self.returns),
        }

    def load_state_dict(self, state: dict[str, Any], buffer: ReplayBuffer) -> None:
        """Restore counters, and rebuild an episode in progress by replaying its actions."""
        self.generator.set_state(state["generator"])
        self.episode = int(state["episode"])
        self.env_steps = int(state["env_steps"])
        self.episode_start = int(state["episode_start"])
        self.episode_return = float(state["episode_return"])
        self.returns = [float(r) for r in state["returns"]]
        self.obs = None
        if not state["in_episode"]:
            return
        obs = self._reset()
        actions = buffer.tensors["actions"][self.episode_start : buffer.size].cpu().numpy()
        for action in actions:
            raw, *_ = self.env.step(self._to_env_action(action))
            obs = self._flat(raw)
        saved = buffer.tensors["next_observations"][buffer.size - 1].cpu().numpy()
        if len(actions) and not np.allclose(obs, saved, atol=1e-5):
            raise RuntimeError(
                f"{self.dataset_id}: replaying the interrupted episode did not reproduce its "
                "last observation; the environment is not deterministic, so this fine-tuning "
                "run cannot resume exactly mid-episode"
            )
        self.obs = saved.astype(np.float32)

    def close(self) -> None:
        self.env.close()


def _nested_batch(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: _nested_batch(v) for k, v in obs.items()}
    return np.asarray(obs)[None]
