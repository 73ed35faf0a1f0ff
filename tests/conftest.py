"""Shared fixtures: a private Minari root and cache, and one small generated PointMaze dataset.

No test reaches the internet: Minari's Hugging Face remote points at a closed loopback port
unless a test starts its stand-in hub (tests/hub_standin.py) and points a child process at it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SMALL_STEPS = 30_000

# Before anything imports huggingface_hub (it reads the endpoint once, at import).
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


@pytest.fixture(scope="session", autouse=True)
def minari_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test reads and writes datasets under a fresh Minari root, never ~/.minari."""
    root = tmp_path_factory.mktemp("minari_root")
    cache = tmp_path_factory.mktemp("flat_cache")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    os.environ["IQL_SWEEP_CACHE"] = str(cache)
    os.environ["WANDB_MODE"] = "offline"
    return root


@pytest.fixture(scope="session")
def umaze_id(minari_root: Path) -> str:
    """A small umaze dataset made by the project's generator (sparse reward)."""
    from iql_sweep.data.make import make_dataset

    report = make_dataset(
        "pointmaze-umaze", steps=SMALL_STEPS, seed=123, ref_episodes=30, progress=False
    )
    return report.dataset_id
