"""Real sweeps on a local Ray: W&B offline files, report tables against Ray's results, plots,
failing trials, Optuna, and resume after the driver is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import matplotlib.image
import minari
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from minari.data_collector import EpisodeBuffer

from iql_sweep.spec import load_spec
from iql_sweep.training import assemble
from tests.wandb_files import records, run_contents

pytestmark = pytest.mark.slow  # Ray sweeps

METRIC_KEYS = {
    "normalized_score",
    "return_mean",
    "value_loss",
    "q_loss",
    "actor_loss",
    "advantage_mean",
    "awr_clip_fraction",
    "updates_per_second",
}


def tiny_spec(name: str, datasets: list[str], search: dict, **training) -> dict:
    return {
        "name": name,
        "datasets": datasets,
        "preset": "maze",
        "iql": {"batch_size": 32, "hidden_dims": [32, 32]},
        "search": search,
        "training": {"steps": 60, "eval_every": 30, "eval_episodes": 2, **training},
        "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 2, "max_failures": 1},
        "wandb": {"mode": "offline", "project": "iql-sweep-tests"},
        "output": "results",
    }


def cli(
    *args: str, cwd: Path, timeout: int = 420, env: dict | None = None, **popen
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iql_sweep.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "RAY_DEDUP_LOGS": "0", **(env or {})},
        **popen,
    )


def write_spec(folder: Path, spec: dict) -> Path:
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def diverging_dataset(umaze_id) -> str:
    """A genuine, valid Minari dataset (the u-maze's first episodes, same spaces and evaluation
    env) whose rewards are scaled by 1e30: it passes validation, and its trials diverge (the TD
    errors overflow float32) and must fail, not the sweep."""
    from gymnasium.envs.registration import EnvSpec

    source = minari.load_dataset(umaze_id)
    episodes = [
        EpisodeBuffer(
            id=i,
            observations=ep.observations,
            actions=ep.actions,
            rewards=np.asarray(ep.rewards, dtype=np.float64) * 1e30 + 1e30,
            terminations=ep.terminations,
            truncations=ep.truncations,
        )
        for i, ep in zip(range(30), source.iterate_episodes())
    ]
    eval_env = EnvSpec.from_json(source.storage.metadata["eval_env_spec"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Minari's reminders about metadata
        minari.create_dataset_from_buffers(
            "bad/diverging-rewards-sweep-v0",
            episodes,
            observation_space=source.observation_space,
            action_space=source.action_space,
            eval_env=eval_env,
        )
    return "bad/diverging-rewards-sweep-v0"


@pytest.fixture(scope="module")
def grid_sweep(umaze_id, diverging_dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("grid_sweep")
    spec = tiny_spec(
        "tiny",
        [umaze_id, diverging_dataset],
        {"grid": {"expectile": [0.5, 0.9], "beta": [3.0], "seed": [0, 1]}},
    )
    spec["resources"]["max_failures"] = 0  # a diverged trial fails the same way when retried
    result = cli("run", str(write_spec(folder, spec)), cwd=folder)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder / "results" / "tiny", result


def test_sweep_reports_every_trial_and_failures(grid_sweep, umaze_id, diverging_dataset):
    experiment, result = grid_sweep
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    assert len(trials) == 8
    good = trials[trials["dataset"] == umaze_id]
    bad = trials[trials["dataset"] == diverging_dataset]
    assert set(good["status"]) == {"TERMINATED"}
    assert (good["steps_done"] == 60).all() and (good["evaluations"] == 2).all()
    assert sorted(zip(good["expectile"], good["seed"])) == [(0.5, 0), (0.5, 1), (0.9, 0), (0.9, 1)]
    assert set(bad["status"]) == {"ERROR"}
    assert bad["error"].str.contains("TrainingDivergedError").all()
    assert (
        bad["error"].str.contains("non-finite").all() and bad["error"].str.contains("rewards").all()
    )
    assert (
        "τ \\ β" in result.stdout
        and "Failed trials" in (experiment / "report" / "report.md").read_text()
    )
    # The console is for people: Ray's own lines (its start, token notice) went to ray.log.
    console = result.stdout + result.stderr
    ray_log = (experiment / "ray.log").read_text()
    assert "Started a local Ray instance" in ray_log
    for line in ("Started a local Ray instance", "Token authentication", "INFO worker.py"):
        assert line not in console, line


def test_tables_agree_with_ray_tune_results(grid_sweep, umaze_id):
    from ray.tune import ExperimentAnalysis

    experiment, _ = grid_sweep
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    analysis = ExperimentAnalysis(str(experiment), default_metric="score", default_mode="max")
    for row in trials[trials["status"] == "TERMINATED"].itertuples():
        history = analysis.trial_dataframes[row.trial_id]
        assert row.last_score == pytest.approx(history["score"].iloc[-1])
        assert row.best_score == pytest.approx(history["score"].max())
        trial = next(t for t in analysis.trials if t.trial_id == row.trial_id)
        assert row.expectile == trial.config["iql"]["expectile"]
        assert row.seed == trial.config["seed"]
    summary = pd.read_csv(experiment / "report" / "summary.csv")
    assert len(summary) == 2 and (summary["dataset"] == umaze_id).all()
    for s in summary.itertuples():
        cell = trials[(trials["dataset"] == umaze_id) & (trials["expectile"] == s.expectile)]
        assert s.last_mean == pytest.approx(cell["last_score"].mean())
        assert s.last_std == pytest.approx(cell["last_score"].std())
        assert s.best_mean == pytest.approx(cell["best_score"].mean())
        assert s.seeds == 2
    pivot = pd.read_csv(experiment / "report" / "pivot_last.csv")
    assert "overall" in set(pivot["dataset"])


def test_plots_are_written(grid_sweep):
    experiment, _ = grid_sweep
    for name in ("tau_ablation.png", "heatmap.png", "learning_curves.png"):
        path = experiment / "report" / name
        assert path.stat().st_size > 5000
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 200


def test_interval_estimates_state_failures_and_missing_datasets(
    grid_sweep, umaze_id, diverging_dataset
):
    """aggregates.csv against an independent computation (scipy's trimmed mean of the trials'
    last scores); the NaN dataset's failed trials are stated, never dropped silently."""
    from scipy import stats as scipy_stats

    experiment, _ = grid_sweep
    report = experiment / "report"
    trials = pd.read_csv(report / "trials.csv")
    agg = pd.read_csv(report / "aggregates.csv")
    assert set(agg["metric"]) == {"iqm", "mean", "median", "optimality_gap"}
    assert set(agg["score"]) == {"last", "best"}
    for tau in (0.5, 0.9):
        finished = trials[(trials["dataset"] == umaze_id) & (trials["expectile"] == tau)]
        for scope in (umaze_id, "all datasets"):
            row = agg[
                (agg["scope"] == scope)
                & (agg["expectile"] == tau)
                & (agg["score"] == "last")
                & (agg["metric"] == "iqm")
            ].iloc[0]
            expected = scipy_stats.trim_mean(finished["last_score"] / 100, 0.25)
            assert row["estimate"] == pytest.approx(expected)
            assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
        pooled = agg[(agg["scope"] == "all datasets") & (agg["expectile"] == tau)].iloc[0]
        assert pooled["datasets"] == "1 of 2" and pooled["missing"] == diverging_dataset
        assert pooled["failed"] == 2  # both seeds on the NaN dataset
    completeness = pd.read_csv(report / "completeness.csv")
    bad = completeness[completeness["dataset"] == diverging_dataset]
    assert (bad["finished"] == 0).all() and (bad["failed"] == 2).all()
    improvement = pd.read_csv(report / "improvement.csv")
    assert "τ 0.9, β 3 vs τ 0.5, β 3" in set(improvement["comparison"])
    assert improvement["probability"].between(0, 1).all()
    text = (report / "report.md").read_text()
    assert "4 failed trial(s) left out of every figure" in text
    assert f"{diverging_dataset}: no finished run for 2 configuration(s)" in text
    expected_max = pd.read_csv(report / "expected_max.csv")
    assert list(expected_max["budget"]) == [1, 2]
    means = trials[trials["dataset"] == umaze_id].groupby("expectile")["last_score"].mean()
    assert expected_max["last"].iloc[-1] == pytest.approx(means.max())
    for name in ("profiles.png", "expected_max.png"):
        assert matplotlib.image.imread(report / name).shape[0] > 200


