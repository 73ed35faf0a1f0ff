"""Feasibility before Ray waits, on a real local Ray whose autoscaler node types are written
where Ray's autoscaler keeps them (the GCS key-value store): a GPU request waits when a node
type the autoscaler can add has GPUs, and is refused when none has."""

from __future__ import annotations

import pytest
import ray
from ray.core.generated import autoscaler_pb2

from iql_sweep.errors import ConfigError
from iql_sweep.feasibility import check, placement
from iql_sweep.spec import validate_spec


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _publish_node_types(groups: list[tuple[str, dict[str, float], int]]) -> None:
    """Write the cluster config the autoscaler publishes (name, resources, max count)."""
    from ray._raylet import GCS_AUTOSCALER_CLUSTER_CONFIG_KEY, GCS_AUTOSCALER_STATE_NAMESPACE
    from ray.experimental.internal_kv import _internal_kv_put

    config = autoscaler_pb2.ClusterConfig()
    for name, resources, max_count in groups:
        group = config.node_group_configs.add(name=name, max_count=max_count)
        group.resources.update(resources)
    _internal_kv_put(
        GCS_AUTOSCALER_CLUSTER_CONFIG_KEY.encode(),
        config.SerializeToString(),
        overwrite=True,
        namespace=GCS_AUTOSCALER_STATE_NAMESPACE.encode(),
    )


def _spec(umaze_id: str, tmp_path, gpus: float, cpus: float = 1):
    return validate_spec(
        {
            "name": "feasible",
            "datasets": [umaze_id],
            "search": {"grid": {"expectile": [0.7]}},
            "training": {"steps": 20, "eval_every": 10},
            "resources": {"cpus_per_trial": cpus, "gpus_per_trial": gpus},
            "output": str(tmp_path),
        }
    )


@pytest.mark.slow
def test_a_gpu_request_waits_for_an_autoscaler_node_type_with_gpus(local_ray, umaze_id, tmp_path):
    spec = _spec(umaze_id, tmp_path, gpus=1)
    _publish_node_types([("gpu_worker", {"CPU": 8, "GPU": 1, "memory": 32 * 2**30}, 4)])
    place = placement(spec)
    assert place.nodes and all(n.get("GPU", 0) == 0 for n in place.nodes)
    assert place.autoscaling == [{"CPU": 8, "GPU": 1, "memory": 32 * 2**30}]
    assert check(place) == "no node can run a trial yet; waiting for the autoscaler to add one"
    assert "the autoscaler can add 1 node type(s)" in place.summary(1)


@pytest.mark.slow
def test_a_gpu_request_no_node_type_offers_is_refused(local_ray, umaze_id, tmp_path):
    spec = _spec(umaze_id, tmp_path, gpus=1)
    # A GPU node type the autoscaler may not add (max 0), and a CPU-only one it may.
    _publish_node_types([("gpu_worker", {"CPU": 8, "GPU": 1}, 0), ("cpu_worker", {"CPU": 16}, 10)])
    place = placement(spec)
    assert place.autoscaling == [{"CPU": 16}]
    with pytest.raises(ConfigError, match=r"resources.gpus_per_trial: a trial asks for 1 GPU"):
        check(place)
    assert check(placement(_spec(umaze_id, tmp_path, gpus=0))) is None
    # more CPUs than any node has or the autoscaler can add
    with pytest.raises(ConfigError, match=r"resources.cpus_per_trial: a trial asks for 64 CPU"):
        check(placement(_spec(umaze_id, tmp_path, gpus=0, cpus=64)))


GIB = 2**30


@pytest.mark.parametrize(
    ("nodes", "cpus_per_trial", "trial_gib", "mps", "expected"),
    [
        # CPU-bound: 3 CPUs per GPU, 1 CPU a trial -> 3 trials, each 1/3 of the GPU.
        ([{"CPU": 3, "GPU": 1, "accelerator_type:A10G": 1}], 1.0, 1.0, False, (0.3333, 3)),
        # memory-bound: a T4 holds int(0.9 * 16 / 5) = 2 trials of 5 GiB.
        ([{"CPU": 32, "GPU": 1, "accelerator_type:T4": 1}], 1.0, 5, False, (0.5, 2)),
        # an unnamed card counts as 16 GiB; 3 trials -> a share Ray can count (1e-4 units).
        ([{"CPU": 16, "GPU": 2}], 1.0, 4.5, False, (0.3333, 3)),
        # without MPS at most 4 per GPU (processes take turns on a card) ...
        ([{"CPU": 64, "GPU": 1, "accelerator_type:H100": 1}], 0.5, 1.5, False, (0.25, 4)),
        # ... with MPS up to 16; the share must fit the smaller of two node kinds.
        ([{"CPU": 64, "GPU": 1, "accelerator_type:H100": 1}], 0.5, 1.5, True, (0.0625, 16)),
        (
            [{"CPU": 64, "GPU": 1, "accelerator_type:H100": 1}, {"CPU": 4, "GPU": 2}],
            1,
            1,
            True,
            (0.5, 2),
        ),
        # no GPU anywhere: the CPU.
        ([{"CPU": 2}], 1.0, 1.0, False, (0.0, 0)),
        # a trial larger than the card still gets a whole GPU (Ray cannot give more per trial).
        ([{"CPU": 8, "GPU": 1, "accelerator_type:T4": 1}], 1.0, 40.0, False, (1.0, 1)),
    ],
)
def test_auto_gpu_share_is_sized_by_cpus_and_card_memory(
    nodes, cpus_per_trial, trial_gib, mps, expected
):
    from iql_sweep.feasibility import auto_gpu_share

    need = int(trial_gib * GIB)
    assert auto_gpu_share(need, cpus_per_trial, nodes, [], mps) == expected
    # A GPU node type the autoscaler can add counts as a GPU node.
    if expected[1]:
        assert auto_gpu_share(need, cpus_per_trial, [{"CPU": 2}], nodes, mps) == expected


