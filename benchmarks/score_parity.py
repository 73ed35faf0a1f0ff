"""Score parity with d3rlpy, observation normalisation off and on, on identical data.

iql-sweep's IQL (the project's learner through its own training loop, the dataset's preset) and
d3rlpy's IQL (the same tau, beta, learning rates, batch, discount, Polyak rate, AWR clip, 2x256
nets, actor dropout and cosine actor schedule; ``StandardObservationScaler`` for "on") train on
the same transitions for the same number of updates and are evaluated by the same evaluator, in
the same environments, with the same episode seeds (seed + 10,000 + i), deterministic actions.

Datasets (in a private Minari root under ``--out``, never ``~/.minari``):

- ``iql-sweep/pointmaze/umaze-v0`` and ``medium-v0``: the project's PointMaze generator (the
  recipe of Minari's D4RL/pointmaze datasets), default sizes;
- ``D4RL/door/cloned-v2``: a MuJoCo layout written the way the tests write it
  (``tests/test_d4rl_layouts.py``: Minari's writer, random actions in AdroitHandDoor-v1, D4RL's
  reference scores), here 100 episodes of 200 steps.

d3rlpy gets each episode's transitions exactly: a truncated episode is given with its last
next-observation appended (a dummy action on it), since d3rlpy drops the last step of an episode
that did not terminate. d3rlpy pins gymnasium 1.0.0, so it trains in its own venv
(``.venv-d3rlpy``, made by ``benchmarks/vs_d3rlpy.py --setup``) and saves its greedy policy as
TorchScript (its observation scaler inside); the evaluation runs here.

    .venv/bin/python benchmarks/score_parity.py [--steps 20000] [--seeds 0 1 2] [--jobs 2]

Jobs run as separate single-threaded processes (``--jobs`` at once); finished jobs are kept in
``--out`` and skipped on a rerun. The table goes to stdout and ``<out>/score_parity.md``, every
per-seed score to ``<out>/score_parity.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIDE_PYTHON = ROOT / ".venv-d3rlpy" / "bin" / "python"
DATASETS = {
    "umaze": "iql-sweep/pointmaze/umaze-v0",
    "medium": "iql-sweep/pointmaze/medium-v0",
    "door": "D4RL/door/cloned-v2",
}
DOOR_EPISODES, DOOR_STEPS = 100, 200

D3RLPY_TRAIN = r"""
import json, sys, numpy as np, torch, d3rlpy
from d3rlpy.logging import NoopAdapterFactory
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.optimizers import AdamFactory, CosineAnnealingLRFactory
a = json.loads(sys.argv[1])
torch.set_num_threads(1)
d3rlpy.seed(a["seed"])
d = np.load(a["data"])
ds = d3rlpy.dataset.MDPDataset(d["observations"], d["actions"], d["rewards"], d["terminals"],
                               timeouts=d["timeouts"])
enc = VectorEncoderFactory(a["hidden"])
actor_enc = VectorEncoderFactory(a["hidden"], dropout_rate=a["actor_dropout"] or None)
schedule = CosineAnnealingLRFactory(T_max=a["steps"]) if a["cosine"] else None
algo = d3rlpy.algos.IQLConfig(
    observation_scaler=d3rlpy.preprocessing.StandardObservationScaler() if a["normalize"] else None,
    actor_learning_rate=a["actor_lr"], critic_learning_rate=a["critic_lr"],
    actor_optim_factory=AdamFactory(lr_scheduler_factory=schedule),
    batch_size=a["batch_size"], gamma=a["discount"], tau=a["polyak"], n_critics=2,
    expectile=a["expectile"], weight_temp=a["beta"], max_weight=a["max_weight"],
    actor_encoder_factory=actor_enc, critic_encoder_factory=enc, value_encoder_factory=enc,
).create(device="cpu:0")
algo.fit(ds, n_steps=a["steps"], n_steps_per_epoch=a["steps"], logger_adapter=NoopAdapterFactory(),
         show_progress=False, save_interval=10**9)
