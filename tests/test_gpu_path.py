"""The GPU path, proven on the CPU as far as a CPU can prove it.

- The captured update (draw, masks, three stages, three optimisers, targets, metric sums) never
  makes the host wait on the device: every preset, one configuration and a pack with shared
  critics and dropout, run under a dispatch mode that fails on any op that would synchronise.
- It makes no tensor off the learner's device: the same update on fake CUDA tensors
  (``FakeTensorMode`` builds ``cuda:0`` tensors without a GPU and raises when a CPU tensor meets
  one). ``torch.Generator("cuda")`` cannot be faked: generators come from
  :func:`~iql_sweep.iql.replay.make_generator`, the one seam, given CPU generators here (so a
  generator on the wrong device is what this proof cannot see; ``gpu_check.py`` can). And
  ``Tensor.copy_`` and item assignment meet torch's CUDA device guard in their Python bindings,
  before any mode: :class:`FakeCuda` routes them to the same aten ops. Autograd cannot run on
  fake CUDA tensors in a CPU build (it asks the absent CUDA runtime for a stream), so there the
  update runs its forward parts (draw, masks, schedule, the three stages, Polyak, counters,
  metric sums) with backward and the optimiser steps left out; the real-tensor run covers those,
  and the resume proof checks the optimisers' state lands on the device.
- The compiled stages have no graph break (they are compiled ``fullgraph=True``).
- A checkpoint written eager, loaded into a graph learner, leaves its optimisers armed for capture.
- A failure inside the capture region leaves the learner bit-identical to one that never tried,
  and the run goes on compiled, saying why.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import iql_sweep.iql.learner as learner_module
import iql_sweep.iql.replay as replay_module
from iql_sweep.iql.config import PRESETS, Member
from iql_sweep.iql.learner import (
    CPU_COMPILE_MIN_MEMBERS,
    CPU_COMPILE_PAYBACK_UPDATES,
    IQLLearner,
    choose_speed,
)
from iql_sweep.iql.observations import ObservationStats
from iql_sweep.iql.stages import actor_stage, q_stage, value_stage
from tests.helpers import ACT, OBS, random_tensors, small_config

aten = torch.ops.aten
#: Ops that make the host wait for the device (a value read, a data-dependent shape).
SYNCHRONISING = {
    aten._local_scalar_dense,
    aten.item,
    aten.is_nonzero,
    aten.equal,
    aten.nonzero,
    aten.masked_select,
    aten.unique_consecutive,
    aten._unique2,
    aten.repeat_interleave.Tensor,
}
PACK = [
    Member(expectile=t, beta=b, seed=s) for s in (0, 1) for t in (0.7, 0.9) for b in (1.0, 10.0)
]


class HostSync(AssertionError):
    """An op that would make the host wait on the GPU ran inside the update."""


class NoHostSync(TorchDispatchMode):
    """Fails on every op that would synchronise with a GPU: value reads, data-dependent
    shapes, and copies from a CUDA tensor into host memory."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        packet = func.overloadpacket
        if packet in SYNCHRONISING or func in SYNCHRONISING:
            raise HostSync(f"{func} synchronises with the device")
        if packet in (aten._to_copy, aten.copy_, aten.to):
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            source_cuda = any(t.device.type == "cuda" for t in tensors[-1:])
            target = kwargs.get("device") or (tensors[0].device if packet is aten.copy_ else None)
            if source_cuda and target is not None and torch.device(target).type == "cpu":
                raise HostSync(f"{func}: a copy from the GPU to the host")
        return func(*args, **kwargs)


class FakeCuda(FakeTensorMode):
    """``FakeTensorMode`` (CUDA tensors without a GPU) with ``Tensor.copy_`` and item assignment
    routed to their aten ops (their bindings would ask the absent CUDA runtime for a guard)."""

    def __enter__(self):
        self._routes = _AtenCopies()
        self._routes.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._routes.__exit__(*exc)


