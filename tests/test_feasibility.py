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


def _spec(umaze_id: str, tmp_path, gpus: float):
    return validate_spec(
        {
            "name": "feasible",
            "datasets": [umaze_id],
            "search": {"grid": {"expectile": [0.7]}},
            "training": {"steps": 20, "eval_every": 10},
            "resources": {"cpus_per_trial": 1, "gpus_per_trial": gpus},
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


GIB = 2**30


@pytest.mark.parametrize(
    ("nodes", "cpus_per_trial", "trial_gib", "expected"),
    [
        # CPU-bound: 8 CPUs per GPU, 1 CPU a trial -> 8 trials, each 1/8 of the GPU.
        ([{"CPU": 8, "GPU": 1, "accelerator_type:A10G": 1}], 1.0, 1.0, (0.125, 8)),
        # memory-bound: a T4 holds int(0.9 * 16 / 3.5) = 4 trials of 3.5 GiB.
        ([{"CPU": 32, "GPU": 1, "accelerator_type:T4": 1}], 1.0, 3.5, (0.25, 4)),
        # an unnamed card counts as 16 GiB; 3 trials -> a share Ray can count (1e-4 units).
        ([{"CPU": 16, "GPU": 2}], 1.0, 4.5, (0.3333, 3)),
        # at most 16 per GPU, and the share must fit the smaller of two node kinds.
        ([{"CPU": 64, "GPU": 1, "accelerator_type:H100": 1}], 0.5, 0.6, (0.0625, 16)),
        ([{"CPU": 64, "GPU": 1, "accelerator_type:H100": 1}, {"CPU": 4, "GPU": 2}], 1, 1, (0.5, 2)),
        # no GPU anywhere: the CPU.
        ([{"CPU": 2}], 1.0, 1.0, (0.0, 0)),
        # a trial larger than the card still gets a whole GPU (Ray cannot give more per trial).
        ([{"CPU": 8, "GPU": 1, "accelerator_type:T4": 1}], 1.0, 40.0, (1.0, 1)),
    ],
)
def test_auto_gpu_share_is_sized_by_cpus_and_card_memory(
    nodes, cpus_per_trial, trial_gib, expected
):
    from iql_sweep.feasibility import auto_gpu_share

    need = int(trial_gib * GIB)
    assert auto_gpu_share(need, cpus_per_trial, nodes, []) == expected
    # A GPU node type the autoscaler can add counts as a GPU node.
    if expected[1]:
        assert auto_gpu_share(need, cpus_per_trial, [{"CPU": 2}], nodes) == expected


def test_a_trials_gpu_memory_grows_with_its_pack(umaze_id, tmp_path):
    from iql_sweep.feasibility import CUDA_CONTEXT, trial_memory

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

    one, nine = (trial_memory(spec(k))[1] - CUDA_CONTEXT for k in (1, 9))
    data = 30_000 * (2 * 6 + 2 + 3) * 4  # the umaze transitions as float32 tensors
    assert (nine - data) == pytest.approx(9 * (one - data), rel=1e-9)
