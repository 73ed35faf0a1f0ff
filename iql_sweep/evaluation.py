"""Rollouts of the deterministic policy in a dataset's evaluation environment."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from gymnasium.envs.registration import EnvSpec

from iql_sweep.data.minari_io import flatten_observations
from iql_sweep.data.normalization import normalized_score
from iql_sweep.data.transitions import Transitions
from iql_sweep.env_pool import MIN_STEP_SECONDS_TO_SPREAD, EnvPool, step_seconds
from iql_sweep.envs import register_robotics_envs
from iql_sweep.errors import DatasetError

logger = logging.getLogger(__name__)

ActFn = Callable[[torch.Tensor], torch.Tensor]
#: The deterministic policy of several members: (obs ``[m, E, obs]``, member indices) -> actions.
MembersActFn = Callable[[torch.Tensor, list[int]], torch.Tensor]


class EvaluationStopped(Exception):
    """An evaluation given up part-way (its run stopped while it was in flight)."""


@dataclass(frozen=True)
class EvalResult:
    """Returns of N seeded episodes, raw and normalised (None without a score to normalise
    by): D4RL's reference-score normalisation, or, for data scored by success (OGBench), each
    episode's success at its last step × 100."""

    returns: np.ndarray
    normalized: np.ndarray | None
    successes: np.ndarray | None = None  # 1/0 per episode, for data scored by success

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
        row = {
            "normalized_score": self.normalized_score,
            "normalized_score_std": self.normalized_std,
            "return_mean": self.mean_return,
            "return_std": float(self.returns.std()),
        }
        if self.successes is not None:
            row["success_rate"] = float(self.successes.mean())
        return row


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
    """The env a dataset is evaluated (and fine-tuned) in: its eval_env_spec, else env_spec,
    in the data's maze (:func:`same_maze`); gymnasium-robotics' envs are registered first."""
    register_robotics_envs()
    meta = data.metadata
    spec = env_spec_from_metadata(
        meta.get("eval_env_spec") or meta.get("env_spec"), meta["dataset_id"]
    )
    if meta.get("eval_env_spec") and meta.get("env_spec"):
        data_spec = env_spec_from_metadata(meta["env_spec"], meta["dataset_id"])
        spec = same_maze(meta["dataset_id"], data_spec, spec)
    return spec


_FLIPS: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("", lambda cells: cells),
    ("upside down", np.flipud),
    ("left to right", np.fliplr),
    ("turned half a turn", lambda cells: cells[::-1, ::-1]),
)


def _fits(data_map: np.ndarray, candidate: np.ndarray) -> bool:
    """The same walls, and the data's goal and reset cells (where its map marks any)."""
    if data_map.shape != candidate.shape or ((data_map == 1) != (candidate == 1)).any():
        return False
    return all(
        ((data_map == mark) == (candidate == mark)).all()
        for mark in ("g", "r", "c")
        if (data_map == mark).any()
    )


def same_maze(dataset_id: str, data_spec: EnvSpec, eval_spec: EnvSpec) -> EnvSpec:
    """The evaluation env in the data's maze. Minari's ports can record an evaluation
    ``maze_map`` flipped against the data's (Minari issue #304, D4RL/antmaze/umaze-diverse-v1):
    a flip is undone, with a warning that says so; a maze with other walls or goals is refused.
    Envs without a ``maze_map`` on both sides pass unchanged."""
    data_map = (data_spec.kwargs or {}).get("maze_map")
    eval_map = (eval_spec.kwargs or {}).get("maze_map")
    if data_map is None or eval_map is None:
        return eval_spec
    data_cells = np.array(data_map, dtype=object)
    eval_cells = np.array(eval_map, dtype=object)
    for how, flip in _FLIPS:
        candidate = flip(eval_cells)
        if not _fits(data_cells, candidate):
            continue
        if not how:
            return eval_spec
        logger.warning(
            "%s: the evaluation env's maze_map is the data's flipped %s (Minari issue #304); "
            "evaluating in the data's maze, the goal and reset cells flipped with it",
            dataset_id,
            how,
        )
        return replace(eval_spec, kwargs={**eval_spec.kwargs, "maze_map": candidate.tolist()})
    raise DatasetError(
        f"{dataset_id}: the evaluation env's maze_map has other walls or goal cells than the "
        "data's env (not a flip of it either), so evaluation would run another task; fix the "
        "dataset's eval_env_spec (its maze_map) to the data's maze"
    )


