"""Shared pieces of the benchmark scripts: random transitions and a timed-rate loop."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def random_transitions(
    n: int, obs_dim: int, act_dim: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """n random transitions (Gaussian states and rewards, uniform actions in [-1, 1])."""
    g = torch.Generator().manual_seed(seed)
    timeouts = torch.zeros(n)
    timeouts[999::1000] = 1.0
    return {
        "observations": torch.randn(n, obs_dim, generator=g),
        "actions": torch.rand(n, act_dim, generator=g) * 2 - 1,
        "rewards": torch.randn(n, generator=g),
        "next_observations": torch.randn(n, obs_dim, generator=g),
        "terminals": torch.zeros(n),
        "timeouts": timeouts,
    }


def calls_per_second(step: Callable[[], object], seconds: float, warmup: int = 20) -> float:
    """Calls of ``step`` per second over a ``seconds``-long window, after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        done += 1
    return done / (time.perf_counter() - start)


def print_medians(results: dict[str, list[float]], base: str, unit: str, ratio: str) -> None:
    """One line per contender: median, ratio to the ``base`` contender's median, every round."""
    reference = statistics.median(results[base])
    width = max(len(name) for name in results) + 2
    print(f"{'contender':<{width}}{unit:>18}{ratio:>10}  rounds")
    for name, values in results.items():
        med = statistics.median(values)
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:<{width}}{med:>18.1f}{med / reference:>10.2f}  {rounds}")