algo.save_policy(a["policy"])
print(json.dumps({"version": d3rlpy.__version__}))
"""


def ensure_datasets(names: list[str]) -> None:
    """Make the benchmark's datasets in the (private) Minari root when missing."""
    from iql_sweep.data.make import make_dataset
    from iql_sweep.data.minari_io import local_dataset_ids

    present = set(local_dataset_ids())
    for name in names:
        dataset_id = DATASETS[name]
        if dataset_id in present:
            continue
        print(f"making {dataset_id}", flush=True)
        if name == "door":
            sys.path.insert(0, str(ROOT))
            from tests.test_d4rl_layouts import write_port

            write_port(dataset_id, episodes=DOOR_EPISODES, steps=DOOR_STEPS)
        else:
            make_dataset(f"pointmaze-{name}", progress=False)


def export_for_d3rlpy(dataset_id: str, path: Path) -> None:
    """The dataset's transitions (after the preset's reward and action preprocessing) as
    d3rlpy episodes: a truncated episode gets its final next-observation appended."""
    from iql_sweep.data.minari_io import load_transitions
    from iql_sweep.training import prepare_data
    from iql_sweep.trial_config import build_config

    data = prepare_data(load_transitions(dataset_id), build_config(dataset_id, None, 1, {}))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "term", "tout")}
    ends = [*data.episode_starts[1:].tolist(), data.size]
    for start, end in zip(data.episode_starts.tolist(), ends):
        n = end - start
        terminated = bool(data.terminals[end - 1])
        extra = 0 if terminated else 1
        obs = data.observations[start:end]
        act = data.actions[start:end]
        if extra:
            obs = np.concatenate([obs, data.next_observations[end - 1 : end]])
            act = np.concatenate([act, np.zeros((1, data.act_dim), np.float32)])
        term = np.zeros(n + extra, np.float32)
        tout = np.zeros(n + extra, np.float32)
        (term if terminated else tout)[-1] = 1.0
        parts["obs"].append(obs)
        parts["act"].append(act)
        parts["rew"].append(np.concatenate([data.rewards[start:end], np.zeros(extra, np.float32)]))
        parts["term"].append(term)
        parts["tout"].append(tout)
    np.savez(
        path,
        observations=np.concatenate(parts["obs"]),
        actions=np.concatenate(parts["act"]),
        rewards=np.concatenate(parts["rew"]),
        terminals=np.concatenate(parts["term"]),
        timeouts=np.concatenate(parts["tout"]),
    )


def run_ours(job: dict[str, Any]) -> dict[str, Any]:
    """One pack (the seeds of one dataset x setting) through the project's training loop."""
    import torch

    from iql_sweep.training import assemble
    from iql_sweep.trial_config import Pack, TrialConfig, TrialRun

    torch.set_num_threads(1)
    trial = TrialConfig(
        dataset=job["dataset"],
        iql={"normalize_observations": job["normalize"]},
        pack=Pack(members=[{"seed": s} for s in job["seeds"]]),
        run=TrialRun(steps=job["steps"], eval_every=job["steps"], eval_episodes=job["episodes"]),
    )
    start = time.perf_counter()
    result = assemble(trial, torch.device("cpu")).loop([], progress=False).run(None)
    scores = [result.history[k][-1]["normalized_score"] for k in range(len(job["seeds"]))]
    return {"scores": scores, "seconds": time.perf_counter() - start}


def d3rlpy_args(dataset_id: str, normalize: bool, seed: int, steps: int) -> dict[str, Any]:
    """d3rlpy's settings: the project's preset for the dataset, field by field."""
    from iql_sweep.trial_config import build_config

    c = build_config(dataset_id, None, steps, {})
    return {
        "seed": seed,
        "steps": steps,
        "normalize": normalize,
        "hidden": list(c.hidden_dims),
        "actor_dropout": c.actor_dropout,
        "cosine": c.cosine_actor_schedule,
        "actor_lr": c.actor_lr,
        "critic_lr": c.critic_lr,
        "batch_size": c.batch_size,
        "discount": c.discount,
        "polyak": c.polyak,
        "expectile": c.expectile,
        "beta": c.beta,
        "max_weight": c.max_awr_weight,
    }