def to_env_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A policy action in [-1, 1] mapped affinely to the env's action box [low, high]."""
    return low + (action.astype(np.float64) + 1.0) * 0.5 * (high - low)


@dataclass(frozen=True, eq=False)
class EnvAdapter:
    """Between a dataset and its environment, for evaluation and fine-tuning alike: which env,
    its observations flattened as the dataset's are, and policy actions in [-1, 1] mapped to
    the env's action box (the one the dataset records)."""

    dataset_id: str
    spec: EnvSpec
    obs_space: Any
    obs_keys: list[str]
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_data(cls, data: Transitions) -> EnvAdapter:
        meta = data.metadata
        return cls(
            dataset_id=meta["dataset_id"],
            spec=dataset_env_spec(data),
            obs_space=meta["observation_space"],
            obs_keys=meta["obs_keys"],
            low=data.action_low.astype(np.float64),
            high=data.action_high.astype(np.float64),
        )

    def flatten(self, obs: Any) -> np.ndarray:
        """A vector env's batch of observations as the dataset's flat rows ``[N, obs]``."""
        return flatten_observations(obs, self.obs_space, self.obs_keys)

    def flatten_one(self, obs: Any) -> np.ndarray:
        """One env's observation as one flat row."""
        return self.flatten(_batch_of_one(obs))[0]

    def to_env(self, action: np.ndarray) -> np.ndarray:
        """Policy actions (any leading shape) in the env's action box."""
        return to_env_action(action, self.low, self.high)


def _batch_of_one(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: _batch_of_one(v) for k, v in obs.items()}
    return np.asarray(obs)[None]


