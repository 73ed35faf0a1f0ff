"""Running a sweep spec on Ray Tune: param space, search, scheduler, resources, resume."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from rich.console import Console

from iql_sweep.errors import ConfigError
from iql_sweep.experiment import Experiment
from iql_sweep.spec import SweepSpec, load_spec
from iql_sweep.trial_config import TrialConfig

#: Variables a trial needs from the driver's environment (also on an existing cluster).
FORWARDED_ENV = (
    "MINARI_DATASETS_PATH",
    "IQL_SWEEP_CACHE",
    "IQL_SWEEP_OGBENCH_DIR",
    "WANDB_API_KEY",
)

logger = logging.getLogger(__name__)


def _distribution(dist) -> Any:
    from ray import tune

    if dist.type == "uniform":
        return tune.uniform(dist.low, dist.high)
    if dist.type == "loguniform":
        return tune.loguniform(dist.low, dist.high)
    if dist.type == "int":
        return tune.randint(int(dist.low), int(dist.high) + 1)
    return tune.choice(dist.values)


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """The Tune param space: the spec's trial template (a TrialConfig) with the datasets, the
    grid dimensions (or packs of them) or the Optuna distributions in their places."""
    from ray import tune

    space = spec.trial_template(spec.datasets[0]).model_dump(mode="json")
    datasets = spec.datasets
    space["dataset"] = tune.grid_search(datasets) if len(datasets) > 1 else datasets[0]
    if spec.packed:
        space["pack"] = tune.grid_search(spec.pack_plan())
        return space
    grid = dict(spec.search.grid or {})
    seeds = grid.pop("seed", None)
    if spec.search.optuna is not None:
        searched = {k: _distribution(d) for k, d in spec.search.optuna.params.items()}
    else:
        searched = {k: tune.grid_search(v) for k, v in grid.items()}
    space["iql"] = {**space["iql"], **searched}
    if seeds:
        space["seed"] = tune.grid_search(seeds)
    return space


def trial_dirname(trial) -> str:
    """Short, readable trial folders: dataset, tau, beta, seed and the trial id."""
    config = TrialConfig.model_validate(trial.config)
    name = config.dataset.split("/")[-1]
    if config.pack is not None:
        return f"{name}_pack{len(config.pack.members)}_{trial.trial_id}"
    (member,) = config.members()
    return f"{name}_tau{member.expectile:g}_beta{member.beta:g}_seed{member.seed}_{trial.trial_id}"


def _trainable(spec: SweepSpec):
    from ray import tune

    from iql_sweep.ray_trial import iql_trial

    resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpu_share}
    return tune.with_resources(iql_trial, resources)


_SHORT_NAMES = {"expectile": "tau", "beta": "beta"}


def progress_columns(spec: SweepSpec) -> dict[str, str]:
    """The console table's parameter columns: only what the search varies (every column must
    exist in every trial's config)."""
    columns = {"dataset": "dataset"} if len(spec.datasets) > 1 else {}
    if spec.packed:
        return columns  # tau, beta and seed live inside each pack
    searched = spec.search.optuna.params if spec.search.optuna else (spec.search.grid or {})
    for key in searched:
        if key == "seed":
            columns["seed"] = "seed"
        else:
            columns[f"iql/{key}"] = _SHORT_NAMES.get(key, key)
    return columns


def _run_config(spec: SweepSpec, storage: Path, callbacks: list | None = None):
    from ray import tune
    from ray.tune import CLIReporter

    from iql_sweep.wandb_logging import WandbTrialLogger

    reporter = CLIReporter(
        parameter_columns=progress_columns(spec),
        metric_columns={"step": "step", "score": "score", "q_loss": "Q loss", "eta_s": "ETA s"},
        max_report_frequency=15,
        sort_by_metric=False,
    )
    return tune.RunConfig(
        name=spec.name,
        storage_path=str(storage),
        failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[
            WandbTrialLogger(spec.wandb, spec.name, storage / spec.name),
            *(callbacks or []),
        ],
        progress_reporter=reporter,
        verbose=1,
    )


def build_tuner(spec: SweepSpec, storage: Path, callbacks: list | None = None):
    """A fresh Tuner for a spec; ``storage`` is the absolute output folder; ``callbacks`` are
    extra Ray Tune callbacks."""
    from ray import tune

    search_alg, num_samples = None, 1
    if spec.search.optuna is not None:
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(seed=spec.search.optuna.seed)
        num_samples = spec.search.optuna.num_samples
    scheduler = None
    if spec.search.scheduler is not None:
        from ray.tune.schedulers import ASHAScheduler

        s = spec.search.scheduler
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=max(t.total_updates // t.run.eval_every for t in spec.trial_configs()),
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
        )
    tune_config = tune.TuneConfig(
        metric="score",
        mode="max",
        num_samples=num_samples,
        search_alg=search_alg,
        scheduler=scheduler,
        max_concurrent_trials=spec.resources.max_concurrent_trials,
        trial_dirname_creator=trial_dirname,
        reuse_actors=False,
    )
    return tune.Tuner(
        _trainable(spec),
        param_space=param_space(spec),
        tune_config=tune_config,
        run_config=_run_config(spec, storage, callbacks),
    )