def test_report_page_renders_in_a_real_browser(grid_sweep, diverging_dataset):
    """report/index.html opens from the file system in headless Chromium: no console errors,
    the summary table and every plot shown, the failure reasons and the spec on the page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    experiment, _ = grid_sweep
    page = experiment / "report" / "index.html"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1800",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(page.as_uri())
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        assert errors == []
        assert driver.title == "iql-sweep report: tiny"
        assert len(driver.find_elements("css selector", "#summary tbody tr")) == 2
        assert len(driver.find_elements("css selector", "#intervals tbody tr")) == 2
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])"
        )
        assert len(images) == 5 and all(done and width > 200 for done, width in images)
        failed = driver.find_element("css selector", "#failed").text
        assert diverging_dataset in failed and "non-finite" in failed
        spec = driver.find_element("css selector", "#spec").text
        assert spec.startswith("name: tiny") and f"- {diverging_dataset}" in spec
        shot = experiment / "report" / "page.png"
        assert driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[1] == 1280  # the window width (the height follows the page)
    assert pixels.std() > 0.05  # not a blank page


def test_dashboard_definition_fits_the_sweeps_runs(grid_sweep, umaze_id, diverging_dataset):
    """One W&B workspace view per dataset, built offline with wandb-workspaces: its filters
    select exactly that dataset's runs (read back from the offline run files), and every config
    key and metric its panels use is in those runs."""
    import wandb_workspaces.reports.v2 as wr

    from iql_sweep.report.dashboard import build

    experiment, _ = grid_sweep
    boards = {b.dataset: b for b in build(experiment)}
    assert set(boards) == {umaze_id, diverging_dataset}
    runs = []
    for run_file in (experiment / "wandb").glob("offline-run-*/run-*.wandb"):
        config, history = run_contents(run_file)
        group = next(
            r.run.run_group for r in records(run_file) if r.WhichOneof("record_type") == "run"
        )
        runs.append((config, history, group))
    assert len(runs) == 8
    for dataset, board in boards.items():
        definition = json.loads(board.path.read_text())  # written for publishing later
        assert definition["project"] == "iql-sweep-tests"
        (runset,) = definition["spec"]["section"]["runSets"]
        filters = {
            (f["key"]["section"], f["key"]["name"], f["op"], f["value"])
            for f in runset["filters"]["filters"]
        }
        group = f"tiny--{dataset.replace('/', '-')}"
        assert filters == {("run", "group", "=", group), ("config", "dataset", "=", dataset)}
        selected = [r for r in runs if r[2] == group and r[0]["dataset"] == dataset]
        assert len(selected) == 4  # 2 taus x 2 seeds
        panels = {
            p.title: p
            for section in board.workspace.sections
            for p in section.panels
            if getattr(p, "title", None)
        }
        names = [section.name for section in board.workspace.sections]
        assert names == [
            "Score against τ and β",
            "Learning curves",
            "Hyper-parameters",
            "Losses and advantages",
        ]  # no fine-tuning section: offline sweep
        curves = panels["normalised score (mean ± std over seeds)"]
        assert isinstance(curves, wr.LinePlot) and curves.groupby.name == "configuration"
        assert (curves.groupby_aggfunc, curves.groupby_rangefunc) == ("mean", "stddev")
        scatter = panels["last normalised score against τ (colour: β)"]
        assert (scatter.x.name, scatter.y.name, scatter.z.name) == (
            "expectile",
            "normalized_score",
            "beta",
        )
        columns = [c.metric.name for c in panels["τ, β, seed and the final score"].columns]
        assert columns == ["expectile", "beta", "seed", "normalized_score"]
        config_keys = {"expectile", "beta", "seed", "configuration", "dataset"}
        metrics = {y for p in panels.values() if isinstance(p, wr.LinePlot) for y in p.y}
        assert metrics >= {"normalized_score", "q_loss", "advantage_mean"}
        for config, history, _ in selected:
            assert config_keys <= set(config)
            assert config["configuration"] == f"τ {config['expectile']:g}, β {config['beta']:g}"
            if history:  # the NaN dataset's runs failed before their first evaluation
                assert metrics <= set(history[-1])


class _RefusingServer:
    """A stand-in W&B server on loopback that answers every request 401 after a short delay,
    and records how many requests it served at once."""

    def __init__(self):
        import http.server
        import threading

        self.lock, self.active, self.peak = threading.Lock(), 0, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _refuse(self):
                with outer.lock:
                    outer.active += 1
                    outer.peak = max(outer.peak, outer.active)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(0.3)
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"errors": [{"message": "refused by the stand-in server"}]}')
                with outer.lock:
                    outer.active -= 1

            do_GET = do_POST = do_PUT = _refuse

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_sync_uploads_in_a_bounded_pool_and_reports_failures(grid_sweep):
    """`iql-sweep sync` runs `wandb sync` per offline run, at most --workers at once, and
    reports every run the server refused, with W&B's reason; nothing is marked synced."""
    experiment, _ = grid_sweep
    server = _RefusingServer()
    env = {**os.environ, "WANDB_BASE_URL": server.url, "WANDB_API_KEY": "k" * 40}
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "iql_sweep.cli",
                "sync",
                str(experiment),
                "--workers",
                "3",
                "--timeout",
                "120",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
    finally:
        server.server.shutdown()
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "synced 0 of 8 run(s)" in result.stdout
    assert result.stderr.count("failed: offline-run-") == 8
    assert "refused by the stand-in server" in result.stderr
    assert 2 <= server.peak <= 3  # in parallel, never more than --workers
    assert not list((experiment / "wandb").glob("offline-run-*/*.synced"))


