"""Interval estimates of a sweep's scores over seeds (Agarwal et al., "Deep RL at the Edge of the
Statistical Precipice", NeurIPS 2021), written for the project: rliable, the reference
implementation, no longer imports beside pandas 3, and it wants every configuration to have the
same number of runs on every task, which failed trials break.

Scores are grouped by dataset (rliable's "tasks"); each dataset holds the scores of its runs
(seeds), on the D4RL scale divided by 100 (1 = the expert reference). The number of runs may
differ between datasets; that is reported next to every figure, never padded or dropped.

- mean: the mean over datasets of each dataset's mean;
- median: the median over datasets of each dataset's mean (with one dataset, of its runs);
- IQM: the 25 %-trimmed mean of every run of every dataset pooled (each run counts once);
- optimality gap: 1 - the pooled mean of min(score, 1);
- probability of improvement P(X > Y): per dataset the Mann-Whitney statistic U / (n_x n_y)
  (ties count one half), averaged over the datasets both configurations have;
- performance profile: per threshold t, the fraction of runs scoring above t, averaged over
  datasets;
- intervals: 95 % percentile intervals of a stratified bootstrap, i.e. runs resampled with
  replacement independently within each dataset (and independently for X and Y), seeded.

The expected maximum after trying B configurations is exact: the mean over every B-subset of the
grid of its best configuration, from the order statistics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: dataset -> scores of its runs, shape ``[n_runs]`` (or ``[reps, n_runs]`` once resampled)
Scores = Mapping[str, np.ndarray]
Aggregate = Callable[[Sequence[np.ndarray]], np.ndarray]

DEFAULT_REPS = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval."""

    estimate: float
    low: float
    high: float

    def text(self, digits: int = 2) -> str:
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def trimmed_mean(x: np.ndarray, proportion: float = 0.25) -> np.ndarray:
    """Mean of the last axis after cutting ``floor(proportion * n)`` values from each end
    (scipy.stats.trim_mean's convention)."""
    n = x.shape[-1]
    cut = int(proportion * n)
    return np.sort(x, axis=-1)[..., cut : n - cut].mean(axis=-1)


def mean(groups: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean([g.mean(axis=-1) for g in groups], axis=0)


def median(groups: Sequence[np.ndarray]) -> np.ndarray:
    if len(groups) == 1:
        return np.median(groups[0], axis=-1)
    return np.median([g.mean(axis=-1) for g in groups], axis=0)


def iqm(groups: Sequence[np.ndarray]) -> np.ndarray:
    return trimmed_mean(np.concatenate(list(groups), axis=-1))


def optimality_gap(groups: Sequence[np.ndarray], target: float = 1.0) -> np.ndarray:
    return target - np.minimum(np.concatenate(list(groups), axis=-1), target).mean(axis=-1)


AGGREGATES: dict[str, Aggregate] = {
    "iqm": iqm,
    "mean": mean,
    "median": median,
    "optimality_gap": optimality_gap,
}


def _nonempty(scores: Scores) -> dict[str, np.ndarray]:
    out = {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
    if not out or any(v.size == 0 for v in out.values()):
        raise ValueError("every dataset needs at least one score")
    return out


def _resample(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` resamples of the runs of one dataset, with replacement: ``[reps, n]``."""
    return x[rng.integers(0, x.size, size=(reps, x.size))]


def _interval(point: float, distribution: np.ndarray) -> Interval:
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(distribution, [tail, 100 - tail])
    return Interval(float(point), float(low), float(high))


def interval(
    scores: Scores, aggregate: Aggregate, reps: int = DEFAULT_REPS, seed: int = 0
) -> Interval:
    """An aggregate of the scores with its stratified-bootstrap interval."""
    data = _nonempty(scores)
    rng = np.random.default_rng(seed)
    resampled = [_resample(x, reps, rng) for x in data.values()]
    point = aggregate([x[None] for x in data.values()])[0]
    return _interval(point, aggregate(resampled))


def intervals(
    scores: Scores,
    aggregates: Mapping[str, Aggregate],
    reps: int = DEFAULT_REPS,
    seed: int = 0,
) -> dict[str, Interval]:
    """Several aggregates from the same resamples (one bootstrap, every metric)."""
    data = _nonempty(scores)
    rng = np.random.default_rng(seed)
    resampled = [_resample(x, reps, rng) for x in data.values()]
    points = [x[None] for x in data.values()]
    return {name: _interval(f(points)[0], f(resampled)) for name, f in aggregates.items()}


def _improvement(x: Sequence[np.ndarray], y: Sequence[np.ndarray]) -> np.ndarray:
    """Mean over datasets of P(X > Y) + P(X = Y) / 2, batched over leading axes."""
    per_dataset = []
    for a, b in zip(x, y):
        diff = a[..., :, None] - b[..., None, :]
        per_dataset.append(((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1)))
    return np.mean(per_dataset, axis=0)


def improvement_probability(
    x: Scores, y: Scores, reps: int = DEFAULT_REPS, seed: int = 0
) -> Interval:
    """P(X > Y) over the datasets both have, with its bootstrap interval (X's and Y's runs
    resampled independently within each dataset)."""
    shared = [d for d in x if d in y]
    if not shared:
        raise ValueError("the two configurations share no dataset")
    xs = [np.asarray(x[d], dtype=np.float64) for d in shared]
    ys = [np.asarray(y[d], dtype=np.float64) for d in shared]
    if any(v.size == 0 for v in (*xs, *ys)):
        raise ValueError("every dataset needs at least one score on both sides")
    rng = np.random.default_rng(seed)
    rx = [_resample(v, reps, rng) for v in xs]
    ry = [_resample(v, reps, rng) for v in ys]
    return _interval(float(_improvement(xs, ys)), _improvement(rx, ry))


def performance_profile(
    scores: Scores, thresholds: np.ndarray, reps: int = DEFAULT_REPS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fraction of runs above each threshold (averaged over datasets): estimate, low, high."""
    data = _nonempty(scores)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    rng = np.random.default_rng(seed)

    def fraction(groups: Sequence[np.ndarray]) -> np.ndarray:  # [..., T]
        return np.mean([(g[..., None] > thresholds).mean(axis=-2) for g in groups], axis=0)

    point = fraction(list(data.values()))
    dist = fraction([_resample(x, reps, rng) for x in data.values()])
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(dist, [tail, 100 - tail], axis=0)
    return point, low, high


def expected_max(values: Sequence[float], budget: int) -> float:
    """The expected best of ``budget`` configurations drawn at random without replacement from
    ``values``: sum over the order statistics v_(1) <= ... <= v_(N) of
    v_(i) * C(i-1, B-1) / C(N, B)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = v.size
    if not 1 <= budget <= n:
        raise ValueError(f"budget must lie in 1..{n} (got {budget})")
    total = math.comb(n, budget)
    weights = [math.comb(i - 1, budget - 1) / total for i in range(1, n + 1)]
    return float(np.dot(weights, v))


def expected_max_curve(values: Sequence[float]) -> np.ndarray:
    """:func:`expected_max` for every budget 1..N."""
    return np.array([expected_max(values, b) for b in range(1, len(values) + 1)])
