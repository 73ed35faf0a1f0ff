"""The datasets the project can make itself and their Minari ids (the registry; writing them is
:mod:`iql_sweep.data.make`).

| NAME                      | Minari id                            | env                        |
|---------------------------|--------------------------------------|----------------------------|
| pointmaze-umaze[-dense]   | iql-sweep/pointmaze/umaze[-dense]-v0 | PointMaze_UMaze[Dense]-v3  |
| pointmaze-medium[-dense]  | iql-sweep/pointmaze/medium[-dense]-v0| PointMaze_Medium[Dense]-v3 |
| pointmaze-large[-dense]   | iql-sweep/pointmaze/large[-dense]-v0 | PointMaze_Large[Dense]-v3  |
"""

from __future__ import annotations

from dataclasses import dataclass

from iql_sweep.data.pointmaze import MAZES, Corruption, MazeRecipe
from iql_sweep.errors import ConfigError

NAMESPACE = "iql-sweep/pointmaze"


@dataclass(frozen=True)
class Generator:
    """A dataset the project can generate: which maze, which reward, its default size."""

    name: str
    recipe: MazeRecipe
    dense: bool
    default_steps: int
    corruption: Corruption | None = None

    @property
    def dataset_id(self) -> str:
        suffix = "-dense" if self.dense else ""
        suffix += "-corrupted" if self.corruption is not None else ""
        return f"{NAMESPACE}/{self.recipe.name}{suffix}-v0"


_DEFAULT_STEPS = {"umaze": 200_000, "medium": 300_000, "large": 400_000}

GENERATORS: dict[str, Generator] = {
    f"pointmaze-{maze}{'-dense' if dense else ''}": Generator(
        f"pointmaze-{maze}{'-dense' if dense else ''}", recipe, dense, _DEFAULT_STEPS[maze]
    )
    for maze, recipe in MAZES.items()
    for dense in (False, True)
}
GENERATORS.update(
    {
        f"pointmaze-{maze}-corrupted": Generator(
            f"pointmaze-{maze}-corrupted", recipe, False, _DEFAULT_STEPS[maze], Corruption()
        )
        for maze, recipe in MAZES.items()
    }
)


def name_for_id(dataset_id: str) -> str | None:
    """The generator NAME that makes a dataset id, if the project can make it."""
    for gen in GENERATORS.values():
        if gen.dataset_id == dataset_id:
            return gen.name
    return None


def get_generator(name: str) -> Generator:
    """Look up a generator by NAME (or by the Minari id it writes)."""
    if name in GENERATORS:
        return GENERATORS[name]
    by_id = name_for_id(name)
    if by_id is not None:
        return GENERATORS[by_id]
    raise ConfigError(
        f"NAME: unknown dataset {name!r}; the project can make: {', '.join(sorted(GENERATORS))}"
    )
