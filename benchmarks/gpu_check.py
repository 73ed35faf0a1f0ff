"""The learner on a GPU, settled in one short run: the captured graph is engaged and computes what
eager computes, resumes exactly, survives a failed capture; throughput and memory.

Needs only torch, numpy and pydantic (and typing-extensions >= 4.16 for pydantic) with the
project importable: no Ray, W&B, Minari, gymnasium or MuJoCo. Synthetic transitions of
AntMaze's shapes (observation 29 + 2 goal dims, 8-d actions), 1M rows, batch 256, 2x256.

    python benchmarks/gpu_check.py                       # one H100/H200: about 5 minutes
    python benchmarks/gpu_check.py --device cpu --quick  # seconds: checks the script itself

Checks, one line each, the JSON (``--out``) rewritten after every one:

1. graph vs eager, one configuration, a pack with dropout and shared critics, and a pack with
   LayerNorm in V and Q (the ogbench preset at the check's widths): relative
   difference, update counters, the cosine learning rate at a max_steps small enough to move;
   the graph really engaged (never a compiled fallback reported as "graph");
2. CPU eager vs CUDA eager on the same batches;
3. two graph runs agree;
4. the online buffer growing under the graph (graph vs eager with rows added between calls);
5. resume: graph -> graph bitwise; a checkpoint written eager resumed into a graph learner
   captures (stays graph);
6. a capture failure injected in a subprocess (a host read inside the capture): the run goes on
   compiled, equal to one that never tried, on the default stream;
7. throughput, synchronised: one configuration per speed, K = 1, 9 and 45 in the graph, 45 with
   TF32 on and off; the time of 200k consecutive updates;
8. peak allocated and reserved memory against the ``auto`` estimate (iql/memory.py);
9. evaluation beside training: a frozen copy of the actors (what an overlapped evaluation acts
   with) acts as the learner did when it was taken, and on CUDA its first action while about a
   second of updates is queued returns before they finish (its own stream; on the learner's it
   would wait for the whole queue).

On the CPU (``--quick``) the graph's place is taken by the compiled stages and the CUDA-only
checks are recorded as skipped, with the reason. An internal deadline (``--deadline``) skips
what would not fit and still writes the JSON. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from iql_sweep.iql.config import Member, make_config  # noqa: E402
from iql_sweep.iql.learner import IQLLearner  # noqa: E402
from iql_sweep.iql.memory import learner_memory  # noqa: E402
from iql_sweep.iql.replay import ReplayBuffer  # noqa: E402

TAUS, BETAS = (0.5, 0.7, 0.9), (0.5, 3.0, 10.0)
TOLERANCE = 1e-4  # relative, graph (compiled stages) vs eager after the check's updates

FAILURE_CHILD = r"""
import json, sys
import numpy as np
import torch
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/benchmarks"]
from gpu_check import difference, synthetic
from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner
device, rows, obs, act = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = synthetic(rows, obs, act)
config = make_config("kitchen", hidden_dims=(64, 64), batch_size=64, max_steps=100)
members = [Member(expectile=0.7, beta=b, seed=0) for b in (0.5, 3.0)]
graph = IQLLearner(obs, act, config, members, data, device=device, speed="graph")
twin = IQLLearner(obs, act, config, members, data, device=device, speed="compiled")
update = graph._advance_one
def host_read_inside_capture():
    update()
    if torch.cuda.is_current_stream_capturing():
        float(graph._sums.sum())  # waits on the device: not allowed while capturing
graph._advance_one = host_read_inside_capture
graph.advance(12)
twin.advance(12)
torch.cuda.synchronize()
print(json.dumps({"speed": graph.speed, "cause": graph.capture_failure, "step": graph.step,
                  "max_rel": difference(graph, twin),
                  "capturing": torch.cuda.is_current_stream_capturing(),
                  "default_stream": torch.cuda.current_stream() == torch.cuda.default_stream(),
                  "finite": bool(np.isfinite(graph.pop_metrics()[0]).all())}))
