"""OGBench's singletask datasets: files in OGBench's layout from the real environments, loaded and
relabelled by OGBench's own code, mapped so that IQL bootstraps on ``masks``; damaged files are
refused naming the file; a short run trains and scores by success rate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import ogbench  # the ogbench extra, installed by scripts/setup.sh --dev
import pytest
import torch
import yaml

from iql_sweep.data.minari_io import load_transitions
from iql_sweep.data.ogbench_io import OGBenchTask
from iql_sweep.data.profile import DatasetProfile
from iql_sweep.errors import DatasetError, DatasetNotFoundError
from iql_sweep.training import cli_trial, train
from iql_sweep.trial_config import RunSettings
from tests.hub_standin import HubStandIn
from tests.ogbench_files import write_ogbench

MAZE = "ogbench/pointmaze-medium-navigate-singletask-task1-v0"
PUZZLE = "ogbench/puzzle-3x3-play-singletask-task2-v0"


@pytest.fixture
def ogbench_dir(tmp_path, monkeypatch):
    folder = tmp_path / "ogbench"
    monkeypatch.setenv("IQL_SWEEP_OGBENCH_DIR", str(folder))
    return folder


def test_ids_name_ogbench_files_envs_and_presets():
    task = OGBenchTask.parse("ogbench/antmaze-large-navigate-singletask-task1-v0")
    assert (task.data_name, task.env_name, task.task) == (
        "antmaze-large-navigate-v0",
        "antmaze-large-singletask-task1-v0",
        1,
    )
    puzzle = OGBenchTask.parse("ogbench/puzzle-3x3-play-singletask-v0")
    assert (puzzle.data_name, puzzle.env_name, puzzle.task) == (
        "puzzle-3x3-play-v0",
        "puzzle-3x3-singletask-v0",
        None,
    )
    assert DatasetProfile.from_id(MAZE).preset == "ogbench"
    assert DatasetProfile.from_id("ogbench/antmaze-large-navigate-singletask-v0").preset == (
        "ogbench"
    )  # not the D4RL antmaze preset and its reward shift
    for long in (
        "antmaze-giant-navigate",
        "humanoidmaze-medium-navigate",
        "antsoccer-arena-navigate",
    ):
        assert DatasetProfile.from_id(f"ogbench/{long}-singletask-v0").preset == "ogbench-long"
    with pytest.raises(DatasetNotFoundError, match="not an OGBench singletask id"):
        OGBenchTask.parse("ogbench/antmaze-large-navigate-v0")


@pytest.mark.parametrize("dataset_id", [MAZE, PUZZLE], ids=["pointmaze", "puzzle"])
def test_loaded_as_ogbench_loads_it_bootstrapping_on_masks(ogbench_dir, dataset_id):
    task = OGBenchTask.parse(dataset_id)
    train_file, _ = write_ogbench(ogbench_dir, task.data_name, episodes=3, steps=40)
    data = load_transitions(dataset_id)

    env, raw, _ = ogbench.make_env_and_datasets(task.name, dataset_path=str(train_file))
    env.close()
    assert data.size == 3 * 39  # each trajectory's last observation starts no transition
    np.testing.assert_array_equal(data.observations, raw["observations"])
    np.testing.assert_array_equal(data.next_observations, raw["next_observations"])
    np.testing.assert_array_equal(data.actions, raw["actions"])
    np.testing.assert_array_equal(data.rewards, raw["rewards"])
    np.testing.assert_array_equal(data.terminals, 1.0 - raw["masks"])  # no bootstrap at success
    np.testing.assert_array_equal(data.timeouts, raw["terminals"])  # trajectory ends
    assert data.episode_starts.tolist() == [0, 39, 78]
    # next observations chain inside a trajectory, and never across one
    np.testing.assert_array_equal(data.next_observations[:38], data.observations[1:39])
    assert not np.array_equal(data.next_observations[38], data.observations[39])
    # the task's reward: success - 1 per sub-task; a transition is terminal exactly at success
    assert set(np.unique(data.rewards)) <= set(np.arange(-9.0, 0.5))
    np.testing.assert_array_equal(data.terminals, (data.rewards == 0).astype(np.float32))
    assert data.metadata["score_kind"] == "success_rate"
    assert data.metadata["eval_env_spec"].id == task.env_name


def test_an_independent_relabelling_of_the_maze_task(ogbench_dir):
    """PointMaze's reward from the written states by hand: 0 within the goal's tolerance of the
    task's goal, else -1 (here random actions from the task's start mostly fail)."""
    task = OGBenchTask.parse(MAZE)
    write_ogbench(ogbench_dir, task.data_name, episodes=2, steps=30)
    data = load_transitions(MAZE)
    env = ogbench.make_env_and_datasets(task.name, env_only=True)
    env.reset()
    goal, tol = env.unwrapped.cur_goal_xy, env.unwrapped._goal_tol
    env.close()
    with np.load(ogbench_dir / f"{task.data_name}.npz") as npz:
        keep = npz["terminals"] == 0
        xy = npz["qpos"][keep][:, :2]
    expected = (np.linalg.norm(xy - goal, axis=-1) <= tol).astype(np.float32) - 1.0
    np.testing.assert_array_equal(data.rewards, expected)


def test_damaged_or_missing_files_are_refused_naming_the_file(ogbench_dir):
    task = OGBenchTask.parse(MAZE)
    with pytest.raises(DatasetNotFoundError, match="pointmaze-medium-navigate-v0.npz is missing"):
        load_transitions(MAZE)
    train_file, val_file = write_ogbench(ogbench_dir, task.data_name, episodes=2, steps=20)
    whole = train_file.read_bytes()
    train_file.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match="truncated or damaged"):
        load_transitions(MAZE)
    with np.load(val_file) as npz:
        arrays = {k: npz[k] for k in npz.files}
    np.savez(train_file, **{k: v for k, v in arrays.items() if k != "qpos"})
    with pytest.raises(DatasetError, match=r"pointmaze-medium-navigate-v0.npz lacks qpos"):
        load_transitions(MAZE)
    np.savez(train_file, **{**arrays, "actions": arrays["actions"][:-3]})
    with pytest.raises(DatasetError, match="other lengths or ranks"):
        load_transitions(MAZE)


def test_a_short_run_trains_and_scores_by_success_rate(ogbench_dir, tmp_path):
    task = OGBenchTask.parse(MAZE)
    write_ogbench(ogbench_dir, task.data_name, episodes=4, steps=60)
    settings = RunSettings(steps=60, eval_every=30, eval_episodes=2)
    trial = cli_trial(MAZE, settings, seed=1, overrides={"hidden_dims": (32, 32), "batch_size": 32})
    assert trial.preset_name == "ogbench" and trial.base_config().discount == 0.99
    summary = train(trial, device="cpu", out_dir=tmp_path / "run", progress=False)
    rows = summary.history
    assert [r["step"] for r in rows] == [30, 60]
    for row in rows:
        assert row["normalized_score"] == pytest.approx(100.0 * row["success_rate"])
        # an episode scores -1 per step until it succeeds (it ends then)
        assert -1000.0 <= row["return_mean"] <= 0.0
    assert summary.final_score == rows[-1]["normalized_score"]


def test_success_rate_is_the_share_of_episodes_that_reach_the_goal(ogbench_dir):
    """A controller heading straight for the goal reaches task 1's (success rate 100) and
    gets stuck behind a wall on the way to task 3's (0); returns count -1 per step until then."""
    from iql_sweep.evaluation import Evaluator

    write_ogbench(ogbench_dir, "pointmaze-medium-navigate-v0", episodes=2, steps=20)
    scores = {}
    for task, goal in ((1, (20.0, 20.0)), (3, (4.0, 12.0))):
        data = load_transitions(f"ogbench/pointmaze-medium-navigate-singletask-task{task}-v0")
        target = torch.tensor(goal)

        def greedy(obs, members, target=target):
            return torch.clamp(2.0 * (target - obs), -1.0, 1.0)

        evaluator = Evaluator(data, episodes=2, seeds=[0])
        result = evaluator.evaluate(greedy, [0])[0]
        evaluator.close()
        scores[task] = result
    reached, stuck = scores[1], scores[3]
    assert reached.successes.tolist() == [1.0, 1.0] and reached.normalized_score == 100.0
    assert -200 < reached.mean_return < -50  # about 120 steps to the goal, then the episode ends
    assert stuck.successes.tolist() == [0.0, 0.0] and stuck.normalized_score == 0.0
    assert stuck.mean_return == -1000.0  # the whole horizon at -1
    assert reached.row()["success_rate"] == 1.0


