"""The cluster launcher end to end on this machine: ``ray up`` of a ``local``-provider cluster
reached over ssh on loopback (a dedicated user and key, an sshd bound to 127.0.0.1), the literal
``ray submit CLUSTER SPEC.yaml -- --smoke`` (with the head set up by the shipped configs' own
commands), ``ray rsync-down`` of the results, ``ray down``. (``sweeps/run.py``, the long form,
comes to the same function: tests/test_submit.py.)

Needs root and Debian's openssh-server, rsync and netcat-openbsd (``.ci/run`` installs them).
Everything the test creates (user, sshd, Ray processes, files) is removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.helpers import leave_no_ray_in_this_process

pytestmark = pytest.mark.slow  # a cluster over ssh

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SYSTEM_PYTHON = "/usr/bin/python3"


def run(cmd: list[str], timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _passable_for_others(folder: Path) -> list[tuple[Path, int]]:
    """Let other users pass through ``folder``'s ancestors (execute bit only, nothing listed or
    read) so the test user reaches the packages there; returns the modes to put back."""
    changed = []
    for path in (folder, *folder.parents):
        mode = stat.S_IMODE(path.stat().st_mode)
        if not mode & stat.S_IXOTH:
            path.chmod(mode | stat.S_IXOTH)
            changed.append((path, mode))
    return changed


@pytest.fixture(scope="module")
def ssh_lab(tmp_path_factory):
    missing = [
        p
        for p in ("/usr/sbin/sshd", "/usr/bin/rsync", "/usr/bin/nc", SYSTEM_PYTHON)
        if not Path(p).exists()
    ]
    assert not missing, f"install openssh-server rsync netcat-openbsd (see .ci/run): {missing}"
    assert os.geteuid() == 0, "the launcher test creates a user and an sshd: run it as root"
    lab = tmp_path_factory.mktemp("sshlab")
    user = f"iqlsweep{uuid.uuid4().hex[:8]}"
    home = Path("/home") / user
    sshd = None
    opened: list[tuple[Path, int]] = []
    try:
        run(["useradd", "--create-home", "--shell", "/bin/bash", user])
        run(["usermod", "-p", "*", user])  # no password, but not locked (sshd runs with UsePAM no)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(lab / "id_ed25519")])
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(lab / "host_key")])
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        (ssh_dir / "authorized_keys").write_text((lab / "id_ed25519.pub").read_text())
        (ssh_dir / "authorized_keys").chmod(0o600)
        # The user's own interpreter. It sees the packages this test runs with (torch, Ray, ...)
        # through a .pth file instead of installing them again (minutes of pip); the project
        # itself arrives through the cluster's file_mounts + setup_commands, into this venv.
        venv = home / "venv"
        run([SYSTEM_PYTHON, "-m", "venv", str(venv)])
        (site,) = (venv / "lib").glob("python3*/site-packages")
        packages = Path(sysconfig.get_paths()["purelib"])
        opened = _passable_for_others(packages)  # a checkout under a 0700 folder (mktemp -d)
        (site / "iql_sweep_test_packages.pth").write_text(f"{packages}\n")
        ray_cli = venv / "bin" / "ray"  # the console script the .pth cannot bring
        ray_cli.write_text(
            f"#!{venv}/bin/python\nimport sys\nfrom ray.scripts.scripts import main\n"
            "sys.exit(main())\n"
        )
        ray_cli.chmod(0o755)
        (home / ".bashrc").write_text(
            "source ~/venv/bin/activate\n"
            "export RAY_TMPDIR=$HOME/raytmp RAY_AUTH_MODE=disabled\n"
            "export MINARI_DATASETS_PATH=$HOME/minari IQL_SWEEP_CACHE=$HOME/.cache/iql-sweep\n"
        )
        run(["chown", "-R", f"{user}:{user}", str(home)])

        port = free_port()
        Path("/run/sshd").mkdir(exist_ok=True)
        config = lab / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {lab / 'host_key'}\n"
            f"AllowUsers {user}\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            f"KbdInteractiveAuthentication no\nUsePAM no\nPidFile {lab / 'sshd.pid'}\n"
            "Subsystem sftp internal-sftp\n"
        )
        sshd = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield {"user": user, "home": home, "port": port, "lab": lab}
    finally:
        if sshd is not None:
            sshd.terminate()
            sshd.wait(timeout=30)
        subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
        time.sleep(1)
        subprocess.run(["userdel", "--remove", user], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        for path, mode in opened:
            path.chmod(mode)


def submit_setup() -> list[str]:
    """The shipped cluster configs' command that installs the ``ray submit SPEC.yaml`` shim."""
    lines = set()
    for name in ("gpu.yaml", "gpu-gcp.yaml"):
        config = yaml.safe_load((ROOT / "cluster" / name).read_text())
        lines |= {c for c in config["setup_commands"] if "cluster/submit.bash" in c}
    assert len(lines) == 1, lines  # both configs install it, the same way
    return sorted(lines)