"""


class Check:
    """The report: one entry per check, rewritten to disk after each, under a deadline."""

    def __init__(self, out: Path, deadline: float, header: dict):
        self.out, self.deadline, self.started = out, deadline, time.perf_counter()
        self.report: dict = {**header, "checks": {}}
        self.failed = False

    def left(self) -> float:
        return self.deadline - (time.perf_counter() - self.started)

    def run(self, name: str, fn: Callable[[], dict], needs: float = 0.0) -> dict | None:
        if self.left() < needs:
            entry = {"status": "skipped", "reason": f"deadline ({self.left():.0f} s left)"}
        else:
            begun = time.perf_counter()
            try:
                entry = fn()
            except Exception as err:  # noqa: BLE001 - a check's failure is a result
                entry = {"status": "fail", "error": f"{type(err).__name__}: {err}"}
            entry.setdefault("status", "pass")
            entry["seconds"] = round(time.perf_counter() - begun, 1)
        self.failed |= entry["status"] == "fail"
        self.report["checks"][name] = entry
        self.report["wall_seconds"] = round(time.perf_counter() - self.started, 1)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.report, indent=2))
        print(f"  {name}: {entry['status']} {_summary(entry)}", flush=True)
        return entry


def _summary(entry: dict) -> str:
    skip = {"status", "seconds"}
    parts = [f"{k}={_fmt(v)}" for k, v in entry.items() if k not in skip]
    return f"({entry.get('seconds', 0)} s) " + ", ".join(parts)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def synthetic(n: int, obs: int, act: int) -> dict[str, torch.Tensor]:
    """Host tensors (the learner copies them to its device, as a trial does)."""
    g = torch.Generator().manual_seed(0)
    timeouts = torch.zeros(n)
    timeouts[999::1000] = 1.0
    return {
        "observations": torch.randn(n, obs, generator=g),
        "actions": torch.rand(n, act, generator=g) * 2 - 1,
        "rewards": (torch.rand(n, generator=g) < 0.01).float() - 1.0,
        "next_observations": torch.randn(n, obs, generator=g),
        "terminals": (torch.rand(n, generator=g) < 0.001).float(),
        "timeouts": timeouts,
    }


def grid(seeds: int) -> list[Member]:
    return [Member(expectile=t, beta=b, seed=s) for s in range(seeds) for t in TAUS for b in BETAS]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def difference(a: IQLLearner, b: IQLLearner) -> float:
    """Largest relative difference over every tensor an update changes."""
    worst = 0.0
    for x, y in zip(a._state_tensors(), b._state_tensors(), strict=True):
        x, y = x.detach().double().cpu(), y.detach().double().cpu()
        scale = max(float(y.abs().max()), 1e-6)
        worst = max(worst, float((x - y).abs().max()) / scale)
    return worst


def engaged(learner: IQLLearner) -> bool:
    """The learner ran its fast setting: on CUDA a captured graph, never a fallback."""
    if learner.device.type != "cuda":
        return learner.speed == "compiled"
    return learner.speed == "graph" and learner._graph is not None and not learner.capture_failure


def rate(learner: IQLLearner, seconds: float, device: str) -> float:
    """Updates/s over a window of about ``seconds``, each call's work synchronised."""
    learner.advance(10)  # compile, capture and optimiser state happen here
    learner.pop_metrics()
    sync(device)
    done, chunk, start = 0, 8, time.perf_counter()
    while time.perf_counter() - start < seconds:
        begun = time.perf_counter()
        learner.advance(chunk)
        learner.pop_metrics()
        sync(device)
        done += chunk
        if time.perf_counter() - begun < seconds / 20:
            chunk *= 2
    return done / (time.perf_counter() - start)


