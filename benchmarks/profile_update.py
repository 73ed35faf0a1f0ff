"""Where one IQL update's time goes: torch.profiler over N updates of the reference agent and of
the learner (one configuration) eager and compiled; per path the top operators by self CPU time
and the share spent in matrix multiplies (the hardware-bound part) against everything else
(dispatch, elementwise kernels, optimiser, Python).

    .venv/bin/python benchmarks/profile_update.py [--updates 300] [--threads 2] [--top 12]
"""

from __future__ import annotations

import argparse

import torch
from _common import random_transitions
from torch.profiler import ProfilerActivity, profile

from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.reference import IQLAgent
from iql_sweep.iql.replay import ReplayBuffer

OBS, ACT, N = 11, 3, 100_000
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn", "mkl_linear")


def profile_path(name: str, step, updates: int, top: int) -> None:
    for _ in range(30):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(updates):
            step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if any(op in e.key for op in MATMUL_OPS))
    wall_us = max(e.cpu_time_total for e in events) or total
    print(
        f"\n== {name}: {updates} updates, self CPU time {total / 1e3:.0f} ms "
        f"({total / updates:.0f} us per update); matrix multiplies {100 * matmul / total:.0f}%, "
        f"everything else {100 * (total - matmul) / total:.0f}%"
    )
    del wall_us
    print(events.table(sort_by="self_cpu_time_total", row_limit=top, max_name_column_width=42))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = random_transitions(N, OBS, ACT)
    config = make_config("default")
    member = [Member(expectile=0.7, beta=3.0, seed=0)]
    agent = IQLAgent(OBS, ACT, config, seed=0)
    buffer = ReplayBuffer(data, 256, [0])
    eager = IQLLearner(OBS, ACT, config, member, data)
    compiled = IQLLearner(OBS, ACT, config, member, data, speed="compiled")
    print(f"obs {OBS}, act {ACT}, batch 256, 2x256, {args.threads} threads, CPU")
    profile_path(
        "reference (IQLAgent)",
        lambda: agent.update({k: v[0] for k, v in buffer.sample().items()}),
        args.updates,
        args.top,
    )
    profile_path("learner, eager", lambda: eager.advance(1), args.updates, args.top)
    profile_path("learner, compiled", lambda: compiled.advance(1), args.updates, args.top)


if __name__ == "__main__":
    main()
