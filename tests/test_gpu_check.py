"""benchmarks/gpu_check.py, the GPU session's script, runs on the CPU in its quick form with only
torch, numpy and pydantic from the stack, and writes its figures as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
HEAVY = ("ray", "wandb", "minari", "gymnasium", "gymnasium_robotics", "mujoco", "h5py")

RUN = """
import runpy, sys
sys.argv = ["gpu_check.py", "--device", "cpu", "--quick", "--out", sys.argv[1]]
try:
    runpy.run_path({script!r}, run_name="__main__")
finally:
    print("HEAVY:", sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r})))
"""


def test_gpu_check_quick_on_cpu_writes_its_figures(tmp_path):
    out = tmp_path / "gpu_check.json"
    code = RUN.format(script=str(SCRIPT), heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "HEAVY: []" in result.stdout  # none of Ray, W&B, Minari, gymnasium, MuJoCo
    report = json.loads(out.read_text())
    (check,) = report["equivalence"]  # on the CPU: compiled vs eager from the same generators
    assert check["pass"] and check["max_rel"] < 1e-3
    assert set(report["single"]["updates_per_second"]) == {"eager", "compiled"}
    assert all(v > 0 for v in report["single"]["updates_per_second"].values())
    consecutive = report["single"]["consecutive"]
    assert consecutive["projected_1m_minutes"] > 0 and consecutive["updates"] == 500
    assert [p["members"] for p in report["populations"]] == [1, 3]
    assert report["populations"][1]["critics"] == 1  # three betas on one critic
    assert report["paper_grid"]["projected_minutes_at_1m"] > 0
    assert "gpu_check on" in result.stdout and "config-updates/s" in result.stdout
