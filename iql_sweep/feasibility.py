"""Before Ray waits: can any node of the cluster, now or once the autoscaler adds it, run one
trial of this sweep? Ray queues a request no node can satisfy forever; this says so up front,
naming the field, the request and what the cluster offers, and prints where trials will run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iql_sweep.errors import ConfigError
from iql_sweep.spec import SweepSpec

GIB = 2**30


#: GPU memory (GiB) by Ray's ``accelerator_type:*`` node label, for sizing GPU shares; a card
#: Ray does not name is taken as 16 GiB (the smallest of today's data-centre cards).
GPU_MEMORY_GIB = {
    "H200": 141, "H100": 80, "A100-80G": 80, "A100": 40, "L40S": 48, "A40": 48, "A10G": 24,
    "L4": 24, "V100": 16, "T4": 16,
}  # fmt: skip
UNKNOWN_GPU_GIB = 16
MAX_TRIALS_PER_GPU = 16
CUDA_CONTEXT = GIB // 2  # the CUDA context and torch's kernels, per trial process
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
            f"{trials} trial(s), each {self.cpus:g} CPU and {where}, about "
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


def _data_and_model_bytes(spec: SweepSpec) -> tuple[int, int]:
    """One trial's datasets as tensors, and per pack its members' parameters (weights,
    gradients, two Adam moments, targets) with the activations of a batch."""
    from iql_sweep.data.minari_io import load_transitions, local_dataset_ids

    present = set(local_dataset_ids())
    data_bytes, dims = 0, (64, 16)
    for dataset in spec.datasets:
        if dataset in present:
            data = load_transitions(dataset)
            row = (2 * data.obs_dim + data.act_dim + 3) * 4
            data_bytes = max(data_bytes, data.size * row)
            dims = (data.obs_dim, data.act_dim)
    worst = 0
    for trial in spec.trial_configs()[:50]:
        for _, config, _ in trial.configurations()[:1]:
            hidden = list(config.hidden_dims)
            widths = [dims[0] + dims[1], *hidden, 1]
            params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
            members = len(trial.members(config))
            per_member = 4 * (4 * params * 6 + config.batch_size * sum(hidden) * 24)
            worst = max(worst, members * per_member)
    return data_bytes, worst


def trial_memory(spec: SweepSpec) -> tuple[int, int]:
    """Generous estimates of one trial's memory, (host, GPU): its data and its pack, plus on the
    host the process itself (torch, gymnasium, the evaluation envs), on the GPU the CUDA
    context."""
    data, model = _data_and_model_bytes(spec)
    return data + model + PROCESS, data + model + CUDA_CONTEXT


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
) -> tuple[float, int]:
    """``gpus_per_trial: auto`` for trials needing ``need`` bytes of GPU memory and
    ``cpus_per_trial`` CPUs: (share, trials per GPU), or (0, 0) when no node (present or addable)
    has a GPU. Trials per GPU: as many as the card's memory holds (90 %) and the node's CPUs per
    GPU allow, at most 16; the share fits every GPU node."""
    gpu_nodes = [n for n in [*nodes, *autoscaling] if n.get("GPU", 0) > 0]
    if not gpu_nodes:
        return 0.0, 0
    fits = []
    for node in gpu_nodes:
        cpus_per_gpu = node.get("CPU", 0) / node["GPU"]
        by_cpu = int(cpus_per_gpu // cpus_per_trial)
        by_memory = int(0.9 * _card_bytes(node) // need)
        fits.append(max(1, min(by_cpu, by_memory, MAX_TRIALS_PER_GPU)))
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
        gpus, per_gpu = auto_gpu_share(device, spec.resources.cpus_per_trial, nodes, groups)
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
