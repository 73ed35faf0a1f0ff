"""The learner: every member of a population, eager or compiled, with shared critics or not, with
actor dropout or not, ends where a solo reference run with its seed and minibatches ends; packs
resume exactly; a NaN member leaves the others bit-identical; checkpoints have one format."""

from __future__ import annotations

import pytest
import torch

from iql_sweep.checkpoint import (
    CheckpointFormatError,
    atomic_torch_save,
    load_checkpoint,
    value_function,
)
from iql_sweep.errors import ConfigError
from iql_sweep.iql.config import Member
from iql_sweep.iql.learner import METRIC_KEYS, IQLLearner
from iql_sweep.iql.reference import IQLAgent
from iql_sweep.iql.replay import ReplayBuffer
from iql_sweep.iql.stages import Batch, Net, actor_stage
from tests.helpers import (
    ACT,
    OBS,
    assert_member_equals,
    dropout_masks,
    member_config,
    random_tensors,
    small_config,
    solo_reference,
)

MEMBERS = [
    Member(expectile=0.7, beta=3.0, seed=0),
    Member(expectile=0.9, beta=10.0, seed=1),
    Member(expectile=0.7, beta=0.5, seed=0),  # shares member 0's critic (same tau and seed)
    Member(expectile=0.5, beta=1.0, seed=2),
]
CONFIG = small_config(max_steps=40)


@pytest.mark.parametrize(
    ("share", "speed", "layer_norm"),
    [
        (True, "eager", False),
        (False, "eager", False),
        (True, "compiled", False),
        (True, "eager", True),  # stacked LayerNorms against nn.LayerNorm's
        (True, "compiled", True),
    ],
)
def test_members_match_solo_reference_runs(share, speed, layer_norm):
    data = random_tensors(400)
    config = CONFIG.model_copy(update={"layer_norm": layer_norm})
    learner = IQLLearner(OBS, ACT, config, MEMBERS, data, share_critics=share, speed=speed)
    assert learner.num_critics == (3 if share else 4)
    learner.advance(15)
    means, count = learner.pop_metrics()
    assert means.shape == (len(METRIC_KEYS), len(MEMBERS)) and count == 15
    for k, member in enumerate(MEMBERS):
        assert_member_equals(learner, k, solo_reference(config, member, data, 15))
    if layer_norm:  # the LayerNorms learned (they start at 1 and 0)
        scale, shift = learner.member_layers(0)["value_norms"][0]
        assert not torch.equal(scale, torch.ones_like(scale))
        assert not torch.equal(shift, torch.zeros_like(shift))
    if share:  # members 0 and 2 share one critic but keep their own actors
        a, b = learner.member_layers(0), learner.member_layers(2)
        assert torch.equal(a["value"][0][0], b["value"][0][0])
        assert not torch.equal(a["actor"][0][0], b["actor"][0][0])


def test_member_metrics_match_solo_metrics():
    data = random_tensors(400)
    learner = IQLLearner(OBS, ACT, CONFIG, MEMBERS, data)
    metrics = learner.update(learner.buffer.sample())
    for k, member in enumerate(MEMBERS):
        agent = IQLAgent(OBS, ACT, member_config(CONFIG, member), seed=member.seed)
        batch = ReplayBuffer(data, CONFIG.batch_size, [member.seed]).sample()
        solo = agent.update({f: v[0] for f, v in batch.items()})
        for key, value in solo.items():
            torch.testing.assert_close(metrics[key][k], value.float(), rtol=1e-4, atol=1e-6)


def test_acting_values_and_sampling_per_member():
    data = random_tensors(100)
    learner = IQLLearner(OBS, ACT, CONFIG, MEMBERS, data)
    learner.advance(3)
    obs = torch.randn(7, OBS)
    actions = learner.act(obs)
    assert actions.shape == (len(MEMBERS), 7, ACT) and actions.abs().max() <= 1.0
    torch.testing.assert_close(learner.act(obs[None].expand(2, 7, OBS), [3, 1]), actions[[3, 1]])
    for k, member in enumerate(MEMBERS):
        agent = solo_reference(CONFIG, member, data, 3)
        torch.testing.assert_close(actions[k], agent.act(obs), rtol=1e-4, atol=2e-6)
        torch.testing.assert_close(
            learner.values(obs)[k], agent.value(obs).detach(), rtol=1e-4, atol=2e-6
        )
        g_a, g_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        torch.testing.assert_close(
            learner.sample_actions(obs, k, g_a), agent.sample_actions(obs, g_b), atol=2e-6, rtol=0
        )


