"""Datasets from Minari's remote, through the real download path (Minari → huggingface_hub →
HTTP) against a stand-in Hugging Face Hub on 127.0.0.1 serving a genuine Minari dataset laid out
as Farama's repositories are. Never the internet."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import minari
import numpy as np
import pytest
import yaml

from tests.hub_standin import HubStandIn

REMOTE_ID = "D4RL/pointmaze/umaze-v2"


def _publish(root: Path, org: str, source: Path, ids: list[str], listed: list[str] = ()) -> None:
    """Lay out local data as Minari's Hugging Face remote holds it: ``ids`` with their files,
    ``listed`` with their metadata only (enough to be listed and validated, not downloaded)."""
    meta = json.loads((source / "metadata.json").read_text())
    namespaces: dict[str, set[str]] = {}
    for dataset_id in [*ids, *listed]:
        repo_name, rest = dataset_id.split("/", 1)
        data = root / org / repo_name / rest / "data"
        data.mkdir(parents=True)
        if dataset_id in ids:
            shutil.copy(source / "main_data.hdf5", data)
        (data / "metadata.json").write_text(json.dumps({**meta, "dataset_id": dataset_id}))
        namespaces.setdefault(repo_name, set()).add(dataset_id)
        sub = root / org / repo_name / rest.rsplit("/", 1)[0] / "namespace_metadata.json"
        sub.write_text(json.dumps({"display_name": dataset_id.rsplit("/", 1)[0]}))
    for repo_name, datasets in namespaces.items():
        subs = sorted({d.rsplit("/", 1)[0] for d in datasets})
        (root / org / repo_name / "namespace_metadata.json").write_text(
            json.dumps({"datasets": sorted(datasets), "namespaces": subs})
        )


SHIPPED_D4RL_SPECS = ("tau_ablation.yaml", "d4rl_antmaze.yaml", "d4rl_kitchen.yaml",
                      "d4rl_adroit.yaml")  # fmt: skip
SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"


def _shipped_d4rl_ids() -> list[str]:
    ids = set()
    for name in SHIPPED_D4RL_SPECS:
        ids |= set(yaml.safe_load((SWEEPS / name).read_text())["datasets"])
    return sorted(ids)


@pytest.fixture(scope="module")
def hub(umaze_id, minari_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    source = minari_root / umaze_id / "data"
    _publish(root, "farama-minari", source, [REMOTE_ID], listed=_shipped_d4rl_ids())
    _publish(root, "our-mirror", source, ["D4RL/pointmaze/open-v2"])
    with HubStandIn(root) as server:
        yield server


def cli(*args: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iql_sweep.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def hub_env(hub: HubStandIn, tmp_path: Path) -> dict:
    """A fresh Minari root and Hugging Face cache; the hub's endpoint."""
    return {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "COLUMNS": "200",  # the tables unabridged
        "MINARI_DATASETS_PATH": str(tmp_path / "minari"),
    }


def test_list_remote_shows_what_the_remote_offers(hub, tmp_path):
    result = cli("datasets", "list", "--remote", env=hub_env(hub, tmp_path))
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert f"{REMOTE_ID} │ no │ - │ yes (30000 steps)" in text, text
    assert "remote: hf://farama-minari" in text


