"""What one learner holds on a GPU, estimated before it is built: the figure ``gpus_per_trial:
auto`` sizes trials by, and the one ``benchmarks/gpu_check.py`` measures against.

Counted: the replay storage (offline rows and fine-tuning's extra rows, held once: the buffer
copies host data column by column, so the build peak adds two observation columns, not the data
again); every network's parameters with gradients and two Adam moments (targets without); one
update's activations, kept alive by the captured graph's private pool (twice, for the compiled
stages' saved tensors and the backward's); the cuBLAS workspaces of the three streams a learner
uses; and a realistic CUDA context with torch's kernels (about 1 GiB on today's cards).
"""

from __future__ import annotations

from dataclasses import dataclass

from iql_sweep.iql.config import IQLConfig

MIB = 2**20
#: The CUDA context, cuDNN/cuBLAS handles and torch's loaded kernels, per process.
CUDA_CONTEXT = 1024 * MIB
#: cuBLAS and cuBLASLt workspaces per stream (32 MiB each on Hopper), three streams.
CUBLAS_WORKSPACES = 3 * 2 * 32 * MIB
FLOAT = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes on the GPU, by what holds them."""

    data: int
    networks: int
    activations: int
    workspaces: int = CUBLAS_WORKSPACES
    context: int = CUDA_CONTEXT

    @property
    def allocated(self) -> int:
        """What torch's allocator holds at its peak (``max_memory_allocated``)."""
        return self.data + self.networks + self.activations

    @property
    def total(self) -> int:
        """Everything the process holds on the card (what ``nvidia-smi`` shows)."""
        return self.allocated + self.workspaces + self.context


def _parameters(widths: list[int]) -> int:
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def learner_memory(
    config: IQLConfig,
    members: int,
    critics: int,
    rows: int,
    obs_dim: int,
    act_dim: int,
    online_rows: int = 0,
) -> MemoryEstimate:
    """The GPU memory of a learner of ``members`` configurations on ``critics`` critic groups,
    training on ``rows`` offline rows (plus ``online_rows`` fine-tuning rows)."""
    hidden = list(config.hidden_dims)
    row = 2 * obs_dim + act_dim + 3
    data = (rows + online_rows) * row * FLOAT + 2 * rows * obs_dim * FLOAT
    value = _parameters([obs_dim, *hidden, 1])
    q = _parameters([obs_dim + act_dim, *hidden, 1])
    actor = _parameters([obs_dim, *hidden, act_dim]) + act_dim
    trained = critics * (value + 2 * q) + members * actor  # weights, gradients, two moments
    networks = FLOAT * (4 * trained + critics * 2 * q)  # + the target twins
    batch, width = config.batch_size, sum(hidden)
    # per update: V on s and s' and the target twins (C x 4 nets), the twins with gradients
    # (2C), the actor with dropout masks (K, x2), each layer's output and its gradient
    evaluations = critics * (4 + 2 * 2) + members * 2 * 2
    minibatch = critics * batch * row
    activations = 2 * FLOAT * (batch * width * evaluations + minibatch)
    return MemoryEstimate(data=data, networks=networks, activations=activations)