def test_pack_resumes_exactly_through_a_checkpoint_file(tmp_path):
    config = small_config("adroit", max_steps=40)  # actor dropout 0.1: its generator resumes too
    data = random_tensors(400)
    straight = IQLLearner(OBS, ACT, config, MEMBERS, data)
    straight.advance(20)
    first = IQLLearner(OBS, ACT, config, MEMBERS, data)
    first.advance(10)
    atomic_torch_save(first.state_dict(), tmp_path / "pack.pt")
    resumed = IQLLearner(OBS, ACT, config, MEMBERS, random_tensors(400))
    resumed.load_state_dict(torch.load(tmp_path / "pack.pt", weights_only=False))
    resumed.advance(10)
    a, b = straight.state_dict(), resumed.state_dict()
    for name in ("value", "q", "q_target", "actor"):
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key}"
    for name in ("value_opt", "q_opt", "actor_opt"):
        for pid, st in a[name]["state"].items():
            for key, value in st.items():
                assert torch.equal(value, b[name]["state"][pid][key]), f"{name}.{pid}.{key}"
    assert torch.equal(a["log_std"], b["log_std"]) and a["step"] == b["step"] == 20
    other = IQLLearner(OBS, ACT, config, MEMBERS[:2], data)
    with pytest.raises(ConfigError, match="other configurations"):
        other.load_state_dict(a)


def test_a_diverged_member_leaves_the_others_bit_identical():
    """NaN in one member's actor and critic reaches none of the other members' parameters."""
    data = random_tensors(400)
    clean = IQLLearner(OBS, ACT, CONFIG, MEMBERS, data)
    poisoned = IQLLearner(OBS, ACT, CONFIG, MEMBERS, data)
    bad = 1  # member 1 has its own critic group (tau 0.9, seed 1)
    with torch.no_grad():
        poisoned.actor.weights[0][bad].fill_(float("nan"))
        poisoned.value.weights[0][poisoned.groups[bad]].fill_(float("nan"))
    clean.advance(5)
    poisoned.advance(5)
    means, _ = poisoned.pop_metrics()
    assert torch.isnan(torch.as_tensor(means[:, bad])).any()
    for k in (0, 2, 3):
        a, b = clean.member_layers(k), poisoned.member_layers(k)
        for net in ("value", "q1", "q2", "q1_target", "actor"):
            for (w, bias), (w2, bias2) in zip(a[net], b[net]):
                assert torch.equal(w, w2) and torch.equal(bias, bias2), (k, net)


def test_actor_step_reaches_only_the_actor():
    """The actor stage's gradient flows into the actor alone: V and Q get none."""
    learner = IQLLearner(OBS, ACT, CONFIG, MEMBERS, random_tensors(100))
    sampled = learner.buffer.sample()
    batch = Batch(**{name: sampled[name] for name in Batch._fields})
    target_q = torch.randn(learner.num_critics, CONFIG.batch_size)
    total, *_ = actor_stage(
        Net(*learner.actor.params()),
        learner.log_std,
        Net(*learner.value.params()),
        batch,
        target_q,
        group_of=learner.group_of,
        beta=learner.beta,
        dropout_masks=None,
        max_weight=100.0,
        log_std_min=-5.0,
        log_std_max=2.0,
    )
    total.backward()
    assert all(p.grad is None for p in learner.value.parameters())
    assert all(p.grad is None for p in learner.q.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.actor.parameters())


