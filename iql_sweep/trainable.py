"""The Ray Tune trial: one IQL training run that reports at every evaluation and checkpoints.

A trial's config (built by :mod:`iql_sweep.sweep`) holds ``dataset``, ``seed``, ``preset``,
``iql`` (overrides of IQL hyper-parameters, fixed and searched) and ``run`` (steps, evaluation
and checkpoint intervals). The checkpoint is the engine's exact-resume state, so a trial that
Ray restarts (retry after a failure, or ``iql-sweep resume``) continues where it stopped.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from iql_sweep.checkpoint import atomic_torch_save, load_checkpoint
from iql_sweep.data.minari_io import load_transitions
from iql_sweep.errors import TrainingDivergedError
from iql_sweep.evaluation import Evaluator
from iql_sweep.iql.agent import METRIC_KEYS
from iql_sweep.iql.config import IQLConfig
from iql_sweep.iql.population import IQLPopulation, Member
from iql_sweep.training import RunSettings, build_config, prepare_data, train

CHECKPOINT_FILE = "iql_state.pt"


def resolved_config(config: dict[str, Any]) -> IQLConfig:
    """The full IQL config of a trial: the dataset's (or the named) preset plus overrides."""
    return build_config(
        config["dataset"], config.get("preset"), total_updates(config["run"]), config.get("iql", {})
    )


def total_updates(run: dict[str, Any]) -> int:
    """Offline steps plus the fine-tuning phase's updates (older trials have no online keys)."""
    online = int(run.get("online_steps", 0)) * int(run.get("updates_per_env_step", 1))
    return int(run["steps"]) + online


def trial_device(config: dict[str, Any]) -> str:
    """CUDA when the trial was given a GPU share and one is visible, else the CPU."""
    gpus = float(config["run"].get("gpus_per_trial", 0.0))
    if gpus > 0 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpus))
        return "cuda"
    return "cpu"


def tune_scores(row: dict[str, Any]) -> dict[str, Any]:
    """An evaluation row as Tune metrics: ``score`` is the normalised score, or the raw return
    for datasets without reference scores; missing normalised figures become NaN (Tune wants
    numbers)."""
    metrics = dict(row)
    score = row["normalized_score"]
    metrics["score"] = score if score is not None else row["return_mean"]
    metrics["normalized_score"] = score if score is not None else float("nan")
    metrics["normalized_score_std"] = row["normalized_score_std"] or float("nan")
    if "phase" in row:  # fine-tuning runs: the phase also as a number W&B can chart
        metrics["online_phase"] = int(row["phase"] == "online")
        if metrics.get("online_return") is None:
            metrics["online_return"] = float("nan")
    return metrics


