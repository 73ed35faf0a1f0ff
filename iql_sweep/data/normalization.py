"""D4RL-normalised scores: 100 * (return - ref_min) / (ref_max - ref_min).

Reference scores come from the dataset's Minari metadata (``ref_min_score``/``ref_max_score``)
when present; D4RL-ported ids without them fall back to D4RL's published table (``infos.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from iql_sweep.data.profile import DatasetProfile


def d4rl_reference_scores(dataset_id: str) -> tuple[float, float] | None:
    """D4RL's published (ref_min, ref_max) for an id such as ``hopper-medium-v2`` or
    ``D4RL/door/human-v2``; None when the id matches no D4RL task."""
    return DatasetProfile.from_id(dataset_id).d4rl_scores


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
