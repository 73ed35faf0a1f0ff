"""Evaluation beside training, measured on this machine's CPUs: the wall time of the same CPU
trial with ``training.overlap_eval`` on and off, and the share of it the learner stood waiting
for evaluations.

    .venv/bin/python benchmarks/overlap.py [--rounds 3] [--steps 2000] [--every 500]

Each contender runs the real training loop (``training.assemble(...).loop([]).run()``, what a Ray
trial runs) on a dataset written here in a temporary Minari root: PointMaze (the project's own
generator; its episodes step in the trial's process) and AntMaze (random-action episodes of
``AntMaze_UMaze-v4`` in D4RL's umaze, written with Minari's own writer under a D4RL id, so the
evaluation env is the real one; its environments spread over the trial's worker processes).
A trial of 1 CPU trains with 1 torch thread and 1 evaluation process, one of 2 CPUs with 2 of
each. The contenders are interleaved within each round; the medians and ratios come from one
run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' dataset writers

OUT = Path(__file__).resolve().parent / "results" / "overlap.json"
ANTMAZE_ID = "D4RL/antmaze/umaze-v1"


def write_antmaze(episodes: int = 20, horizon: int = 700) -> str:
    """Random-action AntMaze episodes in Minari's port of D4RL's umaze, written with Minari's
    writer, the real evaluation env and D4RL's reference scores (the layout tests' writer)."""
    from tests.test_d4rl_layouts import write_port

    write_port(ANTMAZE_ID, episodes=episodes, steps=horizon)
    return ANTMAZE_ID


def one_run(dataset: str, cpus: int, overlap: bool, args: argparse.Namespace) -> dict:
    """The loop's wall seconds and the seconds it waited on evaluations."""
    from iql_sweep.training import assemble
    from iql_sweep.trial_config import TrialConfig

    torch.set_num_threads(cpus)
    trial = TrialConfig(
        dataset=dataset,
        seed=0,
        run={
            "steps": args.steps,
            "eval_every": args.every,
            "eval_episodes": args.episodes,
            "eval_workers": cpus,
            "overlap_eval": overlap,
            "compile": False,
        },
    )
    result = assemble(trial, torch.device("cpu")).loop([]).run()
    return {"wall_s": result.wall_seconds, "eval_wait_s": result.eval_wait_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--episodes", type=int, default=10)
    args = parser.parse_args()
    os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp(prefix="bench_minari_")
    os.environ["IQL_SWEEP_CACHE"] = tempfile.mkdtemp(prefix="bench_cache_")
    from iql_sweep.data.make import make_dataset

    datasets = {
        "PointMaze": make_dataset("pointmaze-umaze", progress=False).dataset_id,
        "AntMaze": write_antmaze(),
    }
    contenders = [
        (domain, cpus, overlap)
        for domain in datasets
        for cpus in (1, 2)
        for overlap in (False, True)
    ]
    runs: dict[tuple, list[dict]] = {c: [] for c in contenders}
    for r in range(args.rounds):
        for contender in contenders:
            domain, cpus, overlap = contender
            runs[contender].append(one_run(datasets[domain], cpus, overlap, args))
            print(f"round {r + 1}: {contender} {runs[contender][-1]}", flush=True)

    print(
        f"\n{args.steps} updates, {args.episodes} episodes every {args.every}, "
        f"median of {args.rounds} rounds"
    )
    print(
        f"{'trial':<20} {'seq s':>7} {'overlap s':>10} {'ratio':>6} {'wait seq':>9} {'wait ovl':>9}"
    )
    report: dict = {"args": vars(args), "contenders": {}}
    for domain in datasets:
        for cpus in (1, 2):
            seq, ovl = runs[(domain, cpus, False)], runs[(domain, cpus, True)]
            seq_wall = statistics.median(run["wall_s"] for run in seq)
            ovl_wall = statistics.median(run["wall_s"] for run in ovl)
            seq_wait = statistics.median(run["eval_wait_s"] / run["wall_s"] for run in seq)
            ovl_wait = statistics.median(run["eval_wait_s"] / run["wall_s"] for run in ovl)
            label = f"{domain}, {cpus} CPU{'s' if cpus > 1 else ''}"
            print(
                f"{label:<20} {seq_wall:>7.1f} {ovl_wall:>10.1f} {ovl_wall / seq_wall:>6.2f} "
                f"{seq_wait:>9.1%} {ovl_wait:>9.1%}"
            )
            report["contenders"][label] = {
                "sequential": seq,
                "overlapped": ovl,
                "wall_ratio_overlap_to_sequential": ovl_wall / seq_wall,
                "eval_wait_share": {"sequential": seq_wait, "overlapped": ovl_wait},
            }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1))
    print(f"\nwritten {OUT}")


if __name__ == "__main__":
    main()
