"""Result tables of a (complete or partial) sweep: long, summary and tau x beta pivots.

"last" is each trial's final evaluation, "best" its maximum over evaluations (CORL reports both);
means and standard deviations are over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iql_sweep.errors import ConfigError
from iql_sweep.experiment import Experiment
from iql_sweep.files import atomic_write, atomic_write_text
from iql_sweep.report import stats
from iql_sweep.report import tables as interval_tables
from iql_sweep.report.tables import Aggregates
from iql_sweep.trial_config import TrialConfig

KEYS = ["dataset", "expectile", "beta"]


@dataclass
class SweepResults:
    """Everything the report is built from."""

    trials: pd.DataFrame  # one row per trial
    history: pd.DataFrame  # one row per (trial, evaluation)
    extra_keys: list[str]  # other searched hyper-parameters


def _error_reason(trial_path: Path) -> str | None:
    error = trial_path / "error.txt"
    if not error.is_file():
        return None
    lines = [ln.strip() for ln in error.read_text().splitlines() if ln.strip()]
    causes = [ln for ln in lines if "Error" in ln.split(":")[0]]
    return (causes[-1] if causes else lines[-1])[:500] if lines else "failed"


def _last(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].iloc[-1]) if column in frame and len(frame) else np.nan


def _configurations(trial, hist: pd.DataFrame, error: str | None):
    """(id, resolved config, seed, history, status, error) per configuration of a trial: one for
    a plain trial, one per member of a pack (metrics under its prefix)."""
    config = TrialConfig.model_validate(trial.config)
    for k, cfg, member in config.configurations():
        config_id = config.member_id(trial.trial_id, k)
        if not config.packed:
            yield config_id, cfg, member.seed, hist, trial.status, error
            continue
        prefix = config.metric_prefix(k)
        columns = {c: c[len(prefix) :] for c in hist.columns if c.startswith(prefix)}
        member_hist = hist[["step", *columns]].rename(columns=columns)
        if "score" in member_hist:
            member_hist = member_hist[member_hist["score"].notna()]
        else:
            member_hist = pd.DataFrame(columns=["step", "score"])
        failed_key = config.failed_key(k)
        failed = failed_key in hist and len(hist) and hist[failed_key].iloc[-1] == 1
        status = "ERROR" if failed else trial.status
        reason = str(hist[config.error_key(k)].iloc[-1]) if failed else error
        yield config_id, cfg, member.seed, member_hist, status, reason


def _phase_scores(hist: pd.DataFrame) -> dict[str, float]:
    """A fine-tuning trial's last offline and last online score (empty for offline trials)."""
    if "phase" not in hist or not (hist["phase"] == "online").any():
        return {}
    offline = hist[hist["phase"] == "offline"]
    online = hist[hist["phase"] == "online"]
    return {"offline_score": _last(offline, "score"), "finetuned_score": _last(online, "score")}


def load_results(experiment: Path) -> SweepResults:
    """Read a Ray Tune experiment folder into pandas, without starting Ray."""
    from ray.tune import ExperimentAnalysis

    experiment = Path(experiment).resolve()
    if not experiment.is_dir():
        raise ConfigError(f"EXPERIMENT_DIR: no such folder {experiment}")
    try:
        analysis = ExperimentAnalysis(str(experiment), default_metric="score", default_mode="max")
    except Exception as err:  # noqa: BLE001 - Ray raises several types for an unreadable folder
        raise ConfigError(
            f"EXPERIMENT_DIR: {experiment} is not a Ray Tune experiment ({err})"
        ) from err
    # Hyper-parameters that vary across trials besides tau and beta get their own columns.
    values: dict[str, set[str]] = {}
    for trial in analysis.trials:
        for key, value in TrialConfig.model_validate(trial.config).overrides().items():
            values.setdefault(key, set()).add(repr(value))
    searched = {k for k, v in values.items() if len(v) > 1}
    rows, histories = [], []
    for trial in analysis.trials:
        path = Path(trial.path)
        hist = analysis.trial_dataframes.get(trial.trial_id)
        if hist is None or hist.empty or "step" not in hist:
            hist = pd.DataFrame(columns=["step", "score"])
        # A restored trial re-runs the iterations after its last checkpoint: keep the last copy.
        hist = hist.drop_duplicates("step", keep="last").sort_values("step")
        error = _error_reason(path) if trial.status == "ERROR" else None
        for config_id, cfg, seed, member_hist, status, reason in _configurations(
            trial, hist, error
        ):
            row: dict[str, Any] = {
                "trial_id": config_id,
                "dataset": trial.config["dataset"],
                "expectile": cfg.expectile,
                "beta": cfg.beta,
                "seed": seed,
                **{k: getattr(cfg, k) for k in sorted(searched - {"expectile", "beta"})},
                "status": status,
                "error": reason,
                "steps_done": int(member_hist["step"].max()) if len(member_hist) else 0,
                "steps_planned": int(TrialConfig.model_validate(trial.config).run.steps),
                "evaluations": len(member_hist),
                "last_score": _last(member_hist, "score"),
                "best_score": float(member_hist["score"].max()) if len(member_hist) else np.nan,
                "last_return": _last(member_hist, "return_mean"),
                **_phase_scores(member_hist),
                "wall_seconds": _last(hist, "time_total_s"),
                "trial_dir": path.name,
            }
            rows.append(row)
            if len(member_hist):
                cols = ["step", "score"] + (["phase"] if "phase" in member_hist else [])
                h = member_hist[cols].copy()
                for k in ("trial_id", "dataset", "expectile", "beta", "seed"):
                    h[k] = row[k]
                histories.append(h)
    trials = pd.DataFrame(rows)
    if not trials.empty:
        trials = trials.sort_values(["dataset", "expectile", "beta", "seed"], kind="stable")
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame()
    return SweepResults(
        trials.reset_index(drop=True), history, sorted(searched - {"expectile", "beta"})
    )


