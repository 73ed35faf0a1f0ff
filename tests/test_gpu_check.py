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
    checks = report["checks"]
    assert report["fast_setting"] == "compiled"  # the CPU's place for the graph
    for name in ("1 compiled vs eager", "3 two compiled runs agree", "4 online growth", "5 resume"):
        assert checks[name]["status"] == "pass", (name, checks[name])
    first = checks["1 compiled vs eager"]
    for label in ("K=1", "pack", "LayerNorm"):  # the cosine schedule moved; fast setting engaged
        assert first[label]["max_rel"] < 1e-4 and first[label]["engaged"]
        assert 0 < first[label]["lr"] < 3e-4 and first[label]["step"] == 40
    assert checks["5 resume"]["graph_to_graph_max_rel"] == 0.0
    for name in ("2 CPU eager vs CUDA eager", "6 injected capture failure"):  # said, not hidden
        assert checks[name] == {**checks[name], "status": "skipped", "reason": "CPU"}
    single = checks["7a one configuration"]
    assert set(single["updates_per_second"]) == {"eager", "compiled"}
    assert all(v > 0 for v in single["updates_per_second"].values())
    assert single["consecutive"]["updates"] == 500
    populations = [checks["7b/8 K=1"], checks["7b/8 K=3"]]
    assert [p["members"] for p in populations] == [1, 3]
    assert populations[1]["critics"] == 1  # three betas on one critic
    assert all(p["config_updates_per_second"] > 0 for p in populations)
    assert populations[1]["estimate_allocated_mib"] > populations[0]["estimate_allocated_mib"]
    beside = checks["9 evaluation beside training"]
    assert beside["status"] == "pass" and beside["frozen_equals_then"]
    assert beside["learner_moved_on"] and beside["stream"].startswith("skipped")
    lines = [line for line in result.stdout.splitlines() if line.startswith("  ")]
    assert sum(": pass " in line or ": skipped " in line for line in lines) == len(checks)
