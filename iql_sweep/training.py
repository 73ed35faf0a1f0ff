"""Assembling a training run (data -> learner, evaluator, online collector) from its trial
configuration, and ``iql-sweep train``: one configuration, files in a run folder, resumable.

The Ray trials assemble their runs here too (:func:`assemble`); both then run the one loop
(:mod:`iql_sweep.loop`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from iql_sweep.checkpoint import CLI_FILE, load_latest_good
from iql_sweep.data.minari_io import load_transitions
from iql_sweep.data.transitions import Transitions, preprocess_rewards, reward_transform
from iql_sweep.errors import ConfigError
from iql_sweep.evaluation import Evaluator
from iql_sweep.files import atomic_write_text
from iql_sweep.iql.config import IQLConfig
from iql_sweep.iql.learner import IQLLearner, choose_speed
from iql_sweep.loop import FileSink, Sink, TrainingLoop
from iql_sweep.online import OnlineCollector
from iql_sweep.seeds import evaluation_seeds
from iql_sweep.trial_config import RunSettings, TrialConfig, TrialRun


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; an unavailable CUDA is an error. A CUDA
    device always comes with its index (``cuda`` is the current card), so warm-up, capture and
    replay all name the same card."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"--device: unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("--device: cuda was requested but no CUDA device is available; use cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"--device: {device!r} is not a device; use cuda:N") from None
    index = torch.cuda.current_device() if resolved.index is None else resolved.index
    if index >= torch.cuda.device_count():
        raise ConfigError(
            f"--device: {device} does not exist; this machine has {torch.cuda.device_count()} "
            f"CUDA device(s): cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    return torch.device("cuda", index)


def prepare_data(data: Transitions, config: IQLConfig) -> Transitions:
    """Apply IQL's reward preprocessing and the action clip to ±(1 - 1e-5)."""
    rewards = preprocess_rewards(data, config.reward_norm, config.reward_shift)
    clipped = data.actions.clip(-config.action_clip, config.action_clip)
    return replace(data, rewards=rewards, actions=clipped)


@dataclass
class AssembledRun:
    """Everything a training loop needs, built from a trial configuration."""

    trial: TrialConfig
    config: IQLConfig
    data: Transitions
    learner: IQLLearner
    evaluator: Evaluator
    collector: OnlineCollector | None
    speed_reason: str = ""

    def speed_line(self) -> str:
        """The console line saying which speed setting runs and why."""
        return f"speed: {self.learner.speed} ({self.speed_reason})"

    def loop(self, sinks: list[Sink], progress: bool = False) -> TrainingLoop:
        return TrainingLoop(
            self.trial, self.learner, self.evaluator, sinks, self.collector, progress
        )


def assemble(
    trial: TrialConfig, device: torch.device, data: Transitions | None = None
) -> AssembledRun:
    """Data, learner (K members, the speed the run asks for), batched evaluator and, for
    fine-tuning, the online collector."""
    problems = trial.problems()
    if problems:
        raise ConfigError("\n".join(problems))
    config = trial.base_config()
    members = trial.members(config)
    data = prepare_data(data if data is not None else load_transitions(trial.dataset), config)
    run = trial.run
    speed, reason = choose_speed(run.compile, device, run.total_updates, len(members))
    # before the learner is built or captured: a change mid-run would recompile in a capture
    torch.set_float32_matmul_precision(run.matmul_precision)
    learner = IQLLearner(
        data.obs_dim,
        data.act_dim,
        config,
        members,
        data.to_tensors("cpu"),  # the buffer copies them to the device column by column
        device=device,
        share_critics=run.share_critics,
        speed=speed,
        online_capacity=run.online_steps,
    )
    evaluator = Evaluator(
        data,
        episodes=run.eval_episodes,
        seeds=evaluation_seeds(m.seed for m in members),
        workers=run.evaluation_workers,
    )
    collector = None
    if run.online_steps:
        scale, shift = reward_transform(data, config.reward_norm, config.reward_shift)
        collector = OnlineCollector(
            data, members[0].seed, scale, shift, config.action_clip, device=device
        )
    return AssembledRun(trial, config, data, learner, evaluator, collector, reason)


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