def summarize(results: SweepResults) -> pd.DataFrame:
    """Mean +- std over seeds of the last and best score per dataset x tau x beta (x others)."""
    keys = KEYS + [k for k in results.extra_keys if k != "max_steps"]
    done = results.trials[results.trials["evaluations"] > 0]
    if done.empty:
        return pd.DataFrame(columns=[*keys, "last_mean", "last_std", "best_mean", "best_std"])
    grouped = done.groupby(keys, dropna=False)
    summary = grouped.agg(
        last_mean=("last_score", "mean"),
        last_std=("last_score", "std"),
        best_mean=("best_score", "mean"),
        best_std=("best_score", "std"),
        seeds=("seed", "nunique"),
        complete=("status", lambda s: int((s == "TERMINATED").sum())),
    ).reset_index()
    summary[["last_std", "best_std"]] = summary[["last_std", "best_std"]].fillna(0.0)
    if "finetuned_score" in done:
        phases = grouped.agg(
            offline_mean=("offline_score", "mean"),
            offline_std=("offline_score", "std"),
            finetuned_mean=("finetuned_score", "mean"),
            finetuned_std=("finetuned_score", "std"),
        ).reset_index(drop=True)
        summary = pd.concat(
            [summary, phases.fillna({"offline_std": 0.0, "finetuned_std": 0.0})], axis=1
        )
    return summary


def pivot(summary: pd.DataFrame, column: str = "last_mean") -> pd.DataFrame:
    """tau x beta per dataset, plus an 'overall' block (mean over datasets)."""
    if summary.empty:
        return pd.DataFrame()
    table = summary.pivot_table(index=["dataset", "expectile"], columns="beta", values=column)
    overall = summary.groupby(["expectile", "beta"])[column].mean().unstack("beta")
    overall.index = pd.MultiIndex.from_product(
        [["overall"], overall.index], names=table.index.names
    )
    return pd.concat([table, overall])


