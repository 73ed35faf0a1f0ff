"""The single learner against the engines it replaced, in one run: updates/s on the same data and
machine, rounds interleaved, the earlier engines in a worker process importing an earlier
checkout of the project (commit 9b1f47b or any before the single learner).

    git worktree add /tmp/before 9b1f47b
    .venv/bin/python benchmarks/before_after.py --before /tmp/before [--rounds 3] [--seconds 5]

Contenders (Hopper's shapes, batch 256, 2x256, minibatch draw included): one configuration
(reference agent; before: eager population of one and compiled fast path; now: learner eager and
compiled) and the 3 tau x 3 beta grid with shared critics, compiled (config-updates/s). A
``--before`` checkout that already has the single learner (``iql_sweep/iql/learner.py``) is
timed as the same four contenders of its own learner (the "population of one" and "fast path"
rows are then its learner eager and compiled).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch
from _common import calls_per_second, print_medians, random_transitions

from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.reference import IQLAgent
from iql_sweep.iql.replay import ReplayBuffer

OBS, ACT, N = 11, 3, 200_000
GRID = [(t, b) for t in (0.5, 0.7, 0.9) for b in (0.5, 3.0, 10.0)]

# The worker's start (the earlier tree first on the path) and its loop: one line "NAME
# SECONDS" in, one rate out.
HEAD = r"""
import sys
tree, threads = sys.argv[1], int(sys.argv[2])
sys.path[:0] = [tree, tree + "/benchmarks"]
import torch
from _common import calls_per_second, random_transitions
from iql_sweep.iql.config import make_config
torch.set_num_threads(threads)
data = random_transitions(200_000, 11, 3)
config = make_config("default")
"""
SERVE = r"""
for step, _ in steps.values():
    for _ in range(3):
        step()
print("ready", flush=True)
for line in sys.stdin:
    name, seconds = line.rstrip("\n").rsplit(" ", 1)
    step, configs = steps[name]
    print(configs * calls_per_second(step, float(seconds), warmup=20), flush=True)
"""
# The earlier engines (IQLAgent + BatchSampler, FastAgent, IQLPopulation), built once, then
# timed on request.
WORKER = (
    HEAD
    + r"""
from iql_sweep.data.transitions import BatchSampler
from iql_sweep.iql.agent import IQLAgent
from iql_sweep.iql.fast import FastAgent
from iql_sweep.iql.population import IQLPopulation, Member
agent, sampler = IQLAgent(11, 3, config, seed=0), BatchSampler(data, 256, seed=0)
one = IQLPopulation(11, 3, config, [Member(0.7, 3.0, 0)], data)
fast, fast_sampler = FastAgent(11, 3, config, seed=0, compile=True), BatchSampler(data, 256, 0)
grid = [Member(t, b, 0) for t in (0.5, 0.7, 0.9) for b in (0.5, 3.0, 10.0)]
pop = IQLPopulation(11, 3, config, grid, data, share_critics=True, fast=True)
steps = {
    "before: reference": (lambda: agent.update(sampler.sample()), 1),
    "before: population of one, eager": (lambda: one.update(one.sample()), 1),
    "before: fast path (compiled)": (lambda: fast.update(fast_sampler.sample()), 1),
    "before: 3tau x 3beta shared, compiled": (lambda: pop.update(pop.sample()), 9),
}
"""
    + SERVE
)
# The same contenders from an earlier checkout of the single learner (any commit since it).
WORKER_LEARNER = (
    HEAD
    + r"""
from iql_sweep.iql.config import Member
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.reference import IQLAgent
from iql_sweep.iql.replay import ReplayBuffer
member = [Member(expectile=0.7, beta=3.0, seed=0)]
grid = [Member(expectile=t, beta=b, seed=0) for t in (0.5, 0.7, 0.9) for b in (0.5, 3.0, 10.0)]
agent, buffer = IQLAgent(11, 3, config, seed=0), ReplayBuffer(data, 256, [0])
eager = IQLLearner(11, 3, config, member, data)
compiled = IQLLearner(11, 3, config, member, data, speed="compiled")
packed = IQLLearner(11, 3, config, grid, data, speed="compiled")
steps = {
    "before: reference": (lambda: agent.update({k: v[0] for k, v in buffer.sample().items()}), 1),
    "before: population of one, eager": (lambda: eager.advance(1), 1),
    "before: fast path (compiled)": (lambda: compiled.advance(1), 1),
    "before: 3tau x 3beta shared, compiled": (lambda: packed.advance(1), 9),
}
"""
    + SERVE
)
BEFORE = (
    "before: reference",
    "before: population of one, eager",
    "before: fast path (compiled)",
    "before: 3tau x 3beta shared, compiled",
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True, help="an earlier checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    learner_tree = (args.before / "iql_sweep/iql/learner.py").exists()
    code = WORKER_LEARNER if learner_tree else WORKER  # an earlier learner, or the old engines
    worker = subprocess.Popen(
        [sys.executable, "-c", code, str(args.before.resolve()), str(args.threads)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    data = random_transitions(N, OBS, ACT)
    config = make_config("default")
    member = [Member(expectile=0.7, beta=3.0, seed=0)]
    grid = [Member(expectile=t, beta=b, seed=0) for t, b in GRID]
    agent, buffer = IQLAgent(OBS, ACT, config, seed=0), ReplayBuffer(data, 256, [0])
    eager = IQLLearner(OBS, ACT, config, member, data)
    compiled = IQLLearner(OBS, ACT, config, member, data, speed="compiled")
    packed = IQLLearner(OBS, ACT, config, grid, data, speed="compiled")
    now = {
        "now: reference": (lambda: agent.update({k: v[0] for k, v in buffer.sample().items()}), 1),
        "now: learner, eager": (lambda: eager.advance(1), 1),
        "now: learner, compiled": (lambda: compiled.advance(1), 1),
        "now: 3tau x 3beta shared, compiled": (lambda: packed.advance(1), 9),
    }
    for step, _ in now.values():
        step()
    assert worker.stdout.readline().strip() == "ready"
    results: dict[str, list[float]] = {name: [] for name in (*BEFORE, *now)}
    for _ in range(args.rounds):
        for (name, (step, configs)), before in zip(now.items(), BEFORE):
            worker.stdin.write(f"{before} {args.seconds}\n")
            worker.stdin.flush()
            results[before].append(float(worker.stdout.readline()))
            results[name].append(configs * calls_per_second(step, args.seconds, warmup=20))
    worker.stdin.close()
    worker.wait()
    print(
        f"obs {OBS}, act {ACT}, batch 256, 2x256, {args.threads} threads, CPU; before = "
        f"{args.before}; medians of {args.rounds} interleaved rounds of {args.seconds:g} s "
        "(config-updates/s for the grid)"
    )
    print_medians(results, "before: reference", "updates/s", "x before ref")


if __name__ == "__main__":
    main()
