"""Writing the project's own datasets in Minari's format under the local Minari root."""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

from iql_sweep.data.generators import GENERATORS, get_generator, name_for_id
from iql_sweep.data.minari_io import local_dataset_ids, minari_root
from iql_sweep.data.ogbench_io import OGBenchTask, check_files, is_ogbench
from iql_sweep.data.ogbench_make import LOCAL_TYPE, OGBenchMakeReport, make_ogbench
from iql_sweep.data.pointmaze import (
    Corruption,
    collect_pointmaze,
    eval_env_spec,
    make_collection_env,
    reference_return,
)
from iql_sweep.data.remote import DownloadReport, download, download_ogbench
from iql_sweep.errors import ConfigError
from iql_sweep.progress import step_progress


@dataclass
class MakeReport:
    """What :func:`make_dataset` did, for the console and the closing notes."""

    dataset_id: str
    steps: int
    episodes: int
    mean_length: float
    ref_min_score: float
    ref_max_score: float
    collect_seconds: float
    write_seconds: float
    reference_seconds: float


def make_dataset(
    name: str,
    steps: int | None = None,
    seed: int = 123,
    force: bool = False,
    ref_episodes: int = 100,
    progress: bool = True,
    corruption: Corruption | None = None,
) -> MakeReport:
    """Generate a dataset and write it under the Minari root in Minari's HDF5 format.

    ``corruption`` overrides the settings of a ``-corrupted`` generator (an error for others).
    """
    import minari
    from minari.data_collector import EpisodeBuffer

    gen = get_generator(name)
    if corruption is not None:
        if gen.corruption is None:
            raise ConfigError(
                f"--corrupt-*: {gen.name} is a clean dataset; corruption settings apply to the "
                f"-corrupted generators ({', '.join(g for g in GENERATORS if 'corrupted' in g)})"
            )
        gen = replace(gen, corruption=corruption)
    steps = int(steps or gen.default_steps)
    if steps < 1:
        raise ConfigError(f"--steps: must be a positive integer (got {steps})")
    if gen.dataset_id in local_dataset_ids():
        if not force:
            raise ConfigError(
                f"dataset {gen.dataset_id!r} already exists under {minari_root()}; "
                "pass --force to overwrite it"
            )
        shutil.rmtree(minari_root() / gen.dataset_id)

    t0 = time.perf_counter()
    with step_progress(f"collecting {gen.dataset_id}", steps, enabled=progress) as advance:
        episodes = collect_pointmaze(
            gen.recipe, gen.dense, steps, seed=seed, on_step=advance, corruption=gen.corruption
        )
    t1 = time.perf_counter()
    spec = eval_env_spec(gen.recipe, gen.dense)
    ref_min = reference_return(spec, "random", ref_episodes, seed=seed)
    ref_max = reference_return(spec, "expert", ref_episodes, seed=seed)
    t2 = time.perf_counter()
    buffers = [EpisodeBuffer(**ep) for ep in episodes]
    collection_env = make_collection_env(gen.recipe, gen.dense, steps + 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*author_email.*")
        minari.create_dataset_from_buffers(
            dataset_id=gen.dataset_id,
            buffer=buffers,
            env=collection_env.spec,
            eval_env=spec,
            algorithm_name=(
                "DFS waypoint planner + PD controller (p=10, d=-1), action noise N(0, 0.5^2), "
                "goals resampled on arrival (iql-sweep replica of D4RL/pointmaze-v2)"
                + (f"; {gen.corruption.describe()}" if gen.corruption else "")
            ),
            author="iql-sweep",
            code_permalink="iql_sweep/data/pointmaze.py",
            ref_min_score=ref_min,
            ref_max_score=ref_max,
            num_episodes_average_score=ref_episodes,
            description=(
                f"PointMaze {gen.recipe.name} ({'dense' if gen.dense else 'sparse'} reward), "
                f"{steps} steps collected by iql-sweep with the recipe of Minari's "
                "D4RL/pointmaze datasets. Episodes end (truncation) at each goal hit."
                + (
                    f" Corrupted for the stitching experiment: {gen.corruption.describe()}; "
                    "infos hold the per-step 'corrupted' flag and 'controller_action'."
                    if gen.corruption
                    else ""
                )
            ),
            data_format="hdf5",
        )
    collection_env.close()
    t3 = time.perf_counter()
    lengths = np.array([len(ep["rewards"]) for ep in episodes])
    return MakeReport(
        dataset_id=gen.dataset_id,
        steps=steps,
        episodes=len(episodes),
        mean_length=float(lengths.mean()),
        ref_min_score=ref_min,
        ref_max_score=ref_max,
        collect_seconds=t1 - t0,
        write_seconds=t3 - t2,
        reference_seconds=t2 - t1,
    )


def ensure_dataset(
    dataset_id: str, progress: bool = True
) -> MakeReport | OGBenchMakeReport | DownloadReport | None:
    """Bring a missing dataset into the Minari root: make it when the project has its recipe,
    else download it from Minari's remote; no-op (None) when present. An OGBench id's files are
    checked in OGBench's dataset folder, else made (type ``local``) or downloaded from OGBench's
    mirror."""
    if is_ogbench(dataset_id):
        task = OGBenchTask.parse(dataset_id)
        if task.present:
            check_files(task)
            return None
        if task.data_type == LOCAL_TYPE:
            return make_ogbench(dataset_id)
        return download_ogbench(dataset_id)
    if dataset_id in local_dataset_ids():
        return None
    name = name_for_id(dataset_id)
    if name is None:
        return download(dataset_id)
    return make_dataset(name, progress=progress)
