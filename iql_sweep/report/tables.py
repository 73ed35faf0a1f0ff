"""The report's interval estimates, built from the trials table: per configuration (tau, beta and
any other searched hyper-parameter) on each dataset and across datasets, for the last and the
best evaluation; the probabilities of improvement an ablation asks about (tau, beta or any other
searched setting, e.g. normalize_observations, against its baseline value); the best
configuration against each other one; performance profiles; the expected best score after
trying B configurations; and what is missing.

Scores are the normalised scores divided by 100. Only finished trials count (a failed or
unfinished trial's last evaluation is not a result); they and the datasets a configuration has
no finished run on are listed in the completeness table, never dropped silently or imputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from iql_sweep.data.ogbench_io import OGBenchTask, is_ogbench
from iql_sweep.report import stats

SCORES = {"last": "last_score", "best": "best_score"}
ALL = "all datasets"


@dataclass
class Aggregates:
    """The tables (and the profile curves) the report writes."""

    intervals: pd.DataFrame  # one row per scope x configuration x score x metric
    improvement: pd.DataFrame  # ablation pairs: each searched setting against its baseline
    best_vs_others: pd.DataFrame
    expected_max: pd.DataFrame
    profiles: pd.DataFrame  # threshold curves per configuration (last score, all datasets)
    completeness: pd.DataFrame  # per dataset x configuration: finished, failed, unfinished
    keys: list[str]
    reps: int
    seed: int
    notes: list[str] = field(default_factory=list)
    #: per benchmark dataset whose tasks are separate ids (OGBench) x configuration: the mean
    #: over its tasks of each task's mean over seeds, with its stratified-bootstrap interval
    task_averages: pd.DataFrame = field(default_factory=pd.DataFrame)


def label(config: dict[str, Any]) -> str:
    """'τ 0.7, β 3' (+ other searched values)."""
    parts = [f"τ {config['expectile']:g}", f"β {config['beta']:g}"]
    parts += [f"{k} {v}" for k, v in config.items() if k not in ("expectile", "beta")]
    return ", ".join(parts)


def _scores(finished: pd.DataFrame, column: str, datasets: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for d in datasets:
        values = finished.loc[finished["dataset"] == d, column].to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)] / 100.0
        if values.size:
            out[d] = values
    return out


def _runs(scores: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{d}: {v.size}" for d, v in scores.items())


def compute(
    trials: pd.DataFrame,
    datasets: list[str],
    keys: list[str],
    reps: int = stats.DEFAULT_REPS,
    seed: int = 0,
    baselines: dict[str, Any] | None = None,
) -> Aggregates:
    """Every table of the report's statistics from the trials table (see the module docs).
    ``baselines``: the value each searched setting but tau (always 0.5) is compared against
    (default: its smallest value, ``False`` for a switch)."""
    keys = ["expectile", "beta", *[k for k in keys if k not in ("expectile", "beta")]]
    finished = trials[(trials["status"] == "TERMINATED") & (trials["evaluations"] > 0)]
    configs = (
        trials[keys].drop_duplicates().sort_values(keys).to_dict("records") if len(trials) else []
    )
    rows, complete, scores_of = [], [], {}
    for config in configs:
        mask = np.logical_and.reduce([trials[k] == v for k, v in config.items()])
        mine, done = (
            trials[mask],
            finished[np.logical_and.reduce([finished[k] == v for k, v in config.items()])],
        )
        for d in datasets:
            at = mine[mine["dataset"] == d]
            complete.append(
                {
                    "dataset": d,
                    **config,
                    "configuration": label(config),
                    "finished": int((at["status"] == "TERMINATED").sum()),
                    "failed": int((at["status"] == "ERROR").sum()),
                    "unfinished": int((~at["status"].isin(["TERMINATED", "ERROR"])).sum()),
                }
            )
        for kind, column in SCORES.items():
            scores = _scores(done, column, datasets)
            scores_of[(label(config), kind)] = (config, scores)
            scopes = [(d, {d: v}) for d, v in scores.items()]
            if scores:
                scopes.append((ALL, scores))
            for scope, data in scopes:
                found = stats.intervals(data, stats.AGGREGATES, reps, seed)
                failed = mine["status"] == "ERROR"
                if scope != ALL:
                    failed &= mine["dataset"] == scope
                for metric, est in found.items():
                    rows.append(
                        {
                            "scope": scope,
                            **config,
                            "configuration": label(config),
                            "score": kind,
                            "metric": metric,
                            "estimate": est.estimate,
                            "ci_low": est.low,
                            "ci_high": est.high,
                            "runs": _runs(data),
                            "datasets": f"{len(data)} of {1 if scope != ALL else len(datasets)}",
                            "missing": ", ".join(d for d in datasets if d not in data)
                            if scope == ALL
                            else "",
                            "failed": int(failed.sum()),
                        }
                    )
    intervals = pd.DataFrame(rows)
    completeness = pd.DataFrame(complete)
    improvement = _ablation_pairs(scores_of, keys, reps, seed, baselines or {})
    best = _best_vs_others(intervals, scores_of, reps, seed)
    agg = Aggregates(
        intervals=intervals,
        improvement=improvement,
        best_vs_others=best,
        expected_max=_expected_max(finished, keys, datasets),
        profiles=_profiles(scores_of, reps, seed),
        completeness=completeness,
        keys=keys,
        reps=reps,
        seed=seed,
    )
    agg.notes = _notes(completeness, datasets)
    agg.task_averages = _task_averages(scores_of, datasets, reps, seed)
    return agg


def task_groups(datasets: list[str]) -> dict[str, list[str]]:
    """OGBench's datasets and their task ids among ``datasets`` (OGBench reports a dataset's
    score as the average over its five tasks)."""
    groups: dict[str, list[str]] = {}
    for d in datasets:
        if is_ogbench(d):
            task = OGBenchTask.parse(d)
            groups.setdefault(f"ogbench/{task.env_base}-{task.data_type}", []).append(d)
    return groups


def _task_averages(scores_of, datasets: list[str], reps: int, seed: int) -> pd.DataFrame:
    rows = []
    groups = task_groups(datasets)
    for (name, kind), (config, scores) in scores_of.items():
        if kind != "last":
            continue
        for group, tasks in groups.items():
            mine = {t: scores[t] for t in tasks if t in scores}
            if not mine:
                continue
            est = stats.interval(mine, stats.mean, reps, seed)
            rows.append(
                {
                    "dataset": group,
                    **config,
                    "configuration": name,
                    "task_average": est.estimate,
                    "ci_low": est.low,
                    "ci_high": est.high,
                    "tasks": f"{len(mine)} of {len(tasks)}",
                    "runs": _runs(mine),
                }
            )
    return pd.DataFrame(rows)


def score_scale(datasets: list[str]) -> str:
    """What the report's scores (/ 100) are, for the datasets it holds."""
    ogbench = [d for d in datasets if is_ogbench(d)]
    if ogbench and len(ogbench) == len(datasets):
        return "success rates (OGBench's singletask tasks; 1 = every episode succeeded)"
    if ogbench:
        return (
            "normalised scores / 100 (D4RL's: 1 = the expert reference; OGBench's tasks: the "
            "success rate)"
        )
    return "normalised scores / 100 (1 = the expert reference)"


