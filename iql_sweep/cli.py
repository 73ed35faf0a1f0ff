"""The ``iql-sweep`` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from iql_sweep.errors import ConfigError, IQLSweepError, describe_errors
from iql_sweep.files import folder_problem

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False
)
datasets_app = typer.Typer(no_args_is_help=True, help="Make, download and list Minari datasets.")
app.add_typer(datasets_app, name="datasets")
figure_app = typer.Typer(
    no_args_is_help=True, help="The paper's figures, computed by the project (PNG + CSV)."
)
app.add_typer(figure_app, name="figure")
console = Console()
err_console = Console(stderr=True)

DEMO_SPEC = "smoke.yaml"


def _fail(err: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {err}", highlight=False)
    raise typer.Exit(code=2)


def _png_path(out: Path, option: str = "--out") -> Path:
    """A PNG file to write: not a folder, a .png name, in a folder that can be made."""
    if out.is_dir() or out.suffix.lower() != ".png":
        raise ConfigError(f"{option}: give a .png file name (got {out}); e.g. {out / 'figure.png'}")
    _writable_folder(out.parent, option)
    return out


def _writable_folder(folder: Path, option: str) -> None:
    """``folder`` exists as a folder or can be made and written; else a ConfigError."""
    problem = folder_problem(folder, option)
    if problem:
        raise ConfigError(problem)


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
    eval_every: Annotated[
        int | None,
        typer.Option(
            help="Evaluate every N updates [default: the preset's, at most --steps: 100000 for "
            "antmaze, else 5000]."
        ),
    ] = None,
    eval_episodes: Annotated[
        int | None,
        typer.Option(help="Episodes per evaluation [default: the preset's: 100 antmaze, else 10]."),
    ] = None,
    interim_eval_episodes: Annotated[
        int | None,
        typer.Option(help="Episodes of the evaluations before the last [default: as final]."),
    ] = None,
    eval_workers: Annotated[
        int | None,
        typer.Option(help="Processes stepping the evaluation envs [default: 1]; same returns."),
    ] = None,
    overlap_eval: Annotated[
        bool,
        typer.Option(
            help="Evaluate on a copy of the policy while training goes on (same returns); "
            "--no-overlap-eval: training waits for each evaluation."
        ),
    ] = True,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|cuda:N")] = "auto",
    batch_size: Annotated[int | None, typer.Option(help="Minibatch size.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder; an existing checkpoint there is resumed.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    online_steps: Annotated[
        int, typer.Option(help="Online fine-tuning environment steps after the offline steps.")
    ] = 0,
    updates_per_env_step: Annotated[
        int, typer.Option(help="Gradient updates per fine-tuning environment step.")
    ] = 1,
    compile: Annotated[
        str,
        typer.Option(
            help="auto: a GPU captures the whole update as one CUDA graph, the CPU compiles "
            "when the run is long enough to pay back the compile; true: always the fast "
            "path; false: eager.",
        ),
    ] = "auto",
    matmul_precision: Annotated[
        str, typer.Option(help="highest (float32) or high (TF32 on GPUs that have it).")
    ] = "highest",
    normalize_observations: Annotated[
        bool | None,
        typer.Option(
            "--normalize-observations/--no-normalize-observations",
            help="Observations shifted and scaled by the dataset's mean and std + 1e-3 "
            "[default: the preset's].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train IQL on one dataset (then optionally fine-tune online), evaluating periodically and
    checkpointing."""
    from iql_sweep.training import cli_trial, resolve_device
    from iql_sweep.training import train as run_training
    from iql_sweep.trial_config import RunSettings

    overrides = {
        "expectile": expectile,
        "beta": beta,
        "batch_size": batch_size,
        "normalize_observations": normalize_observations,
    }
    try:
        # Every input is checked before any data is read.
        try:
            settings = RunSettings(
                steps=steps,
                eval_every=eval_every,
                eval_episodes=eval_episodes,
                interim_eval_episodes=interim_eval_episodes,
                eval_workers=eval_workers,
                overlap_eval=overlap_eval,
                online_steps=online_steps,
                updates_per_env_step=updates_per_env_step,
                compile={"true": True, "false": False}.get(compile.lower(), compile),
                matmul_precision=matmul_precision,
            )
        except ValidationError as err:
            raise ConfigError("\n".join(describe_errors(err, "option"))) from None
        try:  # the run's one TrialConfig, validated as a spec's trials are
            trial = cli_trial(dataset, settings, seed, preset, overrides)
        except ValidationError as err:
            raise ConfigError("\n".join(describe_errors(err, "option"))) from None
        cfg = trial.base_config()
        resolve_device(device)
        tag = f"tau{cfg.expectile}-beta{cfg.beta}-seed{seed}"
        if out is not None:
            _writable_folder(out, "--out")
        _obtain(dataset)  # present: nothing; else made or downloaded; a bad id: its error
        from iql_sweep.data.minari_io import load_transitions
        from iql_sweep.spec import batch_problems

        size = load_transitions(dataset).size
        problems = batch_problems("--batch-size", cfg.batch_size, size, dataset)
        if problems:
            raise ConfigError("\n".join(problems))
        summary = run_training(
            trial,
            device=device,
            out_dir=out or _run_dir(dataset, tag),
            progress=progress,
            notify=lambda text: err_console.print(f"[yellow]warning:[/] {text}", highlight=False),
            inform=lambda text: console.print(text, highlight=False),
        )
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
    corrupt_share: Annotated[
        float | None, typer.Option(help="-corrupted datasets: share of corrupted actions.")
    ] = None,
    corrupt_mode: Annotated[
        str | None, typer.Option(help="-corrupted datasets: 'random' or 'reverse' actions.")
    ] = None,
    corrupt_hold: Annotated[
        int | None, typer.Option(help="-corrupted datasets: steps per corrupted stretch.")
    ] = None,
) -> None:
    """Generate a dataset in Minari's format under the local Minari root."""
    from dataclasses import replace

    from iql_sweep.data.make import make_dataset
    from iql_sweep.data.pointmaze import Corruption

    try:
        corruption = None
        given = {"share": corrupt_share, "mode": corrupt_mode, "hold": corrupt_hold}
        if any(v is not None for v in given.values()):
            corruption = replace(Corruption(), **{k: v for k, v in given.items() if v is not None})
        report = make_dataset(
            name,
            steps=steps,
            seed=seed,
            force=force,
            ref_episodes=ref_episodes,
            progress=progress,
            corruption=corruption,
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
def datasets_list(
    remote: Annotated[
        bool, typer.Option("--remote", help="Also what Minari's remote ($MINARI_REMOTE) offers.")
    ] = False,
    prefix: Annotated[
        str | None, typer.Option(help="Only remote ids starting with this (e.g. D4RL/antmaze).")
    ] = None,
) -> None:
    """Datasets present locally, the ones the project can make and (--remote) the ones Minari's
    remote offers."""
    from iql_sweep.data.generators import GENERATORS
    from iql_sweep.data.minari_io import local_dataset_ids, minari_root
    from iql_sweep.data.remote import remote_datasets, remote_name

    present = set(local_dataset_ids())
    offered: dict[str, dict] = {}
    if remote:
        try:
            offered = remote_datasets(prefix=prefix)
        except IQLSweepError as err:
            _fail(err)
    title = f"Minari root: {minari_root()}" + (f"; remote: {remote_name()}" if remote else "")
    table = Table(title=title)
    table.add_column("dataset id")
    table.add_column("present")
    table.add_column("make with")
    if remote:
        table.add_column("on the remote")
    makeable = {g.dataset_id: g.name for g in GENERATORS.values()}
    for dataset_id in sorted(present | set(makeable) | set(offered)):
        name = makeable.get(dataset_id)
        row = [
            dataset_id,
            "yes" if dataset_id in present else "no",
            f"iql-sweep datasets make {name}" if name else "-",
        ]
        if remote:
            meta = offered.get(dataset_id)
            row.append(f"yes ({meta.get('total_steps', '?')} steps)" if meta else "no")
        table.add_row(*row)
    console.print(table)
    _list_ogbench(remote)


def _list_ogbench(remote: bool) -> None:
    """OGBench's datasets in OGBench's folder and (--remote) on its mirror, as task ids."""
    from iql_sweep.data.ogbench_io import local_data_names, ogbench_dir, singletask_ids
    from iql_sweep.data.remote import ogbench_remote_data_names, ogbench_repo

    present, offered, note = set(local_data_names()), set(), ""
    if remote:
        try:
            offered = set(ogbench_remote_data_names())
        except IQLSweepError as err:
            note = f" ({err})"
    if not (present or offered or note):
        return
    title = f"OGBench folder: {ogbench_dir()}" + (
        f"; mirror: hf://{ogbench_repo()}{note}" if remote else ""
    )
    table = Table(title=title)
    table.add_column("dataset ids (a dataset's tasks share its files)")
    table.add_column("present")
    if remote:
        table.add_column("on the mirror")
    for name in sorted(present | offered):
        row = [singletask_ids(name), "yes" if name in present else "no"]
        table.add_row(*row, *(["yes" if name in offered else "no"] if remote else []))
    console.print(table)


@datasets_app.command("download")
def datasets_download(
    dataset_ids: Annotated[list[str], typer.Argument(help="e.g. D4RL/antmaze/umaze-v1")],
    force: Annotated[bool, typer.Option(help="Download again when present.")] = False,
) -> None:
    """Download datasets from Minari's remote ($MINARI_REMOTE, by default Farama's Hugging Face
    organisation) into the Minari root ($MINARI_DATASETS_PATH)."""
    from iql_sweep.data.remote import download

    for dataset_id in dataset_ids:
        try:
            report = download(dataset_id, force=force)
        except IQLSweepError as err:
            _fail(err)
        if report is None:
            console.print(f"{dataset_id}: present (--force downloads it again)")
        else:
            console.print(
                f"[bold green]downloaded[/] {dataset_id}: {report.bytes / 2**20:.1f} MiB from "
                f"{report.remote} in {report.seconds:.1f} s",
                highlight=False,
            )


@datasets_app.command("import-d4rl")
def datasets_import_d4rl(
    file: Annotated[Path, typer.Argument(help="An original D4RL file, e.g. hopper_medium-v2.hdf5")],
    dataset_id: Annotated[
        str, typer.Option("--id", help="The Minari id to write, e.g. d4rl/hopper/medium-v2.")
    ],
    env: Annotated[str, typer.Option(help="The Gymnasium evaluation env, e.g. Hopper-v5.")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing dataset.")] = False,
) -> None:
    """Turn an original D4RL HDF5 file (flat arrays) into a Minari dataset: episodes split at
    terminals and timeouts, D4RL's reference scores in the metadata, ENV as evaluation env."""
    from iql_sweep.data.d4rl_import import import_d4rl

    try:
        report = import_d4rl(file, dataset_id, env, force=force)
    except IQLSweepError as err:
        _fail(err)
    console.print(
        f"[bold green]imported[/] {report.dataset_id}: {report.steps} steps, {report.episodes} "
        f"episodes ({report.dropped_timeout_steps} steps cut by a timeout left out); reference "
        f"scores {report.ref_min_score:g} / {report.ref_max_score:g}; evaluation env {env}",
        highlight=False,
    )


def _obtain(dataset_id: str) -> None:
    """Make or download a dataset that is not local (train and run do this before any work)."""
    from iql_sweep.data.make import MakeReport, OGBenchMakeReport, ensure_dataset

    report = ensure_dataset(dataset_id)
    if isinstance(report, MakeReport | OGBenchMakeReport):
        console.print(f"made {dataset_id} ({report.steps} steps)")
    elif report is not None:
        console.print(
            f"downloaded {dataset_id}: {report.bytes / 2**20:.1f} MiB from {report.remote}"
        )


def _spec_error(err: Exception) -> None:
    err_console.print("[bold red]invalid sweep spec:[/]", highlight=False)
    for line in str(err).splitlines():
        err_console.print(f"  - {line}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def validate(
    spec: Annotated[Path, typer.Argument(help="A sweep spec (YAML).")],
    offline: Annotated[
        bool,
        typer.Option(
            help="Check everything but the remote datasets' presence (prepare a spec without "
            "internet for a cluster that has it)."
        ),
    ] = False,
) -> None:
    """Check a sweep spec; prints every problem with its YAML path."""
    from iql_sweep.spec import load_spec

    try:
        parsed = load_spec(spec, remote=not offline)
    except IQLSweepError as err:
        _spec_error(err)
    if offline:  # (imported only now: a hostile file is refused before the data stack loads)
        from iql_sweep.data.generators import name_for_id
        from iql_sweep.data.minari_io import local_dataset_ids

        present = set(local_dataset_ids())
        remote = [d for d in parsed.datasets if d not in present and name_for_id(d) is None]
        if remote:
            console.print(
                f"not checked (--offline): {', '.join(remote)} must be on Minari's remote "
                "where the sweep runs",
                highlight=False,
            )
    console.print(
        f"[bold green]valid[/] {parsed.name}: {parsed.configuration_count()} configurations in "
        f"{parsed.ray_trial_count()} "
        f"Ray trials on {len(parsed.datasets)} dataset(s), output {parsed.experiment_dir()}",
        highlight=False,
    )


def _finish_sweep(
    experiment: Path, reps: int = 2000, seed: int = 0, fail_if_all_failed: bool = True
) -> None:
    """Report, dashboard; a sweep in which every configuration failed exits non-zero."""
    from iql_sweep.report import write_report

    files = write_report(experiment, reps=reps, seed=seed)
    console.print(files.markdown, highlight=False)
    console.print(f"report: {files.folder} (page: {files.folder / 'index.html'})")
    _dashboards(experiment)
    trials = files.trials
    if fail_if_all_failed and len(trials) and (trials["status"] == "ERROR").all():
        err_console.print(
            f"[bold red]error:[/] every one of the {len(trials)} configurations failed (reasons "
            "above and in report/trials.csv)",
            highlight=False,
        )
        raise typer.Exit(code=1)


def _dashboards(experiment: Path) -> None:
    """Write the sweep's W&B workspace definitions; publish them when its runs went online."""

    from iql_sweep.experiment import Experiment
    from iql_sweep.report import dashboard
    from iql_sweep.wandb_logging import effective_mode, reachable

    try:
        boards = dashboard.build(experiment)
    except Exception as err:  # noqa: BLE001 - a dashboard never fails a sweep
        err_console.print(f"W&B dashboard: not written ({err})", highlight=False)
        return
    mode = Experiment(experiment).spec.wandb.mode
    if effective_mode(mode) == "online" and reachable() is None:
        try:
            for url in dashboard.publish(boards):
                console.print(f"W&B dashboard: {url}")
            return
        except Exception as err:  # noqa: BLE001
            err_console.print(f"W&B dashboard: not published ({err})", highlight=False)
    if boards:
        console.print(
            f"W&B dashboard definitions: {boards[0].path.parent} "
            f"({dashboard.how_to_publish(Path(experiment))})",
            highlight=False,
        )


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="A sweep spec (YAML).")],
    address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster address ('auto' or host:port); else RAY_ADDRESS or a local Ray."
        ),
    ] = None,
    smoke: Annotated[
        bool, typer.Option(help="Tiny version of the spec, to check it end to end.")
    ] = False,
    output: Annotated[
        str | None,
        typer.Option(help="Override the spec's output folder (on a cluster: shared storage)."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option(help="Ray's own log lines on the console (else in ray.log).")
    ] = False,
) -> None:
    """Run a sweep spec on Ray Tune, then write and print its report."""
    from iql_sweep.sweep import load_spec_for_run, run_sweep

    try:
        parsed = load_spec_for_run(spec, smoke, output)
    except IQLSweepError as err:
        _spec_error(err)
    try:
        experiment = run_sweep(parsed, address=address, console=console, verbose=verbose)
        _finish_sweep(experiment)
    except IQLSweepError as err:
        _fail(err)


