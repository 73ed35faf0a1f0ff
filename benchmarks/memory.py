"""Peak memory: a 1M-transition dataset as training tensors, and a K = 64 learner training.

    .venv/bin/python benchmarks/memory.py [--transitions 1000000] [--members 64]

Each measurement runs in a fresh subprocess and reports the growth of the peak resident set
(VmHWM) over the process's baseline, with the analytic size beside it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = r"""
import sys, torch
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner
what, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
obs, act = 11, 3
base = hwm()
data = {"observations": torch.randn(n, obs), "actions": torch.rand(n, act) * 2 - 1,
        "rewards": torch.randn(n), "next_observations": torch.randn(n, obs),
        "terminals": torch.zeros(n), "timeouts": torch.zeros(n)}
analytic = sum(t.numel() * t.element_size() for t in data.values())
after_data = hwm()
if what == "dataset":
    print(after_data - base, analytic)
else:
    members = [Member(expectile=0.7, beta=3.0, seed=s) for s in range(k)]
    pop = IQLLearner(obs, act, make_config("default"), members, data, share_critics=False)
    pop.advance(5)
    params = sum(p.numel() * 4 for net in (pop.value, pop.q, pop.q_target, pop.actor)
                 for p in net.parameters())
    print(hwm() - after_data, params * 3)  # weights + Adam's two moments (targets: no Adam)
"""


def measure(what: str, n: int, k: int) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, what, str(n), str(k)],
        capture_output=True,
        text=True,
        check=True,
    )
    grown, analytic = out.stdout.split()
    return int(grown), int(analytic)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=64)
    args = parser.parse_args()
    grown, analytic = measure("dataset", args.transitions, 0)
    print(
        f"{args.transitions:,}-transition dataset (obs 11, act 3, float32): peak RSS +"
        f"{grown / 2**20:.0f} MiB (tensors {analytic / 2**20:.0f} MiB)"
    )
    grown, analytic = measure("population", 10_000, args.members)
    print(
        f"K={args.members} learner (2x256, batch 256, no shared critics), 5 updates: peak RSS "
        f"+{grown / 2**20:.0f} MiB (weights + Adam moments about {analytic / 2**20:.0f} MiB; "
        "the rest is activations and gradients)"
    )


if __name__ == "__main__":
    main()
