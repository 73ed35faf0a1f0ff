"""Before Ray waits: can any node of the cluster, now or once the autoscaler adds it, run one
trial of this sweep? Ray queues a request no node can satisfy forever; this says so up front,
naming the field, the request and what the cluster offers, and prints where trials will run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iql_sweep.errors import ConfigError
from iql_sweep.iql.config import critic_keys
from iql_sweep.iql.memory import MemoryEstimate, learner_memory
from iql_sweep.spec import SweepSpec
from iql_sweep.trial_config import TrialConfig

GIB = 2**30


#: GPU memory (GiB) by Ray's ``accelerator_type:*`` node label, for sizing GPU shares; a card
#: Ray does not name is taken as 16 GiB (the smallest of today's data-centre cards).
GPU_MEMORY_GIB = {
    "H200": 141, "H100": 80, "A100-80G": 80, "A100": 40, "L40S": 48, "A40": 48, "A10G": 24,
    "L4": 24, "V100": 16, "T4": 16,
}  # fmt: skip
UNKNOWN_GPU_GIB = 16
#: Trials per GPU at most: processes without MPS take turns on a card (time-slicing), so more
#: of them only overlap one another's CPU-side gaps; packing members is the real multiplier.
MAX_TRIALS_PER_GPU = 4
#: With MPS on the GPU nodes (``resources.mps: true``) kernels of several processes run at once.
MAX_TRIALS_PER_GPU_MPS = 16
PROCESS = GIB // 2  # a trial process itself: torch, gymnasium, the evaluation envs


@dataclass(frozen=True)
class Placement:
    """What one trial asks for and what the cluster has."""

    cpus: float
    gpus: float
    memory: int  # bytes, estimated
    nodes: list[dict[str, float]]
    autoscaling: list[dict[str, float]]  # node types the autoscaler can still add
    trials_per_gpu: int = 0  # when the share was sized by 'auto'

    def summary(self, trials: int) -> str:
        cpus = sum(n.get("CPU", 0) for n in self.nodes)
        gpus = sum(n.get("GPU", 0) for n in self.nodes)
        slots = min(
            (int(cpus // self.cpus) if self.cpus else trials),
            (int(gpus // self.gpus) if self.gpus else trials),
        )
        where = f"{self.gpus:g} GPU" if self.gpus else "0 GPU (on the CPU)"
        if self.trials_per_gpu:
            where += f", {self.trials_per_gpu} trials per GPU (auto)"
        text = (
            f"{trials} Ray trial(s), each {self.cpus:g} CPU and {where}, about "
            f"{self.memory / GIB:.1f} GiB; the cluster now: {len(self.nodes)} node(s), "
            f"{cpus:g} CPUs, {gpus:g} GPUs: up to {max(0, min(slots, trials))} at once"
        )
        if self.autoscaling:
            text += f"; the autoscaler can add {len(self.autoscaling)} node type(s)"
        return text


def _fits(resources: dict[str, float], cpus: float, gpus: float, memory: int) -> bool:
    room = resources.get("memory")
    return (
        resources.get("CPU", 0) >= cpus
        and resources.get("GPU", 0) >= gpus
        and (room is None or room >= memory)
    )


def trial_memory(spec: SweepSpec) -> tuple[int, int]:
    """Generous estimates of one trial's memory, (host, GPU), for its largest pack on its
    largest local dataset (unknown datasets: 1M rows of 64 + 16 dimensions). The GPU figure is
    :func:`~iql_sweep.iql.memory.learner_memory` (data once, networks, a captured update's
    activations, cuBLAS workspaces, the CUDA context); the host holds the data, the process
    and, while the learner is built, one more copy of the data."""
    from iql_sweep.data.minari_io import load_transitions, local_dataset_ids

    present = set(local_dataset_ids())
    local = map(load_transitions, (d for d in spec.datasets if d in present))  # one at a time
    shapes = [(data.size, data.obs_dim, data.act_dim) for data in local]
    shapes = shapes or [(1_000_000, 64, 16)]  # only datasets that are not here yet
    rows, obs_dim, act_dim = max(shapes, key=lambda t: t[0] * (2 * t[1] + t[2]))

    def estimate(trial: TrialConfig) -> MemoryEstimate:
        config = trial.base_config()
        members = trial.members(config)
        critics = len(set(critic_keys(members, trial.run.share_critics)))
        online = trial.run.online_steps
        return learner_memory(config, len(members), critics, rows, obs_dim, act_dim, online)

    worst = max(map(estimate, spec.trial_configs()[:50]), key=lambda e: e.total)
    host = 2 * worst.data + worst.networks + PROCESS
    return host, worst.total


def _card_bytes(node: dict[str, float]) -> int:
    for name, gib in GPU_MEMORY_GIB.items():
        if node.get(f"accelerator_type:{name}"):
            return gib * GIB
    return UNKNOWN_GPU_GIB * GIB


def auto_gpu_share(
    need: int,
    cpus_per_trial: float,
    nodes: list[dict[str, float]],
    autoscaling: list[dict[str, float]],
    mps: bool = False,
) -> tuple[float, int]:
    """``gpus_per_trial: auto`` for trials needing ``need`` bytes of GPU memory and
    ``cpus_per_trial`` CPUs: (share, trials per GPU), or (0, 0) when no node (present or addable)
    has a GPU. Trials per GPU: as many as the card's memory holds (90 %) and the node's CPUs per
    GPU allow, at most 4 (16 with MPS); the share fits every GPU node."""
    gpu_nodes = [n for n in [*nodes, *autoscaling] if n.get("GPU", 0) > 0]
    if not gpu_nodes:
        return 0.0, 0
    fits = []
    for node in gpu_nodes:
        cpus_per_gpu = node.get("CPU", 0) / node["GPU"]
        by_cpu = int(cpus_per_gpu // cpus_per_trial)
        by_memory = int(0.9 * _card_bytes(node) // need)
        cap = MAX_TRIALS_PER_GPU_MPS if mps else MAX_TRIALS_PER_GPU
        fits.append(max(1, min(by_cpu, by_memory, cap)))
    per_gpu = min(fits)
    return math.floor(10_000 / per_gpu) / 10_000, per_gpu  # Ray counts GPUs in 1e-4 units


def placement(spec: SweepSpec) -> Placement:
    """Measure the connected cluster (Ray must be initialised) and size ``auto`` GPU shares."""
    import ray

    nodes = [dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")]
    groups: list[dict[str, float]] = []
    try:  # the autoscaler's node types; no public API exposes them
        from ray._private.state import state

        config = state.get_cluster_config()
        if config is not None:
            groups = [dict(g.resources) for g in config.node_group_configs if g.max_count != 0]
    except Exception:  # noqa: BLE001 - without an autoscaler the cluster is what it is
        groups = []
    host, device = trial_memory(spec)
    gpus, per_gpu = spec.resources.gpu_share, 0
    if spec.resources.gpus_per_trial == "auto":
        gpus, per_gpu = auto_gpu_share(
            device, spec.resources.cpus_per_trial, nodes, groups, spec.resources.mps
        )
    return Placement(
        cpus=spec.resources.cpus_per_trial,
        gpus=gpus,
        memory=host,
        nodes=nodes,
        autoscaling=groups,
        trials_per_gpu=per_gpu,
    )


def check(place: Placement) -> str | None:
    """None when a node fits a trial; a waiting note when only the autoscaler's node types do;
    a ConfigError naming the field when nothing ever will."""
    if any(_fits(n, place.cpus, place.gpus, place.memory) for n in place.nodes):
        return None
    if any(_fits(g, place.cpus, place.gpus, place.memory) for g in place.autoscaling):
        return "no node can run a trial yet; waiting for the autoscaler to add one"
    offer = ", ".join(
        f"{n.get('CPU', 0):g} CPU / {n.get('GPU', 0):g} GPU / {n.get('memory', 0) / GIB:.1f} GiB"
        for n in place.nodes
    )
    largest_cpu = max((n.get("CPU", 0) for n in place.nodes), default=0)
    largest_gpu = max((n.get("GPU", 0) for n in place.nodes), default=0)
    if place.gpus > largest_gpu:
        field, request = "resources.gpus_per_trial", f"{place.gpus:g} GPU"
    elif place.cpus > largest_cpu:
        field, request = "resources.cpus_per_trial", f"{place.cpus:g} CPU"
    else:
        field, request = "resources.pack / iql.batch_size", f"about {place.memory / GIB:.1f} GiB"
    raise ConfigError(
        f"{field}: a trial asks for {request}, which no node of this cluster has ({offer}) and "
        "the cluster cannot add; lower the request or start a larger cluster"
    )