@pytest.mark.parametrize("speed", ["eager", "compiled"])
def test_dropout_members_equal_the_reference_with_the_same_masks(speed):
    """Actor dropout (kitchen/adroit presets) lives in the stacked actor with independent masks
    per member: fed the masks the learner drew, the reference agent ends where each member ends.
    Compiled: a one-configuration adroit run; eager: a pack with shared critics."""
    config = small_config("adroit", max_steps=40)
    members = MEMBERS[:1] if speed == "compiled" else MEMBERS
    data = random_tensors(400)
    learner = IQLLearner(OBS, ACT, config, members, data, speed=speed)
    solo = [IQLAgent(OBS, ACT, member_config(config, m), seed=m.seed) for m in members]
    buffers = [ReplayBuffer(data, config.batch_size, [m.seed]) for m in members]
    for _ in range(12):
        state = learner.dropout_generator.get_state()
        learner.advance(1)
        masks = dropout_masks(state, learner, config.batch_size)
        for k, (agent, buffer) in enumerate(zip(solo, buffers)):
            batch = {f: v[0] for f, v in buffer.sample().items()}
            agent.update(batch, actor_masks=[m[k] for m in masks])
    for k, agent in enumerate(solo):
        assert_member_equals(learner, k, agent)
    # the masks are independent across members and drop about p of the units
    masks = dropout_masks(learner.dropout_generator.get_state(), learner, 4096)
    dropped = (masks[0] == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.01
    if len(members) > 1:
        assert not torch.equal(masks[0][0], masks[0][1])


def test_a_checkpoint_of_the_learner_gives_each_members_value(tmp_path):
    from iql_sweep.checkpoint import make_checkpoint
    from iql_sweep.trial_config import TrialConfig, TrialRun

    data = random_tensors(200)
    learner = IQLLearner(OBS, ACT, CONFIG, MEMBERS, data)
    learner.advance(4)
    trial = TrialConfig(dataset="x/y-v0", run=TrialRun(steps=4, eval_every=4))
    atomic_torch_save(make_checkpoint(trial, learner, {}), tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")
    obs = torch.randn(6, OBS)
    for k in range(len(MEMBERS)):
        torch.testing.assert_close(
            torch.as_tensor(value_function(state, k)(obs.numpy())), learner.values(obs)[k]
        )


def test_checkpoints_of_earlier_versions_are_refused_with_a_message(tmp_path):
    atomic_torch_save({"agent": {"step": 3}, "sampler": {}, "rng": {}}, tmp_path / "old.pt")
    with pytest.raises(CheckpointFormatError, match="earlier iql-sweep"):
        load_checkpoint(tmp_path / "old.pt")
    atomic_torch_save({"population": {}, "failed": {}}, tmp_path / "pack.pt")
    with pytest.raises(CheckpointFormatError, match="earlier iql-sweep"):
        load_checkpoint(tmp_path / "pack.pt")


def test_speed_settings_are_checked():
    with pytest.raises(ConfigError, match="speed: unknown"):
        IQLLearner(OBS, ACT, CONFIG, MEMBERS, speed="turbo")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            IQLLearner(OBS, ACT, CONFIG, MEMBERS, speed="graph")
    with pytest.raises(ConfigError, match="online fine-tuning"):
        IQLLearner(OBS, ACT, CONFIG, MEMBERS, random_tensors(50), online_capacity=10)


def test_a_checkpoint_crosses_device_types_for_acting_but_not_for_resume():
    """A GPU checkpoint holds CUDA generator states (16 bytes; a CPU state is 5,056): acting
    and values from it work anywhere, an exact resume on another device type is refused in one
    line instead of torch's raw 'RNG state is wrong size'."""
    config = small_config("kitchen", max_steps=40)  # actor dropout: one more generator
    data = random_tensors(100)
    learner = IQLLearner(OBS, ACT, config, MEMBERS[:2], data)
    learner.advance(3)
    state = learner.state_dict()
    assert state["device"] == "cpu"
    cuda_state = torch.zeros(16, dtype=torch.uint8)
    with pytest.raises(RuntimeError):  # what a restore would otherwise meet
        torch.Generator().set_state(cuda_state)
    written_on_gpu = {
        **state,
        "device": "cuda",
        "dropout_generator": cuda_state,
        "buffer": {**state["buffer"], "generators": [cuda_state] * learner.num_critics},
    }
    fresh = IQLLearner(OBS, ACT, config, MEMBERS[:2], data)
    with pytest.raises(ConfigError, match="written on cuda, this run is on cpu.*--device cuda"):
        fresh.load_state_dict(written_on_gpu)
    acting = IQLLearner.from_state(written_on_gpu, config)
    obs = torch.randn(5, OBS)
    torch.testing.assert_close(acting.act(obs), learner.act(obs), rtol=0, atol=0)
    torch.testing.assert_close(acting.values(obs), learner.values(obs), rtol=0, atol=0)
