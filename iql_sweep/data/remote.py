"""Minari's remote (``$MINARI_REMOTE``, by default the Hugging Face organisation
``hf://farama-minari``): is it reachable, what does it offer, download a dataset into the local
Minari root. OGBench's files come from a Hugging Face dataset repository
(``$IQL_SWEEP_OGBENCH_REPO``) through the same probe and messages.

Minari and ``huggingface_hub`` do the listing and the download. What this module adds: one quick
reachability probe (a TCP connection with a 3 s timeout; without it ``huggingface_hub`` retries a
dead network for about 25 s per call), and errors that say what is local and how to copy a
dataset in by hand.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from urllib.parse import urlparse

from iql_sweep.data.minari_io import _ID_RE, dataset_path, local_dataset_ids, minari_root
from iql_sweep.data.ogbench_io import (
    OGBenchTask,
    check_files,
    data_names,
    is_ogbench,
    ogbench_dir,
)
from iql_sweep.errors import DatasetNotFoundError, IQLSweepError

DEFAULT_REMOTE = "hf://farama-minari"
PROBE_TIMEOUT_S = 3.0


class RemoteUnreachableError(IQLSweepError, ConnectionError):
    """Minari's remote cannot be reached from this machine: what failed (``headline``), then
    the advice on working without it."""

    def __init__(self, headline: str, advice: str = "") -> None:
        super().__init__(f"{headline}. {advice}" if advice else headline)
        self.headline = headline


@dataclass
class DownloadReport:
    """What :func:`download` did, for the console."""

    dataset_id: str
    remote: str
    bytes: int
    seconds: float


def remote_name() -> str:
    """The remote Minari uses: ``$MINARI_REMOTE`` or Farama's Hugging Face organisation."""
    return os.environ.get("MINARI_REMOTE") or DEFAULT_REMOTE


def _endpoint(remote: str) -> str:
    """The URL the remote's client talks to."""
    if remote.startswith("gcp://"):
        return os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"
    from huggingface_hub import constants

    return constants.ENDPOINT  # HF_ENDPOINT, else https://huggingface.co


@functools.cache
def unreachable_reason(remote: str) -> str | None:
    """None when the remote's server accepts a connection; else why not (probed once)."""
    endpoint = _endpoint(remote)
    url = urlparse(endpoint if "://" in endpoint else "http://" + endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S):
            return None
    except OSError as err:
        return f"{url.hostname}:{port}: {err.strerror or err}"


def offline_help(dataset_ids: list[str]) -> str:
    """What is local, and how to bring a dataset in without this machine reaching the remote."""
    present = local_dataset_ids()
    listing = ", ".join(present) if present else "none"
    example = dataset_ids[0] if dataset_ids else "D4RL/antmaze/umaze-v1"
    return (
        f"Datasets present under the Minari root {minari_root()}: {listing}. To bring one in: "
        f"on a machine with internet run 'iql-sweep datasets download {example}' (or 'minari "
        f"download {example}'), then copy its folder ~/.minari/datasets/{example} to "
        f"{minari_root() / example} here; or point MINARI_REMOTE at a reachable mirror; or run "
        "the offline version of the benchmark on a dataset the project makes (e.g. "
        "sweeps/tau_ablation_local.yaml)."
    )


def _check_reachable(remote: str, dataset_ids: list[str]) -> None:
    reason = unreachable_reason(remote)
    if reason is not None:
        lead = (
            f"dataset: {dataset_ids[0]!r} is not in the local Minari root and "
            if dataset_ids
            else ""
        )
        raise RemoteUnreachableError(
            f"{lead}Minari's remote {remote} cannot be reached ({reason})",
            offline_help(dataset_ids),
        )


def remote_datasets(prefix: str | None = None) -> dict[str, dict]:
    """The remote's datasets (id → metadata), optionally those whose id starts with ``prefix``."""
    import minari

    remote = remote_name()
    _check_reachable(remote, [])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Minari's notes about malformed repositories
            return dict(minari.list_remote_datasets(remote_path=remote, prefix=prefix))
    except ImportError as err:
        raise RemoteUnreachableError(f"{err}; reinstall iql-sweep (it needs minari[hf])") from err
    except Exception as err:  # noqa: BLE001 - network and server errors of several libraries
        raise RemoteUnreachableError(
            f"listing Minari's remote {remote} failed: {type(err).__name__}: {err}"
        ) from err


@functools.cache
def on_remote(dataset_id: str) -> bool:
    """Whether the remote offers exactly this id (one listing per name, remembered)."""
    versionless = dataset_id.rsplit("-v", 1)[0]
    return dataset_id in remote_datasets(prefix=versionless)


def download(dataset_id: str, force: bool = False) -> DownloadReport | None:
    """Download one dataset from the remote into the Minari root (progress bars from
    ``huggingface_hub``); None when it is already local and not ``force``."""
    import minari

    if is_ogbench(dataset_id):
        return download_ogbench(dataset_id, force)
    if not _ID_RE.match(dataset_id):
        dataset_path(dataset_id)  # raises the id error
    if dataset_id in local_dataset_ids() and not force:
        return None
    remote = remote_name()
    _check_reachable(remote, [dataset_id])
    if not on_remote(dataset_id):
        offered = sorted(remote_datasets(prefix=dataset_id.split("/")[0]))
        raise DatasetNotFoundError(
            f"dataset: {dataset_id!r} is not on Minari's remote {remote}; it offers "
            + (", ".join(offered[:20]) + (" ..." if len(offered) > 20 else "") or "nothing")
        )
    start = time.perf_counter()
    try:
        minari.download_dataset(f"{remote}/{dataset_id}", force_download=force)
    except Exception as err:  # noqa: BLE001 - network, server and version errors
        raise RemoteUnreachableError(
            f"downloading {dataset_id} from {remote} failed: {type(err).__name__}: {err}",
            offline_help([dataset_id]),
        ) from err
    folder = minari_root() / dataset_id / "data"
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return DownloadReport(dataset_id, remote, size, time.perf_counter() - start)


