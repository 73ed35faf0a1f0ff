"""Uploading a sweep's offline W&B runs (one per configuration, hundreds in a packed sweep) in
parallel: ``wandb sync`` per run in a bounded pool, runs already synced skipped, every failure
reported with W&B's own reason.

``wandb sync`` exits 0 even when the server refuses a run; its ``wandb: ERROR`` lines are what
tells, so they decide the outcome.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from iql_sweep.errors import ConfigError


@dataclass
class SyncResult:
    run: Path
    ok: bool
    reason: str = ""


def offline_runs(experiment: Path, force: bool = False) -> list[Path]:
    """The experiment's offline run folders not yet synced (all of them with ``force``)."""
    folder = Path(experiment).resolve() / "wandb"
    if not folder.is_dir():
        raise ConfigError(f"EXPERIMENT_DIR: {experiment} holds no W&B runs (no wandb/ folder)")
    runs = sorted(p for p in folder.glob("offline-run-*") if p.is_dir())
    if force:
        return runs
    return [r for r in runs if not any(r.glob("*.wandb.synced"))]


def _wandb_command() -> list[str]:
    beside = Path(sys.executable).parent / "wandb"
    found = str(beside) if beside.exists() else shutil.which("wandb")
    if found is None:
        raise ConfigError("wandb: the W&B command line is not installed in this environment")
    return [found]


def sync_run(run: Path, timeout: float) -> SyncResult:
    """``wandb sync RUN``; failed when it exits non-zero, times out or prints an error."""
    try:
        done = subprocess.run(
            [*_wandb_command(), "sync", str(run)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "WANDB_SILENT": "false"},
        )
    except subprocess.TimeoutExpired:
        return SyncResult(run, False, f"no answer within {timeout:g} s")
    output = (done.stdout + done.stderr).splitlines()
    errors = [line.split("ERROR", 1)[1].strip() for line in output if "ERROR" in line]
    if done.returncode != 0 or errors:
        reason = errors[0] if errors else (output[-1] if output else f"exit {done.returncode}")
        return SyncResult(run, False, reason[:300])
    return SyncResult(run, True)


def sync_experiment(
    experiment: Path,
    workers: int = 8,
    timeout: float = 600.0,
    force: bool = False,
    on_done=None,
) -> list[SyncResult]:
    """Sync every offline run of the experiment, ``workers`` at a time; ``on_done(result)``
    after each (progress)."""
    runs = offline_runs(experiment, force)
    results: list[SyncResult] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for result in pool.map(lambda r: sync_run(r, timeout), runs):
            results.append(result)
            if on_done is not None:
                on_done(result)
    return results
