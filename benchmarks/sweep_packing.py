"""A sweep's wall time: the same tau x beta x seed grid run with one configuration per Ray trial,
packed, and packed with shared critics (local Ray, same CPUs for all three).

    .venv/bin/python benchmarks/sweep_packing.py [--steps 3000] [--cpus 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    from iql_sweep.report import load_results
    from iql_sweep.spec import validate_spec
    from iql_sweep.sweep import build_tuner, init_ray, prepare_datasets

    out = Path(tempfile.mkdtemp(prefix="bench_packing_"))
    grid = {"expectile": [0.5, 0.7, 0.9], "beta": [0.5, 3.0, 10.0], "seed": [0, 1]}
    variants = {
        "one configuration per trial": {"pack": 1},
        "packed (9 per trial), unshared critics": {"pack": 9, "share_critics": False},
        "packed (9 per trial), shared critics": {"pack": 9, "share_critics": True},
    }
    walls = {}
    for i, (name, resources) in enumerate(variants.items()):
        spec = validate_spec(
            {
                "name": f"variant{i}",
                "datasets": ["iql-sweep/pointmaze/umaze-v0"],
                "preset": "maze",
                "search": {"grid": grid},
                "training": {"steps": args.steps, "eval_every": args.steps, "eval_episodes": 5},
                "resources": {"cpus_per_trial": 1, "max_concurrent_trials": args.cpus, **resources},
                "wandb": {"mode": "disabled"},
                "output": str(out),
            }
        )
        if i == 0:
            prepare_datasets(spec, Console())
            init_ray(None)
        start = time.perf_counter()
        build_tuner(spec, out).fit()
        walls[name] = time.perf_counter() - start
        trials = load_results(out / spec.name).trials
        assert len(trials) == 18 and set(trials["status"]) == {"TERMINATED"}, trials
    base = walls["one configuration per trial"]
    print(
        f"grid 3 tau x 3 beta x 2 seeds = 18 configurations, {args.steps} steps each, "
        f"{args.cpus} CPUs, 1 CPU per trial"
    )
    print(f"{'variant':<42}{'wall s':>8}{'speed-up':>10}")
    for name, wall in walls.items():
        print(f"{name:<42}{wall:>8.1f}{base / wall:>10.2f}")


if __name__ == "__main__":
    main()
