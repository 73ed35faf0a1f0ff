"""The original D4RL HDF5 files (``~/.d4rl/datasets/*.hdf5``, what the IQL paper's locomotion
table was trained on) as Minari datasets.

D4RL stores one flat array per field: ``observations`` (N × obs), ``actions`` (N × act),
``rewards``, ``terminals``, ``timeouts`` (N), sometimes ``next_observations``. An episode ends at
a step whose ``terminals`` or ``timeouts`` flag is set (and at the end of the file). Minari wants
per episode n + 1 observations for n steps. The last observation of an episode is
``next_observations`` of its last step when the file has it. Without it: after a terminal step
the episode's last observation is repeated (IQL's target masks V(s') there, so its value never
matters); a step cut by a timeout has no known next observation, so it is left out, as D4RL's own
``qlearning_dataset`` leaves it out.

The evaluation environment is the matching Gymnasium MuJoCo one (e.g. ``Hopper-v5``): the D4RL
``-v2`` data were collected with gym's mujoco-py ``-v3`` environments, whose observations and
actions have the same layout for Hopper, HalfCheetah and Walker2d; the dynamics differ in
details fixed since (see docs/d4rl_on_minari.md). D4RL's reference scores go into the metadata.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iql_sweep.data.minari_io import _ID_RE, local_dataset_ids, minari_root
from iql_sweep.data.profile import DatasetProfile
from iql_sweep.errors import ConfigError, DatasetError

REQUIRED = ("observations", "actions", "rewards", "terminals", "timeouts")


@dataclass
class ImportReport:
    """What :func:`import_d4rl` did."""

    dataset_id: str
    steps: int
    episodes: int
    dropped_timeout_steps: int
    ref_min_score: float
    ref_max_score: float
    seconds: float


def read_d4rl(path: Path) -> dict[str, np.ndarray]:
    """The flat arrays of a D4RL file, checked (names, lengths, finite values)."""
    import h5py

    if not path.is_file():
        raise ConfigError(f"FILE: no such file {path}")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in REQUIRED if k not in f]
            if missing:
                raise DatasetError(
                    f"FILE: {path} lacks the D4RL arrays {', '.join(missing)} (a D4RL file has "
                    f"{', '.join(REQUIRED)}; next_observations is optional)"
                )
            keys = [*REQUIRED, *(["next_observations"] if "next_observations" in f else [])]
            arrays = {k: np.asarray(f[k]) for k in keys}
    except OSError as err:
        raise DatasetError(f"FILE: {path} is not a readable HDF5 file ({err})") from None
    n = len(arrays["observations"])
    for key, value in arrays.items():
        if len(value) != n:
            raise DatasetError(f"FILE: {key} has {len(value)} rows, observations {n}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise DatasetError(f"FILE: {key} holds non-finite values")
    if n == 0:
        raise DatasetError(f"FILE: {path} holds no steps")
    return arrays


def episode_bounds(terminals: np.ndarray, timeouts: np.ndarray) -> list[tuple[int, int, str]]:
    """(first step, last step, how it ended: 'terminal' | 'timeout' | 'end') per episode."""
    ends = np.flatnonzero(terminals.astype(bool) | timeouts.astype(bool))
    bounds, start = [], 0
    for end in ends:
        bounds.append((start, int(end), "terminal" if terminals[end] else "timeout"))
        start = int(end) + 1
    if start < len(terminals):
        bounds.append((start, len(terminals) - 1, "end"))
    return bounds


def import_d4rl(path: Path, dataset_id: str, env_id: str, force: bool = False) -> ImportReport:
    """Write the D4RL file at ``path`` as the Minari dataset ``dataset_id`` whose evaluation
    environment is the Gymnasium environment ``env_id``."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    start_time = time.perf_counter()
    if not _ID_RE.match(dataset_id):
        raise ConfigError(
            f"--id: {dataset_id!r} is not a Minari id (namespace/name-vN, e.g. "
            "d4rl/hopper/medium-v2)"
        )
    try:
        env = gym.make(env_id)
    except Exception as err:  # noqa: BLE001 - gymnasium raises several kinds
        raise ConfigError(f"--env: {env_id!r} cannot be made ({err}); e.g. Hopper-v5") from None
    arrays = read_d4rl(path)
    obs_dim = env.observation_space.shape
    act_dim = env.action_space.shape
    if arrays["observations"].shape[1:] != obs_dim or arrays["actions"].shape[1:] != act_dim:
        raise ConfigError(
            f"--env: {env_id} has observations {obs_dim} and actions {act_dim}, the file "
            f"{arrays['observations'].shape[1:]} and {arrays['actions'].shape[1:]}; choose the "
            "environment the data were collected on"
        )
    scores = (
        DatasetProfile.from_id(dataset_id).d4rl_scores
        or DatasetProfile.from_id(path.stem).d4rl_scores
    )
    if scores is None:
        raise ConfigError(
            f"--id: D4RL has no reference scores for {dataset_id!r} or {path.name}; name the task "
            "in the id (hopper, halfcheetah, walker2d, ant, ...)"
        )
    if dataset_id in local_dataset_ids():
        if not force:
            raise ConfigError(f"--id: {dataset_id} exists under {minari_root()}; add --force")
        import shutil

        shutil.rmtree(minari_root() / dataset_id)

    obs, act = arrays["observations"], arrays["actions"]
    low, high = env.action_space.low, env.action_space.high
    act = np.clip(act, low, high).astype(env.action_space.dtype)  # D4RL's are within ±1 + eps
    nxt = arrays.get("next_observations")
    obs_dtype = env.observation_space.dtype
    buffers, dropped = [], 0
    for i, (first, last, how) in enumerate(episode_bounds(arrays["terminals"], arrays["timeouts"])):
        if nxt is None and how != "terminal":
            dropped += 1  # no next observation for the cut step
            last -= 1
            if last < first:
                continue
            final = obs[last + 1]
        else:
            final = nxt[last] if nxt is not None else obs[last]
        steps = slice(first, last + 1)
        terminations = np.zeros(last + 1 - first, dtype=bool)
        truncations = np.zeros_like(terminations)
        terminations[-1] = how == "terminal"
        truncations[-1] = how != "terminal"
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=np.concatenate([obs[steps], final[None]]).astype(obs_dtype),
                actions=act[steps],
                rewards=arrays["rewards"][steps].astype(np.float64),
                terminations=terminations,
                truncations=truncations,
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Minari's reminders about metadata
        minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=buffers,
            env=env_id,
            eval_env=env_id,
            algorithm_name=f"D4RL ({path.name}), imported by iql-sweep datasets import-d4rl",
            author="D4RL (Fu et al., 2020)",
            code_permalink="iql_sweep/data/d4rl_import.py",
            ref_min_score=scores[0],
            ref_max_score=scores[1],
            description=f"D4RL's {path.name} split into episodes at terminals and timeouts",
        )
    env.close()
    return ImportReport(
        dataset_id=dataset_id,
        steps=sum(len(b.actions) for b in buffers),
        episodes=len(buffers),
        dropped_timeout_steps=dropped,
        ref_min_score=scores[0],
        ref_max_score=scores[1],
        seconds=time.perf_counter() - start_time,
    )
