"""The YAML sweep spec: a pydantic model, and validation that names the YAML path of each problem.

A spec (see ``sweeps/*.yaml``)::

    name: tau_ablation
    datasets: [iql-sweep/pointmaze/medium-v0]
    preset: maze                 # optional; default: the preset that fits each dataset
    iql: {batch_size: 256}       # fixed overrides of any IQL hyper-parameter
    search:
      grid: {expectile: [0.5, 0.7, 0.9], beta: [3.0], seed: [0, 1, 2]}
      # or: optuna: {num_samples: 20, params: {expectile: {type: uniform, low: 0.5, high: 0.95}}}
      scheduler: {type: asha, grace_period: 2, reduction_factor: 3}   # optional
    training: {steps: 200000, eval_every: 5000, eval_episodes: 10, checkpoint_every: 10000,
               online_steps: 0, updates_per_env_step: 1}   # online_steps > 0: fine-tune online
    resources: {cpus_per_trial: 1, gpus_per_trial: auto, max_concurrent_trials: 4, max_failures: 1}
    wandb: {mode: offline, project: iql-sweep, entity: null, group: null, tags: []}
    output: results              # relative paths are resolved against the current directory
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from iql_sweep.errors import ConfigError, IQLSweepError, describe_errors, error_detail
from iql_sweep.files import folder_problem
from iql_sweep.iql.config import PRESETS, IQLConfig
from iql_sweep.seeds import MAX_SEED
from iql_sweep.trial_config import Pack, RunSettings, TrialConfig, TrialRun
from iql_sweep.yaml_input import load_yaml

#: Search dimensions that are not IQL hyper-parameters.
RUN_KEYS = ("seed",)
#: Grid dimensions a pack holds inside one trial (everything else splits packs).
MEMBER_KEYS = ("expectile", "beta", "seed")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Distribution(StrictModel):
    """An Optuna search distribution."""

    type: Literal["uniform", "loguniform", "int", "choice"] = Field(
        description="how values are drawn: uniform or loguniform between low and high, int (a "
        "whole number between low and high, both included), choice (one of values)"
    )
    low: float | None = Field(None, description="the smallest value (not for choice)")
    high: float | None = Field(None, description="the largest value (not for choice)")
    values: list[Any] | None = Field(None, description="the values of a choice")

    @model_validator(mode="after")
    def _bounds(self) -> Distribution:
        if self.type == "choice":
            if not self.values:
                raise ValueError("a 'choice' distribution needs a non-empty 'values' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a '{self.type}' distribution needs 'low' and 'high'")
            if not self.low < self.high:
                raise ValueError(f"'low' ({self.low}) must be below 'high' ({self.high})")
            if self.type == "loguniform" and self.low <= 0:
                raise ValueError("a 'loguniform' distribution needs 'low' > 0")
        return self


class OptunaSearch(StrictModel):
    """Optuna TPE over distributions, with a sample budget."""

    num_samples: int = Field(
        ge=1, le=100_000, description="configurations drawn per dataset (one trial each)"
    )
    params: dict[str, Distribution] = Field(
        min_length=1, description="a distribution per IQL hyper-parameter or seed"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Optuna's sampler seed")


class Scheduler(StrictModel):
    """ASHA early stopping; ``grace_period`` counts evaluations."""

    type: Literal["asha"] = Field("asha", description="Ray Tune's ASHA scheduler")
    grace_period: int = Field(1, ge=1, description="evaluations before a trial can be stopped")
    reduction_factor: float = Field(
        3.0, gt=1.0, description="1 / the share of trials kept at each rung"
    )


class Search(StrictModel):
    """Exactly one of ``grid`` (lists of values) or ``optuna``."""

    grid: dict[str, list[Any]] | None = Field(
        None,
        description="a list of values per IQL hyper-parameter or seed; every combination is "
        "trained",
    )
    optuna: OptunaSearch | None = Field(None, description="an Optuna TPE search instead")
    scheduler: Scheduler | None = Field(
        None, description="early stopping of the weaker trials (none: every trial runs out)"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Search:
        if (self.grid is None) == (self.optuna is None):
            raise ValueError("give exactly one of 'grid' or 'optuna'")
        return self


class Resources(StrictModel):
    """What each trial asks of the cluster, and how trials share it."""

    cpus_per_trial: float = Field(
        1.0, gt=0, description="CPUs per trial (its torch threads and evaluation rollouts)"
    )
    gpus_per_trial: float | Literal["auto"] = Field(
        "auto",
        description="GPU share of a trial; 'auto': a share sized from the trial's memory when "
        "the cluster has GPUs (several trials per GPU), else the CPU",
    )
    max_concurrent_trials: int | None = Field(
        None, ge=1, description="trials running at once (none: as many as the cluster fits)"
    )
    max_failures: int = Field(
        1, ge=0, description="retries of a failed trial (from its last checkpoint)"
    )
    pack: StrictInt | Literal["auto"] = Field(
        1, description="configurations trained together in one trial (grid searches); 'auto': 16"
    )
    share_critics: bool = Field(
        True, description="in a pack, members with the same tau and seed share one critic"
    )
    mps: bool = Field(
        False,
        description="the GPU nodes run NVIDIA MPS, so trials sharing a card run at once: "
        "'auto' then places up to 16 trials per GPU instead of 4",
    )

    @property
    def gpu_share(self) -> float:
        """The numeric share (0 while ``auto`` is unresolved: the driver sizes it from the
        cluster before any trial starts, see ``feasibility.placement``)."""
        return 0.0 if self.gpus_per_trial == "auto" else float(self.gpus_per_trial)

    @field_validator("gpus_per_trial", mode="before")
    @classmethod
    def _gpu_kind(cls, value: Any) -> Any:
        if value == "auto" and isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValueError(f"a number >= 0 (a share of a GPU) or 'auto' (got {value!r})")
        if not math.isfinite(value):
            raise ValueError(f"a finite number or 'auto' (got {value!r})")
        return float(value)

    @field_validator("pack", mode="before")
    @classmethod
    def _pack_kind(cls, value: Any) -> Any:
        if isinstance(value, bool) or not (value == "auto" or isinstance(value, int)):
            raise ValueError(f"a positive integer or 'auto' (got {value!r})")
        return value


class WandbSettings(StrictModel):
    """One W&B run per configuration; offline (files to sync later) needs no key or network."""

    mode: Literal["online", "offline", "disabled"] = Field(
        "offline",
        description="online falls back to offline without a key or network, never a crash",
    )
    project: str = Field("iql-sweep", min_length=1, max_length=128, description="W&B project")
    entity: str | None = Field(
        None, min_length=1, max_length=128, description="W&B team or user (none: your default)"
    )
    group: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="W&B group of every run (none: one group per sweep and dataset)",
    )
    tags: list[str] = Field(
        default_factory=list, description="W&B tags (the sweep's name is always added)"
    )

    @field_validator("project", "entity")
    @classmethod
    def _as_wandb_allows(cls, value: str | None) -> str | None:
        """W&B's own rule for project names (wandb.Settings): none of / \\ # ? % :"""
        if value is not None and (bad := sorted(set(value) & set("/\\#?%:"))):
            raise ValueError(f"W&B refuses names containing {' '.join(bad)}")
        return value

    def group_for(self, sweep: str, dataset: str) -> str:
        """The W&B group of a run: the spec's, else one group per sweep and dataset."""
        return self.group or f"{sweep}--{dataset.replace('/', '-')}"


