"""The command line: bad inputs are named before any work, a tiny run writes its files."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from iql_sweep.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expectile", "1.5"], "expectile: Input should be less than 1"),
        (["--expectile", "0"], "expectile: Input should be greater than 0"),
        (["--beta", "-1"], "beta: Input should be greater than or equal to 0"),
        (["--preset", "hopper"], "preset: unknown preset 'hopper'"),
        (["--steps", "0"], "--steps: must be a positive integer"),
        (["--device", "tpu"], "--device: unknown device 'tpu'"),
    ],
)
def test_bad_training_inputs_name_the_field(umaze_id, tmp_path, args, message):
    result = run("train", "--dataset", umaze_id, "--out", str(tmp_path / "x"), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x").exists()  # rejected before any work


def test_unknown_dataset_lists_local_ones(umaze_id, tmp_path):
    result = run("train", "--dataset", "D4RL/pen/human-v2", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    lead = "dataset: 'D4RL/pen/human-v2' is not in the local Minari root and Minari's remote"
    assert lead in text
    assert "cannot be reached" in text and umaze_id in text  # what is local


def test_tiny_training_run_writes_metrics_and_checkpoint(umaze_id, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--dataset", umaze_id, "--steps", "60", "--eval-every", "30"]
    args += ["--eval-episodes", "2", "--batch-size", "32", "--out", str(out), "--no-progress"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert "final normalized score" in result.output and "best" in result.output
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [30, 60]
    for key in (
        "normalized_score",
        "return_mean",
        "value_loss",
        "q_loss",
        "actor_loss",
        "awr_clip_fraction",
        "updates_per_second",
    ):
        assert key in rows[0]
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "maze" and config["iql"]["batch_size"] == 32
    assert config["iql"]["max_steps"] == 60
    # compile: auto, the default; on the CPU 60 updates of one configuration stay eager, and
    # the first line and config.json say so and why
    assert config["run"]["compile"] == "auto" and config["speed"] == "eager"
    assert "does not pay back" in config["speed_reason"]
    assert f"speed: eager ({config['speed_reason']})" in " ".join(result.output.split())
    assert config["run"]["matmul_precision"] == "highest"
    assert {r["speed"] for r in rows} == {"eager"}
    # Running the same command again resumes from the final checkpoint: nothing is redone.
    again = run(*args)
    assert again.exit_code == 0, again.output
    rows_again = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows_again == rows
    # Other hyper-parameters into the same folder would mix two runs: refused, files untouched.
    other = run(*args, "--expectile", "0.9")
    assert other.exit_code == 2
    assert "other hyper-parameters (expectile)" in other.output
    # the normalisation switch is a hyper-parameter too (the preset's default, flipped)
    default = config["iql"]["normalize_observations"]
    flip = "--no-normalize-observations" if default else "--normalize-observations"
    other = run(*args, flip)
    assert other.exit_code == 2
    assert "other hyper-parameters (normalize_observations)" in " ".join(other.output.split())
    assert json.loads((out / "config.json").read_text()) == config


def test_datasets_list_and_make_errors(umaze_id):
    listed = run("datasets", "list")
    assert listed.exit_code == 0
    assert umaze_id in listed.output and "pointmaze-large" in listed.output
    again = run("datasets", "make", "pointmaze-umaze", "--steps", "100")
    assert again.exit_code == 2 and "--force" in again.output
    unknown = run("datasets", "make", "hopper-medium")
    assert unknown.exit_code == 2 and "NAME: unknown dataset" in unknown.output


@pytest.mark.slow
def test_demo_runs_the_embedded_sweep_and_prints_its_table(umaze_id, tmp_path, cli_in_process):
    """The README's main job (smoke-sized): Ray, the local dataset, W&B offline (the real
    entry point starting its own Ray: tests/test_sweep.py's grid sweep)."""
    out = cli_in_process("demo", "--smoke", "--output", str(tmp_path), cwd=tmp_path)
    assert out.exit_code == 0, out.output[-3000:]
    assert "τ \\ β" in out.output and "| 0.5 |" in out.output and "| 0.9 |" in out.output
    (experiment,) = tmp_path.glob("smoke-*-smoke")
    assert len(list((experiment / "wandb").glob("offline-run-*"))) == 4
    assert (experiment / "report" / "summary.csv").is_file()