def _pair(first, second, reps, seed, **info) -> dict[str, Any] | None:
    """P(first > second) over their shared datasets, or None when they share none."""
    (_, xs), (_, ys) = first, second
    if not set(xs) & set(ys):
        return None
    p = stats.improvement_probability(xs, ys, reps, seed)
    return {
        **info,
        "probability": p.estimate,
        "ci_low": p.low,
        "ci_high": p.high,
        "datasets": len(set(xs) & set(ys)),
    }


def _baseline(values: set[Any], preferred: Any) -> Any:
    """The preferred baseline when it was searched, else the smallest value (None if empty)."""
    if preferred is not None and preferred in values:
        return preferred
    return min(values) if values else None


def _ablation_pairs(scores_of, keys, reps, seed, baselines) -> pd.DataFrame:
    """Each tau against tau = 0.5 (at every beta), each beta against the baseline beta (the
    spec's first; at every tau), and each value of any other searched setting against its
    baseline (at every other configuration), for the last and the best evaluation."""
    rows = []
    configs = {lbl: cfg for (lbl, _), (cfg, _) in scores_of.items()}
    base_beta = _baseline({c["beta"] for c in configs.values()}, baselines.get("beta"))
    varied = [("expectile", 0.5), ("beta", base_beta)]
    for key in keys:
        if key not in ("expectile", "beta"):
            values = {c[key] for c in configs.values()}
            if len(values) > 1:
                varied.append((key, _baseline(values, baselines.get(key))))
    names = {"expectile": "τ", "beta": "β"}
    for kind in SCORES:
        for lbl, cfg in configs.items():
            for vary, base in varied:
                if base is None or cfg[vary] == base:
                    continue
                ref = {**cfg, vary: base}
                ref_lbl = next((m for m, c in configs.items() if c == ref), None)
                if ref_lbl is None:
                    continue
                row = _pair(
                    scores_of[(lbl, kind)],
                    scores_of[(ref_lbl, kind)],
                    reps,
                    seed,
                    ablation=names.get(vary, vary),
                    score=kind,
                    comparison=f"{lbl} vs {ref_lbl}",
                    x=lbl,
                    y=ref_lbl,
                )
                if row is not None:
                    rows.append(row)
    return pd.DataFrame(rows)