class SweepSpec(StrictModel):
    """A whole sweep: which datasets, what varies, how each configuration trains, where."""

    name: str = Field(
        min_length=1, max_length=128, description="the sweep; its folder inside output"
    )
    datasets: list[str] = Field(
        min_length=1,
        description="dataset ids: local, made by the project (iql-sweep/...) or on Minari's "
        "remote (D4RL/...), each swept alike",
    )
    preset: str | None = Field(
        None, description="the IQL preset (none: the one that fits each dataset's domain)"
    )
    iql: dict[str, Any] = Field(
        default_factory=dict, description="fixed values of IQL hyper-parameters (table below)"
    )
    search: Search = Field(description="what varies: a grid or an Optuna search")
    training: RunSettings = Field(description="how long each configuration trains and is tested")
    resources: Resources = Field(
        default_factory=Resources, description="what each trial asks of the cluster"
    )
    wandb: WandbSettings = Field(default_factory=WandbSettings, description="W&B runs")
    output: str = Field(
        "results",
        min_length=1,
        description="where experiment folders go (a relative path: from the current folder)",
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="the seed of every configuration the search leaves"
    )

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", value):
            raise ValueError(
                f"{value!r} names the experiment's folder inside output: use letters, digits "
                "and _ . - only, not starting with '.'"
            )
        return value

    def output_dir(self, base: Path | None = None) -> Path:
        """The Ray storage path, a relative ``output`` resolved against ``base`` (default: cwd)."""
        path = Path(self.output).expanduser()
        return path if path.is_absolute() else (base or Path.cwd()) / path

    def experiment_dir(self, base: Path | None = None) -> Path:
        return self.output_dir(base) / self.name

    @property
    def pack_size(self) -> int:
        """How many configurations one trial trains at most (1: unpacked)."""
        pack = self.resources.pack
        return 16 if pack == "auto" else int(pack)

    @property
    def packed(self) -> bool:
        """Whether trials train packs (grid searches with pack > 1)."""
        return self.pack_size > 1 and self.search.grid is not None

    def configuration_count(self) -> int:
        """Configurations the sweep trains: datasets × the grid's product, or × Optuna's
        samples. Each is one row of the report and one W&B run."""
        if self.search.optuna is not None:
            return self.search.optuna.num_samples * len(self.datasets)
        return len(self.datasets) * math.prod(len(v) for v in (self.search.grid or {}).values())

    def ray_trial_count(self) -> int:
        """Ray Tune trials: one per configuration, or one per pack when the sweep is packed."""
        if self.packed:
            return len(self.datasets) * len(self.pack_plan())
        return self.configuration_count()

    def pack_plan(self) -> list[dict[str, Any]]:
        """Split a grid into packs: configurations that differ only in tau, beta and seed train
        together; members sharing tau and seed sit next to each other so they share a critic."""
        grid = dict(self.search.grid or {})
        member_dims = {k: grid.pop(k) for k in MEMBER_KEYS if k in grid}
        members = [dict(zip(member_dims, v)) for v in itertools.product(*member_dims.values())]
        members.sort(key=lambda m: (m.get("seed", self.seed), m.get("expectile", 0.0)))
        packs = []
        for values in itertools.product(*grid.values()):
            overrides = dict(zip(grid, values))
            for start in range(0, len(members), self.pack_size):
                chunk = [{"seed": self.seed, **m} for m in members[start : start + self.pack_size]]
                packs.append({"members": chunk, "overrides": overrides})
        return packs

    def trial_template(self, dataset: str) -> TrialConfig:
        """The trial configuration every trial on ``dataset`` starts from (no search applied)."""
        run = TrialRun(
            **self.training.model_dump(),
            cpus_per_trial=self.resources.cpus_per_trial,
            gpus_per_trial=self.resources.gpu_share,
            share_critics=self.resources.share_critics,
        )
        return TrialConfig(
            dataset=dataset,
            seed=self.seed,
            preset=self.preset,
            iql=dict(self.iql),
            sweep=self.name,
            run=run,
        )

    def trial_configs(self) -> list[TrialConfig]:
        """Every trial a grid search makes (an Optuna search: one template per dataset, its
        values are drawn later)."""
        out = []
        for dataset in self.datasets:
            template = self.trial_template(dataset)
            if self.packed:
                out += [template.model_copy(update={"pack": Pack(**p)}) for p in self.pack_plan()]
                continue
            grid = dict(self.search.grid or {})
            seeds = grid.pop("seed", [self.seed])
            for seed in seeds:
                for values in itertools.product(*grid.values()):
                    iql = {**template.iql, **dict(zip(grid, values))}
                    out.append(template.model_copy(update={"seed": seed, "iql": iql}))
        return out

    def smoke(self) -> SweepSpec:
        """A tiny version for checking a spec end to end: 2 values per grid dimension, 2 Optuna
        samples, 60 steps (and 30 online steps when fine-tuning), evaluations every 30 steps on 2
        episodes."""
        data = self.model_dump(mode="json")
        online = 30 if self.training.online_steps else 0
        data["training"] = {
            "steps": 60,
            "eval_every": 30,
            "eval_episodes": 2,
            "online_steps": online,
            "compile": self.training.compile,
            "matmul_precision": self.training.matmul_precision,
        }
        data["iql"] = {**data["iql"], "batch_size": 32, "hidden_dims": [32, 32]}
        if data["search"]["grid"] is not None:
            data["search"]["grid"] = {k: v[:2] for k, v in data["search"]["grid"].items()}
        else:
            data["search"]["optuna"]["num_samples"] = 2
        data["search"]["scheduler"] = None
        data["name"] = f"{self.name}-smoke"
        return SweepSpec(**data)


