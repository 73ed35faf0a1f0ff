"""Sweep-spec validation: every problem named by its YAML path, before Ray starts."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from iql_sweep.cli import app
from iql_sweep.errors import ConfigError
from iql_sweep.spec import load_spec, validate_spec

SWEEPS = Path(__file__).resolve().parent.parent / "sweeps"
BASE = yaml.safe_load((SWEEPS / "smoke.yaml").read_text())


def mutate(path: str, value):
    spec = copy.deepcopy(BASE)
    node = spec
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return spec


DELETE = object()

INVALID = [
    ("training.steps", "many", "training.steps: Input should be a valid integer"),
    ("search.grid.expectile", [0.5, 1.2], "search.grid.expectile[1]: Input should be less than 1"),
    ("search.grid.expectile", [0.0], "search.grid.expectile[0]: Input should be greater than 0"),
    ("search.grid.beta", [-1.0], "search.grid.beta[0]: Input should be greater than or equal to 0"),
    ("search.grid.beta", [], "search.grid.beta: empty list"),
    ("search.grid.temperature", [1.0], "search.grid.temperature: unknown hyper-parameter"),
    ("search.grid.seed", [0, -2], "search.grid.seed[1]: seeds are integers from 0 to"),
    ("flavour", "vanilla", "flavour: unknown key"),
    ("training.stepz", 10, "training.stepz: unknown key"),
    ("training.steps", DELETE, "training.steps: required key is missing"),
    ("datasets", ["D4RL/hopper/medium-v0"], "datasets[0]: 'D4RL/hopper/medium-v0' is not under"),
    ("datasets", ["hopper"], "datasets[0]: 'hopper' is not a Minari id"),
    ("datasets", [], "datasets: List should have at least 1 item"),
    ("resources.cpus_per_trial", -1, "resources.cpus_per_trial: Input should be greater than 0"),
    ("resources.gpus_per_trial", -0.25, "resources.gpus_per_trial: a number >= 0 (a share"),
    ("resources.max_concurrent_trials", 0, "resources.max_concurrent_trials: Input should be"),
    ("iql.temperature", 3, "iql.temperature: unknown IQL hyper-parameter"),
    ("iql.beta", -1, "iql.beta: Input should be greater than or equal to 0"),
    ("iql.batch_size", "big", "iql.batch_size: Input should be a valid integer"),
    ("preset", "hopper", "preset: unknown preset 'hopper'"),
    ("wandb.mode", "cloud", "wandb.mode: Input should be 'online', 'offline' or 'disabled'"),
    ("training.checkpoint_every", 1000, "training.checkpoint_every: must be a multiple"),
    ("training.eval_every", 20000, "training.eval_every: 20000 exceeds training.steps"),
    ("name", "my sweep!", "name: 'my sweep!' names the experiment's folder"),
    ("search.grid.seed", [0, 1, 0], "search.grid.seed: repeated values [0, 1, 0]"),
    (
        "datasets",
        ["iql-sweep/pointmaze/umaze-v0", "iql-sweep/pointmaze/umaze-v0"],
        "datasets[1]: 'iql-sweep/pointmaze/umaze-v0' repeats datasets[0]",
    ),
    (
        "search.optuna",
        {"num_samples": 2, "params": {"beta": {"type": "uniform", "low": 1, "high": 2}}},
        "search: give exactly one of 'grid' or 'optuna'",
    ),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_name_the_field(umaze_id, path, value, message):
    with pytest.raises(ConfigError) as err:
        validate_spec(mutate(path, value))
    assert message in str(err.value), str(err.value)


def test_optuna_problems_are_named(umaze_id):
    spec = mutate(
        "search",
        {
            "optuna": {
                "num_samples": 3,
                "params": {
                    "expectile": {"type": "uniform", "low": 0.5, "high": 1.5},
                    "beta": {"type": "loguniform", "low": 0.0, "high": 3.0},
                    "gamma": {"type": "choice", "values": [0.9]},
                },
            }
        },
    )
    with pytest.raises(ConfigError) as err:
        validate_spec(spec)
    text = str(err.value)
    assert "search.optuna.params.beta: a 'loguniform' distribution needs 'low' > 0" in text
    spec["search"]["optuna"]["params"].pop("beta")
    with pytest.raises(ConfigError) as err:
        validate_spec(spec)
    text = str(err.value)
    assert "search.optuna.params.expectile: Input should be less than 1 (got 1.5)" in text
    assert "search.optuna.params.gamma: not a searchable hyper-parameter" in text


def test_every_problem_is_reported_at_once(umaze_id):
    spec = mutate("iql.beta", -1)
    spec["search"]["grid"]["expectile"] = [2.0]
    spec["resources"]["cpus_per_trial"] = 0
    with pytest.raises(ConfigError) as err:
        validate_spec(spec)
    # pydantic errors come first; the field-level IQL checks follow once the shape is valid
    assert "resources.cpus_per_trial" in str(err.value)
    spec["resources"]["cpus_per_trial"] = 1
    with pytest.raises(ConfigError) as err:
        validate_spec(spec)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("iql.beta:") and lines[1].startswith("search.grid.expectile[0]:")


@pytest.mark.parametrize("name", sorted(p.name for p in SWEEPS.glob("*.yaml")))
def test_shipped_specs_are_valid(umaze_id, name):
    """Specs on the project's own datasets validate fully here; the D4RL ones (Minari's remote)
    and OGBench's (its mirror) validate fully against the stand-in hub in test_remote.py and
    test_ogbench.py, and here without datasets."""
    remote = "D4RL/" in (SWEEPS / name).read_text() or name == "ogbench_singletask.yaml"
    spec = load_spec(SWEEPS / name, check_datasets=not remote)
    if spec.search.grid is not None:  # counted from the trials the grid really makes
        trials = spec.trial_configs()
        assert spec.ray_trial_count() == len(trials)
        assert spec.configuration_count() == sum(len(t.members()) for t in trials)
    else:
        assert spec.ray_trial_count() == spec.configuration_count() >= 1
    assert spec.resources.gpus_per_trial == "auto"  # GPUs where there are GPUs


def test_paper_grid_and_tau_ablation_sizes(umaze_id):
    paper_grid = load_spec(SWEEPS / "paper_grid.yaml")
    assert paper_grid.configuration_count() == 3 * 3 * 3 * 5
    for name in ("tau_ablation.yaml", "tau_ablation_local.yaml"):
        tau = load_spec(SWEEPS / name, check_datasets=False)
        assert tau.search.grid["expectile"] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    paper = load_spec(SWEEPS / "tau_ablation.yaml", check_datasets=False)
    assert all(d.startswith("D4RL/antmaze/") for d in paper.datasets)  # Figure 3 is AntMaze
    # The reference hyper-parameters come from the presets of the datasets' domains.
    for name, preset in (
        ("d4rl_antmaze.yaml", {"expectile": 0.9, "beta": 10.0, "reward_shift": -1.0}),
        ("d4rl_kitchen.yaml", {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1}),
        ("d4rl_adroit.yaml", {"expectile": 0.7, "beta": 0.5, "actor_dropout": 0.1}),
    ):
        spec = load_spec(SWEEPS / name, check_datasets=False)
        for trial in spec.trial_configs():
            for _, config, _ in trial.configurations():
                assert {k: getattr(config, k) for k in preset} == preset, (name, trial.dataset)
    antmaze = load_spec(SWEEPS / "d4rl_antmaze.yaml", check_datasets=False)
    assert len(antmaze.datasets) == 6
    schedules = {"d4rl_antmaze.yaml": (100_000, 100), "d4rl_kitchen.yaml": (5_000, 10)}
    for name, schedule in schedules.items():
        for trial in load_spec(SWEEPS / name, check_datasets=False).trial_configs():
            assert (trial.run.eval_every, trial.run.eval_episodes) == schedule  # the paper's
    adroit = load_spec(SWEEPS / "d4rl_adroit.yaml", check_datasets=False)
    assert {d.rsplit("/", 1)[1] for d in adroit.datasets} == {"human-v2", "cloned-v2"}


def test_relative_output_resolves_against_the_working_directory(umaze_id, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = validate_spec(BASE)
    assert spec.experiment_dir() == tmp_path / "results" / "smoke"
    absolute = validate_spec({**BASE, "output": "/srv/x"})
    assert absolute.experiment_dir() == Path("/srv/x/smoke")


def test_validate_command(umaze_id, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(mutate("search.grid.expectile", [1.5])))
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "search.grid.expectile[0]: Input should be less than 1" in result.output
    good = CliRunner().invoke(app, ["validate", str(SWEEPS / "smoke.yaml")])
    assert good.exit_code == 0 and "4 configurations in 4 Ray trials" in good.output
    packed = CliRunner().invoke(app, ["validate", str(SWEEPS / "paper_grid.yaml")])
    assert "135 configurations in 15 Ray trials" in packed.output
    not_yaml = tmp_path / "x.yaml"
    not_yaml.write_text("name: [unclosed")
    assert CliRunner().invoke(app, ["validate", str(not_yaml)]).exit_code == 2


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
KEYS = ["name", "datasets", "preset", "iql", "search", "training", "resources", "wandb", "output"]
spec_keys = st.sampled_from([*KEYS, "x"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(overrides=st.dictionaries(spec_keys, json_values, max_size=4), base=st.booleans())
def test_generated_specs_only_ever_fail_validation(umaze_id, overrides, base):
    raw = {**(BASE if base else {}), **overrides}
    try:
        validate_spec(raw)
    except ConfigError as err:  # every line names where in the spec, as `validate` prints it
        for line in str(err).splitlines():
            keys = "|".join([*KEYS, "x", "seed"])
            assert re.match(rf"(\(top level\)|\[|({keys})[.:\[])", line), line


def test_wandb_online_without_a_key_falls_back_to_offline(tmp_path, monkeypatch):
    from iql_sweep.wandb_logging import effective_mode, has_api_key

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert not has_api_key()
    assert effective_mode("online") == "offline"
    assert effective_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert effective_mode("online") == "online"


def test_a_spec_without_an_evaluation_schedule_takes_each_presets():
    """training may leave eval_every/eval_episodes open: each dataset's preset fills them, and
    the relations are checked on what each dataset's trials will run."""
    spec = {
        "name": "schedule",
        "datasets": ["D4RL/antmaze/umaze-v1", "D4RL/kitchen/mixed-v2"],
        "search": {"grid": {"seed": [0]}},
        "training": {"steps": 200_000},
    }
    parsed = validate_spec(spec, check_datasets=False, check_output=False)
    schedules = {t.dataset: (t.run.eval_every, t.run.eval_episodes) for t in parsed.trial_configs()}
    assert schedules == {
        "D4RL/antmaze/umaze-v1": (100_000, 100),
        "D4RL/kitchen/mixed-v2": (5_000, 10),
    }
    spec["training"]["checkpoint_every"] = 30_000  # a multiple of 5,000, not of 100,000
    with pytest.raises(ConfigError) as err:
        validate_spec(spec, check_datasets=False, check_output=False)
    assert str(err.value) == (
        "training.checkpoint_every: must be a multiple of training.eval_every (100000); got 30000"
    )