def test_every_trial_has_a_wandb_offline_run(grid_sweep, umaze_id):
    experiment, _ = grid_sweep
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    runs_root = experiment / "wandb"
    for row in trials.itertuples():
        dirs = list(runs_root.glob(f"offline-run-*-{row.trial_id}"))
        assert len(dirs) == 1, (row.trial_id, sorted(p.name for p in runs_root.iterdir()))
        run_file = dirs[0] / f"run-{row.trial_id}.wandb"
        config, history = run_contents(run_file)
        assert config["expectile"] == row.expectile and config["beta"] == row.beta
        assert config["seed"] == row.seed and config["dataset"] == row.dataset
        assert config["iql"]["hidden_dims"] == [32, 32] and config["iql"]["max_steps"] == 60
        run_records = [r.run for r in records(run_file) if r.WhichOneof("record_type") == "run"]
        assert run_records[0].run_group == f"tiny--{row.dataset.replace('/', '-')}"
        exits = [
            r.exit.exit_code for r in records(run_file) if r.WhichOneof("record_type") == "exit"
        ]
        if row.status == "TERMINATED":
            assert [h["_step"] for h in history] == [30, 60]
            assert set(history[-1]) >= METRIC_KEYS
            assert history[-1]["score"] == pytest.approx(row.last_score)
            assert exits == [0]
        else:
            assert history == [] and exits == [1]