def test_download_writes_the_dataset_into_the_minari_root(hub, umaze_id, minari_root, tmp_path):
    env = hub_env(hub, tmp_path)
    first = len(hub.requests)
    result = cli("datasets", "download", REMOTE_ID, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"downloaded {REMOTE_ID}" in result.stdout and "hf://farama-minari" in result.stdout
    assert "Fetching 2 files" in result.stderr  # huggingface_hub's progress bar
    got = Path(env["MINARI_DATASETS_PATH"]) / REMOTE_ID / "data"
    source = minari_root / umaze_id / "data"
    assert (got / "main_data.hdf5").read_bytes() == (source / "main_data.hdf5").read_bytes()
    assert any(
        r.endswith(f"{REMOTE_ID.split('/', 1)[1]}/data/main_data.hdf5")
        for r in hub.requests[first:]
    )
    # Minari itself reads what arrived, as the same data.
    steps = minari.load_dataset(umaze_id).total_steps
    saved = os.environ["MINARI_DATASETS_PATH"]
    os.environ["MINARI_DATASETS_PATH"] = env["MINARI_DATASETS_PATH"]
    try:
        assert minari.load_dataset(REMOTE_ID).total_steps == steps
    finally:
        os.environ["MINARI_DATASETS_PATH"] = saved
    again = cli("datasets", "download", REMOTE_ID, env=env)
    assert again.returncode == 0 and "present (--force downloads it again)" in again.stdout


def test_minari_remote_is_honoured(hub, tmp_path):
    env = {**hub_env(hub, tmp_path), "MINARI_REMOTE": "hf://our-mirror"}
    listed = cli("datasets", "list", "--remote", env=env)
    assert "D4RL/pointmaze/open-v2" in listed.stdout and REMOTE_ID not in listed.stdout
    result = cli("datasets", "download", "D4RL/pointmaze/open-v2", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    missing = cli("datasets", "download", REMOTE_ID, env=env)
    assert missing.returncode == 2
    assert f"{REMOTE_ID!r} is not on Minari's remote hf://our-mirror; it offers " in " ".join(
        missing.stderr.split()
    )


def test_train_downloads_a_missing_remote_dataset_first(hub, tmp_path):
    env = hub_env(hub, tmp_path)
    out = tmp_path / "run"
    result = cli(
        "train", "--dataset", REMOTE_ID, "--steps", "40", "--eval-every", "20",
        "--eval-episodes", "1", "--batch-size", "32", "--out", str(out), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"downloaded {REMOTE_ID}" in result.stdout
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [20, 40]
    assert np.isfinite([m["normalized_score"] for m in metrics]).all()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _remote_only_spec(tmp_path) -> dict:
    """A spec whose one dataset only Minari's remote could hold."""
    return {
        "name": "remote-only",
        "datasets": [REMOTE_ID],
        "search": {"grid": {"expectile": [0.7]}},
        "training": {"steps": 20, "eval_every": 10},
        "output": str(tmp_path / "results"),
    }


def test_an_unreachable_remote_is_a_clear_error_naming_the_offline_way(umaze_id, tmp_path):
    """Validation of a spec whose dataset is neither local, nor makeable, nor reachable says so,
    lists what is local and names the offline alternative, within seconds (no retry storm)."""
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
        "HF_HOME": str(tmp_path / "hf_home"),
    }
    spec = _remote_only_spec(tmp_path)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    result = cli("validate", str(tmp_path / "spec.yaml"), env=env)
    text = " ".join(result.stderr.split())
    assert result.returncode == 2 and "Traceback" not in text, text
    assert f"datasets[0]: {REMOTE_ID!r} is not under the Minari root" in text
    assert (
        "the project cannot make it, and Minari's remote hf://farama-minari cannot be reached"
        in text
    )
    assert umaze_id in text  # what is local
    assert "sweeps/tau_ablation_local.yaml" in text and f"minari download {REMOTE_ID}" in text
    download = cli("datasets", "download", REMOTE_ID, env=env)
    assert download.returncode == 2 and "cannot be reached" in download.stderr


def test_an_unreachable_remote_costs_one_connection_attempt(umaze_id, tmp_path, monkeypatch):
    """No retry storm: validating (twice) a spec whose dataset only the unreachable remote could
    hold tries the remote's endpoint once, the probe's, and never through Hugging Face's
    client (which retries a dead network for about 25 s per call)."""
    from iql_sweep.data.remote import _endpoint, remote_name, unreachable_reason
    from iql_sweep.errors import ConfigError
    from iql_sweep.spec import validate_spec

    endpoint = urlparse(_endpoint(remote_name()))  # conftest's closed loopback port
    attempts = []
    connect = socket.socket.connect

    def counted(sock, address):
        attempts.append(address)
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", counted)
    unreachable_reason.cache_clear()
    spec = _remote_only_spec(tmp_path)
    for _ in range(2):
        with pytest.raises(ConfigError, match="cannot be reached"):
            validate_spec(spec)
    assert [a for a in attempts if a[1] == endpoint.port] == [(endpoint.hostname, endpoint.port)]


@pytest.mark.slow
def test_a_sweep_downloads_its_remote_datasets_once_before_ray_starts(hub, tmp_path):
    env = {**hub_env(hub, tmp_path), "RAY_DEDUP_LOGS": "0"}
    spec = {
        "name": "remote-sweep",
        "datasets": [REMOTE_ID],
        "iql": {"batch_size": 32, "hidden_dims": [32, 32]},
        "search": {"grid": {"expectile": [0.7], "seed": [0, 1]}},
        "training": {"steps": 40, "eval_every": 20, "eval_episodes": 1},
        "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 2},
        "wandb": {"mode": "disabled"},
        "output": str(tmp_path / "results"),
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert cli("validate", str(tmp_path / "spec.yaml"), env=env).returncode == 0
    first = len(hub.requests)
    result = cli("run", str(tmp_path / "spec.yaml"), env=env, timeout=420)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert f"dataset {REMOTE_ID}: was missing; downloaded" in " ".join(out.split())
    assert out.index("downloaded") < out.index("trial(s), each")  # before the trials
    data_gets = [r for r in hub.requests[first:] if r.startswith("GET") and "main_data" in r]
    assert len(data_gets) == 1, data_gets  # once, by the driver
    trials = (tmp_path / "results" / "remote-sweep" / "report" / "trials.csv").read_text()
    assert trials.count("TERMINATED") == 2


@pytest.mark.parametrize("name", SHIPPED_D4RL_SPECS)
def test_the_shipped_d4rl_specs_validate_when_the_remote_offers_their_datasets(hub, tmp_path, name):
    result = cli("validate", str(SWEEPS / name), env=hub_env(hub, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"valid {name.removesuffix('.yaml')}:" in result.stdout
