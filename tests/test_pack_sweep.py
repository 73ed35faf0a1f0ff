"""Packed grid sweeps: several configurations per Ray trial, each with its own row and W&B run;
a grid over a setting the members cannot share (observation normalisation) splits the packs, and
the report compares its values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from iql_sweep.data.minari_io import load_transitions
from iql_sweep.iql.observations import ObservationStats
from iql_sweep.spec import validate_spec
from tests.test_sweep import tiny_spec, write_spec
from tests.wandb_files import run_contents


def test_pack_plan_keeps_critic_sharing_members_together(umaze_id):
    spec = tiny_spec(
        "p",
        [umaze_id],
        {
            "grid": {
                "expectile": [0.5, 0.9],
                "beta": [1.0, 3.0],
                "seed": [0, 1],
                "batch_size": [16, 32],
            }
        },
    )
    spec["resources"]["pack"] = 4
    packs = validate_spec(spec).pack_plan()
    assert len(packs) == 4  # 2 batch sizes x (8 members / 4 per pack)
    for pack in packs:
        assert len({m["seed"] for m in pack["members"]}) == 1  # one seed per pack: shared critics
        assert len(pack["members"]) == 4
    assert sorted(p["overrides"]["batch_size"] for p in packs) == [16, 16, 32, 32]


def test_pack_setting_is_validated(umaze_id):
    from iql_sweep.errors import ConfigError

    spec = tiny_spec(
        "p",
        [umaze_id],
        {
            "optuna": {
                "num_samples": 2,
                "params": {"beta": {"type": "uniform", "low": 1.0, "high": 2.0}},
            }
        },
    )
    spec["resources"]["pack"] = 4
    with pytest.raises(ConfigError, match="resources.pack: Optuna searches run one"):
        validate_spec(spec)
    spec = tiny_spec("p", [umaze_id], {"grid": {"beta": [1.0]}})
    spec["resources"]["pack"] = 0
    with pytest.raises(ConfigError, match="resources.pack: must be a positive integer"):
        validate_spec(spec)


@pytest.mark.slow
def test_packed_sweep_reports_every_configuration(
    umaze_id, tmp_path, cli_in_process, monkeypatch, caplog
):
    spec = tiny_spec(
        "packed",
        [umaze_id],
        {
            "grid": {
                "expectile": [0.5, 0.7, 0.9],
                "normalize_observations": [False, True],
                "seed": [0, 1],
            }
        },
    )
    spec["resources"]["pack"] = 6
    # W&B online with a key, but the server unreachable: every run must land offline, whole.
    spec["wandb"]["mode"] = "online"
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    result = cli_in_process("run", str(write_spec(tmp_path, spec)), cwd=tmp_path)
    assert result.exit_code == 0, result.output[-3000:]
    assert "W&B unreachable" in caplog.text  # the driver's warning (a console reads it on stderr)
    assert "12 configurations in 2 Ray trials" in result.output
    experiment = tmp_path / "results" / "packed"
    # two Ray trials of 6 each: the normalisation setting splits the packs
    assert len(list(experiment.glob("*/result.json"))) == 2
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    assert len(trials) == 12 and set(trials["status"]) == {"TERMINATED"}
    keys = zip(trials["expectile"], trials["normalize_observations"], trials["seed"])
    assert len(set(keys)) == 12
    assert (trials["steps_done"] == 60).all() and (trials["evaluations"] == 2).all()
    summary = pd.read_csv(experiment / "report" / "summary.csv")
    assert len(summary) == 6 and (summary["seeds"] == 2).all()
    stats = ObservationStats.of(load_transitions(umaze_id).observations)
    for row in trials.itertuples():
        (run_dir,) = (experiment / "wandb").glob(f"offline-run-*-{row.trial_id}")
        config, history = run_contents(run_dir / f"run-{row.trial_id}.wandb")
        assert (config["expectile"], config["beta"], config["seed"]) == (
            row.expectile,
            row.beta,
            row.seed,
        )
        assert config["iql"]["normalize_observations"] == row.normalize_observations
        if row.normalize_observations:
            assert ObservationStats.from_state(config["observation_stats"]) == stats
        else:
            assert "observation_stats" not in config
        assert [h["_step"] for h in history] == [30, 60]
        assert history[-1]["score"] == pytest.approx(row.last_score)
    improvement = pd.read_csv(experiment / "report" / "improvement.csv")
    setting = improvement[improvement["ablation"] == "normalize_observations"]
    assert len(setting) == 6  # per tau, last and best: on against off
    assert setting["y"].str.endswith("normalize_observations False").all()
    assert setting["probability"].between(0, 1).all()
    page = (experiment / "report" / "index.html").read_text()
    assert "normalize_observations True vs" in page
    # `iql-sweep evaluate` on one packed trial, two of its members: their first 2 episodes are
    # the ones the trial's last evaluation ran, so their mean is the table's last score.
    normalized = trials[trials["normalize_observations"]]
    trial_dir = normalized["trial_dir"].iloc[0]
    out = tmp_path / "members.json"
    again = cli_in_process(
        "evaluate",
        str(experiment / trial_dir),
        "--episodes",
        "3",
        "--members",
        "1,4",
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert again.exit_code == 0, again.output
    whole = cli_in_process("evaluate", str(experiment), cwd=tmp_path)
    assert whole.exit_code == 2 and "is a whole sweep" in " ".join(whole.output.split())
    report = json.loads(out.read_text())
    assert sorted(report["returns"]) == ["1", "4"]
    in_trial = trials[trials["trial_dir"] == trial_dir]
    for k in ("1", "4"):
        (row,) = in_trial[in_trial["trial_id"].str.endswith(f"-m{k}")].itertuples()
        first_two = np.mean(report["normalized_scores"][k][:2])
        assert first_two == pytest.approx(row.last_score, abs=1e-9)
