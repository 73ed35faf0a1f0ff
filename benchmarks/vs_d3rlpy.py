"""Updates/s of one configuration: the readable reference agent, the learner eager (fused twin
critics as batched matmuls, fused Adam) and compiled (the same, its three stages compiled by
torch.compile), and d3rlpy's IQL, on the same data and machine, minibatch draw included, rounds
interleaved.

d3rlpy pins gymnasium 1.0.0, so it lives in its own venv and runs in a subprocess:

    .venv/bin/python benchmarks/vs_d3rlpy.py [--rounds 3] [--seconds 5] [--threads 2]

The first run makes the side venv (.venv-d3rlpy: d3rlpy with the same torch); ``--setup`` makes
it and exits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import calls_per_second, print_medians, random_transitions

from iql_sweep.iql.config import Member, make_config
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.iql.reference import IQLAgent
from iql_sweep.iql.replay import ReplayBuffer

ROOT = Path(__file__).resolve().parent.parent
SIDE_VENV = ROOT / ".venv-d3rlpy"
OBS, ACT, N = 11, 3, 200_000

D3RLPY_RUN = r"""
import json, sys, time, numpy as np, torch, d3rlpy
from d3rlpy.models.encoders import VectorEncoderFactory
path, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
d = np.load(path)
ds = d3rlpy.dataset.MDPDataset(d["observations"], d["actions"], d["rewards"], d["terminals"],
                               timeouts=d["timeouts"])
enc = VectorEncoderFactory([256, 256])
algo = d3rlpy.algos.IQLConfig(
    actor_learning_rate=3e-4, critic_learning_rate=3e-4, batch_size=256, gamma=0.99, tau=0.005,
    n_critics=2, expectile=0.7, weight_temp=3.0, max_weight=100.0, actor_encoder_factory=enc,
    critic_encoder_factory=enc, value_encoder_factory=enc,
).create(device="cpu:0")
algo.build_with_dataset(ds)
for _ in range(50):
    algo.update(ds.sample_transition_batch(256))
done, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    algo.update(ds.sample_transition_batch(256))
    done += 1
print(json.dumps({"rate": done / (time.perf_counter() - start), "version": d3rlpy.__version__}))
"""


def setup_side_venv() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(SIDE_VENV)], check=True)
    pip = [str(SIDE_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={torch.__version__.split('+')[0]}"], check=True)
    subprocess.run([*pip, "d3rlpy"], check=True)


def make_data(path: Path) -> dict[str, torch.Tensor]:
    """The benchmark's transitions, also written to ``path`` for d3rlpy's process."""
    tensors = random_transitions(N, OBS, ACT)
    np.savez(path, **{k: v.numpy() for k, v in tensors.items()})
    return tensors


def rate(step, seconds: float) -> float:
    return calls_per_second(step, seconds, warmup=50)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setup", action="store_true", help="create .venv-d3rlpy and exit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.setup:
        setup_side_venv()
        return
    if not (SIDE_VENV / "bin" / "python").exists():
        print("d3rlpy's side venv is missing: making it (.venv-d3rlpy, once)", flush=True)
        setup_side_venv()
    torch.set_num_threads(args.threads)
    data_file = Path(tempfile.mkdtemp()) / "data.npz"
    tensors = make_data(data_file)
    config = make_config("default")
    member = [Member(expectile=0.7, beta=3.0, seed=0)]
    agent = IQLAgent(OBS, ACT, config, seed=0)
    buffer = ReplayBuffer(tensors, 256, [0])
    eager = IQLLearner(OBS, ACT, config, member, tensors)
    compiled = IQLLearner(OBS, ACT, config, member, tensors, speed="compiled")
    contenders = {
        "reference": lambda: agent.update({k: v[0] for k, v in buffer.sample().items()}),
        "learner, eager": lambda: eager.advance(1),
        "learner, compiled": lambda: compiled.advance(1),
    }
    results: dict[str, list[float]] = {"d3rlpy IQL": [], **{name: [] for name in contenders}}
    version = "?"
    for _ in range(args.rounds):
        out = subprocess.run(
            [
                str(SIDE_VENV / "bin" / "python"),
                "-c",
                D3RLPY_RUN,
                str(data_file),
                str(args.seconds),
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        line = json.loads(out.stdout.strip().splitlines()[-1])
        results["d3rlpy IQL"].append(line["rate"])
        version = line["version"]
        for name, step in contenders.items():
            results[name].append(rate(step, args.seconds))
    print(
        f"one configuration, batch 256, 2x256, obs {OBS}, act {ACT}, {args.threads} threads, "
        f"CPU; d3rlpy {version}; medians of {args.rounds} interleaved rounds of {args.seconds:g} s"
    )
    print_medians(results, "d3rlpy IQL", "updates/s", "x d3rlpy")


if __name__ == "__main__":
    main()