def _value_problems(key: str, value: Any) -> list[str]:
    """What is wrong with one IQL hyper-parameter value (empty when it is valid)."""
    try:
        IQLConfig(**{key: value})
    except ValidationError as err:  # relations between fields are checked on resolved configs
        own = [e for e in err.errors() if e["loc"][:1] == (key,)]
        return [f"{error_detail(e)} (got {value!r})" for e in own]
    return []


def _same_values(where: str, key: str, values: list[Any]) -> list[str]:
    """Grid values that are one value in two spellings (3 and 3.0, 0.7 and '0.7'): each would
    train the same configuration twice."""
    seen: dict[Any, Any] = {}
    for v in values:
        resolved = getattr(IQLConfig(**{key: v}), key)
        if resolved in seen:
            return [
                f"{where}: {seen[resolved]!r} and {v!r} are the same value; list each value once"
            ]
        seen[resolved] = v
    return []


def _iql_value_errors(values: dict[str, Any], prefix: str) -> list[str]:
    """Check IQL overrides field by field against IQLConfig's rules."""
    problems = []
    for key, value in values.items():
        if key not in IQLConfig.model_fields:
            allowed = ", ".join(sorted(IQLConfig.model_fields))
            problems.append(f"{prefix}.{key}: unknown IQL hyper-parameter; allowed: {allowed}")
            continue
        problems += [f"{prefix}.{key}: {p}" for p in _value_problems(key, value)]
    return problems