class _AtenCopies(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunction():  # the fake mode's own Python stays unrouted
            return self._route(func, args, kwargs or {})

    @staticmethod
    def _route(func, args, kwargs):
        if func is torch.Tensor.copy_:
            return aten.copy_.default(args[0], args[1])
        if func is torch.Tensor.__getitem__:
            return _index(*args)
        if func is torch.Tensor.__setitem__:
            target, key, value = args
            if not isinstance(value, torch.Tensor):
                value = torch.full((), value, device=target.device, dtype=target.dtype)
            aten.copy_.default(_index(target, key), value)
            return None
        return func(*args, **kwargs)


def _index(tensor: torch.Tensor, key) -> torch.Tensor:
    """``tensor[key]`` through aten ops: ints, slices, None, Ellipsis and one index tensor."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        at = key.index(Ellipsis)
        used = sum(1 for k in key if k is not None and k is not Ellipsis)
        key = key[:at] + (slice(None),) * (tensor.dim() - used) + key[at + 1 :]
    out, dim, index = tensor, 0, None
    for k in key:
        if k is None:
            out = aten.unsqueeze.default(out, dim)
            dim += 1
        elif isinstance(k, slice):
            start = 0 if k.start is None else k.start
            stop = out.shape[dim] if k.stop is None else k.stop
            out = aten.slice.Tensor(out, dim, start, stop, k.step or 1)
            dim += 1
        elif isinstance(k, torch.Tensor):
            assert index is None, "one index tensor"
            index = (dim, k)
            dim += 1
        else:
            out = aten.select.int(out, dim, int(k))
    if index is not None:
        out = aten.index.Tensor(out, [None] * index[0] + [index[1]])
    return out


def _fake_update(learner: IQLLearner, monkeypatch) -> None:
    """One captured update on fake CUDA tensors, autograd and the optimiser steps aside."""
    with monkeypatch.context() as patch, torch.no_grad():
        patch.setattr(torch.Tensor, "backward", lambda self, *a, **k: None)
        for optimiser in learner._optimisers():
            patch.setattr(optimiser, "step", lambda *a, **k: None)
        learner._advance_one()


def _cases():
    for preset in sorted(PRESETS):
        yield preset, 1
        yield preset, len(PACK)


@pytest.fixture
def cpu_generators(monkeypatch):
    """``torch.Generator('cuda')`` cannot be faked: the one generator seam makes CPU ones."""

    def make(device, seed):
        return torch.Generator().manual_seed(int(seed))

    monkeypatch.setattr(replay_module, "make_generator", make)
    monkeypatch.setattr(learner_module, "make_generator", make)


def _fake_cuda_learner(config, members, data, **kw) -> IQLLearner:
    """A graph learner on fake ``cuda:0`` tensors (call inside a FakeTensorMode); its stages
    run as written (torch.compile cannot run inside a fake mode; the stage code is the same)."""
    learner = IQLLearner(OBS, ACT, config, members, data, device="cuda:0", speed="graph", **kw)
    learner._value_stage, learner._actor_stage, learner._q_stage = (
        value_stage,
        actor_stage,
        q_stage,
    )
    return learner


@pytest.mark.parametrize(("preset", "size"), list(_cases()))
def test_the_captured_update_never_waits_on_the_device(preset, size, cpu_generators, monkeypatch):
    """The body of the capture (``_advance_one``) with the graph's capturable optimisers on
    real CPU tensors, and on fake CUDA ones."""
    members = PACK[:size] if size > 1 else [Member(expectile=0.7, beta=3.0, seed=3)]
    config = small_config(preset, max_steps=10)
    if size > 1:
        config = config.model_copy(update={"actor_dropout": 0.1})
    data = random_tensors(200)
    learner = IQLLearner(OBS, ACT, config, members, data)
    for optimiser in learner._optimisers():  # as a graph learner arms them
        for group in optimiser.param_groups:
            group["capturable"] = True
    learner.advance(1)  # optimiser state exists, as after the warm-up
    with NoHostSync():
        learner._advance_one()
        learner._advance_one()
    with FakeCuda(allow_non_fake_inputs=True):
        fake = _fake_cuda_learner(config, members, data)
        with NoHostSync():
            _fake_update(fake, monkeypatch)
            _fake_update(fake, monkeypatch)
        assert fake.buffer.storage.device == torch.device("cuda:0")
        for tensor in fake._state_tensors():
            assert isinstance(tensor, FakeTensor) and tensor.device.type == "cuda", tensor.shape


def test_the_guards_catch_a_host_read_and_a_cpu_tensor(cpu_generators, monkeypatch):
    """The two proofs above fail when their property breaks: a value read in a stage, or a
    tensor made without ``device=`` in the update."""
    data = random_tensors(100)
    config = small_config("default", max_steps=10)
    learner = IQLLearner(OBS, ACT, config, PACK[:2], data)
    learner.advance(1)

    def reads_a_value(*args, **kwargs):
        out = value_stage(*args, **kwargs)
        float(out[0])  # a host read, as a logging line inside the update would do
        return out

    learner._value_stage = reads_a_value
    with pytest.raises(HostSync, match="_local_scalar_dense"), NoHostSync():
        learner._advance_one()

    with FakeCuda(allow_non_fake_inputs=True):
        fake = _fake_cuda_learner(config, PACK[:2], data)
        _fake_update(fake, monkeypatch)
        sample = fake.buffer.sample

        def shaped_rewards():
            batch = sample()
            rewards = batch["rewards"]
            batch["rewards"] = rewards + torch.zeros(rewards.shape)  # made without device=
            return batch

        monkeypatch.setattr(fake.buffer, "sample", shaped_rewards)
        with pytest.raises(Exception, match="(?i)device"):
            _fake_update(fake, monkeypatch)


def test_the_compiled_stages_have_no_graph_break():
    """The learner compiles each stage with fullgraph=True: a pack with shared critics,
    dropout and the cosine schedule trains compiled and equals eager."""
    data = random_tensors(200)
    # dropout 0.1, cosine actor schedule; widths no other test uses, so the stages compile here
    config = small_config("kitchen", max_steps=6, hidden_dims=(24, 40))
    torch._dynamo.utils.counters.clear()
    compiled = IQLLearner(OBS, ACT, config, PACK[:4], data, speed="compiled")
    eager = IQLLearner(OBS, ACT, config, PACK[:4], data)
    compiled.advance(4)
    eager.advance(4)
    assert not torch._dynamo.utils.counters["graph_break"]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 3
    for a, b in zip(compiled._state_tensors(), eager._state_tensors(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_a_fullgraph_compile_refuses_a_stage_with_a_host_read():
    """What fullgraph=True guards against: a stage that reads a value breaks the graph."""

    def stage(x):
        y = x * 2
        if float(y.sum()) > 0:  # a host read in the middle of a stage
            return y + 1
        return y

    with pytest.raises(Exception, match="(?i)graph break|data-dependent|Unsupported"):
        torch.compile(stage, fullgraph=True, dynamic=False, backend="eager")(torch.ones(3))


def test_a_checkpoint_written_eager_resumes_armed_for_capture(cpu_generators, monkeypatch):
    """An eager checkpoint (optimisers not capturable) loaded into a graph learner: its
    optimisers are armed for capture (capturable, fused) and the actor's lr is the learner's
    device tensor, so the resumed run captures instead of falling back."""
    data = random_tensors(100)
    config = small_config("kitchen", max_steps=10)
    eager = IQLLearner(OBS, ACT, config, PACK[:2], data)
    eager.advance(2)
    state = eager.state_dict()
    assert not any(g["capturable"] for g in state["value_opt"]["param_groups"])
    actor_opt = {
        **state["actor_opt"],
        "param_groups": [{**g, "lr": float(g["lr"])} for g in state["actor_opt"]["param_groups"]],
    }
    with FakeCuda(allow_non_fake_inputs=True):
        graph = _fake_cuda_learner(config, PACK[:2], data)
        cuda = torch.device("cuda:0")
        networks = {
            name: {key: t.to(cuda) for key, t in state[name].items()}
            for name in ("value", "q", "q_target", "actor")
        }
        # the optimiser states stay host tensors (torch deep-copies them, which fake tensors
        # cannot take), the actor's lr a number (the learner puts its device tensor back); the
        # buffer's rows are checked by value, which fake tensors do not hold
        graph.load_state_dict(
            {
                **state,
                **networks,
                "actor_opt": actor_opt,
                "log_std": state["log_std"].to(cuda),
                "device": "cuda",
                "buffer": None,
            }
        )
        for optimiser in (graph.value_opt, graph.q_opt, graph.actor_opt):
            for group in optimiser.param_groups:
                assert group["capturable"] is True and group["fused"] is True
            for values in optimiser.state.values():
                assert values["step"].device.type == "cuda"
        assert graph.actor_opt.param_groups[0]["lr"] is graph.actor_lr
        assert graph.step == 2
        _fake_update(graph, monkeypatch)  # the resumed update runs on the device
    # and the other way: a graph learner's capturable state resumes into an eager learner
    resumed = IQLLearner(OBS, ACT, config, PACK[:2], data)
    resumed.load_state_dict(state)
    assert not any(g["capturable"] for o in resumed._optimisers() for g in o.param_groups)


def test_a_failed_capture_leaves_the_learner_as_if_it_never_tried(recwarn):
    """An exception inside the capture region, after the region ran updates (as a capture
    that executes kernels would), is undone: weights, targets, optimiser state, counters,
    metric sums and the random streams equal a twin that never tried, bit for bit; the
    generators are fresh objects; the learner goes on compiled and says why."""
    data = random_tensors(200)
    config = small_config("kitchen", max_steps=20)
    tried = IQLLearner(OBS, ACT, config, PACK[:4], data)
    twin = IQLLearner(OBS, ACT, config, PACK[:4], data)
    for learner in (tried, twin):
        learner.advance(3)  # the warm-up
    old = tried._generators()

    def failing_capture():
        tried._advance_one()
        tried._advance_one()
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    tried._capture = failing_capture
    assert tried._capture_or_fall_back() is False
    assert tried.speed == "compiled"
    assert tried.capture_failure == (
        "RuntimeError: operation not permitted when stream is capturing"
    )
    assert any("capture failed" in str(w.message) for w in recwarn.list)
    for a, b in zip(tried._state_tensors(), twin._state_tensors(), strict=True):
        assert torch.equal(a, b)
    fresh = tried._generators()
    assert all(f is not o for f, o in zip(fresh, old))
    for f, t in zip(fresh, twin._generators(), strict=True):
        assert torch.equal(f.get_state(), t.get_state())
    tried.advance(5)  # the run goes on
    twin.advance(5)
    for a, b in zip(tried._state_tensors(), twin._state_tensors(), strict=True):
        assert torch.equal(a, b)
    assert tried.step == twin.step == 8


def test_a_fallback_is_recorded_in_the_rows_and_config_json(tmp_path):
    """The loop reports the setting actually used: after a failed capture, the rows say
    ``compiled`` and config.json names the cause."""
    from iql_sweep.loop import Evaluation, FileSink

    (tmp_path / "config.json").write_text(json.dumps({"speed": "graph", "speed_reason": "auto"}))
    sink = FileSink(tmp_path)
    row = {"step": 5, "normalized_score": 1.0, "speed": "compiled"}
    sink.evaluation(Evaluation(5, "offline", {0: row}, {}, None, "compiled", "RuntimeError: x"))
    info = json.loads((tmp_path / "config.json").read_text())
    assert info["speed"] == "compiled"
    assert "capture failed (RuntimeError: x)" in info["speed_reason"]
    assert json.loads((tmp_path / "metrics.jsonl").read_text())["speed"] == "compiled"


def test_auto_is_the_graph_on_a_gpu_and_pays_back_on_the_cpu():
    """The rule, and every shipped GPU spec takes the graph on a GPU without naming it."""
    from pathlib import Path

    import yaml

    from iql_sweep.spec import SweepSpec

    long, pack = CPU_COMPILE_PAYBACK_UPDATES, CPU_COMPILE_MIN_MEMBERS
    assert choose_speed("auto", "cuda:1", 10)[0] == "graph"
    assert choose_speed("auto", "cpu", long - 1, pack)[0] == "eager"
    speed, reason = choose_speed("auto", "cpu", long, pack)
    assert speed == "compiled" and "pays back" in reason
    speed, reason = choose_speed("auto", "cpu", 10**6, pack - 1)
    assert speed == "eager" and "does not pay back" in reason
    assert choose_speed(False, "cuda", 10**6)[0] == "eager"
    assert choose_speed(True, "cpu", 1)[0] == "compiled"
    sweeps = Path(__file__).resolve().parent.parent / "sweeps"
    shipped = ["tau_ablation.yaml", "paper_grid.yaml", *(p.name for p in sweeps.glob("d4rl_*"))]
    assert len(shipped) >= 3
    for name in shipped:
        text = (sweeps / name).read_text()
        assert "compile" not in text, name
        spec = SweepSpec(**yaml.safe_load(text))  # the fields (the datasets are remote)
        assert spec.training.compile == "auto"
        assert choose_speed(spec.training.compile, "cuda", spec.training.total_updates)[0] == (
            "graph"
        )


def test_normalising_learners_build_on_fake_cuda(cpu_generators, monkeypatch):
    """Observation statistics move to the learner's device too (no CPU tensor meets a CUDA
    one when acting or training)."""
    data = random_tensors(100)
    config = small_config("default", normalize_observations=True)
    stats = ObservationStats.of(data["observations"].numpy())
    with FakeCuda(allow_non_fake_inputs=True):
        fake = _fake_cuda_learner(config, PACK[:2], data, obs_stats=stats)
        with NoHostSync():
            _fake_update(fake, monkeypatch)
            actions = fake.act(torch.zeros(3, OBS, device="cuda:0"))
            values = fake.values(torch.zeros(3, OBS, device="cuda:0"))
        assert actions.device.type == values.device.type == "cuda"