def test_train_without_the_files_or_the_mirror_says_what_to_do(ogbench_dir):
    """The files are missing and the mirror unreachable (the tests' closed endpoint): one error
    before any work, naming both and the ways out."""
    from typer.testing import CliRunner

    from iql_sweep.cli import app

    result = CliRunner().invoke(app, ["train", "--dataset", MAZE, "--device", "cpu"])
    text = "".join(result.output.split())  # the console wraps long paths anywhere
    assert result.exit_code == 2, result.output
    assert (
        "hasnofilesin" in text
        and "OGBench'smirrorzhouzypaul/ogbench_datasetscannotbereached" in text
    )
    assert "iql-sweepdatasetsdownloadogbench/pointmaze-medium-navigate-singletask-v0" in text
    assert "pointmaze-medium-navigate-v0.npzandpointmaze-medium-navigate-v0-val.npz" in text
    assert "Traceback" not in result.output
    # with the files in place the same command trains and scores by success rate
    write_ogbench(ogbench_dir, "pointmaze-medium-navigate-v0", episodes=3, steps=40)
    args = ["--steps", "40", "--eval-every", "20", "--eval-episodes", "2", "--batch-size", "32"]
    args += ["--out", str(ogbench_dir.parent / "run"), "--no-progress"]
    ran = CliRunner().invoke(app, ["train", "--dataset", MAZE, "--device", "cpu", *args])
    assert ran.exit_code == 0, ran.output
    assert "final normalized score 0.0 (return -1000.00) after 40 steps" in " ".join(
        ran.output.split()
    )


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iql_sweep.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_download_from_a_stand_in_mirror_and_validate_against_it(tmp_path):
    """OGBench's files from a Hugging Face dataset repository (a stand-in hub on 127.0.0.1, the
    files in a folder of the repository) into OGBench's folder, byte for byte; a spec naming the
    task validates where the mirror offers it and is refused in one line where it is unreachable."""
    hub_root = tmp_path / "hub"
    data_name = "pointmaze-medium-navigate-v0"
    published = hub_root / "zhouzypaul" / "ogbench_datasets" / "data"
    write_ogbench(published, data_name, episodes=2, steps=30)
    folder = tmp_path / "ogbench"
    spec = {
        "name": "ogbench-validate",
        "datasets": [MAZE],
        "search": {"grid": {"expectile": [0.7, 0.9]}},
        "training": {"steps": 100, "eval_every": 50, "eval_episodes": 2},
        "iql": {"batch_size": 16, "hidden_dims": [32, 32]},
        "resources": {"cpus_per_trial": 1},
        "wandb": {"mode": "disabled"},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    with HubStandIn(hub_root) as hub:
        env = {
            "HF_ENDPOINT": hub.endpoint,
            "HF_HOME": str(tmp_path / "hf_home"),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "IQL_SWEEP_OGBENCH_DIR": str(folder),
            "COLUMNS": "200",  # console lines unwrapped
        }
        checked = _cli("validate", str(tmp_path / "spec.yaml"), env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert not folder.exists()  # validation looks, the driver downloads
        got = _cli("datasets", "download", MAZE, env=env)
        assert got.returncode == 0, got.stdout + got.stderr
        assert (
            f"downloaded {MAZE}" in got.stdout and "hf://zhouzypaul/ogbench_datasets" in got.stdout
        )
        for name in (f"{data_name}.npz", f"{data_name}-val.npz"):
            assert (folder / name).read_bytes() == (published / name).read_bytes()
            assert any(r.endswith(f"/resolve/main/data/{name}") for r in hub.requests)
        assert sorted(p.name for p in folder.iterdir()) == [
            f"{data_name}-val.npz",
            f"{data_name}.npz",
        ]
        again = _cli("datasets", "download", MAZE, env=env)
        assert again.returncode == 0 and "present (--force downloads it again)" in again.stdout
        listed = _cli("datasets", "list", "--remote", env={**env, "MINARI_REMOTE": "hf://none"})
        text = " ".join(listed.stdout.split())
        assert "mirror: hf://zhouzypaul/ogbench_datasets" in text, listed.stdout + listed.stderr
        assert "ogbench/pointmaze-medium-navigate-singletask[-task1..5]-v0 │ yes │ yes" in text
    closed = {
        **env,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "IQL_SWEEP_OGBENCH_DIR": str(tmp_path / "none"),
    }
    refused = _cli("validate", str(tmp_path / "spec.yaml"), env=closed)
    text = " ".join(refused.stderr.split())
    assert refused.returncode == 2 and "Traceback" not in text, text
    assert "OGBench's mirror zhouzypaul/ogbench_datasets cannot be reached" in text
    assert "iql-sweep datasets download ogbench/pointmaze-medium-navigate-singletask-v0" in text


@pytest.mark.slow
def test_a_sweep_over_tasks_reports_success_rates_and_task_averages(tmp_path, cli_in_process):
    """sweeps/ogbench_local.yaml (smoke): its data made before Ray starts, two tasks trained
    and evaluated by Ray trials; the tables, the page and W&B carry success rates, and the report
    averages the tasks under their dataset with an interval."""
    import pandas as pd

    from tests.wandb_files import run_contents

    spec = Path(__file__).resolve().parent.parent / "sweeps" / "ogbench_local.yaml"
    result = cli_in_process("run", str(spec), "--smoke", "--output", str(tmp_path), cwd=tmp_path)
    assert result.exit_code == 0, result.output
    assert "was missing; made it" in result.output
    experiment = tmp_path / "ogbench_local-smoke"
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    assert len(trials) == 8 and set(trials["status"]) == {"TERMINATED"}
    assert set(trials["dataset"]) == {
        "ogbench/pointmaze-medium-local-singletask-task1-v0",
        "ogbench/pointmaze-medium-local-singletask-task2-v0",
    }
    assert trials["last_score"].between(0, 100).all()
    averages = pd.read_csv(experiment / "report" / "task_averages.csv")
    assert set(averages["dataset"]) == {"ogbench/pointmaze-medium-local"}
    assert (averages["tasks"] == "2 of 2").all() and len(averages) == 2  # one per tau
    for r in averages.itertuples():  # the mean over tasks of each task's mean over seeds
        mine = trials[trials["expectile"] == r.expectile]
        by_task = mine.groupby("dataset")["last_score"].mean() / 100
        assert r.task_average == pytest.approx(by_task.mean())
        assert r.ci_low <= r.task_average <= r.ci_high
    report = (experiment / "report" / "report.md").read_text()
    assert "Task average per OGBench dataset" in report
    assert "scores are success rates (OGBench's singletask tasks" in report
    page = (experiment / "report" / "index.html").read_text()
    assert 'id="task-averages"' in page and "success rates" in page
    histories = [
        run_contents(f)[1] for f in (experiment / "wandb").glob("offline-run-*/run-*.wandb")
    ]
    assert len(histories) == 8
    for history in histories:
        assert [h["_step"] for h in history] == [30, 60]
        for h in history:
            assert h["normalized_score"] == pytest.approx(100 * h["success_rate"])


def test_the_shipped_spec_validates_where_the_mirror_offers_its_files(tmp_path):
    """sweeps/ogbench_singletask.yaml (25 tasks of 5 datasets): valid where the mirror holds the
    five datasets' files, refused in one line where the mirror cannot be reached."""
    from iql_sweep.data.ogbench_make import write_trajectories

    spec = Path(__file__).resolve().parent.parent / "sweeps" / "ogbench_singletask.yaml"
    data_names = sorted(
        {OGBenchTask.parse(d).data_name for d in yaml.safe_load(spec.read_text())["datasets"]}
    )
    assert len(data_names) == 5
    published = tmp_path / "hub" / "zhouzypaul" / "ogbench_datasets"
    for name in data_names:
        task = OGBenchTask.parse(f"ogbench/{name[: -len('-v0')]}-singletask-v0")
        env_id = f"{task.env_base}-{task.version}"
        for suffix in ("", "-val"):
            write_trajectories(published / f"{name}{suffix}.npz", env_id, 1, 3, 0, planner=False)
    env = {
        "HF_HOME": str(tmp_path / "hf_home"),
        "IQL_SWEEP_OGBENCH_DIR": str(tmp_path / "ogbench"),
        "COLUMNS": "200",
    }
    with HubStandIn(tmp_path / "hub") as hub:
        ok = _cli("validate", str(spec), env={**env, "HF_ENDPOINT": hub.endpoint})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "valid ogbench_singletask: 300 configurations in 25 Ray trials" in ok.stdout
    refused = _cli("validate", str(spec), env={**env, "HF_ENDPOINT": "http://127.0.0.1:9"})
    problems = [line for line in refused.stderr.splitlines() if line.lstrip().startswith("- ")]
    assert refused.returncode == 2 and len(problems) == 1, refused.stderr
    text = " ".join(refused.stderr.split())
    assert (
        "25 OGBench datasets" in problems[0] and "mirror zhouzypaul/ogbench_datasets cannot" in text
    )


def test_validate_refuses_a_damaged_file_naming_it(ogbench_dir, tmp_path):
    from typer.testing import CliRunner

    from iql_sweep.cli import app

    train_file, _ = write_ogbench(ogbench_dir, "pointmaze-medium-navigate-v0", episodes=2, steps=20)
    spec = {
        "name": "damaged",
        "datasets": [MAZE, MAZE.replace("task1", "task2")],
        "search": {"grid": {"expectile": [0.7]}},
        "training": {"steps": 100, "eval_every": 50, "eval_episodes": 2},
        "iql": {"batch_size": 16},
        "wandb": {"mode": "disabled"},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    valid = CliRunner().invoke(app, ["validate", str(tmp_path / "spec.yaml")])
    assert valid.exit_code == 0, valid.output
    train_file.write_bytes(train_file.read_bytes()[:1000])
    refused = CliRunner().invoke(app, ["validate", str(tmp_path / "spec.yaml")])
    text = "".join(refused.output.split())
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert text.count("pointmaze-medium-navigate-v0.npzcannotberead") == 2  # both tasks' files
    assert "truncatedordamaged" in text
