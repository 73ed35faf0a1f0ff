"""The report as one self-contained page (``report/index.html``): the tables, the interval
estimates, every plot (embedded as data URIs), the failed trials with their reasons and the spec
that produced it. It opens from the file system, needs no server, loads nothing else and runs
no script."""

from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import pandas as pd

from iql_sweep.report.tables import ALL, Aggregates, score_scale

PAGE = "index.html"
PLOTS = (
    ("tau_ablation.png", "Score against τ per dataset (mean ± std over seeds)"),
    ("heatmap.png", "τ × β per dataset (mean last score)"),
    ("profiles.png", "Performance profiles (95 % bands)"),
    ("expected_max.png", "Expected best score after trying B configurations"),
    ("learning_curves.png", "Learning curves"),
)
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; }
.note { color: #555; } .failed { color: #a00; }
"""


def _table(frame: pd.DataFrame, table_id: str, digits: int = 3) -> str:
    if frame is None or frame.empty:
        return '<p class="note">nothing to show yet</p>'
    return frame.to_html(
        index=False, table_id=table_id, na_rep="—", float_format=lambda v: f"{v:.{digits}f}"
    )


def _interval_table(agg: Aggregates) -> pd.DataFrame:
    """Across datasets, last evaluation: one row per configuration, 'estimate [low, high]'."""
    if agg.intervals.empty:
        return pd.DataFrame()
    pooled = agg.intervals[(agg.intervals["scope"] == ALL) & (agg.intervals["score"] == "last")]
    rows = []
    for name, block in pooled.groupby("configuration", sort=False):
        row = {"configuration": name}
        for r in block.itertuples():
            row[r.metric] = f"{r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
        first = block.iloc[0]
        row.update(runs=first["runs"], datasets=first["datasets"], missing=first["missing"])
        rows.append(row)
    return pd.DataFrame(rows)


def _image(folder: Path, name: str, caption: str) -> str:
    path = folder / name
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure id="plot-{path.stem}"><img alt="{html.escape(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption>'
        "</figure>"
    )


def _scale_note(trials: pd.DataFrame) -> str:
    datasets = list(dict.fromkeys(trials["dataset"])) if len(trials) else []
    return f"Scores: {score_scale(datasets)}; the summary shows them × 100."


def write_page(
    folder: Path,
    name: str,
    summary: pd.DataFrame,
    agg: Aggregates | None,
    trials: pd.DataFrame,
    spec_text: str,
) -> Path:
    """Write ``folder/index.html`` from the report's tables and the PNGs already in ``folder``."""
    status = trials["status"].value_counts().to_dict() if len(trials) else {}
    counts = ", ".join(f"{v} {k.lower()}" for k, v in status.items()) or "no trials yet"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>iql-sweep report: {html.escape(name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>iql-sweep report: {html.escape(name)}</h1>",
        f'<p class="note">{len(trials)} configurations ({html.escape(counts)}); written '
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}. {html.escape(_scale_note(trials))}</p>",
        "<h2>Summary: mean ± std over seeds</h2>",
        _table(summary, "summary", digits=2),
    ]
    if agg is not None:
        parts += [
            "<h2>Interval estimates over seeds</h2>",
            f'<p class="note">95 % stratified-bootstrap intervals ({agg.reps} resamples, seed '
            f"{agg.seed}) of the last evaluation across datasets; scores / 100; finished runs "
            "only.</p>",
            "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in agg.notes) + "</ul>",
            _table(_interval_table(agg), "intervals"),
            *(
                [
                    "<h3>Task average per OGBench dataset (success rate, last evaluation)</h3>",
                    _table(agg.task_averages, "task-averages", digits=2),
                ]
                if len(agg.task_averages)
                else []
            ),
            "<h3>Probability of improvement (each searched setting against its baseline)</h3>",
            _table(agg.improvement, "improvement"),
            "<h3>The best configuration against each other one</h3>",
            _table(agg.best_vs_others, "best-vs-others"),
            "<h3>Expected best score after trying B configurations</h3>",
            _table(agg.expected_max, "expected-max", digits=2),
            "<h3>Completeness</h3>",
            _table(agg.completeness, "completeness"),
        ]
    parts.append("<h2>Plots</h2>")
    parts += [_image(folder, file, caption) for file, caption in PLOTS]
    failed = trials[trials["status"] == "ERROR"] if len(trials) else pd.DataFrame()
    parts.append(f'<h2 class="{"failed" if len(failed) else ""}">Failed trials</h2>')
    if len(failed):
        parts.append(
            _table(failed[["trial_id", "dataset", "expectile", "beta", "seed", "error"]], "failed")
        )
    else:
        parts.append('<p class="note">none</p>')
    parts += [
        "<h2>The spec</h2>",
        f'<pre id="spec">{html.escape(spec_text) or "(no spec copy in the folder)"}</pre>',
        "</body></html>",
    ]
    path = folder / PAGE
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