@app.command()
def resume(
    experiment_dir: Annotated[Path, typer.Argument(help="The sweep's experiment folder.")],
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    verbose: Annotated[
        bool, typer.Option(help="Ray's own log lines on the console (else in ray.log).")
    ] = False,
) -> None:
    """Continue an interrupted sweep from its last checkpoints, then report."""
    from iql_sweep.sweep import resume_sweep

    try:
        experiment = resume_sweep(experiment_dir, address=address, console=console, verbose=verbose)
        _finish_sweep(experiment)
    except IQLSweepError as err:
        _fail(err)


@app.command()
def evaluate(
    run: Annotated[
        Path,
        typer.Argument(help="A run folder (train --out), a sweep trial's folder, or a checkpoint."),
    ],
    episodes: Annotated[int, typer.Option(help="Episodes per configuration.")] = 100,
    workers: Annotated[
        int, typer.Option(help="Processes stepping the environments; same returns.")
    ] = 1,
    members: Annotated[
        str | None,
        typer.Option(help="Configurations of a pack to evaluate, e.g. 0,2 [default: all]."),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write returns, normalised scores and steps/s as JSON."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|cuda:N")] = "cpu",
) -> None:
    """Evaluate a trained run again with many episodes: returns, normalised scores with 95 %
    bootstrap intervals over episodes, and environment steps/s."""
    from iql_sweep.evaluate_run import evaluate_run
    from iql_sweep.experiment import Experiment
    from iql_sweep.report import stats

    try:
        chosen = None
        if members is not None:
            try:
                chosen = [int(k) for k in members.split(",") if k.strip()]
            except ValueError:
                raise ConfigError(
                    f"--members: member indices separated by commas, e.g. 0,2 (got {members!r})"
                ) from None
        if json_out is not None:
            _writable_folder(json_out.parent, "--json")
        if Experiment(run).holds_sweep():
            raise ConfigError(
                f"RUN_OR_CHECKPOINT: {run} is a whole sweep; give one of its trial folders "
                "(its report's trials.csv names them in trial_dir)"
            )
        result = evaluate_run(run, episodes, workers, chosen, device)
    except IQLSweepError as err:
        _fail(err)
    console.print(
        f"{result.dataset}, update {result.step} ({result.checkpoint}): {episodes} episodes "
        "per configuration, seeded as its training's evaluations",
        highlight=False,
    )
    table = ["| member | τ | β | seed | return (mean ± std) | normalised score [95 % CI] |"]
    table.append("|---|---|---|---|---|---|")
    for k, member in result.members.items():
        returns, normalized = result.returns[k], result.normalized[k]
        score = "n/a (no reference scores)"
        if normalized is not None:
            score = stats.interval({"episodes": normalized}, stats.mean).text(1)
        table.append(
            f"| {k} | {member.expectile:g} | {member.beta:g} | {member.seed} | "
            f"{returns.mean():.1f} ± {returns.std():.1f} | {score} |"
        )
    console.print("\n".join(table), highlight=False)
    console.print(
        f"{result.env_steps} environment steps in {result.seconds:.1f} s: "
        f"{result.env_steps_per_s:.0f} steps/s ({result.workers} worker(s))",
        highlight=False,
    )
    if json_out is not None:
        json_out.write_text(json.dumps(result.to_json(), indent=1))
        console.print(f"written {json_out}", highlight=False)