def test_ray_up_submit_rsync_down_and_down(ssh_lab, umaze_id, minari_root):
    lab, user = ssh_lab["lab"], ssh_lab["user"]
    specs = lab / "specs"
    specs.mkdir()
    spec = {
        "name": "launched",
        "datasets": [umaze_id],  # mounted below (making a missing one: tests/test_data.py)
        "iql": {"batch_size": 32, "hidden_dims": [32, 32]},
        "search": {"grid": {"expectile": [0.5, 0.9]}},
        "training": {"steps": 60, "eval_every": 30, "eval_episodes": 2},
        "resources": {"cpus_per_trial": 1, "gpus_per_trial": 0.5},
        "wandb": {"mode": "offline"},
        "output": "results",
    }
    (specs / "launched.yaml").write_text(yaml.safe_dump(spec))
    name = f"iqlsweep-test-{uuid.uuid4().hex[:6]}"
    cluster = {
        "cluster_name": name,
        "provider": {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []},
        "auth": {
            "ssh_user": user,
            "ssh_private_key": str(lab / "id_ed25519"),
            "ssh_proxy_command": f"nc 127.0.0.1 {ssh_lab['port']}",
        },
        "min_workers": 0,
        "max_workers": 0,
        "file_mounts": {
            "~/iql-sweep": str(ROOT),
            "~/specs": str(specs),
            # the session's small dataset into the head's Minari root (its .bashrc says where)
            f"~/minari/{umaze_id}": str(minari_root / umaze_id),
        },
        "rsync_exclude": ["**/.git", "**/.venv", "**/results", "**/runs", "**/__pycache__"],
        # The shipped configs' own head set-up for `ray submit CLUSTER SPEC.yaml` (the shim in
        # ~/.bashrc), with the results on the "shared storage" of this one-node cluster.
        "setup_commands": [
            "pip install -q --no-deps --force-reinstall ~/iql-sweep",
            *submit_setup(),
            "echo 'export IQL_SWEEP_OUTPUT=$HOME/shared/results' >> ~/.bashrc",
        ],
        "head_start_ray_commands": [
            "ray stop",
            "ray start --head --port=6399 --num-cpus=2 --num-gpus=1 "
            "--autoscaling-config=~/ray_bootstrap_config.yaml --disable-usage-stats",
        ],
        "worker_start_ray_commands": [],
    }
    config = lab / "cluster.yaml"
    config.write_text(yaml.safe_dump(cluster))
    ray = str(BIN / "ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    leave_no_ray_in_this_process()  # ray up/down stop Ray on this host
    try:
        run([ray, "up", "-y", str(config), "--no-config-cache"], env=env)
        # The headline command, literally: a YAML spec as ray submit's file argument; the
        # argument after -- is passed on (--smoke halves nothing here but must arrive).
        submitted = run([ray, "submit", str(config), str(specs / "launched.yaml"), "--", "--smoke"],
                        env=env)  # fmt: skip
        assert "τ \\ β" in submitted.stdout  # the report printed at the end of the sweep
        shared = f"/home/{user}/shared/results/launched-smoke"
        assert f"results go to {shared} on the head" in submitted.stdout
        assert f"fetch them with: ray rsync-down CLUSTER.yaml {shared} ./results/" in (
            submitted.stdout
        )
        down_dir = lab / "down"
        down_dir.mkdir()
        run([ray, "rsync-down", str(config), shared + "/", str(down_dir / "launched")], env=env)
    finally:
        subprocess.run([ray, "down", "-y", str(config)], env=env, capture_output=True, timeout=300)
        for leftover in (f"cluster-{name}.state", f"cluster-{name}.lock"):
            Path("/tmp/ray", leftover).unlink(missing_ok=True)
    experiment = down_dir / "launched"
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"}
    assert (experiment / "report" / "tau_ablation.png").stat().st_size > 5000
    assert len(list((experiment / "wandb").glob("offline-run-*/run-*.wandb"))) == 2
    # ray down stopped the head's Ray: no process of the lab user is left running Ray.
    left = subprocess.run(["pgrep", "-u", user, "-f", "raylet|gcs_server"], capture_output=True)
    assert left.returncode == 1, left.stdout