class Evaluator:
    """Seeded episodes of one or many policies, the environments stepped together in
    ``workers`` processes (:class:`~iql_sweep.env_pool.EnvPool`; 1: in this process), when one
    step costs at least ``min_step_seconds`` (measured once; cheaper ones stay in-process).

    A pack's members are evaluated together: every environment step is one batched policy
    forward over all (member, episode) pairs of a round (up to ``max_envs`` envs, at most
    ``max_envs_per_member`` per member). Member ``k``'s episode ``i`` is reset with seed
    ``seeds[k] + i``, the seeds a solo run of that member uses, whichever worker steps it, so
    returns do not depend on ``workers``; actions are mapped back to the env's action box."""

    def __init__(
        self,
        data: Transitions,
        episodes: int = 10,
        seeds: Sequence[int] = (0,),
        max_envs: int = 200,
        max_envs_per_member: int = 25,
        workers: int = 1,
        min_step_seconds: float = MIN_STEP_SECONDS_TO_SPREAD,
    ):
        meta = data.metadata
        self.adapter = EnvAdapter.from_data(data)
        self.dataset_id = self.adapter.dataset_id
        self.ref_min, self.ref_max = meta.get("ref_min_score"), meta.get("ref_max_score")
        #: "success_rate": the normalised score is the success rate x 100 (OGBench)
        self.score_kind = meta.get("score_kind", "reference_scores")
        self.episodes = episodes
        self.seeds = list(seeds)
        self.workers = max(1, int(workers))
        self.min_step_seconds = min_step_seconds
        self._spread: bool | None = None  # decided once, on the first pool
        #: environment steps of live episodes so far (the rollouts' work, for steps/s)
        self.env_steps = 0
        self.max_envs, self.max_envs_per_member = max_envs, max_envs_per_member
        self._envs: dict[int, EnvPool] = {}

    def _vector(self, size: int) -> EnvPool:
        if size not in self._envs:
            if self._spread is None:  # workers only for environments slow enough to pay back
                self._spread = self.workers > 1 and (
                    self.min_step_seconds <= 0
                    or step_seconds(self.adapter.spec) >= self.min_step_seconds
                )
            workers = self.workers if self._spread else 1
            self._envs[size] = EnvPool(self.adapter.spec, size, workers)
        return self._envs[size]

    def _round(
        self,
        act: MembersActFn,
        members: list[int],
        start: int,
        e: int,
        device,
        stop: threading.Event | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Episodes ``start..start+e`` of ``members`` at once: returns and successes (NaN where
        the environment reports none), each ``[len(members), e]``."""
        envs = self._vector(len(members) * e)
        seeds = [self.seeds[k] + start + i for k in members for i in range(e)]
        obs = envs.reset(seeds)
        totals = np.zeros(len(seeds))
        success = np.full(len(seeds), np.nan)
        done = np.zeros(len(seeds), dtype=bool)
        while not done.all():
            if stop is not None and stop.is_set():
                raise EvaluationStopped("the evaluation was stopped before its episodes ended")
            self.env_steps += int((~done).sum())
            flat = self.adapter.flatten(obs)
            batch = torch.as_tensor(flat, device=device).view(len(members), e, -1)
            action = act(batch, members).reshape(len(seeds), -1).cpu().numpy()
            obs, reward, terminated, truncated, succeeded = envs.step(
                self.adapter.to_env(action.astype(np.float64))
            )
            totals += np.where(done, 0.0, reward)
            success = np.where(done, success, succeeded)  # as at each episode's last step
            done |= terminated | truncated
        shape = (len(members), e)
        return totals.reshape(shape), success.reshape(shape)

    def evaluate(
        self,
        act: MembersActFn,
        members: Sequence[int],
        device: str | torch.device = "cpu",
        episodes: int | None = None,
        stop: threading.Event | None = None,
    ) -> dict[int, EvalResult]:
        """Every member's ``episodes`` episodes (default: the evaluator's); ``act(obs [m, E,
        obs], members) -> [m, E, act]`` is the members' deterministic policy. Episode ``i`` is
        the same whatever the number asked, so a smaller evaluation is a prefix of a larger.
        Once ``stop`` is set, the next environment step raises :class:`EvaluationStopped`."""
        episodes = episodes or self.episodes
        per_member = max(1, min(episodes, self.max_envs_per_member))
        members_per_round = max(1, self.max_envs // per_member)
        members = list(members)
        returns: dict[int, list[float]] = {k: [] for k in members}
        successes: dict[int, list[float]] = {k: [] for k in members}
        for first in range(0, len(members), members_per_round):
            chunk = members[first : first + members_per_round]
            for start in range(0, episodes, per_member):
                totals, success = self._round(act, chunk, start, per_member, device, stop)
                for row, k in enumerate(chunk):
                    returns[k].extend(totals[row, : episodes - start].tolist())
                    successes[k].extend(success[row, : episodes - start].tolist())
        return {k: self._result(np.asarray(returns[k]), np.asarray(successes[k])) for k in members}

    def __call__(self, act: ActFn, device: str | torch.device = "cpu") -> EvalResult:
        """One policy ``act(obs [N, obs]) -> [N, act]``, with the first seed."""
        return self.evaluate(lambda obs, _: act(obs[0])[None], [0], device)[0]

    def _result(self, returns: np.ndarray, successes: np.ndarray) -> EvalResult:
        reported = None if np.isnan(successes).any() else successes
        if self.score_kind == "success_rate":
            if reported is None:
                raise DatasetError(
                    f"{self.dataset_id}: scored by success rate, but its evaluation env "
                    "reports no info['success'] at an episode's end"
                )
            return EvalResult(returns, 100.0 * reported, reported)
        norm = None
        if self.ref_min is not None and self.ref_max is not None:
            norm = normalized_score(returns, self.ref_min, self.ref_max)
        return EvalResult(returns, norm)

    def close(self) -> None:
        for envs in self._envs.values():
            envs.close()
        self._envs.clear()
