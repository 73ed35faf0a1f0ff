"""The report's statistics against independent computations: hand values, scipy, brute force,
a loop-by-loop bootstrap, and the coverage of the intervals on data with a known mean."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from iql_sweep.report.stats import (
    expected_max,
    expected_max_curve,
    improvement_probability,
    interval,
    iqm,
    mean,
    median,
    optimality_gap,
    performance_profile,
)

# Unequal seed counts on purpose: dataset a has 4 runs, b has 3.
TABLE = {"a": np.array([0.1, 0.5, 0.6, 0.9]), "b": np.array([0.2, 0.3, 0.8])}


def test_point_aggregates_by_hand():
    groups = list(TABLE.values())
    # pooled, sorted: .1 .2 .3 .5 .6 .8 .9; floor(7/4) = 1 cut from each end
    assert iqm([g[None] for g in groups])[0] == pytest.approx((0.2 + 0.3 + 0.5 + 0.6 + 0.8) / 5)
    assert iqm([g[None] for g in groups])[0] == pytest.approx(
        scipy_stats.trim_mean(np.concatenate(groups), 0.25)
    )
    assert mean([g[None] for g in groups])[0] == pytest.approx((0.525 + 13 / 30) / 2)
    assert median([g[None] for g in groups])[0] == pytest.approx((0.525 + 13 / 30) / 2)
    assert median([TABLE["a"][None]])[0] == pytest.approx(0.55)  # one dataset: over its runs
    # optimality gap: 1 - mean(min(x, 1)); a score above 1 counts as 1
    assert optimality_gap([np.array([[0.5, 1.5, 0.0]])])[0] == pytest.approx(1 - 1.5 / 3)


def test_iqm_interval_equals_a_loop_bootstrap_with_the_same_draws():
    reps, seed = 500, 7
    got = interval(TABLE, iqm, reps=reps, seed=seed)
    rng = np.random.default_rng(seed)
    index = {d: rng.integers(0, x.size, size=(reps, x.size)) for d, x in TABLE.items()}
    values = [
        scipy_stats.trim_mean(np.concatenate([TABLE[d][index[d][r]] for d in TABLE]), 0.25)
        for r in range(reps)
    ]
    low, high = np.percentile(values, [2.5, 97.5])
    assert got.estimate == pytest.approx(0.48)
    assert (got.low, got.high) == pytest.approx((low, high))
    assert got.low <= got.estimate <= got.high
    assert interval(TABLE, iqm, reps=reps, seed=seed) == got  # seeded: reproducible
    wide = {"a": np.random.default_rng(0).normal(size=30)}
    assert interval(wide, iqm, seed=1) != interval(wide, iqm, seed=2)


def test_probability_of_improvement_matches_mann_whitney():
    x = {"a": np.array([0.3, 0.7, 0.7, 0.9]), "b": np.array([0.1, 0.4])}
    y = {"a": np.array([0.2, 0.7, 0.8]), "b": np.array([0.4, 0.5, 0.6]), "c": np.array([1.0])}
    expected = np.mean(
        [
            scipy_stats.mannwhitneyu(x[d], y[d]).statistic / (x[d].size * y[d].size)
            for d in ("a", "b")  # c: only y has it
        ]
    )
    got = improvement_probability(x, y, reps=300, seed=0)
    assert got.estimate == pytest.approx(expected)
    assert 0.0 <= got.low <= got.estimate <= got.high <= 1.0
    # symmetry: P(X > Y) + P(Y > X) = 1 with ties split
    assert improvement_probability(y, x, reps=10).estimate == pytest.approx(1 - expected)
    same = improvement_probability(x, x, reps=50)
    assert same.estimate == pytest.approx(0.5)


def test_performance_profile_counts_runs_above_each_threshold():
    thresholds = np.array([0.0, 0.25, 0.55, 0.95])
    point, low, high = performance_profile(TABLE, thresholds, reps=200)
    by_hand = [np.mean([(x > t).mean() for x in TABLE.values()]) for t in thresholds]
    np.testing.assert_allclose(point, by_hand)
    assert (low <= point + 1e-12).all() and (point <= high + 1e-12).all()
    assert np.all(np.diff(point) <= 0)  # a profile never rises


def test_expected_max_is_the_mean_best_of_every_subset():
    values = [0.3, 0.9, 0.1, 0.5, 0.5, 0.7, 0.2]
    for budget in range(1, len(values) + 1):
        brute = np.mean([max(c) for c in itertools.combinations(values, budget)])
        assert expected_max(values, budget) == pytest.approx(brute)
    curve = expected_max_curve(values)
    assert curve[0] == pytest.approx(np.mean(values)) and curve[-1] == pytest.approx(0.9)
    assert np.all(np.diff(curve) >= -1e-12)
    with pytest.raises(ValueError):
        expected_max(values, 0)


def test_intervals_cover_a_known_mean_at_about_the_nominal_rate():
    """Three datasets with known means, 10 seeds each, 300 repetitions: the 95 % interval of
    the mean should cover the true mean about 95 % of the time (percentile bootstraps run a
    little under nominal at this sample size)."""
    truth = {"a": 0.2, "b": 0.5, "c": 0.9}
    true_mean = np.mean(list(truth.values()))
    rng = np.random.default_rng(123)
    covered = 0
    repetitions = 300
    for rep in range(repetitions):
        data = {d: rng.normal(mu, 0.15, size=10) for d, mu in truth.items()}
        ci = interval(data, mean, reps=1000, seed=rep)
        covered += ci.low <= true_mean <= ci.high
    rate = covered / repetitions
    assert 0.88 <= rate <= 0.99, rate


def test_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="at least one score"):
        interval({"a": np.array([])}, iqm)
    with pytest.raises(ValueError, match="share no dataset"):
        improvement_probability({"a": np.array([1.0])}, {"b": np.array([1.0])})


def test_a_report_of_only_failed_trials_states_it_and_writes_its_page(tmp_path):
    """Every trial failed: no interval, but the notes, the completeness table and the page."""
    import pandas as pd

    from iql_sweep.report.page import write_page
    from iql_sweep.report.tables import compute, markdown

    trials = pd.DataFrame(
        [
            {
                "trial_id": f"t{s}",
                "dataset": "d",
                "expectile": 0.7,
                "beta": 3.0,
                "seed": s,
                "status": "ERROR",
                "evaluations": 0,
                "last_score": np.nan,
                "best_score": np.nan,
                "error": "TrainingDivergedError: q_loss became non-finite by step 30",
            }
            for s in range(2)
        ]
    )
    agg = compute(trials, ["d"], [], reps=100)
    assert agg.intervals.empty and agg.best_vs_others.empty and agg.expected_max.empty
    assert agg.completeness["failed"].tolist() == [2]
    text = markdown(agg)
    assert "2 failed trial(s) left out" in text and "d: no finished run for 1" in text
    page = write_page(tmp_path, "x", pd.DataFrame(), agg, trials, "name: x")
    assert "q_loss became non-finite" in page.read_text()
