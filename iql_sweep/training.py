"""One IQL training run: data -> agent -> periodic evaluation, metrics files and checkpoints."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import closing, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from iql_sweep.checkpoint import (
    atomic_torch_save,
    load_checkpoint,
    restore_training_state,
    training_state,
)
from iql_sweep.data.minari_io import load_transitions
from iql_sweep.data.transitions import (
    BatchSampler,
    Transitions,
    preprocess_rewards,
    reward_transform,
)
from iql_sweep.errors import ConfigError, TrainingDivergedError
from iql_sweep.evaluation import Evaluator
from iql_sweep.iql.agent import METRIC_KEYS, IQLAgent
from iql_sweep.iql.config import IQLConfig, make_config, preset_for_dataset
from iql_sweep.iql.fast import FastAgent
from iql_sweep.online import OnlineCollector, ReplayBuffer
from iql_sweep.progress import step_progress

CHECKPOINT_NAME = "checkpoint.pt"


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; an unavailable CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"--device: unknown device {device!r}; use auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device: cuda was requested but no CUDA device is available; use cpu")
    return torch.device(device)


@dataclass
class RunSettings:
    """What one training run does besides the IQL hyper-parameters."""

    dataset_id: str
    steps: int
    eval_every: int
    eval_episodes: int
    seed: int = 0
    device: str = "auto"
    out_dir: Path | None = None
    checkpoint_every: int | None = None
    progress: bool = True
    online_steps: int = 0
    updates_per_env_step: int = 1
    compile: bool = False  # the fast path (iql_sweep.iql.fast) instead of the reference agent

    @property
    def total_updates(self) -> int:
        """Offline updates plus the fine-tuning phase's (``updates_per_env_step`` per step)."""
        return self.steps + self.online_steps * self.updates_per_env_step

    def validate(self) -> None:
        for name in ("steps", "eval_every", "eval_episodes", "updates_per_env_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')}: must be a positive integer (got {value!r})"
                )
        if not isinstance(self.online_steps, int) or self.online_steps < 0:
            raise ConfigError(
                f"--online-steps: must be 0 (offline only) or a positive number of environment "
                f"steps (got {self.online_steps!r})"
            )
        every = self.checkpoint_every
        if every is not None and (every < 1 or every % self.eval_every):
            raise ConfigError(
                f"checkpoint_every: must be a positive multiple of eval_every "
                f"({self.eval_every}); got {every}"
            )


@dataclass
class TrainSummary:
    """The outcome of a run: last and best normalised score and where the files are."""

    dataset_id: str
    steps: int
    final_score: float | None
    final_return: float
    best_score: float | None
    best_step: int
    updates_per_second: float
    wall_seconds: float
    out_dir: str | None
    history: list[dict[str, Any]] = field(default_factory=list)
    offline_score: float | None = None  # the last offline evaluation of a fine-tuning run
    fine_tuned: bool = False

    def line(self) -> str:
        def fmt(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.1f}"

        return (
            f"{self.dataset_id}: final normalized score {fmt(self.final_score)} "
            f"(return {self.final_return:.2f}) after {self.steps} steps; best "
            f"{fmt(self.best_score)} at step {self.best_step}; {self.updates_per_second:.0f} "
            f"updates/s, {self.wall_seconds:.0f} s"
            + (
                f"; offline score {fmt(self.offline_score)} -> fine-tuned {fmt(self.final_score)}"
                if self.fine_tuned
                else ""
            )
        )


def build_config(
    dataset_id: str, preset: str | None, steps: int, overrides: dict[str, Any]
) -> IQLConfig:
    """The dataset's preset (or the named one) with overrides; the run length sets max_steps."""
    return make_config(
        preset or preset_for_dataset(dataset_id), **{**overrides, "max_steps": steps}
    )


def prepare_data(data: Transitions, config: IQLConfig) -> Transitions:
    """Apply IQL's reward preprocessing and the action clip to ±(1 - 1e-5)."""
    rewards = preprocess_rewards(data, config.reward_norm, config.reward_shift)
    clipped = data.actions.clip(-config.action_clip, config.action_clip)
    return replace(data, rewards=rewards, actions=clipped)


