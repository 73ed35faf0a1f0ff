"""What evaluation costs a trial: environment steps/s per core, the scaling over worker
processes (``iql_sweep.env_pool.EnvPool``), and the share of a trial's wall time spent waiting on
evaluation at the IQL paper's schedule.

    .venv/bin/python benchmarks/eval_cost.py [--seconds 4] [--envs 50] [--rounds 3]

Environments step random actions in batches of ``--envs`` (the evaluator's shape: many episodes
at once, next-step autoreset); a worker count's rate is the median over ``--rounds`` rounds, the
worker counts interleaved. The CPU learner's updates/s is measured on AntMaze's shapes (one
configuration, 2x256, batch 256). The schedule (official IQL): AntMaze 100 episodes every
100,000 updates, up to 1,000 steps each; the other domains 10 episodes every 5,000 updates. An
episode is counted at its full horizon (an upper bound: a reached goal ends it earlier).

Shares: without overlap the learner waits for the whole evaluation, ``E / (T + E)``; with
overlap (training goes on while the episodes run) it waits only for what exceeds the interval,
``max(0, E - T) / (T + max(0, E - T))``, with ``T`` the interval's training time and ``E`` the
evaluation's time. Projected rates for W workers: the per-core rate times W times the
2-worker efficiency measured here (the machine has 2 cores; larger W is an extrapolation).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from _common import calls_per_second, random_transitions

from iql_sweep.env_pool import EnvPool
from iql_sweep.envs import register_robotics_envs
from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner

#: name: (gymnasium id, the paper's episodes per evaluation, updates between, horizon)
DOMAINS = {
    "PointMaze": ("PointMaze_UMaze-v3", 10, 5_000, 300),
    "AntMaze": ("AntMaze_UMaze-v5", 100, 100_000, 1_000),
    "Adroit door": ("AdroitHandDoor-v1", 10, 5_000, 200),
    "Kitchen": ("FrankaKitchen-v1", 10, 5_000, 280),
}
GPU_UPDATES_PER_S = 4_000
OUT = Path(__file__).resolve().parent / "results" / "eval_cost.json"


def steps_per_second(pool: EnvPool, act_dim: int, seconds: float) -> float:
    """Environment steps/s of the whole pool (random actions, seeded resets)."""
    g = np.random.default_rng(0)
    pool.reset(list(range(pool.size)))
    for _ in range(5):
        pool.step(g.uniform(-1, 1, size=(pool.size, act_dim)))
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        pool.step(g.uniform(-1, 1, size=(pool.size, act_dim)))
        done += pool.size
    return done / (time.perf_counter() - start)


def cpu_updates_per_second(seconds: float) -> float:
    """One configuration on AntMaze's shapes (obs 31 with the goal, action 8), eager."""
    data = random_transitions(50_000, 31, 8)
    config = make_config("antmaze", max_steps=1_000_000)
    learner = IQLLearner(31, 8, config, [Member(expectile=0.9, beta=10.0, seed=0)], data)
    return calls_per_second(lambda: learner.advance(10), seconds, warmup=3) * 10


def share(train_s: float, eval_s: float, overlap: bool) -> float:
    wait = max(0.0, eval_s - train_s) if overlap else eval_s
    return wait / (train_s + wait)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--envs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    register_robotics_envs()
    torch.set_num_threads(2)
    rates: dict[str, dict[int, list[float]]] = {}
    for name, (env_id, *_rest) in DOMAINS.items():
        spec = gym.spec(env_id)
        act_dim = gym.make(spec).action_space.shape[0]
        pools = {w: EnvPool(spec, args.envs, workers=w) for w in (1, 2)}
        rates[name] = {1: [], 2: []}
        for _ in range(args.rounds):
            for w, pool in pools.items():
                rates[name][w].append(steps_per_second(pool, act_dim, args.seconds))
        for pool in pools.values():
            pool.close()
    ups = statistics.median(cpu_updates_per_second(args.seconds) for _ in range(args.rounds))

    print(f"environment steps/s, {args.envs} envs stepped together, median of {args.rounds}")
    print(f"{'domain':<12} {'1 worker':>10} {'2 workers':>10} {'2 / 1':>7}")
    report: dict = {"envs": args.envs, "rounds": args.rounds, "cpu_updates_per_s": ups}
    for name, by_workers in rates.items():
        one, two = (statistics.median(by_workers[w]) for w in (1, 2))
        report[name] = {"steps_per_s": {"1": one, "2": two}, "rounds": by_workers}
        print(f"{name:<12} {one:>10.0f} {two:>10.0f} {two / one:>7.2f}")
    print(f"CPU learner, AntMaze shapes, one configuration: {ups:.0f} updates/s")

    print("\nshare of a trial's wall time waiting on evaluation (paper's schedule, full horizons)")
    print(f"{'domain':<12} {'learner':<22} {'no overlap':>10} {'overlap':>8}")
    projections = {}
    for name, (_, episodes, every, horizon) in DOMAINS.items():
        one = report[name]["steps_per_s"]["1"]
        efficiency = report[name]["steps_per_s"]["2"] / (2 * one)
        steps = episodes * horizon
        cases = {"CPU here, 1 core": (every / ups, steps / one)}
        for cpus in (8, 16):
            cases[f"GPU 4000/s, {cpus} CPUs"] = (
                every / GPU_UPDATES_PER_S,
                steps / (one * cpus * efficiency),
            )
        projections[name] = {}
        for label, (train_s, eval_s) in cases.items():
            plain, overlapped = share(train_s, eval_s, False), share(train_s, eval_s, True)
            projections[name][label] = {
                "train_s": train_s,
                "eval_s": eval_s,
                "share_no_overlap": plain,
                "share_overlap": overlapped,
            }
            print(f"{name:<12} {label:<22} {plain:>10.1%} {overlapped:>8.1%}")
    report["projections"] = projections
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1))
    print(f"\nwritten {OUT}")


if __name__ == "__main__":
    main()
