"""Exact-resume checkpoints of a training run, written atomically."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iql_sweep.data.transitions import BatchSampler
from iql_sweep.iql.agent import IQLAgent


def rng_state() -> dict[str, Any]:
    """Every global RNG a run touches (torch CPU/CUDA for dropout, numpy, python)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def training_state(
    agent: IQLAgent, sampler: BatchSampler, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Agent (nets, targets, optimisers, schedule, step), sampler generator and global RNGs."""
    return {
        "agent": agent.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": rng_state(),
        "extra": extra or {},
    }


def restore_training_state(
    state: dict[str, Any], agent: IQLAgent, sampler: BatchSampler
) -> dict[str, Any]:
    """Load a :func:`training_state` into a freshly built agent and sampler; returns ``extra``."""
    agent.load_state_dict(state["agent"])
    sampler.load_state_dict(state["sampler"])
    set_rng_state(state["rng"])
    return state.get("extra", {})


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`atomic_torch_save` (tensors on the CPU; loading it
    into an agent moves them to the agent's device)."""
    return torch.load(path, map_location="cpu", weights_only=False)
