"""The ``iql-sweep`` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from iql_sweep.errors import IQLSweepError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
datasets_app = typer.Typer(no_args_is_help=True, help="Make and list local Minari datasets.")
app.add_typer(datasets_app, name="datasets")
console = Console()
err_console = Console(stderr=True)

DEMO_DATASET = "pointmaze-umaze"


def _fail(err: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {err}", highlight=False)
    raise typer.Exit(code=2)


def _run_dir(dataset_id: str, tag: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / dataset_id.replace("/", "_") / f"{tag}-{stamp}"


@app.command()
def train(
    dataset: Annotated[str, typer.Option("--dataset", help="Minari dataset id (local).")],
    preset: Annotated[
        str | None, typer.Option(help="locomotion|antmaze|kitchen|adroit|maze|default")
    ] = None,
    expectile: Annotated[float | None, typer.Option(help="tau in (0, 1).")] = None,
    beta: Annotated[float | None, typer.Option(help="AWR inverse temperature >= 0.")] = None,
    steps: Annotated[int, typer.Option(help="Gradient steps.")] = 1_000_000,
    eval_every: Annotated[int, typer.Option(help="Evaluate every N steps.")] = 5000,
    eval_episodes: Annotated[int, typer.Option(help="Episodes per evaluation.")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda")] = "auto",
    batch_size: Annotated[int | None, typer.Option(help="Minibatch size.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder; an existing checkpoint there is resumed.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train IQL on one dataset, evaluate periodically and checkpoint."""
    from iql_sweep.training import RunSettings, build_config, resolve_device
    from iql_sweep.training import train as run_training

    overrides = {"expectile": expectile, "beta": beta, "batch_size": batch_size}
    try:
        # Every input is checked before any data is read.
        settings = RunSettings(
            dataset_id=dataset,
            steps=steps,
            eval_every=eval_every,
            eval_episodes=eval_episodes,
            seed=seed,
            device=device,
            out_dir=out,
            progress=progress,
        )
        settings.validate()
        cfg = build_config(dataset, preset, steps, overrides)
        resolve_device(device)
        tag = f"tau{cfg.expectile}-beta{cfg.beta}-seed{seed}"
        settings.out_dir = out or _run_dir(dataset, tag)
        from iql_sweep.data.minari_io import dataset_path

        dataset_path(dataset)
        summary = run_training(settings, preset=preset, overrides=overrides)
    except IQLSweepError as err:
        _fail(err)
    console.print(f"[bold green]done[/] {summary.line()}", highlight=False)
    console.print(f"files: {summary.out_dir}")


@datasets_app.command("make")
def datasets_make(
    name: Annotated[str, typer.Argument(help="e.g. pointmaze-umaze, pointmaze-large-dense")],
    steps: Annotated[int | None, typer.Option(help="Environment steps (1000000 = full).")] = None,
    seed: Annotated[int, typer.Option()] = 123,
    force: Annotated[bool, typer.Option(help="Overwrite an existing dataset.")] = False,
    ref_episodes: Annotated[int, typer.Option(help="Episodes for the reference scores.")] = 100,
    progress: Annotated[bool, typer.Option()] = True,
) -> None:
    """Generate a dataset in Minari's format under the local Minari root."""
    from iql_sweep.data.catalog import make_dataset

    try:
        report = make_dataset(
            name, steps=steps, seed=seed, force=force, ref_episodes=ref_episodes, progress=progress
        )
    except IQLSweepError as err:
        _fail(err)
    rate = report.steps / max(report.collect_seconds, 1e-9)
    console.print(
        f"[bold green]made[/] {report.dataset_id}: {report.steps} steps, {report.episodes} "
        f"episodes (mean length {report.mean_length:.1f}); ref_min {report.ref_min_score:.2f}, "
        f"ref_max {report.ref_max_score:.2f}; collected at {rate:,.0f} steps/s, written in "
        f"{report.write_seconds:.1f} s",
        highlight=False,
    )


@datasets_app.command("list")
def datasets_list() -> None:
    """Datasets present locally and the ones the project can make."""
    from iql_sweep.data.catalog import GENERATORS
    from iql_sweep.data.minari_io import local_dataset_ids, minari_root

    present = set(local_dataset_ids())
    table = Table(title=f"Minari root: {minari_root()}")
    table.add_column("dataset id")
    table.add_column("present")
    table.add_column("make with")
    makeable = {g.dataset_id: g.name for g in GENERATORS.values()}
    for dataset_id in sorted(present | set(makeable)):
        name = makeable.get(dataset_id)
        table.add_row(
            dataset_id,
            "yes" if dataset_id in present else "no",
            f"iql-sweep datasets make {name}" if name else "-",
        )
    console.print(table)


@app.command()
def demo(
    steps: Annotated[int, typer.Option(help="Gradient steps.")] = 30_000,
    eval_every: Annotated[int, typer.Option()] = 5_000,
    eval_episodes: Annotated[int, typer.Option()] = 50,
    seed: Annotated[int, typer.Option()] = 0,
    out: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """The embedded default job: make a small PointMaze dataset if missing, train IQL on the CPU
    and print the result."""
    from iql_sweep.data.catalog import ensure_dataset, get_generator
    from iql_sweep.training import RunSettings
    from iql_sweep.training import train as run_training

    gen = get_generator(DEMO_DATASET)
    try:
        report = ensure_dataset(gen.dataset_id)
        if report is not None:
            console.print(
                f"made {report.dataset_id}: {report.steps} steps, {report.episodes} episodes"
            )
        settings = RunSettings(
            dataset_id=gen.dataset_id,
            steps=steps,
            eval_every=eval_every,
            eval_episodes=eval_episodes,
            seed=seed,
            device="cpu",
            out_dir=out or _run_dir(gen.dataset_id, "demo"),
        )
        summary = run_training(settings, preset="maze")
    except IQLSweepError as err:
        _fail(err)
    cfg = json.loads((Path(summary.out_dir) / "config.json").read_text())["iql"]
    table = Table(
        title=f"IQL on {gen.dataset_id} (tau {cfg['expectile']}, beta {cfg['beta']}, seed {seed})",
        caption="normalized score: 0 = uniform random policy, 100 = the noise-free controller "
        f"(mean ± std over {eval_episodes} seeded episodes)",
    )
    for col in ("step", "normalized score", "return", "V loss", "Q loss", "updates/s"):
        table.add_column(col, justify="right")
    for row in summary.history:
        table.add_row(
            str(row["step"]),
            f"{row['normalized_score']:.1f} ± {row['normalized_score_std']:.1f}",
            f"{row['return_mean']:.1f}",
            f"{row['value_loss']:.4f}",
            f"{row['q_loss']:.4f}",
            f"{row['updates_per_second']:.0f}",
        )
    console.print(table)
    console.print(f"[bold green]done[/] {summary.line()}", highlight=False)
    console.print(f"files: {summary.out_dir}")


def main() -> None:  # pragma: no cover - console entry point
    app(prog_name="iql-sweep")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