@app.command()
def report(
    experiment_dir: Annotated[Path, typer.Argument(help="The sweep's experiment folder.")],
    bootstrap_reps: Annotated[
        int, typer.Option(min=100, help="Resamples of the stratified bootstrap.")
    ] = 2000,
    bootstrap_seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = 0,
) -> None:
    """Tables (CSV, Markdown), interval estimates, plots and the report page of a complete or
    partial sweep."""
    try:
        _finish_sweep(experiment_dir, bootstrap_reps, bootstrap_seed, fail_if_all_failed=False)
    except IQLSweepError as err:
        _fail(err)


@app.command()
def dashboard(
    experiment_dir: Annotated[Path, typer.Argument(help="The sweep's experiment folder.")],
    publish: Annotated[
        bool, typer.Option(help="Save the workspaces to W&B (needs a key and the network).")
    ] = False,
    entity: Annotated[str | None, typer.Option(help="W&B entity (default: the spec's).")] = None,
) -> None:
    """The sweep's W&B workspace, one view per dataset: written as JSON, or published."""
    from iql_sweep.report import dashboard as boards

    try:
        built = boards.build(experiment_dir, entity)
    except IQLSweepError as err:
        _fail(err)
    for board in built:
        console.print(f"{board.dataset}: {board.path}", highlight=False)
    if not publish:
        console.print(boards.how_to_publish(experiment_dir), highlight=False)
        return
    try:
        for url in boards.publish(built):
            console.print(f"published: {url}")
    except Exception as err:  # noqa: BLE001 - W&B's errors, one line each
        _fail(
            ConfigError(
                f"--publish: W&B refused or could not be reached ({err}); the "
                f"definitions stay in {built[0].path.parent if built else experiment_dir}"
            )
        )


