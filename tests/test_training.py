"""A run interrupted mid-way resumes from its checkpoint to the same parameters and rows; a
run whose losses turn non-finite stops with a clear error and keeps its last good checkpoint;
the speed setting does not change the checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from iql_sweep.checkpoint import load_checkpoint
from iql_sweep.errors import ConfigError
from iql_sweep.iql.learner import IQLLearner
from iql_sweep.training import cli_trial, train
from iql_sweep.trial_config import RunSettings
from tests.interrupt import kill_update_at

SETTINGS = RunSettings(steps=80, eval_every=20, eval_episodes=2)


def run(umaze_id, out, settings=SETTINGS, **overrides):
    kw = {"batch_size": 32, "hidden_dims": (32, 32), **overrides}
    return train(
        cli_trial(umaze_id, settings, seed=4, preset="maze", overrides=kw),
        device="cpu",
        out_dir=out,
        progress=False,
    )


def nets(out):
    return load_checkpoint(out / "checkpoint.pt")["learner"]


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "sequential"])
def test_interrupted_run_resumes_exactly(umaze_id, tmp_path, monkeypatch, overlap):
    """Killed at update 50. Sequential: the checkpoint of 40 is kept. Overlapped: the evaluation
    of 40 was still in flight beside updates 40-50, so it is lost with its checkpoint, and the
    one of 20 is kept; either way the resumed run repeats what was lost and ends with the
    straight run's parameters and rows, each step's row written once."""
    settings = SETTINGS.model_copy(update={"overlap_eval": overlap})
    straight = run(umaze_id, tmp_path / "a", settings=settings, actor_dropout=0.1)

    restore = kill_update_at(monkeypatch, 50)
    with pytest.raises(KeyboardInterrupt):
        run(umaze_id, tmp_path / "b", settings=settings, actor_dropout=0.1)
    kept = 20 if overlap else 40
    assert nets(tmp_path / "b")["step"] == kept
    written = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in written] == list(range(20, kept + 1, 20))
    restore()
    resumed = run(umaze_id, tmp_path / "b", settings=settings, actor_dropout=0.1)

    a, b = nets(tmp_path / "a"), nets(tmp_path / "b")
    assert a["step"] == b["step"] == 80
    for net in ("value", "q", "q_target", "actor"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"
    assert [r["step"] for r in resumed.history] == [20, 40, 60, 80]
    keys = ("step", "normalized_score", "return_mean", "value_loss", "q_loss", "actor_loss")
    assert [{k: r[k] for k in keys} for r in resumed.history] == [
        {k: r[k] for k in keys} for r in straight.history
    ]
    rows = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in rows] == [20, 40, 60, 80]


def test_non_finite_losses_stop_the_run_and_keep_the_last_checkpoint(
    umaze_id, tmp_path, monkeypatch
):
    from iql_sweep.errors import TrainingDivergedError

    out = tmp_path / "nan"
    original = IQLLearner._step_on

    def poison_after_30(self, batch, masks):
        if self.step >= 30:
            batch = {**batch, "rewards": batch["rewards"] * float("nan")}
        return original(self, batch, masks)

    monkeypatch.setattr(IQLLearner, "_step_on", poison_after_30)
    with pytest.raises(TrainingDivergedError, match=r"q_loss.*between steps 20 and 40"):
        run(umaze_id, out)
    state = nets(out)
    assert state["step"] == 20
    assert all(torch.isfinite(v).all() for v in state["q"].values())


def test_a_compiled_run_resumes_eagerly_from_the_same_checkpoint(umaze_id, tmp_path, monkeypatch):
    """Speed is a setting, not a format: a compiled run killed mid-way (at update 50, the
    evaluation of 40 in flight: the checkpoint of 20 kept) continues in eager mode (and vice
    versa) from the one checkpoint, to the straight compiled run's parameters."""
    fast = SETTINGS.model_copy(update={"compile": True, "steps": 60})
    straight = run(umaze_id, tmp_path / "a", settings=fast)
    assert [r["step"] for r in straight.history] == [20, 40, 60]
    restore = kill_update_at(monkeypatch, 50)
    with pytest.raises(KeyboardInterrupt):
        run(umaze_id, tmp_path / "b", settings=fast)
    restore()
    assert nets(tmp_path / "b")["step"] == 20
    eager = fast.model_copy(update={"compile": False})
    resumed = run(umaze_id, tmp_path / "b", settings=eager)
    a, b = nets(tmp_path / "a"), nets(tmp_path / "b")
    for net in ("value", "q", "q_target", "actor"):
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], rtol=1e-4, atol=1e-5)
    assert [r["step"] for r in resumed.history] == [20, 40, 60]


