"""Population training: every member ends where a solo run with its seed and batches ends."""

from __future__ import annotations

import pytest
import torch

from iql_sweep.data.transitions import BatchSampler
from iql_sweep.iql.agent import IQLAgent
from iql_sweep.iql.config import make_config
from iql_sweep.iql.population import IQLPopulation, Member
from tests.test_agent import ACT, OBS, random_tensors

MEMBERS = [
    Member(0.7, 3.0, 0),
    Member(0.9, 10.0, 1),
    Member(0.7, 0.5, 0),  # shares the critic of member 0 (same tau and seed)
    Member(0.5, 1.0, 2),
]


def solo_states(config, data, steps):
    states = []
    for m in MEMBERS:
        agent = IQLAgent(
            OBS,
            ACT,
            config.model_copy(update={"expectile": m.expectile, "beta": m.beta}),
            seed=m.seed,
        )
        sampler = BatchSampler(data, config.batch_size, seed=m.seed)
        for _ in range(steps):
            agent.update(sampler.sample())
        states.append(agent)
    return states


@pytest.mark.parametrize("share", [True, False])
def test_members_match_solo_runs(share):
    config = make_config("default", hidden_dims=(32, 32), batch_size=16, max_steps=40)
    data = random_tensors(400)
    steps = 15
    population = IQLPopulation(OBS, ACT, config, MEMBERS, data, share_critics=share)
    assert population.num_critics == (3 if share else 4)
    for _ in range(steps):
        metrics = population.update(population.sample())
    assert all(v.shape == (len(MEMBERS),) for v in metrics.values())
    for k, solo in enumerate(solo_states(config, data, steps)):
        mine = population.member_state(k)
        for net in ("value", "q", "q_target", "actor"):
            reference = getattr(solo, net).state_dict()
            assert mine[net].keys() == reference.keys()
            for key, value in reference.items():
                torch.testing.assert_close(
                    mine[net][key], value, rtol=1e-4, atol=2e-6, msg=f"member {k} {net}.{key}"
                )
    # Members 0 and 2 share one critic but keep their own actors.
    if share:
        a, b = population.member_state(0), population.member_state(2)
        assert torch.equal(a["value"]["net.0.weight"], b["value"]["net.0.weight"])
        assert not torch.equal(a["actor"]["net.0.weight"], b["actor"]["net.0.weight"])


def test_population_metrics_match_solo_metrics():
    config = make_config("default", hidden_dims=(32, 32), batch_size=16, max_steps=40)
    data = random_tensors(400)
    population = IQLPopulation(OBS, ACT, config, MEMBERS, data)
    metrics = population.update(population.sample())
    for k, m in enumerate(MEMBERS):
        agent = IQLAgent(
            OBS,
            ACT,
            config.model_copy(update={"expectile": m.expectile, "beta": m.beta}),
            seed=m.seed,
        )
        solo = agent.update(BatchSampler(data, config.batch_size, seed=m.seed).sample())
        for key, value in solo.items():
            torch.testing.assert_close(
                metrics[key][k], value.float(), rtol=1e-4, atol=1e-6, msg=key
            )


def test_population_acts_per_member():
    config = make_config("default", hidden_dims=(32, 32), batch_size=16)
    population = IQLPopulation(OBS, ACT, config, MEMBERS, random_tensors(100))
    actions = population.act(torch.randn(7, OBS))
    assert actions.shape == (len(MEMBERS), 7, ACT) and actions.abs().max() <= 1.0
    with pytest.raises(ValueError, match="dropout"):
        IQLPopulation(OBS, ACT, make_config("adroit"), MEMBERS, random_tensors(100))


def test_population_resumes_exactly(tmp_path):
    from iql_sweep.checkpoint import atomic_torch_save, load_checkpoint

    config = make_config("default", hidden_dims=(32, 32), batch_size=16, max_steps=40)
    data = random_tensors(400)
    straight = IQLPopulation(OBS, ACT, config, MEMBERS, data)
    for _ in range(20):
        straight.update(straight.sample())
    first = IQLPopulation(OBS, ACT, config, MEMBERS, data)
    for _ in range(10):
        first.update(first.sample())
    atomic_torch_save(first.state_dict(), tmp_path / "pack.pt")
    resumed = IQLPopulation(OBS, ACT, config, MEMBERS, data)
    resumed.load_state_dict(load_checkpoint(tmp_path / "pack.pt"))
    for _ in range(10):
        resumed.update(resumed.sample())
    a, b = straight.state_dict(), resumed.state_dict()
    for name in ("value", "q", "q_target", "actor"):
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), f"{name}.{key}"
    assert torch.equal(a["log_std"], b["log_std"]) and a["step"] == b["step"] == 20
    with pytest.raises(ValueError, match="other members"):
        IQLPopulation(OBS, ACT, config, MEMBERS[:2], data).load_state_dict(a)


def test_a_diverged_member_leaves_the_others_untouched():
    """NaN in one member's actor and critic does not reach any other member's parameters."""
    config = make_config("default", hidden_dims=(32, 32), batch_size=16, max_steps=40)
    data = random_tensors(400)
    population = IQLPopulation(OBS, ACT, config, MEMBERS, data)
    bad = 1  # member 1 has its own critic group (tau 0.9, seed 1)
    group = int(population.group_of[bad])
    with torch.no_grad():
        population.actor.weights[0][bad].fill_(float("nan"))
        population.value.weights[0][group].fill_(float("nan"))
    for _ in range(5):
        metrics = population.update(population.sample())
    assert torch.isnan(metrics["actor_loss"][bad]) and torch.isnan(metrics["value_loss"][bad])
    finite = [k for k in range(len(MEMBERS)) if k != bad]
    assert torch.isfinite(metrics["actor_loss"][finite]).all()
    for k, solo in zip(finite, [s for i, s in enumerate(solo_states(config, data, 5)) if i != bad]):
        mine = population.member_state(k)
        for key, value in solo.actor.state_dict().items():
            torch.testing.assert_close(mine["actor"][key], value, rtol=1e-4, atol=2e-6)
