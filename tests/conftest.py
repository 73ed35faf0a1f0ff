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
    """Every test reads and writes datasets under a fresh Minari root (and OGBench folder),
    never ~/.minari or ~/.ogbench."""
    root = tmp_path_factory.mktemp("minari_root")
    cache = tmp_path_factory.mktemp("flat_cache")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    os.environ["IQL_SWEEP_CACHE"] = str(cache)
    os.environ["IQL_SWEEP_OGBENCH_DIR"] = str(tmp_path_factory.mktemp("ogbench_data"))
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


@pytest.fixture(scope="session")
def _ray_in_this_process():
    """Shut the session's in-process Ray down at the end (see ``shared_ray``)."""
    yield
    import ray

    ray.shutdown()


@pytest.fixture
def shared_ray(_ray_in_this_process, minari_root):
    """One local Ray in the test process for the sweeps run in-process (``cli_in_process``):
    a fresh CLI process per sweep would pay the imports and a Ray start each time. The trials get
    the session's Minari root, cache and W&B mode from the environment, as the CLI forwards
    them. Modules that stop every Ray on the host (the cluster tests) shut it down first; the
    next test that needs it starts it again."""
    import ray

    from iql_sweep.sweep import init_ray

    init_ray(None, verbose=False)  # the driver's own start (a no-op while Ray is up)
    return ray


@pytest.fixture
def cli_in_process(shared_ray, monkeypatch):
    """Run ``iql-sweep ARGS`` in this process from folder ``cwd``, on the shared Ray; returns
    typer's result (``exit_code``, ``output`` with stdout and stderr)."""
    from typer.testing import CliRunner

    from iql_sweep.cli import app

    def run(*args: str, cwd: Path):
        monkeypatch.chdir(cwd)
        return CliRunner().invoke(app, list(args))

    return run