@app.command()
def sync(
    experiment_dir: Annotated[Path, typer.Argument(help="The sweep's experiment folder.")],
    workers: Annotated[int, typer.Option(min=1, help="Runs uploaded at once.")] = 8,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds per run.")] = 600,
    force: Annotated[bool, typer.Option(help="Also the runs already synced.")] = False,
) -> None:
    """Upload the sweep's offline W&B runs in parallel (wandb sync, a bounded pool)."""
    from iql_sweep.progress import step_progress
    from iql_sweep.report.wandb_sync import offline_runs, sync_experiment

    try:
        todo = offline_runs(experiment_dir, force)
        with step_progress("wandb sync", len(todo)) as advance:
            results = sync_experiment(
                experiment_dir, workers, timeout, force, on_done=lambda r: advance(1, "")
            )
    except IQLSweepError as err:
        _fail(err)
    failed = [r for r in results if not r.ok]
    console.print(f"synced {len(results) - len(failed)} of {len(results)} run(s)")
    for r in failed:
        err_console.print(f"  failed: {r.run.name}: {r.reason}", highlight=False)
    if failed:
        raise typer.Exit(code=1)


@app.command()
def demo(
    output: Annotated[Path | None, typer.Option(help="Output folder (default: ./results).")] = None,
    smoke: Annotated[bool, typer.Option(help="The tiny version (seconds), as a check.")] = False,
) -> None:
    """The embedded default job: sweeps/smoke.yaml (a small tau x seed sweep on a locally made
    PointMaze dataset) on a local Ray, W&B offline, then prints the result table."""
    import yaml

    from iql_sweep.spec import validate_spec
    from iql_sweep.sweep import run_sweep

    spec_file = Path(__file__).resolve().parent.parent / "sweeps" / DEMO_SPEC
    if not spec_file.is_file():
        _fail(FileNotFoundError(f"the embedded default spec {spec_file} is missing"))
    raw = yaml.safe_load(spec_file.read_text())
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw["name"] = f"{raw['name']}-{stamp}"
    if output is not None:
        raw["output"] = str(output)
    try:
        spec = validate_spec(raw)
        experiment = run_sweep(spec.smoke() if smoke else spec, console=console)
        _finish_sweep(experiment)
    except IQLSweepError as err:
        _fail(err)


