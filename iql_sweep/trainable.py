"""The Ray Tune trial: one IQL training run that reports at every evaluation and checkpoints.

A trial's config (built by :mod:`iql_sweep.sweep`) holds ``dataset``, ``seed``, ``preset``,
``iql`` (overrides of IQL hyper-parameters, fixed and searched) and ``run`` (steps, evaluation
and checkpoint intervals). The checkpoint is the engine's exact-resume state, so a trial that
Ray restarts (retry after a failure, or ``iql-sweep resume``) continues where it stopped.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from iql_sweep.checkpoint import atomic_torch_save, load_checkpoint
from iql_sweep.iql.config import IQLConfig
from iql_sweep.training import RunSettings, build_config, train

CHECKPOINT_FILE = "iql_state.pt"


def resolved_config(config: dict[str, Any]) -> IQLConfig:
    """The full IQL config of a trial: the dataset's (or the named) preset plus overrides."""
    return build_config(
        config["dataset"], config.get("preset"), config["run"]["steps"], config.get("iql", {})
    )


def trial_device(config: dict[str, Any]) -> str:
    """CUDA when the trial was given a GPU share and one is visible, else the CPU."""
    gpus = float(config["run"].get("gpus_per_trial", 0.0))
    if gpus > 0 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpus))
        return "cuda"
    return "cpu"


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
    )
    initial_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            initial_state = load_checkpoint(Path(folder) / CHECKPOINT_FILE)

    def report(row: dict[str, Any], state: dict[str, Any] | None) -> None:
        metrics = dict(row)
        score = row["normalized_score"]
        metrics["score"] = score if score is not None else row["return_mean"]
        metrics["normalized_score"] = score if score is not None else float("nan")
        metrics["normalized_score_std"] = row["normalized_score_std"] or float("nan")
        # When this process entered the trial, and when its first update ran (setup = data
        # loading, agent and evaluator construction): the trial's start-up cost.
        metrics["trial_entry_unix"] = entered
        metrics["setup_seconds"] = time.time() - row["wall_seconds"] - entered
        metrics["node_id"] = node_id
        if state is None:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            atomic_torch_save(state, os.path.join(folder, CHECKPOINT_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    train(
        settings,
        preset=config.get("preset"),
        overrides=config.get("iql", {}),
        initial_state=initial_state,
        on_evaluation=report,
    )