def cli_trial(
    dataset_id: str,
    settings: RunSettings,
    seed: int = 0,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrialConfig:
    """The one trial configuration of ``iql-sweep train`` (one configuration, not packed),
    checked as a spec's trials are: pydantic's checks raise ``ValidationError``, the relations
    between fields and the learner's capabilities raise ``ConfigError`` naming the option."""
    trial = TrialConfig(
        dataset=dataset_id,
        seed=seed,
        preset=preset,
        iql={k: v for k, v in (overrides or {}).items() if v is not None},
        run=TrialRun(**settings.model_dump()),
    )
    problems = trial.run.problems("--") + trial.problems()  # the preset's schedule filled in
    if problems:
        raise ConfigError("\n".join(problems))
    trial.base_config()  # the preset and the IQL values: ConfigError naming the field
    return trial


def train(
    trial: TrialConfig,
    device: str = "auto",
    out_dir: Path | None = None,
    progress: bool = True,
    resume: bool = True,
    data: Transitions | None = None,
    sinks: tuple[Sink, ...] = (),
    notify: Callable[[str], None] = print,
    inform: Callable[[str], None] = print,
) -> TrainSummary:
    """Train ``trial`` (built once, by ``cli_trial``, and validated there as a spec's trials
    are) on its local dataset, evaluating every ``eval_every`` updates.

    With ``out_dir``: ``metrics.jsonl``/``metrics.csv``, ``config.json`` and an exact-resume
    ``checkpoint.pt`` (at every evaluation, or every ``checkpoint_every`` updates, and at the
    end); an existing checkpoint there is resumed when ``resume`` is true, and refused when it
    holds other hyper-parameters. A damaged checkpoint (checksum, truncation) is reported with
    ``notify`` and the previous good one resumed instead; ``inform`` gets the speed line."""
    run = assemble(trial, resolve_device(device), data)
    config = run.config
    all_sinks: list[Sink] = list(sinks)
    checkpoint = None
    out = Path(out_dir).resolve() if out_dir is not None else None
    if out is not None:
        resolved = config.model_dump(mode="json")
        latest = out / CLI_FILE
        found = (
            load_latest_good([latest, latest.with_name("checkpoint.prev.pt")]) if resume else None
        )
        if found is not None:
            checkpoint, used, skipped = found
            for reason in skipped:
                notify(f"{reason}; resuming from {used.name} instead")
            # fields added since the checkpoint was written take their defaults
            saved = IQLConfig(**checkpoint["config"]).model_dump(mode="json")
            if saved != resolved:
                changed = sorted(k for k, v in resolved.items() if saved.get(k) != v)
                raise ConfigError(
                    f"--out: {out} holds a checkpoint of a run with other hyper-parameters "
                    f"({', '.join(changed)}); resume with the same settings or use another --out"
                )
        out.mkdir(parents=True, exist_ok=True)
        files = FileSink(out)
        if checkpoint is not None:
            files.restore(checkpoint["loop"]["history"])
        all_sinks.insert(0, files)
        info = {
            "iql": resolved,
            "run": {
                **trial.run.model_dump(include=set(RunSettings.model_fields)),
                "dataset_id": trial.dataset,
                "seed": trial.seed,
                "device": device,
                "out_dir": str(out),
            },
            "preset": trial.preset_name,
            "speed": run.learner.speed,
            "speed_reason": run.speed_reason,
        }
        stats = run.learner.obs_stats
        if stats is not None:
            info["observation_stats"] = stats.state()
        atomic_write_text(out / "config.json", json.dumps(info, indent=2))
    inform(run.speed_line())
    result = run.loop(all_sinks, progress=progress).run(checkpoint)
    return summarize(trial.dataset, result.history[0], out, result.wall_seconds)


def summarize(
    dataset_id: str, rows: list[dict[str, Any]], out: Path | None, wall: float
) -> TrainSummary:
    """Final and best scores from one configuration's evaluation rows."""
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