def test_optuna_search_stays_in_its_ranges(umaze_id, tmp_path, cli_in_process):
    spec = tiny_spec(
        "opt",
        [umaze_id],
        {
            "optuna": {
                "num_samples": 3,
                "seed": 1,
                "params": {
                    "expectile": {"type": "uniform", "low": 0.6, "high": 0.8},
                    "beta": {"type": "loguniform", "low": 1.0, "high": 5.0},
                },
            }
        },
    )
    spec["wandb"]["mode"] = "disabled"
    result = cli_in_process("run", str(write_spec(tmp_path, spec)), cwd=tmp_path)
    assert result.exit_code == 0, result.output[-3000:]
    assert "3 configurations in 3 Ray trials" in result.output
    trials = pd.read_csv(tmp_path / "results" / "opt" / "report" / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) == {"TERMINATED"}
    assert trials["expectile"].between(0.6, 0.8).all() and trials["beta"].between(1.0, 5.0).all()
    assert trials["expectile"].nunique() == 3
    summary = pd.read_csv(tmp_path / "results" / "opt" / "report" / "summary.csv")
    assert len(summary) == 3 and (summary["seeds"] == 1).all()
    assert not (tmp_path / "results" / "opt" / "wandb").exists()  # mode: disabled


def _finished_steps(experiment: Path) -> dict[str, list[int]]:
    steps = {}
    for result in experiment.glob("*/result.json"):
        rows = [json.loads(x) for x in result.read_text().splitlines() if x.strip()]
        steps[result.parent.name] = [r["step"] for r in rows]
    return steps


