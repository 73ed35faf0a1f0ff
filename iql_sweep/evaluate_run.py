"""Evaluating a finished run again, later, with as many episodes as a paper's table wants.

A run folder of ``iql-sweep train``, a sweep trial's folder or a checkpoint file: its newest
checkpoint names the dataset, the configurations and their networks. Member ``k``'s episode
``i`` is seeded as during training (seed + the evaluation offset + i), so the first episodes
are the ones its last evaluation ran."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iql_sweep.checkpoint import CLI_FILE, TUNE_FILE, load_checkpoint
from iql_sweep.data.minari_io import load_transitions
from iql_sweep.errors import ConfigError
from iql_sweep.evaluation import Evaluator
from iql_sweep.iql.config import IQLConfig, Member
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.seeds import evaluation_seeds
from iql_sweep.training import resolve_device
from iql_sweep.trial_config import TrialConfig


@dataclass
class RunEvaluation:
    """Every evaluated member's episode returns (raw and normalised) and the rollout speed."""

    dataset: str
    checkpoint: Path
    step: int
    members: dict[int, Member]
    returns: dict[int, np.ndarray]
    normalized: dict[int, np.ndarray | None]
    env_steps: int
    seconds: float
    workers: int

    @property
    def env_steps_per_s(self) -> float:
        return self.env_steps / max(self.seconds, 1e-9)

    def to_json(self) -> dict[str, Any]:
        """``returns`` and ``normalized_scores`` per member and episode, ``env_steps_per_s``."""
        return {
            "dataset": self.dataset,
            "checkpoint": str(self.checkpoint),
            "step": self.step,
            "members": {str(k): m.model_dump() for k, m in self.members.items()},
            "returns": {str(k): r.tolist() for k, r in self.returns.items()},
            "normalized_scores": {
                str(k): None if n is None else n.tolist() for k, n in self.normalized.items()
            },
            "env_steps": self.env_steps,
            "env_steps_per_s": self.env_steps_per_s,
            "workers": self.workers,
        }


def find_checkpoint(path: Path) -> Path:
    """The newest checkpoint of a run folder, a trial folder, or ``path`` itself (a whole
    sweep's folder is refused by the CLI, which knows the experiment folder)."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise ConfigError(f"RUN_OR_CHECKPOINT: no such file or folder {path}")
    if (path / CLI_FILE).is_file():
        return path / CLI_FILE
    tune = sorted(path.glob(f"checkpoint_*/{TUNE_FILE}"))
    if tune:
        return tune[-1]
    raise ConfigError(
        f"RUN_OR_CHECKPOINT: {path} holds no checkpoint ({CLI_FILE}, or checkpoint_*/"
        f"{TUNE_FILE} in a sweep trial's folder)"
    )


def evaluate_run(
    path: Path,
    episodes: int,
    workers: int = 1,
    members: list[int] | None = None,
    device: str = "cpu",
) -> RunEvaluation:
    """``episodes`` episodes of each of ``members`` (default: all) of the run at ``path``."""
    if episodes < 1:
        raise ConfigError(f"--episodes: must be a positive integer (got {episodes})")
    if workers < 1:
        raise ConfigError(f"--workers: must be a positive integer (got {workers})")
    checkpoint = find_checkpoint(path)
    state = load_checkpoint(checkpoint)
    trial = TrialConfig(**state["trial"])
    chosen = list(range(len(state["members"]))) if members is None else members
    unknown = [k for k in chosen if not 0 <= k < len(state["members"])]
    if unknown:
        raise ConfigError(
            f"--members: {unknown} not in this run; it trains members 0 to "
            f"{len(state['members']) - 1}"
        )
    learner = IQLLearner.from_state(
        state["learner"], IQLConfig(**state["config"]), resolve_device(device)
    )
    seeds = evaluation_seeds(m.seed for m in learner.members)
    evaluator = Evaluator(load_transitions(trial.dataset), episodes, seeds, workers=workers)
    start = time.perf_counter()
    try:
        results = evaluator.evaluate(learner.act, chosen, learner.device)
        env_steps = evaluator.env_steps
    finally:
        evaluator.close()
    return RunEvaluation(
        dataset=trial.dataset,
        checkpoint=checkpoint,
        step=learner.step,
        members={k: learner.members[k] for k in chosen},
        returns={k: results[k].returns for k in chosen},
        normalized={k: results[k].normalized for k in chosen},
        env_steps=env_steps,
        seconds=time.perf_counter() - start,
        workers=workers,
    )