def markdown(summary: pd.DataFrame) -> str:
    """Per dataset (and overall) a tau x beta table of 'last mean ± std (best mean)'."""
    if summary.empty:
        return "_no trial has reported an evaluation yet_\n"
    parts = []
    blocks = [(d, g) for d, g in summary.groupby("dataset")]
    if len(blocks) > 1:
        overall = (
            summary.groupby(["expectile", "beta"])
            .agg(
                last_mean=("last_mean", "mean"),
                last_std=("last_std", "mean"),
                best_mean=("best_mean", "mean"),
                seeds=("seeds", "min"),
            )
            .reset_index()
        )
        blocks.append(("overall (mean over datasets)", overall))
    for name, group in blocks:
        betas = sorted(group["beta"].unique())
        lines = [f"### {name}", "", "| τ \\ β | " + " | ".join(f"{b:g}" for b in betas) + " |"]
        lines.append("|---" * (len(betas) + 1) + "|")
        for tau, g in group.groupby("expectile"):
            cells = []
            for b in betas:
                cell = g[g["beta"] == b]
                if cell.empty:
                    cells.append("")
                    continue
                r = cell.iloc[0]
                best = f"best {r.best_mean:.1f}, n={int(r.seeds)}"
                cells.append(f"{r.last_mean:.1f} ± {r.last_std:.1f} ({best})")
            lines.append(f"| {tau:g} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    legend = (
        "Cells: mean ± std over seeds of the last evaluation's normalised score (OGBench's "
        "tasks: the success rate × 100); best = mean over seeds of each seed's best evaluation."
    )
    if "finetuned_mean" in summary:
        lines = [
            "### offline → online fine-tuning",
            "",
            "| dataset | τ | β | offline | fine-tuned | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for r in summary.itertuples():
            lines.append(
                f"| {r.dataset} | {r.expectile:g} | {r.beta:g} | "
                f"{r.offline_mean:.1f} ± {r.offline_std:.1f} | "
                f"{r.finetuned_mean:.1f} ± {r.finetuned_std:.1f} | {int(r.seeds)} |"
            )
        parts.append("\n".join(lines))
        legend += (
            " Fine-tuning: the last offline evaluation and the last online one, mean ± std over "
            "seeds."
        )
    return "\n\n".join(parts) + "\n\n" + legend + "\n"


@dataclass
class ReportFiles:
    folder: Path
    markdown: str
    trials: pd.DataFrame
    summary: pd.DataFrame
    aggregates: Aggregates | None = None


def _spec_facts(experiment: Experiment, trials: pd.DataFrame) -> tuple[list[str], dict[str, Any]]:
    """The sweep's datasets (also those without a single trial yet) and the baseline of each
    grid dimension's ablation (the spec's first value), from the experiment's spec."""
    datasets = list(dict.fromkeys(trials["dataset"])) if len(trials) else []
    if not experiment.holds_sweep():
        return datasets, {}
    spec = experiment.spec
    baselines = {k: v[0] for k, v in (spec.search.grid or {}).items() if v}
    return list(dict.fromkeys(spec.datasets + datasets)), baselines


def write_report(experiment: Path, reps: int = stats.DEFAULT_REPS, seed: int = 0) -> ReportFiles:
    """Write the tables (trials, summary, pivots, interval estimates, improvement, expected
    best), report.md, the plots and the self-contained page report/index.html."""
    from iql_sweep.report import plots as sweep_plots
    from iql_sweep.report.page import write_page

    folder_of = Experiment(experiment)
    experiment = folder_of.path
    results = load_results(experiment)
    summary = summarize(results)
    folder = folder_of.report_dir
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "trials.csv", lambda p: results.trials.to_csv(p, index=False))
    atomic_write(folder / "summary.csv", lambda p: summary.to_csv(p, index=False))
    atomic_write(folder / "pivot_last.csv", lambda p: pivot(summary, "last_mean").to_csv(p))
    atomic_write(folder / "pivot_best.csv", lambda p: pivot(summary, "best_mean").to_csv(p))
    if not results.history.empty:
        atomic_write(folder / "curves.csv", lambda p: results.history.to_csv(p, index=False))
    datasets, baselines = _spec_facts(folder_of, results.trials)
    spec_text = folder_of.spec_text()
    agg = None
    if not results.trials.empty:
        keys = [k for k in results.extra_keys if k != "max_steps"]
        agg = interval_tables.compute(
            results.trials, datasets, keys, reps=reps, seed=seed, baselines=baselines
        )
        tables = {
            "aggregates.csv": agg.intervals,
            "improvement.csv": agg.improvement,
            "best_vs_others.csv": agg.best_vs_others,
            "expected_max.csv": agg.expected_max,
            "profiles.csv": agg.profiles,
            "completeness.csv": agg.completeness,
        }
        if len(agg.task_averages):
            tables["task_averages.csv"] = agg.task_averages
        for name, table in tables.items():
            atomic_write(folder / name, lambda p, t=table: t.to_csv(p, index=False))
    text = markdown(summary)
    if agg is not None:
        text += "\n" + interval_tables.markdown(agg)
    failed = results.trials[results.trials["status"] == "ERROR"] if len(results.trials) else []
    if len(failed):
        text += (
            "\nFailed trials:\n\n"
            + "\n".join(f"- {r.trial_dir}: {r.error}" for r in failed.itertuples())
            + "\n"
        )
    atomic_write_text(folder / "report.md", text)
    sweep_plots.plot_tau_ablation(summary, folder / "tau_ablation.png")
    sweep_plots.plot_heatmaps(summary, folder / "heatmap.png")
    sweep_plots.plot_learning_curves(results.history, folder / "learning_curves.png")
    if agg is not None:
        sweep_plots.plot_performance_profiles(agg.profiles, folder / "profiles.png")
        sweep_plots.plot_expected_max(agg.expected_max, folder / "expected_max.png")
    write_page(folder, experiment.name, summary, agg, results.trials, spec_text)
    return ReportFiles(folder, text, results.trials, summary, agg)
