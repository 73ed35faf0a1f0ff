"""Interval estimates for the paper experiments of docs/paper_experiments.md (§2, §3), from the
per-seed last scores recorded there (the 2026-11-25 runs; their experiment folders were not
kept). Prints the Markdown tables pasted into that page:

    .venv/bin/python docs/paper_intervals.py
"""

from __future__ import annotations

import numpy as np

from iql_sweep.report.stats import AGGREGATES, improvement_probability, intervals

# dataset -> tau -> last normalised score per seed (0-100), as recorded in paper_experiments.md
RECORDED = {
    "corrupted u-maze (30k updates, β 10)": {
        0.5: [16.5, 22.6, 21.3],
        0.7: [31.4, 28.6, 29.5],
        0.9: [45.9, 64.0, 54.0],
    },
    "PointMaze medium (50k updates, β 3)": {
        0.5: [19.8, 24.2],
        0.7: [10.6, 19.3],
        0.9: [25.9, 17.8],
    },
    "PointMaze large (30k updates, β 3)": {0.5: [46.9, 43.5], 0.7: [71.6, 59.9], 0.9: [53.6, 49.8]},
}
REPS, SEED = 2000, 0


def main() -> None:
    print("| dataset | τ | IQM | mean | optimality gap | seeds |")
    print("|---|---|---|---|---|---|")
    for dataset, taus in RECORDED.items():
        for tau, scores in taus.items():
            found = intervals({dataset: np.array(scores) / 100}, AGGREGATES, REPS, SEED)
            cells = [found[m].text() for m in ("iqm", "mean", "optimality_gap")]
            print(f"| {dataset} | {tau:g} | " + " | ".join(cells) + f" | {len(scores)} |")
    print()
    print("| dataset | comparison | P(X > Y) |")
    print("|---|---|---|")
    for dataset, taus in RECORDED.items():
        for tau in (0.7, 0.9):
            x = {dataset: np.array(taus[tau]) / 100}
            y = {dataset: np.array(taus[0.5]) / 100}
            p = improvement_probability(x, y, REPS, SEED)
            print(f"| {dataset} | τ {tau:g} vs τ 0.5 | {p.text()} |")
    pooled = {d: {t: np.array(v) / 100 for t, v in taus.items()} for d, taus in RECORDED.items()}
    plain = [d for d in pooled if d.startswith("PointMaze")]
    for tau in (0.7, 0.9):
        p = improvement_probability(
            {d: pooled[d][tau] for d in plain}, {d: pooled[d][0.5] for d in plain}, REPS, SEED
        )
        print(f"| both plain mazes | τ {tau:g} vs τ 0.5 | {p.text()} |")


if __name__ == "__main__":
    main()
