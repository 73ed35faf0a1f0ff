"""Validation agrees with training: for every shipped preset, with compile on and off and packs of
one and two, ``validate`` accepts exactly the configurations whose trials then start training
(a few updates each, on the learner the trial would build)."""

from __future__ import annotations

import pytest
import torch

from iql_sweep.data.minari_io import load_transitions
from iql_sweep.errors import ConfigError
from iql_sweep.iql.config import PRESETS
from iql_sweep.iql.learner import IQLLearner, choose_speed
from iql_sweep.spec import validate_spec
from iql_sweep.training import prepare_data
from tests.test_sweep import tiny_spec

#: ogbench-long is ogbench with another discount: the same networks, packs and compiles
CASES = [
    (preset, compile, pack, 0)
    for preset in sorted(set(PRESETS) - {"ogbench-long"})
    for compile in (False, True)
    for pack in (1, 2)
] + [("maze", False, 1, 4), ("maze", False, 2, 4)]  # fine-tuning: one configuration per trial


def starts_training(trial, data) -> bool:
    """Build the learner the trial would build and run a few updates; False when it refuses."""
    config = trial.base_config()
    prepared = prepare_data(data, config)
    try:
        learner = IQLLearner(
            prepared.obs_dim,
            prepared.act_dim,
            config,
            trial.members(config),
            prepared.to_tensors("cpu"),
            share_critics=trial.run.share_critics,
            speed=choose_speed(
                trial.run.compile, "cpu", trial.total_updates, len(trial.members(config))
            )[0],
            online_capacity=trial.run.online_steps,
        )
    except ConfigError:
        return False
    learner.advance(3)
    means, _ = learner.pop_metrics()
    return bool(torch.isfinite(torch.as_tensor(means)).all())


@pytest.mark.parametrize(("preset", "compile", "pack", "online"), CASES)
def test_validate_accepts_exactly_what_trains(umaze_id, preset, compile, pack, online):
    spec = tiny_spec(
        "cap",
        [umaze_id],
        {"grid": {"expectile": [0.7, 0.9]}},
        compile=compile,
        online_steps=online,
    )
    spec["preset"] = preset
    spec["resources"]["pack"] = pack
    try:
        parsed = validate_spec(spec)
        accepted = True
    except ConfigError as err:
        accepted = False
        assert "resources.pack: online fine-tuning" in str(err)
        parsed = validate_spec({**spec, "resources": {**spec["resources"], "pack": 1}})
        parsed = parsed.model_copy(
            update={"resources": parsed.resources.model_copy(update={"pack": pack})}
        )
    data = load_transitions(umaze_id)
    trials = parsed.trial_configs()
    assert len(trials) == (1 if pack == 2 else 2)
    started = all(starts_training(trial, data) for trial in trials)
    # The rule written out: everything packs and compiles, but fine-tuning is one per trial.
    expected = online == 0 or pack == 1
    assert accepted == expected and started == expected


def test_the_auto_preset_of_a_d4rl_adroit_id_packs_and_compiles():
    """The drift that started issue 10: D4RL/door/human-v2 picks the adroit preset (actor
    dropout 0.1) from its id; packed or compiled, its trials are now trainable configurations."""
    from iql_sweep.trial_config import Pack, TrialConfig, TrialRun

    run = TrialRun(steps=10, eval_every=5, compile=True)
    trial = TrialConfig(
        dataset="D4RL/door/human-v2",
        run=run,
        pack=Pack(members=[{"expectile": 0.7, "seed": 0}, {"expectile": 0.9, "seed": 0}]),
    )
    assert trial.preset_name == "adroit"
    assert trial.base_config().actor_dropout == 0.1
    assert trial.problems() == []
    assert [m.beta for m in trial.members()] == [0.5, 0.5]  # the preset's beta
