"""OGBench's reward-based singletask datasets as the project's transitions.

Ids: ``ogbench/<env>-<size>-<type>-singletask[-task<N>]-v0``, for example
``ogbench/antmaze-large-navigate-singletask-task1-v0``. The files are OGBench's own
(``<env>-<size>-<type>-v0.npz`` and ``-val.npz``) in OGBench's dataset folder
(``$IQL_SWEEP_OGBENCH_DIR``, else OGBench's default ``~/.ogbench/data``). Loading, the task's
environment and the reward relabelling are the ``ogbench`` package's own
(``ogbench.make_env_and_datasets``; ``pip install 'iql-sweep[ogbench]'``), never a
re-implementation. OGBench's trajectories do not end at the goal, so IQL bootstraps on OGBench's
``masks`` (``terminals`` here = 1 - masks); OGBench's ``terminals`` mark episode ends
(``timeouts`` here). The score is the success rate × 100 (``score_kind: success_rate``).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iql_sweep.data.transitions import Transitions, validate
from iql_sweep.errors import DatasetError, DatasetNotFoundError

PREFIX = "ogbench/"
#: ``<env>-<size>-<type>-singletask[-task<N>]-v0`` (env and size may hold dashes: ``puzzle-3x3``)
_ID_RE = re.compile(
    r"^ogbench/(?P<data>(?P<env>[a-z0-9]+(?:-[a-z0-9]+)*?)"
    r"-(?P<type>navigate|stitch|explore|play|noisy|local))"
    r"-singletask(?:-task(?P<task>[1-5]))?-(?P<version>v\d+)$"
)
#: The arrays OGBench's loader reads of every file; ``button_states`` too for scene and puzzle.
REQUIRED_KEYS = ("observations", "actions", "terminals", "qpos", "qvel")


def is_ogbench(dataset_id: str) -> bool:
    return dataset_id.startswith(PREFIX)


def ogbench_dir() -> Path:
    """OGBench's dataset folder: ``$IQL_SWEEP_OGBENCH_DIR``, else ``~/.ogbench/data``."""
    return Path(os.environ.get("IQL_SWEEP_OGBENCH_DIR", "~/.ogbench/data")).expanduser()


@dataclass(frozen=True)
class OGBenchTask:
    """One singletask id, split into what OGBench's files and environments are named."""

    dataset_id: str
    data_name: str  # the files' name: antmaze-large-navigate-v0
    env_name: str  # the task's environment: antmaze-large-singletask-task1-v0
    task: int | None  # None: OGBench's default task
    env_base: str  # antmaze-large
    data_type: str  # navigate, stitch, explore, play, noisy; local: made by the project
    version: str  # v0

    @classmethod
    def parse(cls, dataset_id: str) -> OGBenchTask:
        match = _ID_RE.match(dataset_id)
        if match is None:
            raise DatasetNotFoundError(
                f"dataset: {dataset_id!r} is not an OGBench singletask id; they look like "
                "'ogbench/antmaze-large-navigate-singletask-task1-v0' (a dataset of OGBench, "
                "'-singletask', an optional '-task1' to '-task5', the version; the dataset type "
                "'local' names data the project makes)"
            )
        data, task, version, env = match["data"], match["task"], match["version"], match["env"]
        suffix = f"-task{task}" if task else ""
        return cls(
            dataset_id,
            f"{data}-{version}",
            f"{env}-singletask{suffix}-{version}",
            int(task) if task else None,
            env,
            match["type"],
            version,
        )

    @property
    def one_task_id(self) -> str:
        """The id of the default task of the same files (every task of a dataset shares them)."""
        return f"{PREFIX}{self.env_base}-{self.data_type}-singletask-{self.version}"

    @property
    def name(self) -> str:
        """The name OGBench's own functions take: the id without ``ogbench/``."""
        return self.dataset_id[len(PREFIX) :]

    @property
    def files(self) -> tuple[Path, Path]:
        """The training and validation files in OGBench's dataset folder."""
        folder = ogbench_dir()
        return folder / f"{self.data_name}.npz", folder / f"{self.data_name}-val.npz"

    @property
    def present(self) -> bool:
        """Both files are in OGBench's dataset folder."""
        return all(path.is_file() for path in self.files)


def data_names(files: list[str]) -> list[str]:
    """OGBench datasets (``antmaze-large-navigate-v0``) whose training and validation files are
    both among ``files`` (names or paths)."""
    names = {Path(f).name for f in files}
    return sorted(
        n[: -len(".npz")]
        for n in names
        if n.endswith(".npz")
        and not n.endswith("-val.npz")
        and n.replace(".npz", "-val.npz") in names
    )


def singletask_ids(data_name: str) -> str:
    """How a dataset's tasks are named here: ``ogbench/<name>-singletask[-task1..5]-<version>``."""
    base, version = data_name.rsplit("-", 1)
    return f"{PREFIX}{base}-singletask[-task1..5]-{version}"