def test_a_damaged_checkpoint_falls_back_to_the_previous_good_one(umaze_id, tmp_path, monkeypatch):
    """Killed at update 70 (checkpoints at 20 and 40 kept; the evaluation of 60 was in
    flight), the newest truncated on disk: the rerun reports it, resumes from update 20 and ends
    where an uninterrupted run ends."""
    straight = run(umaze_id, tmp_path / "a")
    restore = kill_update_at(monkeypatch, 70)
    with pytest.raises(KeyboardInterrupt):
        run(umaze_id, tmp_path / "b")
    restore()
    latest = tmp_path / "b" / "checkpoint.pt"
    assert nets(tmp_path / "b")["step"] == 40
    assert load_checkpoint(tmp_path / "b" / "checkpoint.prev.pt")["learner"]["step"] == 20
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated
    notes = []
    overrides = {"batch_size": 32, "hidden_dims": (32, 32)}
    resumed = train(
        cli_trial(umaze_id, SETTINGS, seed=4, preset="maze", overrides=overrides),
        device="cpu",
        out_dir=tmp_path / "b",
        progress=False,
        notify=notes.append,
    )
    assert len(notes) == 1 and "damaged" in notes[0] and "checkpoint.prev.pt" in notes[0]
    a, b = nets(tmp_path / "a"), nets(tmp_path / "b")
    for net in ("value", "q", "actor"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"
    assert [r["step"] for r in resumed.history] == [20, 40, 60, 80]
    assert [r["q_loss"] for r in resumed.history] == [r["q_loss"] for r in straight.history]


def test_damaged_checkpoints_with_no_good_one_left_are_a_clear_error(umaze_id, tmp_path):
    from typer.testing import CliRunner

    from iql_sweep.checkpoint import CheckpointDamagedError
    from iql_sweep.cli import app

    out = tmp_path / "run"
    run(umaze_id, out, settings=SETTINGS.model_copy(update={"steps": 20, "eval_every": 20}))
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointDamagedError, match="No earlier good checkpoint"):
        run(umaze_id, out, settings=SETTINGS.model_copy(update={"steps": 20, "eval_every": 20}))
    args = [
        "train",
        "--dataset",
        umaze_id,
        "--steps",
        "20",
        "--eval-every",
        "20",
        "--seed",
        "4",
        "--eval-episodes",
        "2",
        "--batch-size",
        "32",
        "--preset",
        "maze",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "damaged" in result.output and "Traceback" not in result.output


def test_matmul_precision_is_set_before_the_learner_and_recorded(umaze_id, tmp_path):
    """training.matmul_precision applies to the whole run (set when the run is assembled, before
    the learner exists) and config.json keeps it."""
    import json

    before = torch.get_float32_matmul_precision()
    try:
        settings = SETTINGS.model_copy(update={"steps": 20, "matmul_precision": "high"})
        run(umaze_id, tmp_path / "tf32", settings=settings)
        assert torch.get_float32_matmul_precision() == "high"
        info = json.loads((tmp_path / "tf32" / "config.json").read_text())
        assert info["run"]["matmul_precision"] == "high"
        run(umaze_id, tmp_path / "full", settings=SETTINGS.model_copy(update={"steps": 20}))
        assert torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.set_float32_matmul_precision(before)


def test_evaluation_workers_change_nothing_but_where_the_envs_step(umaze_id, tmp_path):
    """The same run with its evaluation environments in 2 worker processes: the same rows."""
    one = run(umaze_id, tmp_path / "one")
    settings = SETTINGS.model_copy(update={"eval_workers": 2})
    two = run(umaze_id, tmp_path / "two", settings=settings)
    keys = ("step", "normalized_score", "return_mean", "return_std", "q_loss")
    assert [[r[k] for k in keys] for r in two.history] == [
        [r[k] for k in keys] for r in one.history
    ]
    recorded = json.loads((tmp_path / "two" / "config.json").read_text())
    assert recorded["run"]["eval_workers"] == 2


def test_the_paper_schedule_per_preset_and_its_overrides():
    """AntMaze: 100 episodes every 100,000 updates; the other domains: 10 every 5,000; never
    past the run's steps; a value the user gives wins."""
    long = RunSettings(steps=1_000_000)
    antmaze = cli_trial("D4RL/antmaze/umaze-v1", long)
    assert (antmaze.run.eval_every, antmaze.run.eval_episodes) == (100_000, 100)
    for dataset in ("D4RL/kitchen/mixed-v2", "D4RL/door/human-v2", "iql-sweep/pointmaze/umaze-v0"):
        trial = cli_trial(dataset, long)
        assert (trial.run.eval_every, trial.run.eval_episodes) == (5_000, 10), dataset
    short = cli_trial("D4RL/antmaze/umaze-v1", RunSettings(steps=30_000))
    assert short.run.eval_every == 30_000  # one evaluation, at the end
    given = cli_trial("D4RL/antmaze/umaze-v1", RunSettings(steps=10**6, eval_every=50_000))
    assert (given.run.eval_every, given.run.eval_episodes) == (50_000, 100)
    with pytest.raises(
        ConfigError, match=r"--checkpoint-every: must be a multiple of --eval-every \(100000\)"
    ):
        cli_trial("D4RL/antmaze/umaze-v1", RunSettings(steps=10**6, checkpoint_every=30_000))


def test_interim_evaluations_are_smaller_and_the_final_one_full(umaze_id, tmp_path):
    settings = SETTINGS.model_copy(update={"eval_episodes": 3, "interim_eval_episodes": 1})
    summary = run(umaze_id, tmp_path / "interim", settings=settings)
    assert [r["step"] for r in summary.history] == [20, 40, 60, 80]
    assert [r["eval_episodes"] for r in summary.history] == [1, 1, 1, 3]
    assert summary.history[0]["return_std"] == 0.0  # one episode


def test_evaluate_a_finished_run_again_with_more_episodes(umaze_id, tmp_path):
    """`iql-sweep evaluate RUN --episodes 5 --json`: the first 2 episodes are the ones the run's
    last evaluation ran (same weights, same seeds), so their mean is its return_mean."""
    from typer.testing import CliRunner

    from iql_sweep.cli import app

    summary = run(umaze_id, tmp_path / "run")
    out = tmp_path / "eval.json"
    args = ["evaluate", str(tmp_path / "run"), "--episodes", "5", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| 0 | 0.7 | 3 | 4 |" in result.output and "steps/s" in result.output
    report = json.loads(out.read_text())
    assert report["step"] == 80 and list(report["returns"]) == ["0"]
    returns = report["returns"]["0"]
    assert len(returns) == 5 and len(report["normalized_scores"]["0"]) == 5
    assert np.mean(returns[:2]) == pytest.approx(summary.history[-1]["return_mean"], abs=1e-9)
    assert report["env_steps_per_s"] > 0 and report["env_steps"] >= 5
    refused = CliRunner().invoke(app, ["evaluate", str(tmp_path / "run"), "--members", "3"])
    assert refused.exit_code == 2 and "--members: [3] not in this run" in refused.output
    empty = CliRunner().invoke(app, ["evaluate", str(tmp_path)])
    assert empty.exit_code == 2 and "holds no checkpoint" in " ".join(empty.output.split())
