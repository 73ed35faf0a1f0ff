"""Online fine-tuning after offline training: the collector that steps the environment and grows
the learner's replay buffer (:class:`~iql_sweep.iql.replay.ReplayBuffer`), which starts as the
offline data.

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

from iql_sweep.data.transitions import Transitions
from iql_sweep.evaluation import EnvAdapter
from iql_sweep.iql.replay import ReplayBuffer
from iql_sweep.seeds import ACTION_SEED_OFFSET, EPISODE_SEED_OFFSET


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
        self.adapter = EnvAdapter.from_data(data)
        self.dataset_id = self.adapter.dataset_id
        self.env = gym.make(self.adapter.spec)
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

    def _reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self.seed + EPISODE_SEED_OFFSET + self.episode)
        return self.adapter.flatten_one(obs)

    def step(self, learner, buffer: ReplayBuffer) -> None:
        """One environment step with an action sampled from the learner's (only) policy."""
        if self.obs is None:
            self.obs = self._reset()
            self.episode_start = buffer.size
            self.episode_return = 0.0
        obs_t = torch.as_tensor(self.obs, device=learner.device)[None]
        action = learner.sample_actions(obs_t, 0, self.generator)[0].cpu().numpy()
        action = np.clip(action, -self.action_clip, self.action_clip).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = self.env.step(self.adapter.to_env(action))
        flat_next = self.adapter.flatten_one(next_obs)
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
        rows = buffer.raw_rows(self.episode_start, buffer.size)
        actions = rows["actions"].cpu().numpy()
        for action in actions:
            raw, *_ = self.env.step(self.adapter.to_env(action))
            obs = self.adapter.flatten_one(raw)
        saved = rows["next_observations"][-1].cpu().numpy()
        if len(actions) and not np.allclose(obs, saved, rtol=1e-5, atol=1e-5):
            raise RuntimeError(
                f"{self.dataset_id}: replaying the interrupted episode did not reproduce its "
                "last observation; the environment is not deterministic, so this fine-tuning "
                "run cannot resume exactly mid-episode"
            )
        # the replayed observation itself: the stored one may be normalised (float32 rounding)
        self.obs = np.asarray(obs, dtype=np.float32)

    def close(self) -> None:
        self.env.close()