#: The Hugging Face dataset repository holding OGBench's files: the mirror OGBench's maintainers
#: pointed users to when their own server went down (OGBench issue #49); another with
#: ``$IQL_SWEEP_OGBENCH_REPO``.
DEFAULT_OGBENCH_REPO = "zhouzypaul/ogbench_datasets"


def ogbench_repo() -> str:
    return os.environ.get("IQL_SWEEP_OGBENCH_REPO") or DEFAULT_OGBENCH_REPO


def _mirror_files(repo: str) -> list[str]:
    """Every file the mirror holds (one listing), or the error that says what to do."""
    from huggingface_hub import list_repo_files

    try:
        return list_repo_files(repo, repo_type="dataset")
    except Exception as err:  # noqa: BLE001 - network, server and not-found errors
        raise RemoteUnreachableError(
            f"listing OGBench's mirror {repo} failed: {type(err).__name__}: {err}",
            "Set IQL_SWEEP_OGBENCH_REPO to a Hugging Face dataset repository holding OGBench's "
            "files, or put them in $IQL_SWEEP_OGBENCH_DIR by hand",
        ) from err


def _ogbench_paths(repo: str, names: list[str]) -> dict[str, str]:
    """Where the repository holds each file (its root or any folder); a clear error if not."""
    files = _mirror_files(repo)
    found = {}
    for name in names:
        matches = sorted(f for f in files if f == name or f.endswith("/" + name))
        if not matches:
            raise DatasetNotFoundError(
                f"dataset: OGBench's mirror {repo} holds no {name}; check the dataset's name, "
                "or set IQL_SWEEP_OGBENCH_REPO to a repository that holds it"
            )
        found[name] = matches[0]
    return found


def ogbench_remote_data_names() -> list[str]:
    """The OGBench datasets the mirror holds both files of (one probe, one listing)."""
    repo = ogbench_repo()
    reason = unreachable_reason("hf://" + repo)
    if reason is not None:
        raise RemoteUnreachableError(f"OGBench's mirror {repo} cannot be reached ({reason})")
    return data_names(_mirror_files(repo))


def ogbench_offered(dataset_ids: list[str]) -> None:
    """Raise unless OGBench's mirror is reachable and holds every id's two files (one probe and
    one listing for all; one error for all when it cannot be reached)."""
    tasks = [OGBenchTask.parse(d) for d in dataset_ids]
    if not tasks:
        return
    repo = ogbench_repo()
    _check_ogbench_reachable(repo, dataset_ids)
    _ogbench_paths(repo, sorted({p.name for task in tasks for p in task.files}))


def _check_ogbench_reachable(repo: str, dataset_ids: list[str]) -> None:
    reason = unreachable_reason("hf://" + repo)
    if reason is None:
        return
    tasks = [OGBenchTask.parse(d) for d in dataset_ids]
    first = tasks[0]
    one_per_file = list(dict.fromkeys(t.one_task_id for t in tasks))
    which = (
        f"dataset: {dataset_ids[0]!r} has"
        if len(dataset_ids) == 1
        else f"datasets: {len(dataset_ids)} OGBench datasets ({dataset_ids[0]!r}, ...) have"
    )
    raise RemoteUnreachableError(
        f"{which} no files in {ogbench_dir()} and OGBench's mirror {repo} cannot be reached "
        f"({reason})",
        f"On a machine with internet run 'iql-sweep datasets download {' '.join(one_per_file)}' "
        f"(a dataset's tasks share its files), then copy the files ({first.data_name}.npz and "
        f"{first.data_name}-val.npz{', ...' if len(one_per_file) > 1 else ''}) to "
        f"{ogbench_dir()} here ($IQL_SWEEP_OGBENCH_DIR); or point IQL_SWEEP_OGBENCH_REPO/"
        "HF_ENDPOINT at a reachable mirror; or run sweeps/ogbench_local.yaml on data the "
        "project makes",
    )


def download_ogbench(dataset_id: str, force: bool = False) -> DownloadReport | None:
    """OGBench's two files of the id from the mirror into OGBench's dataset folder (progress
    bars from ``huggingface_hub``), checked; None when present and not ``force``."""
    from huggingface_hub import hf_hub_download

    task = OGBenchTask.parse(dataset_id)
    if task.present and not force:
        return None
    repo = ogbench_repo()
    _check_ogbench_reachable(repo, [dataset_id])
    paths = _ogbench_paths(repo, [p.name for p in task.files])
    start, size = time.perf_counter(), 0
    folder = ogbench_dir()
    folder.mkdir(parents=True, exist_ok=True)
    incoming = folder / ".incoming"  # on the same disk: the files move into place, no copy
    for target in task.files:
        try:
            got = hf_hub_download(
                repo,
                paths[target.name],
                repo_type="dataset",
                local_dir=incoming,
                force_download=force,
            )
        except Exception as err:  # noqa: BLE001 - network and server errors
            raise RemoteUnreachableError(
                f"downloading {target.name} from {repo} failed: {type(err).__name__}: {err}"
            ) from err
        os.replace(got, target)
        size += target.stat().st_size
    shutil.rmtree(incoming, ignore_errors=True)
    check_files(task)
    return DownloadReport(dataset_id, f"hf://{repo}", size, time.perf_counter() - start)