def _best_vs_others(intervals, scores_of, reps, seed) -> pd.DataFrame:
    """The configuration with the highest IQM of the last evaluation across datasets, and
    P(best > other) for every other one."""
    if intervals.empty:
        return pd.DataFrame()
    pool = intervals[(intervals["scope"] == ALL) & (intervals["metric"] == "iqm")]
    pool = pool[pool["score"] == "last"] if len(pool) else pool
    if pool.empty:
        return pd.DataFrame()
    best = pool.loc[pool["estimate"].idxmax(), "configuration"]
    rows = []
    for (lbl, kind), entry in scores_of.items():
        if kind != "last" or lbl == best:
            continue
        row = _pair(scores_of[(best, "last")], entry, reps, seed, best=best, other=lbl)
        if row is not None:
            rows.append(row)
    return pd.DataFrame(rows)


def _expected_max(finished: pd.DataFrame, keys: list[str], datasets: list[str]) -> pd.DataFrame:
    """Per dataset: the expected best mean score (over seeds) after trying B configurations."""
    rows = []
    for d in datasets:
        at = finished[finished["dataset"] == d]
        if at.empty:
            continue
        means = at.groupby(keys)[["last_score", "best_score"]].mean()
        curves = {k: stats.expected_max_curve(means[c].to_numpy()) for k, c in SCORES.items()}
        for b in range(1, len(means) + 1):
            rows.append(
                {
                    "dataset": d,
                    "budget": b,
                    "configurations": len(means),
                    **{k: float(v[b - 1]) for k, v in curves.items()},
                }
            )
    return pd.DataFrame(rows)


def _profiles(scores_of, reps, seed) -> pd.DataFrame:
    """Performance profiles of the last evaluation over all datasets, per configuration."""
    entries = {lbl: s for (lbl, kind), (_, s) in scores_of.items() if kind == "last" and s}
    if not entries:
        return pd.DataFrame()
    top = max(v.max() for s in entries.values() for v in s.values())
    thresholds = np.linspace(0.0, max(1.0, float(top)) * 1.05, 61)
    rows = []
    for lbl, scores in entries.items():
        point, low, high = stats.performance_profile(scores, thresholds, reps, seed)
        rows += [
            {"configuration": lbl, "threshold": t, "fraction": p, "ci_low": lo, "ci_high": hi}
            for t, p, lo, hi in zip(thresholds, point, low, high)
        ]
    return pd.DataFrame(rows)


def _notes(completeness: pd.DataFrame, datasets: list[str]) -> list[str]:
    """Plain statements of what is missing or uneven."""
    if completeness.empty:
        return ["no trial has finished yet"]
    notes = []
    counts = completeness.loc[completeness["finished"] > 0, "finished"]
    if counts.nunique() > 1:
        notes.append(
            f"unequal seed counts: {counts.min()} to {counts.max()} finished runs per dataset "
            "and configuration (every interval states its runs)"
        )
    failed = int(completeness["failed"].sum())
    if failed:
        notes.append(f"{failed} failed trial(s) left out of every figure (listed below)")
    unfinished = int(completeness["unfinished"].sum())
    if unfinished:
        notes.append(f"{unfinished} unfinished trial(s) left out (the sweep is partial)")
    empty = completeness[completeness["finished"] == 0]
    for d in datasets:
        missing = empty[empty["dataset"] == d]["configuration"].tolist()
        if missing:
            notes.append(f"{d}: no finished run for {len(missing)} configuration(s)")
    if notes or counts.empty:
        return notes or ["no trial has finished yet"]
    return [f"complete: {counts.iloc[0]} finished run(s) per dataset and configuration"]


def _cell(row) -> str:
    return f"{row.estimate:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]"