def prepare_datasets(spec: SweepSpec, console: Console) -> None:
    """Once, on the driver and before Ray starts: make the missing datasets the project can
    generate, download the others from Minari's remote (into the shared Minari root), then
    check what arrived as validation checks local datasets."""
    from iql_sweep.data.make import MakeReport, OGBenchMakeReport, ensure_dataset
    from iql_sweep.spec import dataset_content_errors

    obtained = False
    for dataset_id in spec.datasets:
        report = ensure_dataset(dataset_id, progress=False)  # downloads show their own progress
        obtained = obtained or report is not None
        if report is None:
            said = "present"
        elif isinstance(report, MakeReport | OGBenchMakeReport):
            said = f"was missing; made it ({report.steps} steps, {report.episodes} episodes)"
        else:
            said = (
                f"was missing; downloaded {report.bytes / 2**20:.1f} MiB from {report.remote} "
                f"in {report.seconds:.1f} s"
            )
        console.print(f"dataset {dataset_id}: {said}", highlight=False)
    if obtained:
        problems = dataset_content_errors(spec)
        if problems:
            raise ConfigError("\n".join(problems))


def check_address(address: str | None) -> None:
    """A cluster address (``--address``, else ``RAY_ADDRESS``) where something listens, or a
    one-line error within seconds (Ray itself would retry for about a minute first)."""
    field = "--address"
    if not address:
        address, field = os.environ.get("RAY_ADDRESS"), "RAY_ADDRESS"
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"{field}: use 'auto' or HOST:PORT (got {address!r})")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError(
            f"{field}: nothing answers at {host}:{port} ({reason}); start the cluster there "
            "('ray start --head'), give the address its head prints, or leave --address out "
            "for a local Ray"
        ) from None


def init_ray(address: str | None, log_file: Path | None = None, verbose: bool = True) -> None:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local Ray; trials get the
    driver's dataset and cache locations. Unless ``verbose``, Ray's own log lines (its start,
    checkpoint notices, warnings, the trials' output) go to ``log_file``, not the console."""
    import ray

    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": verbose}
    handler: logging.Handler | None = None
    if not verbose and log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        # ray.init(configure_logging=False) clears the "ray" logger's handlers, so its own
        # start-up lines (token authentication, ...) are caught one level down as well.
        for name in ("ray", "ray._private", "ray.tune", "ray.train", "ray.data"):
            _log_to(name, handler)
        kwargs["configure_logging"] = False
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(include_dashboard=False, **kwargs)
    if handler is not None:
        _log_to("ray", handler)


def _log_to(name: str, handler: logging.Handler) -> None:
    """Send one logger's records (INFO and up) to ``handler`` only."""
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)


def _quiet_ray_output() -> None:
    # The legacy reporter prints the trial table with tau/beta/score columns we choose.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def run_sweep(
    spec: SweepSpec,
    address: str | None = None,
    base: Path | None = None,
    console: Console | None = None,
    verbose: bool = False,
) -> Path:
    """Run a validated spec to the end; returns the experiment folder."""
    console = console or Console()
    check_address(address)
    storage = spec.output_dir(base).resolve()
    experiment = Experiment.of(spec, base)
    if experiment.holds_sweep():
        raise ConfigError(
            f"output: {experiment.path} already holds a sweep; continue it with "
            f"'iql-sweep resume {experiment.path}', or change name/output"
        )
    prepare_datasets(spec, console)
    _quiet_ray_output()
    experiment.path.mkdir(parents=True, exist_ok=True)
    init_ray(address, experiment.ray_log, verbose)
    spec = announce_placement(spec, console)
    with experiment.lock():
        if experiment.holds_sweep():  # another driver got here first
            raise ConfigError(f"output: {experiment.path} already holds a sweep")
        experiment.write_spec(spec)
        console.print(
            f"sweep {spec.name}: {spec.configuration_count()} configurations in "
            f"{spec.ray_trial_count()} Ray trials -> {experiment.path}",
            highlight=False,
        )
        build_tuner(spec, storage).fit()
    return experiment.path


def announce_placement(spec: SweepSpec, console: Console) -> SweepSpec:
    """Say where the trials will run; refuse a request no node can ever satisfy (before Ray
    would wait for it forever). Returns the spec with its GPU share settled (``auto`` sized)."""
    from iql_sweep.feasibility import check, placement

    place = placement(spec)
    note = check(place)
    console.print(place.summary(spec.ray_trial_count()), highlight=False)
    if note:
        console.print(note, highlight=False)
    resources = spec.resources.model_copy(update={"gpus_per_trial": place.gpus})
    return spec.model_copy(update={"resources": resources})


def resume_sweep(
    experiment: Path,
    address: str | None = None,
    console: Console | None = None,
    verbose: bool = False,
) -> Path:
    """Continue an interrupted sweep from its last checkpoints; finished trials are kept."""
    console = console or Console()
    check_address(address)
    folder = Experiment(experiment)
    folder.require_sweep()
    experiment = folder.path
    with folder.lock():  # first: a second driver is refused before any work
        from ray import tune

        spec = folder.spec
        if not tune.Tuner.can_restore(str(experiment)):
            raise ConfigError(
                f"EXPERIMENT_DIR: {experiment} has no Ray Tune state to resume (the sweep "
                "stopped before its first trial started); remove the folder and run the spec "
                "again"
            )
        _quiet_ray_output()
        init_ray(address, folder.ray_log, verbose)
        spec = announce_placement(spec, console)
        tuner = tune.Tuner.restore(
            str(experiment),
            trainable=_trainable(spec),
            resume_unfinished=True,
            resume_errored=True,
        )
        console.print(f"resuming {experiment}")
        tuner.fit()
    return experiment


def load_spec_for_run(path: Path, smoke: bool, output: str | None = None) -> SweepSpec:
    """Validate a spec file (``output`` overridden first, shrunk with ``--smoke``) before Ray
    starts."""
    spec = load_spec(path, output=output)
    return spec.smoke() if smoke else spec