class MetricsLog:
    """Evaluation rows as JSONL (appended) and CSV (rewritten), safe to resume."""

    def __init__(self, out_dir: Path | None):
        self.out_dir = out_dir
        self.rows: list[dict[str, Any]] = []

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Continue from the rows a checkpoint holds (later rows of a crashed run are dropped)."""
        self.rows = [dict(r) for r in rows]
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._rewrite()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.out_dir is not None:
            with open(self.out_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            pd.DataFrame(self.rows).to_csv(self.out_dir / "metrics.csv", index=False)

    def _rewrite(self) -> None:
        assert self.out_dir is not None
        with open(self.out_dir / "metrics.jsonl", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in self.rows)
        pd.DataFrame(self.rows).to_csv(self.out_dir / "metrics.csv", index=False)


def train(
    settings: RunSettings,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = True,
    data: Transitions | None = None,
    initial_state: dict[str, Any] | None = None,
    on_evaluation: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None,
) -> TrainSummary:
    """Train IQL on a local Minari dataset, evaluating every ``eval_every`` steps.

    With ``out_dir``, writes ``metrics.jsonl``/``metrics.csv``, ``config.json`` and an
    exact-resume ``checkpoint.pt`` (at every evaluation, or every ``checkpoint_every`` steps, and
    at the end); an existing checkpoint there is resumed when ``resume`` is true.
    ``initial_state`` resumes from a checkpoint held elsewhere (Ray Tune's);
    ``on_evaluation(row, state)`` is called after every evaluation, with the checkpoint state
    when one is due (else None).
    """
    settings.validate()
    total = settings.total_updates
    # With fine-tuning, the actor's cosine horizon spans both phases (it would otherwise reach
    # zero, and freeze the actor, when the online phase starts).
    config = build_config(settings.dataset_id, preset, total, overrides or {})
    device = resolve_device(settings.device)
    data = data if data is not None else load_transitions(settings.dataset_id)
    data = prepare_data(data, config)
    tensors = data.to_tensors(device)
    agent_class = FastAgent if settings.compile else IQLAgent
    agent = agent_class(data.obs_dim, data.act_dim, config, seed=settings.seed, device=device)
    collector: OnlineCollector | None = None
    if settings.online_steps:
        sampler: BatchSampler = ReplayBuffer(
            tensors, settings.online_steps, config.batch_size, seed=settings.seed
        )
        scale, shift = reward_transform(data, config.reward_norm, config.reward_shift)
        collector = OnlineCollector(
            data, settings.seed, scale, shift, config.action_clip, device=device
        )
    else:
        sampler = BatchSampler(tensors, config.batch_size, seed=settings.seed)
    evaluator = Evaluator(data, episodes=settings.eval_episodes, seed=settings.seed + 10_000)

    out = Path(settings.out_dir).resolve() if settings.out_dir is not None else None
    log = MetricsLog(out)
    if out is not None:
        resolved = config.model_dump(mode="json")
        if resume and (out / CHECKPOINT_NAME).is_file():
            state = load_checkpoint(out / CHECKPOINT_NAME)
            saved = state["agent"]["config"]
            if saved != resolved:
                changed = sorted(k for k, v in resolved.items() if saved.get(k) != v)
                raise ConfigError(
                    f"--out: {out} holds a checkpoint of a run with other hyper-parameters "
                    f"({', '.join(changed)}); resume with the same settings or use another --out"
                )
            initial_state = state
        out.mkdir(parents=True, exist_ok=True)
        run_info = {**asdict(settings), "out_dir": str(out)}
        preset_name = preset or preset_for_dataset(settings.dataset_id)
        (out / "config.json").write_text(
            json.dumps({"iql": resolved, "run": run_info, "preset": preset_name}, indent=2)
        )

    if initial_state is not None:
        extra = restore_training_state(initial_state, agent, sampler)
        log.restore(extra.get("rows", []))
        if collector is not None and "collector" in extra:
            assert isinstance(sampler, ReplayBuffer)
            collector.load_state_dict(extra["collector"], sampler)

    ckpt_every = settings.checkpoint_every or settings.eval_every
    sums = {k: torch.zeros((), device=device) for k in METRIC_KEYS}
    count = 0
    interval_start = time.perf_counter()
    wall_start = time.perf_counter()

    progress = step_progress(
        f"IQL {settings.dataset_id}", total - agent.step, enabled=settings.progress
    )
    returns_seen = len(collector.returns) if collector is not None else 0
    collector_closed = closing(collector) if collector is not None else nullcontext()
    with closing(evaluator), collector_closed, progress as advance:
        while agent.step < total:
            online = agent.step >= settings.steps
            if online:
                assert collector is not None and isinstance(sampler, ReplayBuffer)
                if (agent.step - settings.steps) % settings.updates_per_env_step == 0:
                    collector.step(agent, sampler)
            metrics = agent.update(sampler.sample())
            for k in METRIC_KEYS:
                sums[k] += metrics[k]
            count += 1
            step = agent.step
            is_eval = step % settings.eval_every == 0 or step in (settings.steps, total)
            info = None
            if is_eval:
                elapsed = time.perf_counter() - interval_start
                row = {
                    "step": step,
                    "phase": "online" if online else "offline",
                    **{k: float(v / count) for k, v in sums.items()},
                }
                if collector is not None:
                    new = collector.returns[returns_seen:]
                    returns_seen = len(collector.returns)
                    row["env_steps"] = collector.env_steps
                    row["buffer_size"] = sampler.size
                    row["online_return"] = sum(new) / len(new) if new else None
                bad = [k for k in METRIC_KEYS if not math.isfinite(row[k])]
                if bad:  # before any rollout: a NaN policy never reaches the simulator
                    raise TrainingDivergedError(
                        f"{settings.dataset_id}: {', '.join(bad)} became non-finite between steps "
                        f"{step - count} and {step}; the checkpoint from step {step - count} or "
                        "earlier is kept. Lower the learning rates or beta, or check the rewards"
                    )
                result = evaluator(agent.act, device)
                row.update(
                    **result.row(),
                    updates_per_second=count / max(elapsed, 1e-9),
                    wall_seconds=time.perf_counter() - wall_start,
                )
                log.append(row)
                score = result.normalized_score
                info = (
                    f"score {score:.1f}"
                    if score is not None
                    else f"return {result.mean_return:.1f}"
                )
                sums = {k: torch.zeros((), device=device) for k in METRIC_KEYS}
                count = 0
            if is_eval:
                state = None
                if step % ckpt_every == 0 or step in (settings.steps, total):
                    extra: dict[str, Any] = {"rows": log.rows}
                    if collector is not None:
                        extra["collector"] = collector.state_dict()
                    state = training_state(agent, sampler, extra)
                    if out is not None:
                        atomic_torch_save(state, out / CHECKPOINT_NAME)
                if on_evaluation is not None:
                    on_evaluation(row, state)
                interval_start = time.perf_counter()
            advance(1, info)
    return summarize(settings.dataset_id, log.rows, out, time.perf_counter() - wall_start)


def summarize(
    dataset_id: str, rows: list[dict[str, Any]], out: Path | None, wall: float
) -> TrainSummary:
    """Final and best scores from the evaluation rows."""
    if not rows:
        raise RuntimeError("the run recorded no evaluation")
    last = rows[-1]
    scored = [r for r in rows if r["normalized_score"] is not None]
    best = max(scored, key=lambda r: r["normalized_score"]) if scored else last
    ups = [r["updates_per_second"] for r in rows]
    offline = [r for r in rows if r.get("phase", "offline") == "offline"]
    fine_tuned = len(offline) < len(rows)
    return TrainSummary(
        dataset_id=dataset_id,
        steps=int(last["step"]),
        final_score=last["normalized_score"],
        final_return=float(last["return_mean"]),
        best_score=best["normalized_score"],
        best_step=int(best["step"]),
        updates_per_second=float(sorted(ups)[len(ups) // 2]) if ups else math.nan,
        wall_seconds=wall,
        out_dir=str(out) if out else None,
        history=rows,
        offline_score=offline[-1]["normalized_score"] if fine_tuned and offline else None,
        fine_tuned=fine_tuned,
    )
