"""The one checkpoint format: a versioned envelope around the learner's exact-resume state.

Written by the training loop for the CLI (``checkpoint.pt``) and for Ray Tune trials
(``iql_state.pt`` in Tune's checkpoint folders), read by resume and by the stitching analysis::

    {"format": 2, "kind": "iql-sweep/learner",
     "trial": TrialConfig, "config": the resolved IQLConfig, "members": [Member...],
     "learner": IQLLearner.state_dict()  (nets, targets, optimisers, step, generators, buffer),
     "rng": global RNG states, "loop": the loop's own state (rows, failed members, collector)}

Checkpoints of earlier versions (format 1: one per engine path) are refused with a message.
Every checkpoint is written with a SHA-256 sidecar (``<file>.sha256``); a damaged or truncated
one is detected on load and the previous good one is used instead (the CLI keeps the last two as
``checkpoint.pt`` and ``checkpoint.prev.pt``; Ray Tune keeps two checkpoint folders).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iql_sweep.errors import ConfigError
from iql_sweep.files import atomic_write, atomic_write_text
from iql_sweep.iql.config import IQLConfig
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.trial_config import TrialConfig

FORMAT = 2
KIND = "iql-sweep/learner"
#: File names: the CLI's run folder, and inside a Ray Tune checkpoint folder.
CLI_FILE = "checkpoint.pt"
TUNE_FILE = "iql_state.pt"


class CheckpointFormatError(ConfigError):
    """A checkpoint this version cannot read (written by an earlier one, or not ours)."""


class CheckpointDamagedError(ConfigError):
    """A checkpoint whose bytes do not match its checksum, or that cannot be unpickled."""


def rng_state() -> dict[str, Any]:
    """Every global RNG (torch CPU/CUDA, numpy, python); the learner's own generators are in
    its state, so this only guards against libraries that draw from the global ones."""
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


def make_checkpoint(
    trial: TrialConfig, learner: IQLLearner, loop: dict[str, Any]
) -> dict[str, Any]:
    """The envelope of a run's state at the end of an evaluation."""
    return {
        "format": FORMAT,
        "kind": KIND,
        "trial": trial.model_dump(mode="json"),
        "config": learner.config.model_dump(mode="json"),
        "members": [m.model_dump() for m in learner.members],
        "learner": learner.state_dict(),
        "rng": rng_state(),
        "loop": loop,
    }


def check_format(state: Any, where: str | Path = "checkpoint") -> dict[str, Any]:
    """``state`` if it is a checkpoint of this format; else a clear refusal."""
    if not isinstance(state, dict) or state.get("kind") != KIND:
        earlier = isinstance(state, dict) and ("agent" in state or "population" in state)
        if earlier:
            raise CheckpointFormatError(
                f"{where}: written by an earlier iql-sweep (one checkpoint format per engine "
                f"path, before the single learner's format {FORMAT}); this version cannot "
                "resume it. Start the run again in a new folder, or finish it with the release "
                "that started it"
            )
        raise CheckpointFormatError(f"{where}: not an iql-sweep checkpoint")
    if state.get("format") != FORMAT:
        raise CheckpointFormatError(
            f"{where}: checkpoint format {state.get('format')!r}; this version reads format "
            f"{FORMAT} only"
        )
    return state


def restore(state: dict[str, Any], learner: IQLLearner) -> dict[str, Any]:
    """Load a checkpoint into a freshly built learner; returns the loop's state."""
    learner.load_state_dict(state["learner"])
    set_rng_state(state["rng"])
    return state["loop"]


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save through ``files.atomic_write``; the SHA-256 of the bytes goes beside it
    (written after, so a torn pair reads as damaged)."""
    path = Path(path)
    digest: list[str] = []

    def write(tmp: Path) -> None:
        torch.save(obj, tmp)
        digest.append(_digest(tmp))

    atomic_write(path, write)
    atomic_write_text(_sidecar(path), digest[0] + "\n")


def save_rotating(state: dict[str, Any], path: Path) -> None:
    """Save ``state`` at ``path``, keeping the one it replaces as ``<stem>.prev<suffix>``."""
    if path.is_file():
        previous = path.with_name(f"{path.stem}.prev{path.suffix}")
        os.replace(path, previous)
        if _sidecar(path).is_file():
            os.replace(_sidecar(path), _sidecar(previous))
    atomic_torch_save(state, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (tensors on the CPU): its checksum checked, then its format."""
    path = Path(path)
    sidecar = _sidecar(path)
    if sidecar.is_file():
        expected = sidecar.read_text().strip()
        if _digest(path) != expected:
            raise CheckpointDamagedError(
                f"{path}: damaged (its bytes do not match the checksum written with it)"
            )
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError) as err:
        raise CheckpointDamagedError(f"{path}: damaged or truncated ({err})") from None
    return check_format(state, path)


def load_latest_good(candidates: list[Path]) -> tuple[dict[str, Any], Path, list[str]] | None:
    """The newest readable checkpoint of ``candidates`` (newest first), with the reasons the
    newer ones were skipped; None when there are none; an error when all are damaged."""
    skipped: list[str] = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            return load_checkpoint(path), path, skipped
        except CheckpointDamagedError as err:
            skipped.append(str(err))
    if skipped:
        raise CheckpointDamagedError(
            "; ".join(skipped) + ". No earlier good checkpoint is left: start again in a new folder"
        )
    return None


def value_function(state: dict[str, Any], member: int) -> Callable[[np.ndarray], np.ndarray]:
    """V of configuration ``member`` of a checkpoint: float32 observations ``[N, obs]`` ->
    values ``[N]`` (its critic group's V)."""
    learner = IQLLearner.from_state(state["learner"], IQLConfig(**state["config"]))

    def v(obs: np.ndarray) -> np.ndarray:
        return learner.values(torch.as_tensor(obs, dtype=torch.float32))[member].numpy()

    return v