@figure_app.command("expectiles")
def figure_expectiles(
    out: Annotated[Path, typer.Option(help="PNG to write.")] = Path("docs/figures/expectiles.png"),
    fit_steps: Annotated[
        int, typer.Option(help="Adam steps per conditional-expectile net.")
    ] = 3000,
) -> None:
    """Figure 1: the asymmetric loss, expectiles of N(0, 1), conditional expectiles (MLP)."""
    from iql_sweep.paper.expectiles import plot_expectiles

    try:
        _png_path(out)
    except IQLSweepError as err:
        _fail(err)
    out.parent.mkdir(parents=True, exist_ok=True)
    numbers = plot_expectiles(out, fit_steps=fit_steps)
    taus, values = numbers["taus"], numbers["expectiles"]
    picks = [int(abs(taus - t).argmin()) for t in (0.1, 0.5, 0.9, 0.99)]
    shown = ", ".join(f"τ {taus[i]:.2f}: {values[i]:+.3f}" for i in picks)
    console.print(f"[bold green]wrote[/] {out}  (expectiles of N(0,1): {shown})", highlight=False)


@figure_app.command("stitching")
def figure_stitching(
    experiment_dir: Annotated[
        Path | None,
        typer.Argument(help="A finished sweep on one PointMaze dataset; omitted: run --spec."),
    ] = None,
    spec: Annotated[Path, typer.Option(help="The sweep to run when no experiment is given.")] = (
        Path(__file__).resolve().parent.parent / "sweeps" / "stitching.yaml"
    ),
    smoke: Annotated[bool, typer.Option(help="Run the tiny version of the spec.")] = False,
    output: Annotated[str | None, typer.Option(help="Override the spec's output folder.")] = None,
    out: Annotated[Path, typer.Option(help="PNG to write (a CSV is written beside it).")] = Path(
        "docs/figures/stitching.png"
    ),
) -> None:
    """Figure 2: learned V per tau against the reference optimal V* on a corrupted u-maze, and
    each policy's score. Runs the stitching sweep first unless given its experiment folder."""
    from iql_sweep.paper.stitching import analyse_experiment
    from iql_sweep.paper.stitching_plots import plot_stitching

    if experiment_dir is None:
        from iql_sweep.sweep import load_spec_for_run, run_sweep

        try:
            parsed = load_spec_for_run(spec, smoke, output)
        except IQLSweepError as err:
            _spec_error(err)
        try:
            experiment_dir = run_sweep(parsed, console=console)
            _finish_sweep(experiment_dir)
        except IQLSweepError as err:
            _fail(err)
    try:
        result = analyse_experiment(experiment_dir)
    except IQLSweepError as err:
        _fail(err)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_stitching(result, out)
    table = out.with_suffix(".csv")
    result.table.to_csv(table, index=False)
    console.print(result.table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    console.print(f"[bold green]wrote[/] {out} and {table}", highlight=False)


def _one_line(err: BaseException) -> str:
    """What went wrong, in one line, for the errors bad input can cause."""
    import pickle

    import yaml
    from pydantic import ValidationError as PydanticError

    if isinstance(err, PydanticError):
        return "; ".join(describe_errors(err))
    if isinstance(err, yaml.YAMLError):
        return f"not valid YAML: {str(err).splitlines()[0]}"
    if isinstance(err, IsADirectoryError | NotADirectoryError | FileExistsError):
        return f"{err.filename}: {err.strerror} (a file where a folder is needed, or the reverse)"
    if isinstance(err, PermissionError):
        return f"{err.filename}: permission denied; choose a folder you can write"
    if isinstance(err, FileNotFoundError):
        return f"{err.filename}: no such file or folder"
    if isinstance(err, pickle.UnpicklingError | EOFError):
        return f"a damaged file (likely a truncated checkpoint): {err}"
    return f"{type(err).__name__}: {err}"


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - console entry point
    """The console entry point (``argv``: the arguments, default the command line's): no
    traceback reaches a user for bad input; ``--debug`` shows it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    try:
        app(args=argv, prog_name="iql-sweep")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        sys.exit(130)
    except BaseException as err:  # noqa: BLE001 - the last line of defence
        if debug:
            raise
        expected = isinstance(err, IQLSweepError | OSError | ValueError)
        label = "error" if expected else "internal error"
        err_console.print(
            f"[bold red]{label}:[/] {_one_line(err)}"
            + ("" if expected else " (rerun with --debug for the traceback)"),
            highlight=False,
        )
        sys.exit(2 if expected else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
