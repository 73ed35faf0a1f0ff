"""What a dataset id tells about its data, in one place: the domain (and with it the IQL preset;
OGBench's ids, ``ogbench/...``, before any other),
the order of a Dict observation's keys, PointMaze's stale first goal, and D4RL's published
reference scores for ids whose metadata lacks them.

Everything else reads a :class:`DatasetProfile`; nothing else looks inside dataset ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Domains by id pattern (first match wins); each domain names its IQL preset.
_DOMAINS: list[tuple[str, str]] = [
    # OGBench's long-horizon datasets (giant mazes, humanoids, antsoccer) discount at 0.995
    (r"^ogbench/(.*giant|humanoidmaze|antsoccer)", "ogbench-long"),
    (r"^ogbench/", "ogbench"),
    (r"antmaze", "antmaze"),
    (r"pointmaze|maze2d", "maze"),
    (r"kitchen", "kitchen"),
    (r"(^|/)(pen|door|hammer|relocate)(/|-)", "adroit"),
    (r"hopper|halfcheetah|walker2d|(^|/)ant(/|-)|mujoco/", "locomotion"),
]

#: D4RL's REF_MIN_SCORE / REF_MAX_SCORE (``d4rl/infos.py``), by id pattern (first match wins).
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


def _first_match(patterns, text: str):
    for pattern, *value in patterns:
        if re.search(pattern, text):
            return value
    return None


@dataclass(frozen=True)
class DatasetProfile:
    """The conventions of a dataset, read off its id."""

    dataset_id: str
    domain: str
    d4rl_scores: tuple[float, float] | None

    @classmethod
    def from_id(cls, dataset_id: str) -> DatasetProfile:
        lowered = dataset_id.lower()
        domain = _first_match(_DOMAINS, lowered)
        scores = _first_match(D4RL_REFERENCE_SCORES, lowered)
        return cls(
            dataset_id=dataset_id,
            domain=domain[0] if domain else "default",
            d4rl_scores=(float(scores[0]), float(scores[1])) if scores else None,
        )

    @property
    def preset(self) -> str:
        """The IQL preset that fits the domain (presets are named after domains)."""
        return self.domain

    @property
    def fixes_stale_goal(self) -> bool:
        """PointMaze returns a segment's first observation before it resamples the goal."""
        return "pointmaze" in self.dataset_id.lower()

    def observation_keys(self, keys: list[str]) -> list[str]:
        """The order in which a Dict observation's keys are concatenated.

        ``observation`` then ``desired_goal`` (PointMaze: ``achieved_goal`` repeats the position
        and is left out); AntMaze's ``observation`` lacks the x-y position, so its ids take
        ``achieved_goal``, ``observation``, ``desired_goal`` (D4RL's 29-d state plus the goal);
        any other Dict in sorted key order."""
        if self.domain == "antmaze" and {"achieved_goal", "observation"} <= set(keys):
            return [k for k in ("achieved_goal", "observation", "desired_goal") if k in keys]
        if "observation" in keys:
            return [k for k in ("observation", "desired_goal") if k in keys]
        return sorted(keys)
