"""Cluster set-ups: launcher configs and the compose file validated, and a real two-node Ray
cluster on this machine (``ray start --head`` + ``ray start --address``, logical GPUs) driven
through ``--address`` and through Ray Jobs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import leave_no_ray_in_this_process

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("name", ["gpu.yaml", "gpu-gcp.yaml"])
def test_cluster_configs_pass_rays_validation(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "cluster" / name).read_text())
    validate_config(prepare_config(config))
    assert config["docker"]["image"].startswith("rayproject/ray:2.60.0-py311-gpu")
    import ray

    assert ray.__version__ in config["docker"]["image"]
    config["max_worker"] = 3  # a typo must be caught
    with pytest.raises(Exception, match="max_worker"):
        validate_config(prepare_config(config))


def _compose_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
    )


def test_compose_file_follows_the_compose_specification(tmp_path):
    ok = _compose_check(ROOT / "docker-compose.yml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    worker = compose["services"]["ray-worker"]
    assert worker["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "healthcheck" in compose["services"]["ray-head"]
    broken = (ROOT / "docker-compose.yml").read_text().replace("capabilities:", "capabilites:")
    (tmp_path / "docker-compose.yml").write_text(broken)
    assert _compose_check(tmp_path / "docker-compose.yml").returncode != 0


def _start_cluster(tmp: Path, nodes: int):
    """``ray start --head`` (+ ``ray start --address`` per extra node), one logical GPU each."""
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    port, dashboard = free_port(), free_port()
    ray = str(BIN / "ray")
    leave_no_ray_in_this_process()  # `ray stop --force` stops every Ray on the host
    subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
    commands = [
        [
            ray,
            "start",
            "--head",
            f"--port={port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
        ]
    ]
    commands += [[ray, "start", f"--address=127.0.0.1:{port}"] for _ in range(nodes - 1)]
    for command in commands:
        command += ["--num-cpus=1", "--num-gpus=1", "--disable-usage-stats"]
        started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert started.returncode == 0, started.stderr
    return {
        "address": f"127.0.0.1:{port}",
        "dashboard": f"http://127.0.0.1:{dashboard}",
        "env": env,
        "tmp": tmp,
    }


def _stop_cluster(cluster) -> None:
    subprocess.run(
        [str(BIN / "ray"), "stop", "--force"], env=cluster["env"], capture_output=True, timeout=120
    )


@pytest.fixture
def two_node_cluster(tmp_path, umaze_id):
    """A head and a second node on this machine; torn down after the test."""
    cluster = _start_cluster(tmp_path, nodes=2)
    try:
        yield cluster
    finally:
        _stop_cluster(cluster)


@pytest.fixture
def head_only_cluster(tmp_path, umaze_id):
    """A local head started with ``ray start --head`` (dashboard and Jobs API on loopback).

    Ray Jobs is tested on one node: two nodes on one machine share the session folder, and the
    second node's clean-up of the job's working_dir package deletes the driver's working
    directory (an artefact of co-locating nodes, not of real clusters)."""
    cluster = _start_cluster(tmp_path, nodes=1)
    try:
        yield cluster
    finally:
        _stop_cluster(cluster)


def tiny_cluster_spec(name: str, dataset: str) -> dict:
    return {
        "name": name,
        "datasets": [dataset],
        "iql": {"batch_size": 32, "hidden_dims": [32, 32]},
        "search": {"grid": {"expectile": [0.5, 0.9], "seed": [0, 1]}},
        "training": {"steps": 300, "eval_every": 150, "eval_episodes": 2},
        # 0.5 CPU per trial and the GPU share left to 'auto' (the default): each node has one
        # CPU per GPU, so two trials share each node's GPU, 0.5 each.
        "resources": {"cpus_per_trial": 0.5, "max_failures": 0},
        "wandb": {"mode": "offline"},
        "output": "results",
    }


@pytest.mark.slow
def test_sweep_through_address_uses_both_nodes(two_node_cluster, umaze_id):
    cluster = two_node_cluster
    folder = cluster["tmp"] / "address"
    folder.mkdir()
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_cluster_spec("two_nodes", umaze_id)))
    shared = folder / "shared"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "iql_sweep.cli",
            "run",
            str(spec),
            "--address",
            cluster["address"],
            "--output",
            str(shared),
        ],
        cwd=folder,
        env=cluster["env"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Before the trials: where they run, the share 'auto' sized from the nodes' CPUs per GPU.
    said = " ".join(result.stdout.split())
    assert (
        "4 Ray trial(s), each 0.5 CPU and 0.5 GPU, 2 trials per GPU (auto), about" in said
        and "the cluster now: 2 node(s), 2 CPUs, 2 GPUs: up to 4 at once" in said
    ), said[:3000]
    experiment = shared / "two_nodes"
    settled = yaml.safe_load((experiment / "sweep_spec.yaml").read_text())
    assert settled["resources"]["gpus_per_trial"] == 0.5  # what resume will use
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"TERMINATED"}
    nodes = set()
    for result_file in experiment.glob("*/result.json"):
        rows = [json.loads(x) for x in result_file.read_text().splitlines() if x.strip()]
        nodes.add(rows[-1]["node_id"])
    assert len(nodes) == 2, nodes  # trials ran on the head and on the second node
    assert len(list(experiment.glob("*/checkpoint_*"))) >= 4  # checkpoints in shared storage
    assert len(list((experiment / "wandb").glob("offline-run-*"))) == 4


@pytest.mark.slow
def test_ray_job_submit_runs_a_sweep_with_wandb_offline(head_only_cluster, umaze_id):
    cluster = head_only_cluster
    work = cluster["tmp"] / "job"
    work.mkdir()
    (work / "spec.yaml").write_text(yaml.safe_dump(tiny_cluster_spec("job_sweep", umaze_id)))
    output = cluster["tmp"] / "job_results"
    submit = [
        str(BIN / "ray"),
        "job",
        "submit",
        "--address",
        cluster["dashboard"],
        "--working-dir",
        str(work),
        "--",
        sys.executable,
        "-m",
        "iql_sweep.cli",
        "run",
        "spec.yaml",
        "--output",
        str(output),
    ]
    result = subprocess.run(submit, env=cluster["env"], capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout
    experiment = output / "job_sweep"
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    assert set(trials["status"]) == {"TERMINATED"}
    runs = list((experiment / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 4 and all(r.stat().st_size > 1000 for r in runs)