def main() -> None:  # noqa: C901 - one script, one check after the other
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/gpu_check.json")
    parser.add_argument("--deadline", type=float, default=450.0, help="seconds for everything")
    args = parser.parse_args()
    device = args.device
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device is visible; run it with --device cpu --quick")
    quick = args.quick
    obs, act = (6, 2) if quick else (31, 8)
    rows = 4_000 if quick else 1_000_000
    hidden, batch = ((32, 32), 32) if quick else ((256, 256), 256)
    window = 1.0 if quick else 6.0
    fast = "graph" if cuda else "compiled"
    torch.set_float32_matmul_precision("highest")
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu"
    check = Check(
        args.out,
        args.deadline,
        {
            "device": name,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "quick": quick,
            "fast_setting": fast,
            "shapes": {"obs": obs, "act": act, "rows": rows, "batch": batch, "hidden": hidden},
        },
    )
    print(f"gpu_check on {name} (torch {torch.__version__}){' [quick]' if quick else ''}")
    host = synthetic(rows, obs, act)

    def config(preset: str = "antmaze", **kw):
        return make_config(preset, **{"hidden_dims": hidden, "batch_size": batch, **kw})

    def build(cfg, members, speed, **kw) -> IQLLearner:
        return IQLLearner(obs, act, cfg, members, host, device=device, speed=speed, **kw)

    one = grid(1)[4:5]
    pack = [
        Member(expectile=t, beta=b, seed=s) for s in (0, 1) for t in (0.7, 0.9) for b in (1, 10)
    ]

    # 1. graph vs eager, with the cosine schedule moving (max_steps small)
    def versus_eager() -> dict:
        out, ok = {}, True
        cases = (("K=1", "antmaze", one), ("pack", "kitchen", pack), ("LayerNorm", "ogbench", pack))
        for label, preset, members in cases:
            cfg = config(preset, max_steps=60)
            a, b = build(cfg, members, "eager"), build(cfg, members, fast)
            for n in (5, 20, 15):  # several calls: warm-up, capture, replays
                a.advance(n)
                b.advance(n)
            sync(device)
            rel = difference(b, a)
            lr = (float(a.actor_lr), float(b.actor_lr))
            counters = (a.step, b.step, float(a._step_t), float(b._step_t))
            good = (
                rel < TOLERANCE
                and len(set(counters)) == 1
                and abs(lr[0] - lr[1]) <= 1e-9
                and lr[0] < cfg.actor_lr
                and engaged(b)
            )
            ok &= good
            out[label] = {"max_rel": rel, "lr": lr[1], "step": b.step, "engaged": engaged(b)}
        return {**out, "status": "pass" if ok else "fail"}

    check.run(f"1 {fast} vs eager", versus_eager)

    # 2. CPU eager vs CUDA eager on the same batches
    def cpu_vs_cuda() -> dict:
        # without dropout: CPU and CUDA generators draw different masks from the same seed
        cfg = config("antmaze", max_steps=60)
        cpu = IQLLearner(obs, act, cfg, pack, device="cpu")
        gpu = IQLLearner(obs, act, cfg, pack, device=device)
        buffer = ReplayBuffer(host, cfg.batch_size, [0])
        for _ in range(20):
            cpu_batch = buffer.sample()
            cpu.update({k: v[0] for k, v in cpu_batch.items()})
            gpu.update({k: v[0].to(device) for k, v in cpu_batch.items()})
        rel = difference(gpu, cpu)
        return {"max_rel": rel, "status": "pass" if rel < TOLERANCE else "fail"}

    if cuda:
        check.run("2 CPU eager vs CUDA eager", cpu_vs_cuda)
    else:
        check.run("2 CPU eager vs CUDA eager", lambda: {"status": "skipped", "reason": "CPU"})

    # 3. two graph runs agree
    def deterministic() -> dict:
        cfg = config("kitchen", max_steps=100)
        a, b = build(cfg, pack, fast), build(cfg, pack, fast)
        a.advance(40)
        b.advance(40)
        sync(device)
        rel = difference(a, b)
        return {"max_rel": rel, "status": "pass" if rel == 0.0 else "fail"}

    check.run(f"3 two {fast} runs agree", deterministic)

    # 4. online growth under the graph
    def growth() -> dict:
        cfg = config("antmaze", max_steps=100)
        a = build(cfg, one, "eager", online_capacity=50)
        b = build(cfg, one, fast, online_capacity=50)
        g = torch.Generator().manual_seed(1)
        for _ in range(10):
            row = [torch.randn(obs, generator=g).numpy(), torch.rand(act, generator=g).numpy()]
            for learner in (a, b):
                learner.buffer.add(row[0], row[1], 5.0, row[0], False, False)
                learner.advance(4)
        sync(device)
        rel = difference(b, a)
        ok = rel < TOLERANCE and b.buffer.size == a.buffer.size == rows + 10 and engaged(b)
        return {"max_rel": rel, "rows_added": 10, "status": "pass" if ok else "fail"}

    check.run("4 online growth", growth)

    # 5. resume: graph -> graph bitwise; eager -> graph stays graph
    def resume() -> dict:
        cfg = config("kitchen", max_steps=100)
        through = build(cfg, pack, fast)
        through.advance(15)
        through.pop_metrics()  # the loop reads the metric sums before each checkpoint
        state = copy.deepcopy(through.state_dict())  # as written to disk at a checkpoint
        through.advance(15)
        resumed = build(cfg, pack, fast)
        resumed.load_state_dict(state)
        resumed.advance(15)
        sync(device)
        exact = difference(resumed, through)
        eager = build(cfg, pack, "eager")
        eager.advance(10)
        eager.pop_metrics()
        armed = build(cfg, pack, fast)
        armed.load_state_dict(eager.state_dict())
        armed.advance(10)
        stays = engaged(armed) and armed.step == 20
        ok = exact == 0.0 and stays and engaged(resumed)
        return {"graph_to_graph_max_rel": exact, "eager_to_graph_engaged": stays,
                "status": "pass" if ok else "fail"}  # fmt: skip

    check.run("5 resume", resume)

    # 6. a capture failure injected in a subprocess
    def failure() -> dict:
        run = subprocess.run(
            [sys.executable, "-c", FAILURE_CHILD, str(ROOT), device, "5000", str(obs), str(act)],
            capture_output=True,
            text=True,
            timeout=max(30.0, check.left()),
        )
        if run.returncode != 0:
            return {"status": "fail", "error": run.stderr[-1500:]}
        got = json.loads(run.stdout.strip().splitlines()[-1])
        ok = (
            got["speed"] == "compiled"
            and bool(got["cause"])
            and got["step"] == 12
            and got["max_rel"] < TOLERANCE
            and got["finite"]
            and got["default_stream"]
            and not got["capturing"]
        )
        return {**got, "status": "pass" if ok else "fail"}

    if cuda:
        check.run("6 injected capture failure", failure, needs=30)
    else:
        check.run("6 injected capture failure", lambda: {"status": "skipped", "reason": "CPU"})

    # 7 and 8. throughput and memory
    speeds = ["eager", "compiled", *(["graph"] if cuda else [])]

    def single() -> dict:
        cfg = config("antmaze")
        rates = {s: rate(build(cfg, one, s), window, device) for s in speeds}
        out = {"updates_per_second": rates}
        if cuda:
            out["graph_over_compiled"] = rates["graph"] / rates["compiled"]
            out["targets"] = {"graph >= 4000/s": rates["graph"] >= 4000,
                              "graph >= 3x compiled": out["graph_over_compiled"] >= 3}  # fmt: skip
        learner = build(cfg, one, fast)
        learner.advance(10)
        sync(device)
        n = 500 if quick else 200_000
        start = time.perf_counter()
        learner.advance(n)
        learner.pop_metrics()
        sync(device)
        seconds = time.perf_counter() - start
        out["consecutive"] = {
            "updates": n,
            "seconds": seconds,
            "minutes_per_1m": seconds * 1e6 / n / 60,
        }
        out["engaged"] = engaged(learner)
        return {**out, "status": "pass" if out["engaged"] else "fail"}

    check.run("7a one configuration", single, needs=4 * window + 30)

    sizes = [(1, "highest"), (3, "highest")] if quick else [
        (1, "highest"), (9, "highest"), (45, "highest"), (45, "high")
    ]  # fmt: skip

    def population(k: int, precision: str) -> Callable[[], dict]:
        def measure() -> dict:
            torch.set_float32_matmul_precision(precision)  # before the learner is built
            members = grid(max(1, k // 9))[:k] if k > 1 else one
            cfg = config("antmaze")
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            learner = build(cfg, members, fast)
            ups = rate(learner, window, device)
            out = {
                "members": k,
                "critics": learner.num_critics,
                "tf32": precision == "high",
                "config_updates_per_second": ups * k,
                "engaged": engaged(learner),
            }
            estimate = learner_memory(cfg, k, learner.num_critics, rows, obs, act)
            out["estimate_allocated_mib"] = estimate.allocated / 2**20
            out["estimate_total_mib"] = estimate.total / 2**20
            ok = out["engaged"]
            if cuda:
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
                reserved = torch.cuda.max_memory_reserved() / 2**20
                out.update(peak_allocated_mib=peak, peak_reserved_mib=reserved)
                out["within_estimate"] = peak <= out["estimate_allocated_mib"] and reserved <= (
                    (estimate.total - estimate.context) / 2**20
                )
                ok &= out["within_estimate"]
                if k == 45:
                    out["target 45 >= 50k config-updates/s"] = ups * k >= 50_000
            del learner
            torch.set_float32_matmul_precision("highest")
            return {**out, "status": "pass" if ok else "fail"}

        return measure

    for k, precision in sizes:
        label = f"7b/8 K={k}" + (" TF32" if precision == "high" else "")
        check.run(label, population(k, precision), needs=window + 30)

    # 9. evaluation beside training: the frozen policy's stream
    def beside_training() -> dict:
        learner = build(config("antmaze"), pack, fast)
        learner.advance(10)
        sync(device)
        batch = torch.randn(len(pack), 50, obs)  # host observations, as rollouts hand them over
        then = learner.act(batch).cpu()
        frozen = learner.frozen_policy()
        idle = []
        for _ in range(20):
            start = time.perf_counter()
            with frozen.acting():  # the copy back on its stream too, as the rollouts do
                frozen.act(batch).cpu()
            idle.append(time.perf_counter() - start)
        out = {"idle_act_ms": 1e3 * sorted(idle)[len(idle) // 2]}
        ok = True
        if cuda:
            queued = 4_000 if not quick else 200  # about a second of H200 updates
            learner.advance(queued)  # launched, not waited for
            done = torch.cuda.Event()
            done.record()
            start = time.perf_counter()
            with frozen.acting():
                acted = frozen.act(batch).cpu()
            out["first_act_while_training_ms"] = 1e3 * (time.perf_counter() - start)
            out["training_still_running"] = not done.query()
            sync(device)
            out["queued_updates_s"] = time.perf_counter() - start
            ok &= out["training_still_running"]
        else:
            learner.advance(10)
            acted = frozen.act(batch).cpu()
            out["stream"] = "skipped: the CPU has no streams (acts in the helper thread)"
        out["frozen_equals_then"] = torch.equal(acted, then)
        out["learner_moved_on"] = not torch.equal(learner.act(batch).cpu(), then)
        ok &= out["frozen_equals_then"] and out["learner_moved_on"]
        return {**out, "status": "pass" if ok else "fail"}

    check.run("9 evaluation beside training", beside_training, needs=20)
    print(f"  wall {check.report['wall_seconds']} s; wrote {args.out}")
    if check.failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