def test_killed_sweep_resumes_without_rerunning_finished_trials(umaze_id, tmp_path, cli_in_process):
    """A packed sweep (packs of 2 over 3 configurations: one pack and one plain trial), its
    driver and Ray killed mid-way, resumed by a new driver: plain and packed trials restore
    through the same Tune checkpoint path (ray_trial.restored_state), so one variant covers
    both; a plain run's exact resume in-process is tests/test_training.py's. The resumed scores
    equal those of the same trials run uninterrupted, through the code a Ray trial runs."""
    pack = 2
    spec = tiny_spec(
        "resumable",
        [umaze_id],
        {"grid": {"expectile": [0.5, 0.7, 0.9], "seed": [0]}},
        steps=600,
        eval_every=100,
        checkpoint_every=100,
    )
    spec["resources"]["max_concurrent_trials"] = 1
    spec["resources"]["pack"] = pack
    spec_file = write_spec(tmp_path, spec)
    experiment = tmp_path / "results" / "resumable"

    driver = subprocess.Popen(
        [sys.executable, "-m", "iql_sweep.cli", "run", str(spec_file)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline:
        steps = _finished_steps(experiment)
        done = [t for t, s in steps.items() if s and s[-1] == 600]
        running = [t for t, s in steps.items() if s and s[-1] < 600]
        if done and running:
            break
        time.sleep(0.1)
    else:
        driver.kill()
        pytest.fail(f"the sweep never reached a mid-point: {steps}")
    # A second driver on the same folder is refused while the first is alive ...
    second = cli_in_process("resume", str(experiment), cwd=tmp_path)
    assert second.exit_code == 2, second.output[-2000:]
    assert "another driver" in " ".join(second.output.split())
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait()
    finished = {t: (experiment / t / "result.json").read_bytes() for t in done}

    partial = cli_in_process("report", str(experiment), cwd=tmp_path)  # of the partial sweep
    assert partial.exit_code == 0, partial.output[-3000:]
    partial_trials = pd.read_csv(experiment / "report" / "trials.csv")
    assert set(partial_trials.loc[partial_trials["steps_done"] == 600, "trial_dir"]) == set(done)
    assert (partial_trials["status"] != "TERMINATED").any()

    resumed = cli_in_process("resume", str(experiment), cwd=tmp_path)
    assert resumed.exit_code == 0, resumed.output[-3000:]
    for trial, content in finished.items():
        assert (experiment / trial / "result.json").read_bytes() == content  # not rerun
    trials = pd.read_csv(experiment / "report" / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) == {"TERMINATED"}
    assert (trials["steps_done"] == 600).all() and (trials["evaluations"] == 6).all()

    # Exact resume: the interrupted trials end where the same trials end uninterrupted, run by
    # the code a Ray trial runs (ray_trial.iql_trial: assemble, then the loop), on one thread
    # as each trial of 1 CPU.
    uninterrupted = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for trial in load_spec(spec_file).trial_configs():
            result = assemble(trial, torch.device("cpu")).loop([]).run()
            for k, member in enumerate(trial.members()):
                uninterrupted[member.expectile] = result.history[k][-1]["normalized_score"]
    finally:
        torch.set_num_threads(threads)
    assert sorted(uninterrupted) == sorted(trials["expectile"])
    for row in trials.itertuples():
        assert row.last_score == pytest.approx(uninterrupted[row.expectile], abs=1e-9), row


def test_requests_no_node_can_satisfy_are_refused_before_ray_waits(
    umaze_id, tmp_path, cli_in_process
):
    """A GPU on a machine without one: an error naming the field, the request and what the
    cluster offers, instead of a sweep waiting forever (more CPUs than a node has:
    tests/test_feasibility.py)."""
    for field, value, expected in (
        ("gpus_per_trial", 1, "resources.gpus_per_trial: a trial asks for 1 GPU"),
    ):
        spec = tiny_spec(f"infeasible-{field}", [umaze_id], {"grid": {"expectile": [0.7]}})
        spec["resources"][field] = value
        spec["wandb"]["mode"] = "disabled"
        result = cli_in_process("run", str(write_spec(tmp_path, spec)), cwd=tmp_path)
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and expected in text, text[-2000:]
        assert "which no node of this cluster has (2 CPU / 0 GPU" in text
        assert not (tmp_path / "results" / spec["name"] / "sweep_spec.yaml").exists()


def test_a_sweep_in_which_every_trial_failed_exits_non_zero(
    diverging_dataset, tmp_path, cli_in_process
):
    spec = tiny_spec("all-failed", [diverging_dataset], {"grid": {"seed": [0, 1]}})
    spec["resources"]["max_failures"] = 0
    spec["wandb"]["mode"] = "disabled"
    result = cli_in_process("run", str(write_spec(tmp_path, spec)), cwd=tmp_path)
    assert result.exit_code == 1, result.output[-3000:]
    assert "every one of the 2 configurations failed" in " ".join(result.output.split())
    assert (tmp_path / "results" / "all-failed" / "report" / "trials.csv").is_file()