def local_data_names() -> list[str]:
    """The OGBench datasets whose two files are in OGBench's folder."""
    folder = ogbench_dir()
    return data_names([p.name for p in folder.glob("*.npz")]) if folder.is_dir() else []


def files_present(dataset_id: str) -> bool:
    """Whether an OGBench id's two files are in OGBench's folder (False for a malformed id)."""
    try:
        return OGBenchTask.parse(dataset_id).present
    except DatasetNotFoundError:
        return False


def needs_button_states(data_name: str) -> bool:
    return data_name.startswith(("scene", "puzzle"))


def check_files(task: OGBenchTask) -> None:
    """Both files present, readable, with OGBench's keys and consistent shapes; else an error
    naming the file and the fix (before any work starts)."""
    keys = REQUIRED_KEYS + (("button_states",) if needs_button_states(task.data_name) else ())
    for path in task.files:
        if not path.is_file():
            raise DatasetNotFoundError(
                f"dataset {task.dataset_id!r}: {path} is missing; put OGBench's files "
                f"{task.data_name}.npz and {task.data_name}-val.npz in $IQL_SWEEP_OGBENCH_DIR "
                f'(default ~/.ogbench/data), e.g. with python -c "import ogbench; '
                f"ogbench.download_datasets(['{task.data_name}'], '{path.parent}')\""
            )
        try:
            with np.load(path) as npz:
                missing = [k for k in keys if k not in npz.files]
                if missing:
                    raise DatasetError(
                        f"dataset {task.dataset_id!r}: {path} lacks {', '.join(missing)}; it is "
                        "not one of OGBench's dataset files (download it again)"
                    )
                rows = {k: npz[k].shape for k in keys}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise DatasetError(
                f"dataset {task.dataset_id!r}: {path} cannot be read ({type(err).__name__}: "
                f"{err}); the file is truncated or damaged: delete it and download it again"
            ) from None
        lengths = {shape[0] if shape else 0 for shape in rows.values()}
        if len(lengths) != 1 or any(len(rows[k]) != 2 for k in ("observations", "actions")):
            shapes = ", ".join(f"{k} {list(v)}" for k, v in rows.items())
            raise DatasetError(
                f"dataset {task.dataset_id!r}: {path} holds arrays of other lengths or ranks "
                f"than OGBench writes ({shapes}); download it again"
            )


def load_ogbench(dataset_id: str) -> Transitions:
    """The training file of an OGBench singletask id, loaded and relabelled by OGBench."""
    task = OGBenchTask.parse(dataset_id)
    check_files(task)
    try:
        import ogbench
    except ImportError:
        raise DatasetError(
            f"dataset {dataset_id!r}: OGBench datasets need the ogbench package (its loader and "
            "environments); install it with pip install 'iql-sweep[ogbench]'"
        ) from None
    train_file, _ = task.files
    env, raw, _ = ogbench.make_env_and_datasets(task.name, dataset_path=str(train_file))
    try:
        return _transitions(task, env, raw)
    finally:
        env.close()


def _transitions(task: OGBenchTask, env, raw: dict[str, np.ndarray]) -> Transitions:
    """OGBench's relabelled arrays in the project's fields: bootstrapping on ``masks``."""
    ends = raw["terminals"].astype(np.float32)  # the last transition of each trajectory
    starts = np.flatnonzero(np.concatenate([[1.0], ends[:-1]]))
    rewards = raw["rewards"].astype(np.float32)
    returns = np.add.reduceat(rewards.astype(np.float64), starts) if rewards.size else rewards
    space = env.action_space
    low = np.asarray(space.low, dtype=np.float32).reshape(-1)
    high = np.asarray(space.high, dtype=np.float32).reshape(-1)
    actions = raw["actions"].astype(np.float32)
    if not (np.allclose(low, -1.0) and np.allclose(high, 1.0)):
        actions = 2.0 * (actions - low) / (high - low) - 1.0
    data = Transitions(
        observations=raw["observations"].astype(np.float32),
        actions=actions,
        rewards=rewards,
        next_observations=raw["next_observations"].astype(np.float32),
        terminals=(1.0 - raw["masks"]).astype(np.float32),
        timeouts=ends,
        episode_starts=starts.astype(np.int64),
        episode_returns=np.asarray(returns, dtype=np.float64),
        action_low=low,
        action_high=high,
        metadata={
            "dataset_id": task.dataset_id,
            "obs_keys": None,
            "data_format": "ogbench-npz",
            "eval_env_spec": env.spec,
            "env_spec": None,
            "ref_min_score": None,
            "ref_max_score": None,
            "ref_scores_source": None,
            "score_kind": "success_rate",
            "observation_space": env.observation_space,
            "action_space": space,
        },
    )
    validate(data, task.dataset_id)
    return data
