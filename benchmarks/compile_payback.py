"""Where compiling pays back on the CPU: the rule behind ``training.compile: auto``.

For each case, two fresh processes (eager, compiled) build the learner and time its first
updates (build, and for compiled the compile, included) and then its steady rate (median of
timed windows). The compile's cost is the compiled process's start minus the eager one's, both
net of their steady per-update time; it pays back after cost / (eager - compiled per-update
time) updates. "cold": an empty inductor cache (a trial's first compile on a node); "warm":
the cache the cold run left (later trials of the same shapes on that node).

    .venv/bin/python benchmarks/compile_payback.py [--seconds 4] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: (name, obs, act, members): the maze preset's shapes (the CPU default job), one and a
#: 3 tau x 3 beta pack, and Hopper's shapes.
CASES = [("maze K=1", 6, 2, 1), ("maze 3tau x 3beta", 6, 2, 9), ("hopper K=1", 11, 3, 1)]
FIRST = 20  # updates timed from the start (build and compile included)

WORKER = r"""
import json, statistics, sys, time
start = time.perf_counter()
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
import torch
from _common import random_transitions
from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner
obs, act, k, speed = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
seconds, rounds, first = float(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
torch.set_num_threads(int(sys.argv[9]))
members = [Member(expectile=t, beta=b, seed=0) for t in (0.5, 0.7, 0.9) for b in (1, 3, 10)][:k]
data = random_transitions(100_000, obs, act)
start = time.perf_counter()  # data made: the learner's build from here
learner = IQLLearner(obs, act, make_config("maze"), members, data, speed=speed)
learner.advance(first)
learner.pop_metrics()
head = time.perf_counter() - start
rates = []
for _ in range(rounds):
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        learner.advance(10)
        done += 10
    learner.pop_metrics()
    rates.append(done / (time.perf_counter() - t0))
print(json.dumps({"head_seconds": head, "updates_per_second": statistics.median(rates),
                  "rounds": rates}))
"""


def measure(case, speed: str, cache: str, args) -> dict:
    _, obs, act, k = case
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    argv = [ROOT, obs, act, k, speed, args.seconds, args.rounds, FIRST, args.threads]
    out = subprocess.run(
        [sys.executable, "-c", WORKER, *map(str, argv)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def payback(eager: dict, compiled: dict) -> dict:
    per_eager = 1 / eager["updates_per_second"]
    per_compiled = 1 / compiled["updates_per_second"]
    cost = (compiled["head_seconds"] - FIRST * per_compiled) - (
        eager["head_seconds"] - FIRST * per_eager
    )
    saving = per_eager - per_compiled
    return {
        "compile_seconds": cost,
        "speedup": compiled["updates_per_second"] / eager["updates_per_second"],
        "payback_updates": cost / saving if saving > 0 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks/results/compile_payback.json"
    )
    args = parser.parse_args()
    rows = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as cache:
            eager = measure(case, "eager", cache, args)
            cold = measure(case, "compiled", cache, args)
            warm = measure(case, "compiled", cache, args)
        row = {
            "case": case[0],
            "eager_updates_per_second": eager["updates_per_second"],
            "compiled_updates_per_second": statistics.median(
                [cold["updates_per_second"], warm["updates_per_second"]]
            ),
            "cold": payback(eager, cold),
            "warm": payback(eager, warm),
        }
        rows.append(row)
        c, w = row["cold"], row["warm"]
        print(
            f"{case[0]:<20} eager {row['eager_updates_per_second']:6.1f}/s, compiled "
            f"{row['compiled_updates_per_second']:6.1f}/s ({c['speedup']:.2f}x); compile cold "
            f"{c['compile_seconds']:5.1f} s -> pays back after {_n(c['payback_updates'])} "
            f"updates; warm {w['compile_seconds']:5.1f} s -> {_n(w['payback_updates'])}",
            flush=True,
        )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "threads": args.threads, "rows": rows}))
    print(f"wrote {args.json}")


def _n(value: float | None) -> str:
    return "never" if value is None else f"{value:,.0f}"


if __name__ == "__main__":
    main()