def test_the_gpu_estimate_counts_what_a_built_learner_holds(umaze_id):
    """The estimate's data and network terms against the tensors of a real learner after an
    update (parameters, gradients, Adam moments, targets, replay storage), packed and not; the
    fixed terms are the CUDA context and cuBLAS workspaces."""
    from iql_sweep.data.minari_io import load_transitions
    from iql_sweep.iql.config import Member, make_config
    from iql_sweep.iql.learner import IQLLearner
    from iql_sweep.iql.memory import CUBLAS_WORKSPACES, CUDA_CONTEXT, learner_memory

    data = load_transitions(umaze_id)
    config = make_config("maze", hidden_dims=(64, 64), batch_size=32)
    packs = [
        [Member(expectile=0.7, beta=3.0, seed=0)],
        [Member(expectile=t, beta=b, seed=s) for s in (0, 1) for t in (0.5, 0.9) for b in (1, 3)],
    ]
    for members in packs:
        online = 7 if len(members) == 1 else 0  # fine-tuning trains one configuration
        learner = IQLLearner(
            data.obs_dim, data.act_dim, config, members, data.to_tensors(), online_capacity=online
        )
        learner.advance(1)
        held = 0
        for net in (learner.value, learner.q, learner.actor):
            for p in net.parameters():
                held += 2 * p.numel()  # the weight and its gradient
        held += 2 * learner.log_std.numel()
        for optimiser in (learner.value_opt, learner.q_opt, learner.actor_opt):
            for state in optimiser.state.values():
                held += state["exp_avg"].numel() + state["exp_avg_sq"].numel()
        held += sum(p.numel() for p in learner.q_target.parameters())
        estimate = learner_memory(
            config, len(members), learner.num_critics, data.size, data.obs_dim, data.act_dim, online
        )
        assert estimate.networks == 4 * held
        storage = learner.buffer.storage
        assert storage.shape == (data.size + online, 2 * data.obs_dim + data.act_dim + 3)
        build_peak = 2 * data.size * data.obs_dim * 4  # two normalised observation columns
        assert estimate.data == 4 * storage.numel() + build_peak
        assert estimate.total - estimate.allocated == CUDA_CONTEXT + CUBLAS_WORKSPACES
        assert estimate.activations > 0


def test_a_trials_gpu_memory_grows_with_its_pack(umaze_id, tmp_path):
    from iql_sweep.feasibility import trial_memory
    from iql_sweep.iql.memory import CUBLAS_WORKSPACES, CUDA_CONTEXT

    def spec(pack: int):
        return validate_spec(
            {
                "name": "packed",
                "datasets": [umaze_id],
                "iql": {"hidden_dims": [256, 256], "batch_size": 256},
                "search": {"grid": {"expectile": [0.5, 0.7, 0.9], "beta": [1.0, 3.0, 10.0]}},
                "training": {"steps": 20, "eval_every": 10},
                "resources": {"pack": pack},
                "output": str(tmp_path),
            }
        )

    one, nine = (trial_memory(spec(k))[1] for k in (1, 9))
    data = 30_000 * (2 * 6 + 2 + 3) * 4  # the umaze transitions as float32 tensors, held once
    data += 2 * 30_000 * 6 * 4  # and two observation columns while the buffer is filled
    fixed = CUDA_CONTEXT + CUBLAS_WORKSPACES
    assert one > data + fixed and nine > data + fixed
    # the pack's own part: nine actors on three critics (one per tau) costs more than three
    # configurations' worth and less than nine
    alone, packed = one - data - fixed, nine - data - fixed
    assert 3 * alone < packed < 9 * alone
