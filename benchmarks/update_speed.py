"""Updates/s of one configuration on the learner, at a speed setting, on random data.

    .venv/bin/python benchmarks/update_speed.py [--obs-dim 6] [--act-dim 2] [--updates 2000]
        [--repeats 3] [--device cpu] [--speed eager|compiled|graph] [--threads 2]

Times ``learner.advance(updates)`` (the minibatch draw included, no evaluation) after a warm-up,
and prints the median of the repeats with the per-repeat figures.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import random_transitions

from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import SPEEDS, IQLLearner


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--obs-dim", type=int, default=6)
    parser.add_argument("--act-dim", type=int, default=2)
    parser.add_argument("--transitions", type=int, default=200_000)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--speed", default="eager", choices=SPEEDS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = random_transitions(args.transitions, args.obs_dim, args.act_dim)
    data = {k: v.to(device) for k, v in data.items()}
    learner = IQLLearner(
        args.obs_dim,
        args.act_dim,
        make_config("default"),
        [Member(expectile=0.7, beta=3.0, seed=0)],
        data,
        device=device,
        speed=args.speed,
    )

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    learner.advance(args.warmup)
    rates = []
    for _ in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        learner.advance(args.updates)
        learner.pop_metrics()
        sync()
        rates.append(args.updates / (time.perf_counter() - t0))
    print(
        f"IQL learner ({args.speed}), obs {args.obs_dim}, act {args.act_dim}, batch 256, 2x256, "
        f"{args.device}, {args.threads} threads: median {statistics.median(rates):.1f} updates/s "
        f"(repeats: {', '.join(f'{r:.1f}' for r in rates)})"
    )


if __name__ == "__main__":
    main()