def evaluate_policy(dataset_id: str, policy: Path, seed: int, episodes: int) -> float:
    """A TorchScript policy's normalised score with the project's evaluator and seeds."""
    import torch

    from iql_sweep.data.minari_io import load_transitions
    from iql_sweep.evaluation import Evaluator
    from iql_sweep.seeds import evaluation_seeds

    net = torch.jit.load(str(policy))
    evaluator = Evaluator(
        load_transitions(dataset_id), episodes=episodes, seeds=evaluation_seeds([seed])
    )

    def act(obs: torch.Tensor, members: list[int]) -> torch.Tensor:
        with torch.no_grad():
            flat = net(obs.reshape(-1, obs.shape[-1]).float())
        return flat.reshape(*obs.shape[:-1], -1).clamp(-1.0, 1.0)

    try:
        return float(evaluator.evaluate(act, [0])[0].normalized_score)
    finally:
        evaluator.close()


def job_runner(out: Path, env: dict[str, str]):
    def run(job: dict[str, Any]) -> dict[str, Any]:
        result_file = out / "jobs" / f"{job['name']}.json"
        if result_file.is_file():
            return json.loads(result_file.read_text())
        start = time.perf_counter()
        if job["library"] == "iql-sweep":
            cmd = [sys.executable, __file__, "--job", json.dumps(job)]
        else:
            cmd = [str(SIDE_PYTHON), "-c", D3RLPY_TRAIN, json.dumps(job["args"])]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode:
            raise RuntimeError(f"{job['name']} failed:\n{done.stderr[-3000:]}")
        line = json.loads(done.stdout.strip().splitlines()[-1])
        if job["library"] == "d3rlpy":
            train_seconds = time.perf_counter() - start
            score = evaluate_policy(
                job["dataset"], Path(job["args"]["policy"]), job["seed"], job["episodes"]
            )
            line = {"scores": [score], "seconds": train_seconds, "version": line["version"]}
        result = {**{k: v for k, v in job.items() if k != "args"}, **line}
        result_file.write_text(json.dumps(result))
        print(
            f"  {job['name']}: {[round(s, 1) for s in result['scores']]} "
            f"({result['seconds']:.0f} s)",
            flush=True,
        )
        return result

    return run


def scores_of(results: list[dict[str, Any]], name: str, library: str, normalize: bool):
    """Every per-seed score of one dataset x library x setting."""
    return np.array(
        [
            s
            for r in results
            if r["dataset"] == DATASETS[name]
            and r["library"] == library
            and r["normalize"] == normalize
            for s in r["scores"]
        ]
    )


