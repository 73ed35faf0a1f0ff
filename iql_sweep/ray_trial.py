"""The Ray Tune trial: one assembled run (a plain trial or a pack) through the training loop,
reporting to Tune at every evaluation and checkpointing in Tune's folders.

A trial's config is a :class:`~iql_sweep.trial_config.TrialConfig` (built by
:mod:`iql_sweep.sweep`). The checkpoint is the learner's exact-resume state, so a trial that Ray
restarts (a retry after a failure, or ``iql-sweep resume``) continues where it stopped.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from iql_sweep.checkpoint import (
    TUNE_FILE,
    CheckpointDamagedError,
    atomic_torch_save,
    load_checkpoint,
    load_latest_good,
)
from iql_sweep.loop import Evaluation
from iql_sweep.training import assemble, resolve_device
from iql_sweep.trial_config import TrialConfig


def trial_device(trial: TrialConfig) -> torch.device:
    """CUDA when the trial sees a GPU (Ray hides GPUs from trials given none), else the CPU;
    a fractional GPU share caps the trial's memory on the card."""
    device = resolve_device("auto")
    share = trial.run.gpus_per_trial
    if device.type == "cuda" and 0 < share < 1:
        torch.cuda.set_per_process_memory_fraction(share)
    return device


def tune_scores(row: dict[str, Any]) -> dict[str, Any]:
    """An evaluation row as Tune metrics: ``score`` is the normalised score, or the raw return
    for datasets without reference scores; missing normalised figures become NaN (Tune wants
    numbers)."""
    metrics = dict(row)
    score = row["normalized_score"]
    metrics["score"] = score if score is not None else row["return_mean"]
    metrics["normalized_score"] = score if score is not None else float("nan")
    metrics["normalized_score_std"] = row["normalized_score_std"] or float("nan")
    if "phase" in row:  # the phase also as a number W&B can chart
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
        atomic_torch_save(state, os.path.join(folder, TUNE_FILE))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def restored_state() -> dict[str, Any] | None:
    """The state saved in the checkpoint Tune restores this trial from (retry or resume); when
    that one is damaged, the newest good one among the trial's kept checkpoints."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        try:
            return load_checkpoint(Path(folder) / TUNE_FILE)
        except CheckpointDamagedError as err:
            damaged = str(err)
    trial_dir = Path(tune.get_context().get_trial_dir())
    candidates = sorted(trial_dir.glob(f"checkpoint_*/{TUNE_FILE}"), reverse=True)
    found = load_latest_good(candidates)
    if found is None:
        raise CheckpointDamagedError(damaged)
    state, path, _ = found
    print(f"iql-sweep: {damaged}; resuming from {path.parent.name}", file=sys.stderr)
    return state


class TuneSink:
    """Evaluations as Tune reports. A plain trial reports its row as is; a pack reports each
    member's under ``m<k>/`` (with ``m<k>/failed`` and ``m<k>/error``) and, for Tune's own
    bookkeeping, ``score`` = the best live member's."""

    def __init__(self, trial: TrialConfig, entered: float, node_id: str):
        self.trial, self.entered, self.node_id = trial, entered, node_id
        self.members = len(trial.members())

    def evaluation(self, result: Evaluation) -> None:
        # setup = time from entering the trial to its first update (data, learner, envs)
        wall = next((r["wall_seconds"] for r in result.rows.values()), 0.0)
        metrics: dict[str, Any] = {
            "step": result.step,
            "node_id": self.node_id,
            "trial_entry_unix": self.entered,
            "setup_seconds": time.time() - wall - self.entered,
        }
        if wall and result.step:  # the console table's ETA: this pace to the last update
            metrics["eta_s"] = round(wall / result.step * (self.trial.total_updates - result.step))
        if not self.trial.packed:
            metrics.update(tune_scores(result.rows[0]))
        else:
            scores = []
            for k in range(self.members):
                prefix = self.trial.metric_prefix(k)
                metrics[self.trial.failed_key(k)] = int(k in result.failed)
                metrics[self.trial.error_key(k)] = result.failed.get(k, "")
                if k in result.rows:
                    row = tune_scores(result.rows[k])
                    scores.append(row["score"])
                    metrics.update(
                        {prefix + key: value for key, value in row.items() if key != "step"}
                    )
            metrics["score"] = max(scores)
        report_to_tune(metrics, result.state)


def limit_to_trial_cpus(cpus: float) -> int:
    """torch's intra-op threads and inductor's compile workers limited to the trial's CPUs
    (up to 16 trials share a node; each would otherwise start a worker per core)."""
    threads = max(1, int(cpus))
    torch.set_num_threads(threads)
    import torch._inductor.config as inductor

    inductor.compile_threads = threads
    return threads


def iql_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable, for plain and packed trials alike."""
    entered = time.time()
    node_id = ray.get_runtime_context().get_node_id()  # which cluster node ran the trial
    trial = TrialConfig.model_validate(config)
    threads = limit_to_trial_cpus(trial.run.cpus_per_trial)
    run = assemble(trial, trial_device(trial))
    print(f"iql-sweep: {run.speed_line()}; {threads} compile worker(s)", flush=True)
    run.loop([TuneSink(trial, entered, node_id)]).run(restored_state())
