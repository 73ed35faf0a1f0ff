"""D4RL-normalised scores: 100 * (return - ref_min) / (ref_max - ref_min).

Reference scores come from the dataset's Minari metadata (``ref_min_score``/``ref_max_score``)
when present; D4RL-ported ids without them fall back to D4RL's published table (``infos.py``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

#: D4RL's REF_MIN_SCORE / REF_MAX_SCORE, matched on the dataset id (first match wins).
D4RL_REFERENCE_SCORES: list[tuple[str, float, float]] = [
    (r"antmaze", 0.0, 1.0),
    (r"maze2d[-/]open[-/]dense", 11.17817, 27.166538620695782),
    (r"maze2d[-/]open", 0.01, 20.66),
    (r"maze2d[-/]umaze[-/]dense", 68.537689, 193.66285642381482),
    (r"maze2d[-/]umaze", 23.85, 161.86),
    (r"maze2d[-/]medium[-/]dense", 44.264742, 297.4552547777125),
    (r"maze2d[-/]medium", 13.13, 277.39),
    (r"maze2d[-/]large[-/]dense", 30.569041, 303.4857382709002),
    (r"maze2d[-/]large", 6.7, 273.99),
    (r"hopper", -20.272305, 3234.3),
    (r"halfcheetah", -280.178953, 12135.0),
    (r"walker2d", 1.629008, 4592.3),
    (r"(^|/)ant([-/]|$)", -325.6, 3879.7),
    (r"(^|/)pen([-/]|$)", 96.262799, 3076.8331017826877),
    (r"(^|/)door([-/]|$)", -56.512833, 2880.5693087298737),
    (r"(^|/)hammer([-/]|$)", -274.856578, 12794.134825156867),
    (r"(^|/)relocate([-/]|$)", -6.425911, 4233.877797728884),
    (r"kitchen", 0.0, 4.0),
]


def d4rl_reference_scores(dataset_id: str) -> tuple[float, float] | None:
    """D4RL's published (ref_min, ref_max) for an id such as ``hopper-medium-v2`` or
    ``D4RL/door/human-v2``; None when the id matches no D4RL task."""
    lowered = dataset_id.lower()
    for pattern, lo, hi in D4RL_REFERENCE_SCORES:
        if re.search(pattern, lowered):
            return lo, hi
    return None


def reference_scores(dataset_id: str, metadata: dict[str, Any]) -> tuple[float, float] | None:
    """The dataset's own reference scores, else D4RL's table, else None."""
    lo, hi = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    if lo is not None and hi is not None:
        return float(lo), float(hi)
    return d4rl_reference_scores(dataset_id)


def normalized_score(returns: float | np.ndarray, ref_min: float, ref_max: float):
    """100 * (R - ref_min) / (ref_max - ref_min); raises on a degenerate reference range."""
    if ref_max == ref_min:
        raise ValueError(f"reference scores are equal ({ref_min}); cannot normalise")
    return 100.0 * (np.asarray(returns, dtype=np.float64) - ref_min) / (ref_max - ref_min)