def table(results: list[dict[str, Any]], names: list[str]) -> str:
    """Markdown: per dataset x library x setting, mean ± std (per-seed), IQM [95% CI]; then
    per dataset x setting, iql-sweep against d3rlpy and the setting's effect per library."""
    from iql_sweep.report import stats

    lines = [
        "| dataset | library | normalisation | mean ± std | per seed | IQM [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    parity = [
        "| dataset | normalisation | iql-sweep − d3rlpy | larger seed std | iql-sweep is |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        for library in ("iql-sweep", "d3rlpy"):
            for normalize in (False, True):
                scores = scores_of(results, name, library, normalize)
                if not scores.size:
                    continue
                iqm = stats.interval({name: scores / 100}, stats.iqm, reps=2000, seed=0)
                std = scores.std(ddof=1) if scores.size > 1 else 0.0
                f = ".2f" if np.abs(scores).max() < 5 else ".1f"  # scores near 0: more digits
                lines.append(
                    f"| {name} | {library} | {'on' if normalize else 'off'} | "
                    f"{scores.mean():{f}} ± {std:{f}} | {' / '.join(f'{s:{f}}' for s in scores)} "
                    f"| {100 * iqm.estimate:{f}} [{100 * iqm.low:{f}}, {100 * iqm.high:{f}}] |"
                )
        for normalize in (False, True):
            ours = scores_of(results, name, "iql-sweep", normalize)
            theirs = scores_of(results, name, "d3rlpy", normalize)
            if ours.size < 2 or theirs.size < 2:
                continue
            gap = ours.mean() - theirs.mean()
            spread = max(ours.std(ddof=1), theirs.std(ddof=1))
            verdict = "better" if gap >= 0 else "within the spread" if -gap <= spread else "below"
            f = ".2f" if max(np.abs(ours).max(), np.abs(theirs).max()) < 5 else ".1f"
            parity.append(
                f"| {name} | {'on' if normalize else 'off'} | {gap:+{f}} | {spread:{f}} | "
                f"{verdict} |"
            )
    effect = [
        "| library | datasets | P(on > off) [95% CI] |",
        "|---|---|---|",
    ]
    for library in ("iql-sweep", "d3rlpy"):
        on = {n: scores_of(results, n, library, True) for n in names}
        off = {n: scores_of(results, n, library, False) for n in names}
        scopes = [[n] for n in names] + ([names] if len(names) > 1 else [])
        for scope in scopes:
            xs = {n: on[n] for n in scope if on[n].size}
            ys = {n: off[n] for n in scope if off[n].size}
            if not set(xs) & set(ys):
                continue
            p = stats.improvement_probability(xs, ys, reps=2000, seed=0)
            interval = f"{p.estimate:.2f} [{p.low:.2f}, {p.high:.2f}]"
            effect.append(f"| {library} | {' + '.join(scope)} | {interval} |")
    return "\n\n".join("\n".join(t) for t in (lines, parity, effect))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "parity")
    parser.add_argument(
        "--table-only", action="store_true", help="the table of the jobs already in --out"
    )
    args = parser.parse_args()
    if args.job:
        print(json.dumps(run_ours(json.loads(args.job))))
        return
    if not SIDE_PYTHON.exists():
        sys.exit("d3rlpy's venv is missing: run benchmarks/vs_d3rlpy.py --setup first")
    out = args.out.resolve()
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    (out / "policies").mkdir(exist_ok=True)
    os.environ["MINARI_DATASETS_PATH"] = str(out / "minari")
    os.environ.setdefault("IQL_SWEEP_CACHE", str(out / "cache"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    ensure_datasets(args.datasets)
    jobs = []
    for name in args.datasets:
        dataset_id = DATASETS[name]
        npz = out / f"{name}.npz"
        if not npz.is_file():
            export_for_d3rlpy(dataset_id, npz)
        for normalize in (False, True):
            setting = "on" if normalize else "off"
            common = {
                "dataset": dataset_id,
                "normalize": normalize,
                "steps": args.steps,
                "episodes": args.episodes,
            }
            jobs.append(
                {
                    **common,
                    "name": f"ours-{name}-{setting}-s{'_'.join(map(str, args.seeds))}-{args.steps}",
                    "library": "iql-sweep",
                    "seeds": args.seeds,
                }
            )
            for seed in args.seeds:
                policy = out / "policies" / f"d3rlpy-{name}-{setting}-{seed}-{args.steps}.pt"
                d3 = {
                    **d3rlpy_args(dataset_id, normalize, seed, args.steps),
                    "data": str(npz),
                    "policy": str(policy),
                }
                jobs.append(
                    {
                        **common,
                        "name": f"d3rlpy-{name}-{setting}-{seed}-{args.steps}",
                        "library": "d3rlpy",
                        "seed": seed,
                        "args": d3,
                    }
                )
    if not args.table_only:
        print(f"{len(jobs)} jobs, {args.jobs} at a time, {args.steps} updates each", flush=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(job_runner(out, env), jobs))
    # every finished job of these datasets and length, also those of earlier runs (more seeds)
    results = [json.loads(p.read_text()) for p in sorted((out / "jobs").glob("*.json"))]
    wanted = {DATASETS[n] for n in args.datasets}
    results = [r for r in results if r["steps"] == args.steps and r["dataset"] in wanted]
    seeds = sorted({s for r in results for s in (r["seeds"] if "seeds" in r else [r["seed"]])})
    import torch

    versions = next((r["version"] for r in results if "version" in r), "?")
    header = (
        f"{args.steps} updates, seeds {', '.join(map(str, seeds))}, "
        f"final evaluation of {args.episodes} episodes; d3rlpy {versions}, torch "
        f"{torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, one thread per job"
    )
    text = header + "\n\n" + table(results, args.datasets)
    print(text)
    (out / "score_parity.md").write_text(text + "\n")
    (out / "score_parity.json").write_text(
        json.dumps(
            {"settings": vars(args) | {"out": str(out)}, "results": results}, indent=1, default=str
        )
    )


if __name__ == "__main__":
    main()