def _search_errors(spec: SweepSpec) -> list[str]:
    problems = []
    search = spec.search
    fields = IQLConfig.model_fields
    allowed = ", ".join(sorted([*fields, *RUN_KEYS]))
    if search.grid is not None:
        if not search.grid:
            problems.append("search.grid: give at least one dimension, e.g. expectile: [0.7]")
        for key, values in search.grid.items():
            where = f"search.grid.{key}"
            if not values:
                problems.append(f"{where}: empty list; give at least one value")
            elif len({repr(v) for v in values}) < len(values):
                problems.append(f"{where}: repeated values {values}; each value once")
            elif key in RUN_KEYS:
                for i, v in enumerate(values):
                    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_SEED:
                        problems.append(
                            f"{where}[{i}]: seeds are integers from 0 to {MAX_SEED} (got {v!r})"
                        )
            elif key == "max_steps":
                problems.append(f"{where}: max_steps is set by training.steps; sweep that instead")
            elif key not in fields:
                problems.append(f"{where}: unknown hyper-parameter; allowed: {allowed}")
            else:
                found = [
                    f"{where}[{i}]: {p}"
                    for i, v in enumerate(values)
                    for p in _value_problems(key, v)
                ]
                problems += found or _same_values(where, key, values)
    if search.optuna is not None:
        if len(spec.datasets) != 1:
            problems.append(
                "search.optuna: an Optuna search runs on one dataset; give one dataset per spec"
            )
        for key, dist in search.optuna.params.items():
            where = f"search.optuna.params.{key}"
            if key not in fields or key == "max_steps":
                problems.append(f"{where}: not a searchable hyper-parameter; allowed: {allowed}")
                continue
            kind = fields[key].annotation
            if dist.type in ("uniform", "loguniform") and kind is not float:
                problems.append(
                    f"{where}: a '{dist.type}' distribution draws floats, but {key} is not a "
                    "float; use 'int' or 'choice'"
                )
                continue
            if dist.type == "int":
                if kind is not int:
                    problems.append(
                        f"{where}: an 'int' distribution draws integers, but {key} is not an "
                        "integer field; use 'uniform' or 'choice'"
                    )
                    continue
                if not (float(dist.low).is_integer() and float(dist.high).is_integer()):
                    problems.append(
                        f"{where}: an 'int' distribution needs whole-number bounds (got "
                        f"{dist.low} and {dist.high})"
                    )
                    continue
            probes = dist.values if dist.type == "choice" else [dist.low, dist.high]
            if dist.type == "int":
                probes = [int(p) for p in probes]
            for v in probes:
                problems += [f"{where}: {p}" for p in _value_problems(key, v)]
    return problems


