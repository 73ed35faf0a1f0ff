"""Dataset generation speed and 1M-step load times: Minari's episode API, our loader, its cache.

    .venv/bin/python benchmarks/data_io.py [--maze umaze] [--steps 1000000] [--repeats 3]

Works in a temporary Minari root; prints one table with medians and ratios to Minari's API.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def minari_api_flat(dataset_id: str) -> int:
    """The baseline: Minari's episode-by-episode API into flat arrays (no caching)."""
    import minari

    ds = minari.load_dataset(dataset_id)
    obs, rew = [], []
    for ep in ds.iterate_episodes():
        o = np.concatenate([ep.observations["observation"], ep.observations["desired_goal"]], 1)
        obs.append(o[:-1])
        rew.append(ep.rewards)
    return int(np.concatenate(rew).shape[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--maze", default="umaze")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["MINARI_DATASETS_PATH"] = tempfile.mkdtemp(prefix="bench_minari_")
    os.environ["IQL_SWEEP_CACHE"] = tempfile.mkdtemp(prefix="bench_cache_")

    from iql_sweep.data.make import make_dataset
    from iql_sweep.data.minari_io import load_transitions

    report = make_dataset(f"pointmaze-{args.maze}", steps=args.steps, progress=False)
    dataset_id = report.dataset_id
    api_s, n = timed(lambda: minari_api_flat(dataset_id), args.repeats)
    h5_s, _ = timed(lambda: load_transitions(dataset_id, use_cache=False), args.repeats)
    load_transitions(dataset_id)  # writes the cache
    cache_s, data = timed(lambda: load_transitions(dataset_id), args.repeats)

    print(
        f"dataset {dataset_id}: {report.steps} steps, {report.episodes} episodes, "
        f"mean length {report.mean_length:.1f}"
    )
    print(
        f"generation: collect {report.collect_seconds:.1f} s "
        f"({report.steps / report.collect_seconds:,.0f} steps/s), reference scores "
        f"{report.reference_seconds:.1f} s, Minari HDF5 write {report.write_seconds:.1f} s; "
        f"ref_min {report.ref_min_score:.2f}, ref_max {report.ref_max_score:.2f}"
    )
    print(f"{'load path':<44}{'median s':>10}{'x Minari API':>14}")
    for name, secs in [
        ("Minari API iterate_episodes -> flat (baseline)", api_s),
        ("iql-sweep loader (API + checks), no cache", h5_s),
        ("iql-sweep flat .npz cache", cache_s),
    ]:
        print(f"{name:<44}{secs:>10.3f}{api_s / secs:>14.1f}")
    assert n == data.size


if __name__ == "__main__":
    main()
