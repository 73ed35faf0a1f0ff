"""Load any local Minari dataset (HDF5 or arrow, whoever wrote it) into flat transitions.

Observation flattening (fixed and documented): a ``Box`` is reshaped to one row per step; a
``Dict`` is concatenated in the order ``observation``, ``desired_goal`` (PointMaze: 4 + 2 = 6
dims; ``achieved_goal`` repeats the position and is left out). AntMaze's ``observation`` lacks
the x-y position, so AntMaze ids use ``achieved_goal``, ``observation``, ``desired_goal``
(D4RL's 29-d state plus the goal). A Dict without those keys is concatenated in sorted key order,
nested Dicts recursively in sorted order.

The first load of a dataset reads its episodes through Minari's API (any format Minari reads) and
writes a flat ``.npz`` cache keyed by the dataset's files (name, size, mtime); later loads read
the cache in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from iql_sweep.data.generators import GENERATORS, name_for_id
from iql_sweep.data.normalization import reference_scores
from iql_sweep.data.ogbench_io import is_ogbench, load_ogbench
from iql_sweep.data.profile import DatasetProfile
from iql_sweep.data.transitions import Transitions, check_actions_in_space, validate
from iql_sweep.errors import DatasetError, DatasetNotFoundError
from iql_sweep.files import atomic_write

CACHE_VERSION = 1
# Every path segment starts with a letter, digit or _: no "." or ".." can lead out of the root.
_ID_RE = re.compile(r"^(\w[\w.-]*/)*\w[\w.-]*-v\d+$")


def minari_root() -> Path:
    """The local Minari root: ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets``."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env).expanduser() if env else Path.home() / ".minari" / "datasets"


def cache_dir() -> Path:
    """Where flat-array caches go: ``$IQL_SWEEP_CACHE`` or ``~/.cache/iql-sweep``."""
    env = os.environ.get("IQL_SWEEP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "iql-sweep"


def local_dataset_ids(root: Path | None = None) -> list[str]:
    """Ids of every dataset under the Minari root (a folder with ``data/metadata.json``)."""
    root = root or minari_root()
    if not root.is_dir():
        return []
    ids = []
    for meta in root.glob("**/data/metadata.json"):
        ids.append(meta.parent.parent.relative_to(root).as_posix())
    return sorted(ids)


def dataset_path(dataset_id: str) -> Path:
    """The ``data/`` folder of a local dataset; a clear error if it is missing."""
    if not _ID_RE.match(dataset_id):
        raise DatasetNotFoundError(
            f"dataset: {dataset_id!r} is not a Minari dataset id; ids look like "
            "'namespace/name-v0' (e.g. 'D4RL/pointmaze/umaze-v2' or 'iql-sweep/pointmaze/umaze-v0')"
        )
    path = minari_root() / dataset_id / "data"
    if not (path / "metadata.json").is_file():
        raise DatasetNotFoundError(missing_dataset_message(dataset_id))
    return path


def missing_dataset_message(dataset_id: str) -> str:
    present = local_dataset_ids()
    listing = "\n".join(f"  - {i}" for i in present) if present else "  (none)"
    lines = [
        f"dataset: {dataset_id!r} is not in the local Minari root {minari_root()}.",
        f"Datasets present locally:\n{listing}",
    ]
    name = name_for_id(dataset_id)
    if name is not None:
        lines.append(f"Make it here with: iql-sweep datasets make {name}")
    else:
        lines.append(
            "Make one of the project's own with 'iql-sweep datasets make NAME' (NAME in: "
            + ", ".join(sorted(GENERATORS))
            + "), or download it on a machine with internet ('minari download "
            f"{dataset_id}') and copy it under $MINARI_DATASETS_PATH."
        )
    return "\n".join(lines)


def observation_keys(dataset_id: str, space: gym.Space) -> list[str] | None:
    """The Dict keys to concatenate, in order (None for non-Dict spaces)."""
    if not isinstance(space, gym.spaces.Dict):
        return None
    return DatasetProfile.from_id(dataset_id).observation_keys(list(space.spaces))


def flatten_observations(obs: Any, space: gym.Space, keys: list[str] | None = None) -> np.ndarray:
    """One float32 row per step from a Box array or a (nested) Dict of arrays."""
    if isinstance(space, gym.spaces.Dict):
        keys = keys if keys is not None else sorted(space.spaces)
        parts = [flatten_observations(obs[k], space[k]) for k in keys]
        return np.concatenate(parts, axis=1)
    if isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary | gym.spaces.MultiDiscrete):
        arr = np.asarray(obs)
        return arr.reshape(arr.shape[0], -1).astype(np.float32)
    if isinstance(space, gym.spaces.Discrete):
        return np.asarray(obs, dtype=np.float32).reshape(-1, 1)
    raise DatasetError(
        f"observation_space: {type(space).__name__} observations cannot be flattened for IQL; "
        "use Box or Dict-of-Box observations"
    )


