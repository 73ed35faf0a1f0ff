"""The shared basics: one atomic write, one table of seed offsets, one formatter of validation
errors, one owner of an experiment folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from iql_sweep.errors import ConfigError, describe_errors
from iql_sweep.experiment import Experiment
from iql_sweep.files import atomic_write, atomic_write_text
from iql_sweep.iql.config import IQLConfig
from iql_sweep.seeds import EPISODE_INDEX_ROOM, MAX_SEED, SEED_OFFSETS
from iql_sweep.spec import validate_spec
from iql_sweep.trial_config import RunSettings, TrialConfig


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    atomic_write_text(target, "old\n")

    def broken(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]


def test_seed_streams_stay_apart_and_the_largest_seed_fits_every_rng():
    offsets = sorted(SEED_OFFSETS.values())
    assert len(set(offsets)) == len(offsets) and offsets[0] > 0
    largest = MAX_SEED + offsets[-1] + EPISODE_INDEX_ROOM  # the largest seed a run can draw
    assert largest == 2**31 - 1
    torch.Generator().manual_seed(largest)
    np.random.RandomState(largest)  # the legacy API gymnasium's spaces accept: below 2**32
    with pytest.raises(ValidationError):
        TrialConfig(dataset="d", seed=MAX_SEED + 1, run=RunSettings(steps=1, eval_every=1))


def test_one_formatter_says_a_problem_in_the_three_styles():
    with pytest.raises(ValidationError) as info:
        RunSettings(steps=0, eval_every=5, stepz=3)
    err = info.value
    assert describe_errors(err, "option") == [
        "--steps: must be a positive integer (got 0)",
        "--stepz: unknown key (remove it or check its spelling) (got 3)",
    ]
    assert describe_errors(err, "yaml", prefix="training.") == [
        "training.steps: Input should be greater than or equal to 1",
        "training.stepz: unknown key (remove it or check its spelling)",
    ]
    with pytest.raises(ValidationError) as info:
        IQLConfig(hidden_dims=(256, "wide"))
    assert describe_errors(info.value) == [
        "hidden_dims.1: Input should be a valid integer, unable to parse string as an integer "
        "(got 'wide')"
    ]
    with pytest.raises(ValidationError) as info:
        IQLConfig(hidden_dims=(256, "wide"))
    assert describe_errors(info.value, "yaml", prefix="iql.") == [
        "iql.hidden_dims[1]: Input should be a valid integer, unable to parse string as an integer"
    ]


def test_the_experiment_folder_owns_its_spec_copy_and_names(tmp_path):
    spec = validate_spec(
        {
            "name": "owners",
            "datasets": ["some/dataset-v0"],
            "output": str(tmp_path),
            "training": {"steps": 10, "eval_every": 5},
            "search": {"grid": {"expectile": [0.7, 0.9], "seed": [0, 1]}},
        },
        check_datasets=False,
    )
    folder = Experiment.of(spec)
    assert folder.path == tmp_path / "owners" and not folder.holds_sweep()
    with pytest.raises(ConfigError, match=r"EXPERIMENT_DIR: .*owners holds no sweep"):
        folder.require_sweep()
    folder.write_spec(spec)
    again = Experiment(tmp_path / "owners")
    assert again.spec == spec  # typed, as validated
    assert again.spec.search.grid == {"expectile": [0.7, 0.9], "seed": [0, 1]}
    assert "name: owners" in again.spec_text()
    assert (again.report_dir.name, again.dashboard_dir.name, again.ray_log.name) == (
        "report",
        "dashboard",
        "ray.log",
    )
    with again.lock(), pytest.raises(ConfigError, match="driver"), Experiment(again.path).lock():
        pass
