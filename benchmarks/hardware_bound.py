"""The hardware bound of one IQL update: FLOPs per update (counted by torch), the measured
matrix-multiply rate on the update's own layer shapes, the resulting updates/s ceiling, and each
path's fraction of it.

    .venv/bin/python benchmarks/hardware_bound.py [--threads 2] [--seconds 4]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _common import calls_per_second, random_transitions
from torch.utils.flop_counter import FlopCounterMode

from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.reference import IQLAgent
from iql_sweep.iql.replay import ReplayBuffer

OBS, ACT, N, B, H = 11, 3, 100_000, 256, 256


def flops(step) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def gemm_rate(seconds: float) -> float:
    """GFLOP/s of plain matrix multiplies with the update's layer shapes: for each layer the
    forward X @ W, and the backward dY @ W^T and X^T @ dY, weighted by their FLOPs."""
    shapes = [(OBS, H), (OBS + ACT, H), (H, H), (H, 1), (H, ACT)]
    total_flops, total_time = 0.0, 0.0
    for fan_in, fan_out in shapes:
        x, w, dy = torch.randn(B, fan_in), torch.randn(fan_in, fan_out), torch.randn(B, fan_out)

        def step(x=x, w=w, dy=dy):
            torch.mm(x, w)
            torch.mm(dy, w.t())
            torch.mm(x.t(), dy)

        per_call = 3 * 2 * B * fan_in * fan_out
        calls_per_s = calls_per_second(step, seconds / len(shapes))
        total_flops += per_call
        total_time += 1.0 / calls_per_s
    return total_flops / total_time / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = random_transitions(N, OBS, ACT)
    config = make_config("default")
    member = [Member(expectile=0.7, beta=3.0, seed=0)]
    agent = IQLAgent(OBS, ACT, config, seed=0)
    buffer = ReplayBuffer(data, B, [0])
    eager = IQLLearner(OBS, ACT, config, member, data)
    compiled = IQLLearner(OBS, ACT, config, member, data, speed="compiled")
    ref_step = lambda: agent.update({k: v[0] for k, v in buffer.sample().items()})  # noqa: E731
    fast_step = lambda: eager.advance(1)  # noqa: E731
    compiled_step = lambda: compiled.advance(1)  # noqa: E731
    ref_flops, fast_flops = flops(ref_step), flops(fast_step)
    rates = [gemm_rate(args.seconds) for _ in range(3)]
    gemm = statistics.median(rates)
    bound = gemm * 1e9 / ref_flops
    ref_rate = calls_per_second(ref_step, args.seconds)
    fast_rate = calls_per_second(fast_step, args.seconds)
    compiled_rate = calls_per_second(compiled_step, args.seconds)
    print(f"obs {OBS}, act {ACT}, batch {B}, 2x{H} MLPs, {args.threads} threads, CPU")
    print(f"FLOPs per update: reference {ref_flops / 1e6:.1f} M, learner {fast_flops / 1e6:.1f} M")
    print(
        f"plain matmul rate on the update's layer shapes (fwd + both bwd GEMMs, no autograd): "
        f"median {gemm:.0f} GFLOP/s "
        f"({', '.join(f'{r:.0f}' for r in rates)})"
    )
    print(
        f"ceiling: {bound:.0f} updates/s if every FLOP ran at that rate (no Python, no "
        "elementwise work, no optimiser)"
    )
    paths = (
        ("reference", ref_rate),
        ("learner, eager", fast_rate),
        ("learner, compiled", compiled_rate),
    )
    for name, value in paths:
        print(f"{name:<26}{value:>8.1f} updates/s = {100 * value / bound:.0f}% of the ceiling")


if __name__ == "__main__":
    main()