def _episodes(dataset) -> Iterator[dict[str, Any]]:
    for ep in dataset.iterate_episodes():
        yield {
            "observations": ep.observations,
            "actions": ep.actions,
            "rewards": ep.rewards,
            "terminations": ep.terminations,
            "truncations": ep.truncations,
        }


def _fix_stale_goal(obs: Any) -> Any:
    """PointMaze returns a segment's first observation before it resamples the goal, so the first
    row of every episode carries the previous goal; give it the episode's goal (its next row's)."""
    if isinstance(obs, dict) and "desired_goal" in obs and len(obs["desired_goal"]) > 1:
        goal = np.array(obs["desired_goal"], copy=True)
        goal[0] = goal[1]
        obs = {**obs, "desired_goal": goal}
    return obs


def _flatten_episodes(
    episodes: Iterable[dict[str, Any]], space: gym.Space, keys: list[str] | None, fix_goal: bool
) -> dict[str, np.ndarray]:
    obs_l, next_l, act_l, rew_l, term_l, trunc_l, starts, returns = [], [], [], [], [], [], [], []
    row = 0
    for ep in episodes:
        length = len(ep["rewards"])
        if length == 0:
            continue
        obs = _fix_stale_goal(ep["observations"]) if fix_goal else ep["observations"]
        flat = flatten_observations(obs, space, keys)
        if flat.shape[0] != length + 1:
            raise DatasetError(
                f"an episode has {flat.shape[0]} observations for {length} steps; Minari episodes "
                "hold one more observation than steps"
            )
        obs_l.append(flat[:-1])
        next_l.append(flat[1:])
        act = np.asarray(ep["actions"], dtype=np.float64)
        act_l.append(act.reshape(length, -1))
        rewards = np.asarray(ep["rewards"], dtype=np.float64).reshape(length)
        rew_l.append(rewards)
        term_l.append(np.asarray(ep["terminations"], dtype=np.float32).reshape(length))
        trunc_l.append(np.asarray(ep["truncations"], dtype=np.float32).reshape(length))
        starts.append(row)
        returns.append(rewards.sum())
        row += length
    if not starts:
        raise DatasetError("the dataset holds no transitions (every episode is empty)")
    return {
        "observations": np.concatenate(obs_l),
        "next_observations": np.concatenate(next_l),
        "actions": np.concatenate(act_l),
        "rewards": np.concatenate(rew_l).astype(np.float32),
        "terminals": np.concatenate(term_l),
        "timeouts": np.concatenate(trunc_l),
        "episode_starts": np.asarray(starts, dtype=np.int64),
        "episode_returns": np.asarray(returns, dtype=np.float64),
    }


def _cache_key(path: Path, dataset_id: str, keys: list[str] | None, fix_goal: bool) -> str:
    files = sorted(
        (p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in path.rglob("*")
        if p.is_file()
    )
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "id": dataset_id,
            "path": str(path.resolve()),
            "files": files,
            "keys": keys,
            "fix_goal": fix_goal,
        }
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object, so numpy does not append ".npz" to the name
        np.savez(fh, **arrays)