def _output_errors(spec: SweepSpec, base: Path | None = None) -> list[str]:
    """The output folder must be a folder this process can create or write, and the
    experiment folder a new or existing folder inside it."""
    out = spec.output_dir(base)
    problem = folder_problem(out / spec.name, "output", named=out)
    return [problem] if problem else []


def _resolved_errors(spec: SweepSpec) -> list[str]:
    """Relations between hyper-parameters, checked on every configuration the sweep trains
    (the dataset's preset applied), and the capability check."""
    problems: list[str] = []
    for trial in spec.trial_configs():
        try:
            trial.configurations()
        except ConfigError as err:
            problems += [f"iql: {line}" for line in str(err).splitlines()]
        problems += trial.problems()
    return list(dict.fromkeys(problems))


def dataset_content_errors(spec: SweepSpec) -> list[str]:
    """Open every local dataset (shape, finite values, action bounds; the flat cache makes the
    second look free) and check each configuration's batch against its size."""
    from iql_sweep.data.minari_io import load_transitions, local_dataset_ids
    from iql_sweep.data.ogbench_io import files_present, is_ogbench
    from iql_sweep.evaluation import dataset_env_spec

    present = set(local_dataset_ids())
    problems = []
    for i, dataset_id in enumerate(spec.datasets):
        if dataset_id not in present and not (is_ogbench(dataset_id) and files_present(dataset_id)):
            continue  # one the project makes or downloads before the trials start
        try:
            data = load_transitions(dataset_id)
            size = data.size
            dataset_env_spec(data)  # the evaluation env in the data's maze, or a refusal
        except IQLSweepError as err:
            problems.append(f"datasets[{i}]: {err}")
            continue
        batches = {
            c.batch_size
            for t in spec.trial_configs()
            if t.dataset == dataset_id
            for _, c, _ in t.configurations()
        }
        problems += batch_problems("iql.batch_size", max(batches), size, dataset_id)
    return problems


def batch_problems(field: str, batch: int, size: int, dataset_id: str) -> list[str]:
    """A minibatch larger than the dataset it is drawn from (a spec's, or ``train``'s)."""
    if batch <= size:
        return []
    return [f"{field}: {batch} exceeds the {size} transitions of {dataset_id}; use a smaller batch"]


def _dataset_errors(spec: SweepSpec, remote: bool = True) -> list[str]:
    """Ids well formed and listed once; one neither local nor makeable must be on Minari's
    remote (not asked with ``remote=False``: ``validate --offline``)."""
    from iql_sweep.data.generators import name_for_id
    from iql_sweep.data.minari_io import _ID_RE, local_dataset_ids
    from iql_sweep.data.ogbench_io import OGBenchTask, check_files, is_ogbench
    from iql_sweep.data.ogbench_make import LOCAL_TYPE
    from iql_sweep.data.remote import ogbench_offered

    present = set(local_dataset_ids())
    problems = []
    fetched: list[str] = []  # OGBench ids whose files come from the mirror
    for i, dataset_id in enumerate(spec.datasets):
        where = f"datasets[{i}]"
        if dataset_id in spec.datasets[:i]:
            first = spec.datasets.index(dataset_id)
            problems.append(f"{where}: {dataset_id!r} repeats datasets[{first}]; list it once")
            continue
        if is_ogbench(dataset_id):  # OGBench's files here, else on OGBench's mirror
            try:
                task = OGBenchTask.parse(dataset_id)
                if task.present:
                    check_files(task)
                elif remote and task.data_type != LOCAL_TYPE:  # local: made before the trials
                    fetched.append(dataset_id)
            except IQLSweepError as err:
                problems.append(f"{where}: {err}")
            continue
        if not _ID_RE.match(dataset_id):
            problems.append(
                f"{where}: {dataset_id!r} is not a Minari id (namespace/name-vN, "
                "e.g. iql-sweep/pointmaze/umaze-v0)"
            )
        elif remote and dataset_id not in present and name_for_id(dataset_id) is None:
            problems += _remote_dataset_errors(where, dataset_id)
    try:  # one probe, one listing and at most one line for them all
        ogbench_offered(fetched)
    except IQLSweepError as err:
        problems.append(str(err))
    return problems


