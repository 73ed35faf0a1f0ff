"""Per-trial overhead Ray adds: from Ray starting a trial to the trial's first IQL update.

    .venv/bin/python benchmarks/trial_overhead.py [--trials 8] [--concurrency 2]

Runs a sweep of tiny trials (60 steps) on a local Ray and reports, per trial, (a) setup inside
the trial: function entry -> first update (dataset from the flat cache, agent, evaluation envs),
and (b) Ray's scheduling cost: (sweep wall time x concurrency - sum of the trials' in-function
time) / trials, i.e. actor and worker start and teardown between one trial and the next.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("MINARI_DATASETS_PATH", tempfile.mkdtemp(prefix="bench_minari_"))
    from rich.console import Console

    from iql_sweep.report import load_results
    from iql_sweep.spec import validate_spec
    from iql_sweep.sweep import build_tuner, init_ray, prepare_datasets

    out = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    spec = validate_spec(
        {
            "name": "overhead",
            "datasets": ["iql-sweep/pointmaze/umaze-v0"],
            "iql": {"batch_size": 32, "hidden_dims": [32, 32]},
            "search": {"grid": {"seed": list(range(args.trials))}},
            "training": {"steps": 60, "eval_every": 60, "eval_episodes": 1},
            "resources": {"cpus_per_trial": 1, "max_concurrent_trials": args.concurrency},
            "wandb": {"mode": "disabled"},
            "output": str(out),
        }
    )
    prepare_datasets(spec, Console())
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    t0 = time.time()
    init_ray(None)
    ray_init = time.time() - t0
    t1 = time.time()
    build_tuner(spec, out).fit()
    sweep_wall = time.time() - t1
    results = load_results(out / "overhead")
    import pandas as pd

    setups, in_function = [], []
    for result in (out / "overhead").glob("*/result.json"):
        history = pd.read_json(result, lines=True)
        setups.append(float(history["setup_seconds"].iloc[0]))
        in_function.append(float(history["time_total_s"].iloc[-1]))
    n = len(setups)
    ray_cost = (sweep_wall * args.concurrency - sum(in_function)) / n
    print(
        f"ray.init: {ray_init:.2f} s; sweep of {n} tiny trials at concurrency "
        f"{args.concurrency}: {sweep_wall:.1f} s wall ({len(results.trials)} trials in the report)"
    )
    print(
        f"setup inside a trial (entry -> first update): median {statistics.median(setups):.2f} s "
        f"(min {min(setups):.2f}, max {max(setups):.2f})"
    )
    print(f"in-function time per trial: median {statistics.median(in_function):.2f} s")
    print(f"Ray's scheduling cost per trial (actor start/teardown): {ray_cost:.2f} s")
    print(f"trial start to first update: about {ray_cost + statistics.median(setups):.2f} s")


if __name__ == "__main__":
    main()