def markdown(agg: Aggregates) -> str:
    """The report's statistics sections."""
    datasets = list(dict.fromkeys(agg.completeness["dataset"])) if len(agg.completeness) else []
    head = (
        f"95 % stratified-bootstrap intervals ({agg.reps} resamples, seed {agg.seed}); scores "
        f"are {score_scale(datasets)}; finished runs only."
    )
    parts = ["## Interval estimates over seeds", "", head, ""]
    parts += [f"- {note}" for note in agg.notes] + [""]
    if agg.intervals.empty:
        return "\n".join(parts)
    if len(agg.task_averages):
        groups = list(dict.fromkeys(agg.task_averages["dataset"]))
        parts += [
            "### Task average per OGBench dataset, last evaluation",
            "",
            "The mean over a dataset's tasks of each task's mean success rate over seeds (how "
            "OGBench reports a dataset), with its interval (seeds resampled within each task).",
            "",
            "| configuration | " + " | ".join(groups) + " |",
            "|---" * (len(groups) + 1) + "|",
        ]
        for name, block in agg.task_averages.groupby("configuration", sort=False):
            by = {
                r.dataset: f"{r.task_average:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] "
                f"({r.tasks} tasks)"
                for r in block.itertuples()
            }
            parts.append(f"| {name} | " + " | ".join(by.get(g, "—") for g in groups) + " |")
        parts.append("")
    ints = agg.intervals[agg.intervals["score"] == "last"]
    pooled = ints[ints["scope"] == ALL]
    metrics = ["iqm", "mean", "median", "optimality_gap"]
    parts += [
        "### Across datasets, last evaluation",
        "",
        "| configuration | IQM | mean | median | optimality gap | runs | datasets |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, block in pooled.groupby("configuration", sort=False):
        cells = {r.metric: _cell(r) for r in block.itertuples()}
        first = block.iloc[0]
        missing = f" (missing: {first['missing']})" if first["missing"] else ""
        parts.append(
            f"| {name} | "
            + " | ".join(cells[m] for m in metrics)
            + f" | {first['runs']} | {first['datasets']}{missing} |"
        )
    per = ints[(ints["scope"] != ALL) & (ints["metric"] == "iqm")]
    datasets = list(dict.fromkeys(per["scope"]))
    if len(datasets) > 1:
        parts += ["", "### IQM per dataset, last evaluation", ""]
        parts += [
            "| configuration | " + " | ".join(datasets) + " |",
            "|---" * (len(datasets) + 1) + "|",
        ]
        for name, block in per.groupby("configuration", sort=False):
            by = {r.scope: f"{_cell(r)} (n={r.runs.split(': ')[-1]})" for r in block.itertuples()}
            parts.append(f"| {name} | " + " | ".join(by.get(d, "—") for d in datasets) + " |")
    last = agg.improvement[agg.improvement["score"] == "last"] if len(agg.improvement) else None
    if last is not None and len(last):
        parts += [
            "",
            "### Probability of improvement, last evaluation",
            "",
            "| ablation | X vs Y | P(X > Y) | datasets |",
            "|---|---|---|---|",
        ]
        for r in last.itertuples():
            parts.append(
                f"| {r.ablation} | {r.comparison} | {r.probability:.2f} "
                f"[{r.ci_low:.2f}, {r.ci_high:.2f}] | {r.datasets} |"
            )
    if len(agg.best_vs_others):
        best = agg.best_vs_others["best"].iloc[0]
        parts += [
            "",
            f"### The best configuration ({best}, highest IQM) against each other",
            "",
            "| other | P(best > other) | datasets |",
            "|---|---|---|",
        ]
        for r in agg.best_vs_others.itertuples():
            parts.append(
                f"| {r.other} | {r.probability:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] | "
                f"{r.datasets} |"
            )
    if len(agg.expected_max):
        parts += ["", "### Expected best score after trying B configurations (last evaluation)", ""]
        for dataset, block in agg.expected_max.groupby("dataset", sort=False):
            budgets = _budgets(len(block))
            shown = block[block["budget"].isin(budgets)]
            parts += [
                f"{dataset}: "
                + ", ".join(f"B={int(r.budget)}: {r.last:.1f}" for r in shown.itertuples())
            ]
    return "\n".join(parts) + "\n"


def _budgets(n: int) -> list[int]:
    """The budgets worth a column: all up to 10, then a few."""
    if n <= 10:
        return list(range(1, n + 1))
    return sorted({1, 2, 3, 5, 10, 20, 50, 100, n} & set(range(1, n + 1)))