def load_transitions(dataset_id: str, use_cache: bool = True) -> Transitions:
    """Load a local Minari dataset as validated flat transitions (cached as flat arrays); an
    OGBench id (``ogbench/...``) is loaded from OGBench's files by OGBench's own loader."""
    if is_ogbench(dataset_id):
        return load_ogbench(dataset_id)
    import minari

    path = dataset_path(dataset_id)
    try:
        dataset = minari.load_dataset(dataset_id)
    except Exception as err:  # noqa: BLE001 - Minari raises many types for unreadable datasets
        raise DatasetError(f"dataset {dataset_id!r} could not be opened by Minari: {err}") from err
    meta = dict(dataset.storage.metadata)
    obs_space, act_space = dataset.observation_space, dataset.action_space
    if not isinstance(act_space, gym.spaces.Box):
        raise DatasetError(
            f"dataset {dataset_id!r}: action_space is {type(act_space).__name__}; IQL's Gaussian "
            "actor needs a continuous Box action space"
        )
    low = np.asarray(act_space.low, dtype=np.float64).reshape(-1)
    high = np.asarray(act_space.high, dtype=np.float64).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise DatasetError(
            f"dataset {dataset_id!r}: action_space has infinite bounds; IQL needs a bounded Box"
        )
    keys = observation_keys(dataset_id, obs_space)
    fix_goal = (
        DatasetProfile.from_id(dataset_id).fixes_stale_goal
        and keys is not None
        and "desired_goal" in keys
    )

    arrays: dict[str, np.ndarray] | None = None
    cache_file = cache_dir() / "flat" / f"{_cache_key(path, dataset_id, keys, fix_goal)}.npz"
    if use_cache and cache_file.is_file():
        with np.load(cache_file) as npz:
            arrays = {k: npz[k] for k in npz.files}
    if arrays is None:
        try:
            arrays = _flatten_episodes(_episodes(dataset), obs_space, keys, fix_goal)
        except DatasetError as err:
            raise DatasetError(f"dataset {dataset_id!r}: {err}") from None
        except (KeyError, OSError, ValueError) as err:
            raise DatasetError(
                f"dataset {dataset_id!r}: its episodes could not be read ({err!r}); the files "
                f"under {path} are damaged or inconsistent with metadata.json"
            ) from err
        if use_cache:
            atomic_write(cache_file, lambda tmp: _savez(tmp, arrays))

    hint = f"dataset {dataset_id!r}"
    actions = arrays["actions"]
    if np.all(np.isfinite(actions)):
        check_actions_in_space(actions, low, high, hint)
    unit = np.allclose(low, -1.0) and np.allclose(high, 1.0)
    if not unit:
        actions = 2.0 * (actions - low) / (high - low) - 1.0
    refs = reference_scores(dataset_id, meta)
    info = {
        "dataset_id": dataset_id,
        "obs_keys": keys,
        "data_format": meta.get("data_format"),
        "eval_env_spec": meta.get("eval_env_spec"),
        "env_spec": meta.get("env_spec"),
        "ref_min_score": refs[0] if refs else None,
        "ref_max_score": refs[1] if refs else None,
        "ref_scores_source": (
            "metadata" if meta.get("ref_max_score") is not None else ("d4rl" if refs else None)
        ),
        "observation_space": obs_space,
        "action_space": act_space,
    }
    data = Transitions(
        observations=arrays["observations"].astype(np.float32, copy=False),
        actions=actions.astype(np.float32),
        rewards=arrays["rewards"].astype(np.float32, copy=False),
        next_observations=arrays["next_observations"].astype(np.float32, copy=False),
        terminals=arrays["terminals"].astype(np.float32, copy=False),
        timeouts=arrays["timeouts"].astype(np.float32, copy=False),
        episode_starts=arrays["episode_starts"],
        episode_returns=arrays["episode_returns"],
        action_low=low.astype(np.float32),
        action_high=high.astype(np.float32),
        metadata=info,
    )
    validate(data, dataset_id)
    return data
