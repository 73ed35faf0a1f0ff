"""Configuration-updates/s: the reference solo agent against learners of K members trained as one
set of kernels (K in {1, 4, 16, 64}, distinct seeds) and a 3 tau x 3 beta grid with and without
shared critics, eager and compiled. Contenders are interleaved over rounds; medians per
contender, ratios to the solo agent.

    .venv/bin/python benchmarks/population_speed.py [--rounds 3] [--seconds 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from _common import calls_per_second, print_medians, random_transitions

from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.reference import IQLAgent
from iql_sweep.iql.replay import ReplayBuffer

OBS, ACT, N = 11, 3, 200_000


def solo(tensors) -> tuple[Callable[[], None], int]:
    agent = IQLAgent(OBS, ACT, make_config("default"), seed=0)
    buffer = ReplayBuffer(tensors, 256, [0])
    return (lambda: agent.update({k: v[0] for k, v in buffer.sample().items()})), 1


def population(
    tensors, members: list[Member], share: bool, speed: str = "eager"
) -> tuple[Callable[[], None], int]:
    learner = IQLLearner(
        OBS, ACT, make_config("default"), members, tensors, share_critics=share, speed=speed
    )
    return (lambda: learner.advance(1)), len(members)


def rate(step: Callable[[], None], configs: int, seconds: float) -> float:
    return configs * calls_per_second(step, seconds, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tensors = random_transitions(N, OBS, ACT)
    grid = [Member(expectile=t, beta=b, seed=0) for t in (0.5, 0.7, 0.9) for b in (0.5, 3.0, 10.0)]
    contenders = {"solo IQLAgent (reference)": solo(tensors)}
    for k in args.sizes:
        members = [Member(expectile=0.7, beta=3.0, seed=seed) for seed in range(k)]
        contenders[f"population K={k}"] = population(tensors, members, share=False)
    contenders["3tau x 3beta, unshared critics"] = population(tensors, grid, share=False)
    contenders["3tau x 3beta, shared critics"] = population(tensors, grid, share=True)
    contenders["K=16, compiled"] = population(
        tensors,
        [Member(expectile=0.7, beta=3.0, seed=seed) for seed in range(16)],
        share=False,
        speed="compiled",
    )
    contenders["3tau x 3beta, shared, compiled"] = population(
        tensors, grid, share=True, speed="compiled"
    )
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, (step, configs) in contenders.items():
            results[name].append(rate(step, configs, args.seconds))
    unshared = statistics.median(results["3tau x 3beta, unshared critics"])
    print(
        f"threads {args.threads}, batch 256, 2x256 MLPs, obs {OBS}, act {ACT}; "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s"
    )
    print_medians(results, "solo IQLAgent (reference)", "config-updates/s", "x solo")
    shared = statistics.median(results["3tau x 3beta, shared critics"])
    print(f"shared / unshared critics on the 3x3 grid: {shared / unshared:.2f}x")


if __name__ == "__main__":
    main()