def _remote_dataset_errors(where: str, dataset_id: str) -> list[str]:
    """A dataset neither local nor makeable: fine when Minari's remote offers it (it is
    downloaded before the trials start); else say which of the three it is not."""
    from iql_sweep.data.minari_io import minari_root
    from iql_sweep.data.remote import (
        RemoteUnreachableError,
        offline_help,
        on_remote,
        remote_name,
    )

    lead = (
        f"{where}: {dataset_id!r} is not under the Minari root {minari_root()}, the project "
        "cannot make it, and"
    )
    try:
        if on_remote(dataset_id):
            return []
    except RemoteUnreachableError as err:
        return [f"{lead} {err.headline}. {offline_help([dataset_id])}"]
    return [f"{lead} Minari's remote {remote_name()} does not offer it (check the id)"]


def validate_spec(
    raw: Any,
    check_datasets: bool = True,
    base: Path | None = None,
    check_output: bool = True,
    remote: bool = True,
) -> SweepSpec:
    """Parse a spec (a dict from YAML); raise ConfigError listing every problem, one per line.
    ``remote=False`` checks everything but the remote datasets' presence."""
    if not isinstance(raw, dict):
        raise ConfigError("(top level): a sweep spec is a YAML mapping of keys to values")
    try:
        spec = SweepSpec(**raw)
    except ValidationError as err:
        raise ConfigError("\n".join(describe_errors(err, "yaml"))) from None
    except TypeError as err:  # keys that are not strings
        raise ConfigError(f"(top level): {err}") from None
    problems = []
    if spec.preset is not None and spec.preset not in PRESETS:
        problems.append(f"preset: unknown preset {spec.preset!r}; allowed: {', '.join(PRESETS)}")
    problems += _iql_value_errors(spec.iql, "iql")
    if "max_steps" in spec.iql:
        problems.append("iql.max_steps: set by training.steps; remove it")
    problems += _search_errors(spec)
    # the relations, on each dataset's schedule (the preset's where training leaves it open)
    runs = [spec.trial_template(d).run for d in spec.datasets]
    problems += dict.fromkeys(p for run in runs for p in run.problems("training."))
    evaluations = min((r.total_updates // r.eval_every for r in runs), default=2)
    if spec.search.scheduler is not None and evaluations < 2:
        problems.append("search.scheduler: ASHA needs at least 2 evaluations per trial")
    elif spec.search.scheduler is not None and spec.search.scheduler.grace_period > evaluations:
        problems.append(
            f"search.scheduler.grace_period: {spec.search.scheduler.grace_period} evaluations "
            f"exceed the {evaluations} a trial makes; lower it"
        )
    if check_output:
        problems += _output_errors(spec, base)
    pack = spec.resources.pack
    if isinstance(pack, int) and pack < 1:
        problems.append(f"resources.pack: must be a positive integer or 'auto' (got {pack})")
    if spec.search.optuna is not None and pack != 1:
        problems.append("resources.pack: Optuna searches run one configuration per trial; use 1")
    if not problems:  # on the trials the sweep will run: relations, capabilities
        problems += _resolved_errors(spec)
    if check_datasets:
        problems += _dataset_errors(spec, remote)
        if not problems:
            problems += dataset_content_errors(spec)
    if problems:
        raise ConfigError("\n".join(problems))
    return spec


def load_spec(
    path: str | Path, check_datasets: bool = True, output: str | None = None, remote: bool = True
) -> SweepSpec:
    """Read and validate a YAML spec file (``output`` replaces the spec's, before the check)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"SPEC: no such file {path}")
    raw = load_yaml(path)
    if output is not None and isinstance(raw, dict):
        raw = {**raw, "output": output}
    return validate_spec(raw, check_datasets=check_datasets, remote=remote)
