"""Every random stream a run draws from, as an offset from the configuration's seed.

One table, so that two streams never share a seed and the largest valid seed follows from it."""

from __future__ import annotations

from collections.abc import Iterable

#: Offset of each stream from a configuration's ``seed``.
SEED_OFFSETS: dict[str, int] = {
    "evaluation": 10_000,  # evaluation episode i is reset with seed + 10,000 + i
    "online_actions": 20_000,  # exploration noise while fine-tuning
    "online_episodes": 30_000,  # fine-tuning episode i is reset with seed + 30,000 + i
    "dropout": 40_000,  # the learner's dropout masks
}

#: Room for the episode index added to an episode stream's seed.
EPISODE_INDEX_ROOM = 960_000

#: Seeds every RNG of the stack accepts (numpy, torch, gymnasium: below 2**31), with room for
#: the largest offset plus the episode index.
MAX_SEED = 2**31 - 1 - max(SEED_OFFSETS.values()) - EPISODE_INDEX_ROOM

EVAL_SEED_OFFSET = SEED_OFFSETS["evaluation"]
ACTION_SEED_OFFSET = SEED_OFFSETS["online_actions"]
EPISODE_SEED_OFFSET = SEED_OFFSETS["online_episodes"]
DROPOUT_SEED_OFFSET = SEED_OFFSETS["dropout"]


def evaluation_seeds(seeds: Iterable[int]) -> list[int]:
    """The evaluation seed of each configuration seed: episode ``i`` is reset with it plus ``i``
    (training's evaluations and ``iql-sweep evaluate`` alike)."""
    return [seed + EVAL_SEED_OFFSET for seed in seeds]
