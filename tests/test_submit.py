"""``ray submit CLUSTER SPEC.yaml`` on the head without a cluster: the arguments the head runs
``iql-sweep`` with, the shell function of ``cluster/submit.bash`` in a real login-like bash, and
``sweeps/run.py`` (the long form) reaching the same code. The whole flow over ssh:
tests/test_launcher.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from iql_sweep.submit import run_args

ROOT = Path(__file__).resolve().parent.parent


def test_the_head_runs_the_spec_on_the_cluster_with_shared_output(tmp_path, monkeypatch):
    monkeypatch.setenv("IQL_SWEEP_OUTPUT", "/mnt/shared/results")
    monkeypatch.setenv("IQL_SWEEP_PROJECT", str(ROOT))
    monkeypatch.chdir(tmp_path)
    spec = str(ROOT / "sweeps" / "tau_ablation.yaml")
    assert run_args(["sweeps/tau_ablation.yaml", "--smoke"]) == [
        "run", spec, "--smoke", "--address", "auto", "--output", "/mnt/shared/results",
    ]  # fmt: skip
    # What the user passed wins; a spec in the working directory is taken as it is.
    (tmp_path / "mine.yaml").write_text("name: x\n")
    assert run_args(["mine.yaml", "--output", "/elsewhere", "--address", "10.0.0.1:6379"]) == [
        "run", "mine.yaml", "--output", "/elsewhere", "--address", "10.0.0.1:6379",
    ]  # fmt: skip
    monkeypatch.delenv("IQL_SWEEP_OUTPUT")
    assert "--output" not in run_args(["mine.yaml"])  # the spec's own output then


def _bash(script: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """A bash that sources the shim, as the head's ~/.bashrc does, with this venv's python."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "-c", f"source {ROOT / 'cluster' / 'submit.bash'}; {script}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip


def test_the_shim_sends_yaml_to_the_sweep_and_leaves_python_alone(tmp_path):
    # `ray submit` runs `python ~/SPEC.yaml ARGS`: a spec that is not there is refused by
    # iql-sweep itself (one line, exit 2), so the call went to the sweep, not to Python.
    result = _bash("python missing.yaml --smoke", tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SPEC: no such file missing.yaml" in result.stdout + result.stderr
    plain = _bash("python -c 'import sys; print(sys.argv[1:])' a.yaml", tmp_path)
    assert plain.returncode == 0 and plain.stdout.strip() == "['a.yaml']"


def test_the_long_form_entry_script_reaches_the_same_code(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "run.py"), "missing.yaml"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "SPEC: no such file missing.yaml" in result.stdout + result.stderr
    usage = subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "run.py")], capture_output=True, text=True
    )
    assert usage.returncode == 1 and "usage: python -m iql_sweep.submit SPEC.yaml" in usage.stderr
