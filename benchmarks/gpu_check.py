"""The learner on a GPU, in one short run: equivalence, speed per setting, populations, memory.

Needs only torch, numpy, pydantic and the project importable (no Ray, W&B, Minari, gymnasium or
MuJoCo): synthetic transitions of AntMaze's shapes (observation 29 + 2 goal dims, 8-d actions),
1M rows, batch 256, 2x256 networks.

    python benchmarks/gpu_check.py                       # CUDA: about 5 minutes on one H100
    python benchmarks/gpu_check.py --device cpu --quick  # seconds: checks the script itself

(a) equivalence after a few updates: CPU eager vs CUDA eager on the same batches (same seed and
initial weights), and the captured graph vs eager on CUDA from the same generators (on the CPU:
compiled vs eager); (b) updates/s of one configuration per speed setting, and the measured time
of >= 200k consecutive updates with the fastest (projected to 1M); (c) config-updates/s of
populations K = 1, 9 (3 tau x 3 beta) and 45 (x 5 seeds, critics shared per tau and seed) and the
projected wall time of the 45-configuration paper grid at 1M updates; (d) peak GPU memory per
member. Prints a table and writes the figures as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from iql_sweep.iql.config import Member, make_config  # noqa: E402
from iql_sweep.iql.learner import IQLLearner  # noqa: E402
from iql_sweep.iql.replay import ReplayBuffer  # noqa: E402

TAUS, BETAS = (0.5, 0.7, 0.9), (0.5, 3.0, 10.0)


def synthetic(n: int, obs: int, act: int, device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    timeouts = torch.zeros(n)
    timeouts[999::1000] = 1.0
    data = {
        "observations": torch.randn(n, obs, generator=g),
        "actions": torch.rand(n, act, generator=g) * 2 - 1,
        "rewards": (torch.rand(n, generator=g) < 0.01).float() - 1.0,
        "next_observations": torch.randn(n, obs, generator=g),
        "terminals": (torch.rand(n, generator=g) < 0.001).float(),
        "timeouts": timeouts,
    }
    return {k: v.to(device) for k, v in data.items()}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def grid(seeds: int) -> list[Member]:
    return [Member(expectile=t, beta=b, seed=s) for s in range(seeds) for t in TAUS for b in BETAS]


def max_difference(a: IQLLearner, b: IQLLearner) -> tuple[float, float]:
    """Largest absolute and relative parameter difference between two learners."""
    worst_abs, worst_rel = 0.0, 0.0
    for net in ("value", "q", "q_target", "actor"):
        for x, y in zip(getattr(a, net).parameters(), getattr(b, net).parameters()):
            diff = (x.detach().cpu() - y.detach().cpu()).abs()
            worst_abs = max(worst_abs, float(diff.max()))
            scale = y.detach().cpu().abs().max().clamp_min(1e-6)
            worst_rel = max(worst_rel, float(diff.max() / scale))
    return worst_abs, worst_rel


def equivalence(args, config, device: str) -> list[dict]:
    """(a): the same function on every path, to float tolerance."""
    members = [Member(expectile=0.7, beta=3.0, seed=0)]
    cpu_data = synthetic(args.rows, args.obs, args.act, "cpu")
    out = []
    if device.startswith("cuda"):
        cpu = IQLLearner(args.obs, args.act, config, members, device="cpu")
        gpu = IQLLearner(args.obs, args.act, config, members, device=device)
        buffer = ReplayBuffer(cpu_data, config.batch_size, [0])
        for _ in range(args.check_updates):
            batch = buffer.sample()
            cpu.update(batch)
            gpu.update({k: v.to(device) for k, v in batch.items()})
        out.append(("CPU eager vs CUDA eager, same batches", *max_difference(cpu, gpu)))
        pair = ("eager", "graph")
    else:
        pair = ("eager", "compiled")
    data = {k: v.to(device) for k, v in cpu_data.items()}
    a, b = (
        IQLLearner(args.obs, args.act, config, members, data, device=device, speed=s) for s in pair
    )
    a.advance(args.check_updates)
    b.advance(args.check_updates)
    sync(device)
    out.append((f"{pair[1]} vs {pair[0]} on {device}, same generators", *max_difference(a, b)))
    rows = []
    for name, worst_abs, worst_rel in out:
        ok = worst_rel < args.tolerance
        rows.append(
            {
                "check": name,
                "updates": args.check_updates,
                "max_abs": worst_abs,
                "max_rel": worst_rel,
                "pass": ok,
            }
        )
    return rows


def rate(learner: IQLLearner, seconds: float, warmup: int, device: str) -> float:
    """Updates/s over a window of about ``seconds``, in calls of growing size, each synced."""
    learner.advance(warmup)  # compile, capture and optimiser state happen here
    learner.pop_metrics()
    sync(device)
    done, chunk, start = 0, 8, time.perf_counter()
    while time.perf_counter() - start < seconds:
        begun = time.perf_counter()
        learner.advance(chunk)
        learner.pop_metrics()  # an interval's one host read
        sync(device)
        done += chunk
        if time.perf_counter() - begun < seconds / 20:
            chunk *= 2
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/gpu_check.json"))
    parser.add_argument("--obs", type=int, default=None, help="default 31 (6 with --quick)")
    parser.add_argument("--act", type=int, default=None, help="default 8 (2 with --quick)")
    args = parser.parse_args()
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device is visible; run it with --device cpu --quick")
    quick = args.quick
    args.obs = args.obs or (6 if quick else 31)
    args.act = args.act or (2 if quick else 8)
    args.rows = 4_000 if quick else 1_000_000
    args.check_updates = 10 if quick else 50
    args.tolerance = 1e-3
    hidden = (32, 32) if quick else (256, 256)
    batch = 32 if quick else 256
    window = 1.0 if quick else 10.0  # seconds per timed setting
    consecutive = 500 if quick else 200_000
    sizes = (1, 3) if quick else (1, 9, 45)
    warmup = 5 if quick else 50
    config = make_config("antmaze", hidden_dims=hidden, batch_size=batch, max_steps=1_000_000)
    started = time.perf_counter()
    cpu_name = platform.processor() or platform.machine()
    report: dict = {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else cpu_name,
        "torch": torch.__version__,
        "quick": quick,
        "shapes": {
            "obs": args.obs,
            "act": args.act,
            "rows": args.rows,
            "batch": batch,
            "hidden": list(hidden),
        },
    }
    torch.manual_seed(0)
    report["equivalence"] = equivalence(args, config, device)
    data = synthetic(args.rows, args.obs, args.act, device)

    speeds = ["eager", "compiled"] + (["graph"] if device.startswith("cuda") else [])
    single = {}
    for speed in speeds:
        learner = IQLLearner(
            args.obs, args.act, config, grid(1)[4:5], data, device=device, speed=speed
        )
        single[speed] = rate(learner, window, warmup, device)
    best = max(single, key=single.get)
    learner = IQLLearner(args.obs, args.act, config, grid(1)[4:5], data, device=device, speed=best)
    learner.advance(warmup)
    sync(device)
    start = time.perf_counter()
    learner.advance(consecutive)
    learner.pop_metrics()
    sync(device)
    seconds = time.perf_counter() - start
    report["single"] = {
        "updates_per_second": single,
        "consecutive": {
            "speed": best,
            "updates": consecutive,
            "seconds": seconds,
            "projected_1m_minutes": seconds * 1_000_000 / consecutive / 60,
        },
    }

    pop_speed = "graph" if device.startswith("cuda") else "eager"
    populations = []
    cuda = device.startswith("cuda")
    for k in sizes:
        members = grid(max(1, k // 9))[:k] if k > 1 else grid(1)[4:5]
        if cuda:
            del learner
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        learner = IQLLearner(
            args.obs, args.act, config, members, data, device=device, speed=pop_speed
        )
        ups = rate(learner, window, warmup, device)
        entry = {
            "members": k,
            "critics": learner.num_critics,
            "speed": pop_speed,
            "updates_per_second": ups,
            "config_updates_per_second": ups * k,
        }
        if cuda:
            entry["peak_memory_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        populations.append(entry)
    report["populations"] = populations
    biggest = populations[-1]
    report["paper_grid"] = {
        "configurations": 45,
        "projected_minutes_at_1m": (
            1_000_000 / biggest["updates_per_second"] / 60 * (45 // biggest["members"])
        ),
        "from_population_of": biggest["members"],
    }
    if cuda and len(populations) > 1:
        first, last = populations[0], populations[-1]
        per = (last["peak_memory_mib"] - first["peak_memory_mib"]) / (last["members"] - 1)
        report["memory"] = {
            "peak_mib_one_member": first["peak_memory_mib"],
            "mib_per_extra_member": per,
        }
    report["wall_seconds"] = time.perf_counter() - started

    print(f"gpu_check on {report['device']} (torch {report['torch']}){' [quick]' if quick else ''}")
    for row in report["equivalence"]:
        verdict = "ok" if row["pass"] else "FAIL"
        print(
            f"  (a) {row['check']}: max |d| {row['max_abs']:.2e}, rel {row['max_rel']:.2e} "
            f"after {row['updates']} updates: {verdict}"
        )
    for speed, ups in single.items():
        print(f"  (b) one configuration, {speed:>8}: {ups:10.0f} updates/s")
    c = report["single"]["consecutive"]
    print(
        f"  (b) {c['updates']} consecutive updates ({c['speed']}): {c['seconds']:.1f} s; "
        f"1M projected {c['projected_1m_minutes']:.1f} min"
    )
    for p in populations:
        mem = f", peak {p['peak_memory_mib']:.0f} MiB" if "peak_memory_mib" in p else ""
        print(
            f"  (c) K={p['members']:>2} ({p['critics']} critics, {p['speed']}): "
            f"{p['config_updates_per_second']:10.0f} config-updates/s{mem}"
        )
    g = report["paper_grid"]
    print(
        f"  (c) 45-configuration grid x 1M updates projected: {g['projected_minutes_at_1m']:.1f} "
        f"min (populations of {g['from_population_of']})"
    )
    if "memory" in report:
        m = report["memory"]
        print(
            f"  (d) peak memory: {m['peak_mib_one_member']:.0f} MiB with one member (data "
            f"included), {m['mib_per_extra_member']:.1f} MiB per extra member"
        )
    print(f"  wall {report['wall_seconds']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    if not all(r["pass"] for r in report["equivalence"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