def report_to_tune(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
    """``tune.report``, with ``state`` saved as the trial's checkpoint when given."""
    if state is None:
        tune.report(metrics)
        return
    with tempfile.TemporaryDirectory() as folder:
        atomic_torch_save(state, os.path.join(folder, CHECKPOINT_FILE))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def restored_state() -> dict[str, Any] | None:
    """The state saved in the checkpoint Tune restores this trial from (retry or resume)."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return load_checkpoint(Path(folder) / CHECKPOINT_FILE)


def trial_configurations(config: dict[str, Any]) -> list[tuple[int | None, IQLConfig, int]]:
    """(pack member index or None, resolved IQL config, seed) of every configuration a trial
    trains: one for a plain trial, one per member of a pack."""
    if "pack" not in config:
        return [(None, resolved_config(config), int(config["seed"]))]
    base, members = pack_members(config)
    return [
        (k, base.model_copy(update={"expectile": m.expectile, "beta": m.beta}), m.seed)
        for k, m in enumerate(members)
    ]


def iql_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable."""
    entered = time.time()
    node_id = ray.get_runtime_context().get_node_id()  # which cluster node ran the trial
    run = config["run"]
    torch.set_num_threads(max(1, int(run.get("cpus_per_trial", 1))))
    settings = RunSettings(
        dataset_id=config["dataset"],
        steps=int(run["steps"]),
        eval_every=int(run["eval_every"]),
        eval_episodes=int(run["eval_episodes"]),
        seed=int(config["seed"]),
        device=trial_device(config),
        checkpoint_every=run.get("checkpoint_every"),
        progress=False,
        online_steps=int(run.get("online_steps", 0)),
        compile=bool(run.get("compile", False)),
        updates_per_env_step=int(run.get("updates_per_env_step", 1)),
    )

    def report(row: dict[str, Any], state: dict[str, Any] | None) -> None:
        metrics = tune_scores(row)
        # When this process entered the trial, and when its first update ran (setup = data
        # loading, agent and evaluator construction): the trial's start-up cost.
        metrics["trial_entry_unix"] = entered
        metrics["setup_seconds"] = time.time() - row["wall_seconds"] - entered
        metrics["node_id"] = node_id
        report_to_tune(metrics, state)

    train(
        settings,
        preset=config.get("preset"),
        overrides=config.get("iql", {}),
        initial_state=restored_state(),
        on_evaluation=report,
    )


def pack_members(config: dict[str, Any]) -> tuple[IQLConfig, list[Member]]:
    """The shared config of a packed trial and its members (tau, beta, seed); a member without
    tau or beta takes the preset's."""
    overrides = {**config.get("iql", {}), **config["pack"].get("overrides", {})}
    base = build_config(config["dataset"], config.get("preset"), config["run"]["steps"], overrides)
    members = [
        Member(
            float(m.get("expectile", base.expectile)),
            float(m.get("beta", base.beta)),
            int(m.get("seed", config["seed"])),
        )
        for m in config["pack"]["members"]
    ]
    return base, members


def iql_pack_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable for a pack: K configurations trained as one population.

    Reports, at every evaluation, each member's metrics under ``m<k>/...`` and, for Tune's own
    bookkeeping, ``score`` = the best live member's. A member whose losses turn non-finite is
    marked failed (``m<k>/failed`` = 1, ``m<k>/error``) and no longer evaluated; the others go on
    untouched (their parameters never mix with its). The trial fails only when every member has.
    """
    entered = time.time()
    node_id = ray.get_runtime_context().get_node_id()
    run = config["run"]
    torch.set_num_threads(max(1, int(run.get("cpus_per_trial", 1))))
    base, members = pack_members(config)
    device = trial_device(config)
    data = prepare_data(load_transitions(config["dataset"]), base)
    population = IQLPopulation(
        data.obs_dim,
        data.act_dim,
        base,
        members,
        data.to_tensors(device),
        device=device,
        share_critics=bool(run.get("share_critics", True)),
        fast=bool(run.get("compile", False)),
    )
    evaluator = Evaluator(data, episodes=int(run["eval_episodes"]), seed=members[0].seed + 10_000)
    failed: dict[int, str] = {}
    state = restored_state()
    if state is not None:
        population.load_state_dict(state["population"])
        failed = {int(k): v for k, v in state["failed"].items()}
    steps, eval_every = int(run["steps"]), int(run["eval_every"])
    ckpt_every = int(run.get("checkpoint_every") or eval_every)
    sums = {k: torch.zeros(len(members), device=device) for k in METRIC_KEYS}
    count, interval_start, setup = 0, time.perf_counter(), time.time() - entered
    with closing(evaluator):
        while population.step < steps:
            for key, value in population.update(population.sample()).items():
                sums[key] += value.to(device)
            count += 1
            step = population.step
            if step % eval_every and step != steps:
                continue
            elapsed = time.perf_counter() - interval_start
            means = {k: (v / count).cpu() for k, v in sums.items()}
            metrics: dict[str, Any] = {"step": step, "node_id": node_id, "setup_seconds": setup}
            live_scores = []
            for k in range(len(members)):
                row = {key: float(means[key][k]) for key in METRIC_KEYS}
                bad = [key for key, value in row.items() if not math.isfinite(value)]
                if bad and k not in failed:
                    failed[k] = (
                        f"TrainingDivergedError: {', '.join(bad)} became non-finite by step {step}"
                    )
                prefix = f"m{k}/"
                metrics[prefix + "failed"] = int(k in failed)
                metrics[prefix + "error"] = failed.get(k, "")
                if k in failed:
                    continue
                result = evaluator(lambda o, k=k: population.act_member(o, k), device)
                row.update(
                    **result.row(),
                    updates_per_second=count / max(elapsed, 1e-9),
                )
                row = tune_scores(row)
                live_scores.append(row["score"])
                metrics.update({prefix + key: value for key, value in row.items()})
            if len(failed) == len(members):
                raise TrainingDivergedError(
                    f"every member of the pack diverged by step {step}: {failed[0]}"
                )
            metrics["score"] = max(live_scores)
            sums = {k: torch.zeros(len(members), device=device) for k in METRIC_KEYS}
            count = 0
            due = step % ckpt_every == 0 or step == steps
            state = {"population": population.state_dict(), "failed": failed} if due else None
            report_to_tune(metrics, state)
            interval_start = time.perf_counter()
