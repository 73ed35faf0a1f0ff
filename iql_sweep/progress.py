"""Console progress bars (rich) shared by dataset generation and training."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress() -> Progress:
    """A rich progress bar with counts, elapsed and remaining time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


@contextmanager
def step_progress(description: str, total: int, enabled: bool = True) -> Iterator[Callable]:
    """Yield ``advance(n, info="")``; draws a bar when ``enabled`` (a no-op otherwise)."""
    if not enabled:
        yield lambda n=1, info="": None
        return
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        pending = [0]

        def advance(n: int = 1, info: str | None = None) -> None:
            pending[0] += n
            if pending[0] >= 1000 or info is not None:
                kwargs = {"info": info} if info is not None else {}
                progress.update(task, advance=pending[0], **kwargs)
                pending[0] = 0

        yield advance
        progress.update(task, advance=pending[0])
