"""Updates/s of the reference IQL update on random data with a given observation size.

    .venv/bin/python benchmarks/update_speed.py [--obs-dim 6] [--act-dim 2] [--updates 2000]
        [--repeats 3] [--device cpu] [--threads 2]

Times ``IQLAgent.update(sampler.sample())`` (sampling included, no evaluation), after a warm-up,
and prints the median of the repeats with the per-repeat figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import random_transitions

from iql_sweep.data.transitions import BatchSampler
from iql_sweep.iql.agent import IQLAgent
from iql_sweep.iql.config import make_config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--obs-dim", type=int, default=6)
    parser.add_argument("--act-dim", type=int, default=2)
    parser.add_argument("--transitions", type=int, default=200_000)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n, device = args.transitions, torch.device(args.device)
    data = random_transitions(n, args.obs_dim, args.act_dim)
    data = {k: v.to(device) for k, v in data.items()}
    agent = IQLAgent(args.obs_dim, args.act_dim, make_config("default"), device=device)
    sampler = BatchSampler(data, 256, seed=0)
    for _ in range(args.warmup):
        agent.update(sampler.sample())
    rates = []
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.updates):
            agent.update(sampler.sample())
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates.append(args.updates / (time.perf_counter() - t0))
    print(
        f"reference IQL update, obs {args.obs_dim}, act {args.act_dim}, batch 256, 2x256, "
        f"{args.device}, {args.threads} threads: median {statistics.median(rates):.1f} updates/s "
        f"(repeats: {', '.join(f'{r:.1f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
