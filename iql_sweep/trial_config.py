"""The one typed configuration of a training run: built by the sweep (one per Ray trial) or by
``iql-sweep train``, and read by the trial, the report, the W&B logging and the stitching
analysis. It is the only place that knows the run length, packing and member naming.

Its serialised form is Ray Tune's trial config: ``dataset``, ``seed``, ``preset``, ``iql``
(overrides, fixed and searched), ``pack`` (members and shared overrides; absent for a plain
trial), ``sweep`` and ``run`` (the training settings and the trial's resources).
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from iql_sweep.data.profile import DatasetProfile
from iql_sweep.iql.config import (
    IQLConfig,
    Member,
    make_config,
    no_bool_for_numbers,
    unsupported,
)
from iql_sweep.seeds import MAX_SEED


def build_config(
    dataset_id: str, preset: str | None, steps: int, overrides: dict[str, Any]
) -> IQLConfig:
    """A run's config: the named preset (else the one the dataset's id points to) with
    overrides; the run length (offline plus fine-tuning updates) sets max_steps, the cosine
    horizon."""
    preset = preset or DatasetProfile.from_id(dataset_id).preset
    return make_config(preset, **{**overrides, "max_steps": steps})


#: The official IQL's evaluation schedule per preset: (updates between evaluations, episodes).
EVAL_SCHEDULES: dict[str, tuple[int, int]] = {
    "antmaze": (100_000, 100),
    # OGBench's reference runs (the FQL repository): 50 episodes every 100,000 updates
    "ogbench": (100_000, 50),
    "ogbench-long": (100_000, 50),
}
#: Every other preset's (locomotion, kitchen, adroit, maze, default).
DEFAULT_EVAL_SCHEDULE = (5_000, 10)


class RunSettings(BaseModel):
    """What a run does besides the IQL hyper-parameters (a spec's ``training:``, or the
    options of ``iql-sweep train``)."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(ge=1, description="offline gradient updates")
    eval_every: int | None = Field(
        None,
        ge=1,
        description="updates between evaluations (none: the preset's, the official IQL's: "
        "100,000 for antmaze (and ogbench, as OGBench's reference runs), else 5,000; at most "
        "steps)",
    )
    eval_episodes: int | None = Field(
        None,
        ge=1,
        description="episodes per evaluation (none: the preset's: 100 for antmaze, 50 for "
        "ogbench, else 10)",
    )
    interim_eval_episodes: int | None = Field(
        None,
        ge=1,
        description="episodes of the evaluations before the last, for cheaper learning curves "
        "(none: eval_episodes); the last offline and the final evaluation use eval_episodes",
    )
    eval_workers: int | None = Field(
        None,
        ge=1,
        description="processes stepping the evaluation environments (none: one per CPU of the "
        "trial); returns do not depend on it",
    )
    overlap_eval: StrictBool = Field(
        True,
        description="evaluate beside training: the episodes run on a copy of the actors taken "
        "at the evaluation's step while the learner trains on (same returns); false: training "
        "waits for each evaluation. The final evaluation always runs alone",
    )
    checkpoint_every: int | None = Field(
        None, ge=1, description="updates between checkpoints (default: every evaluation)"
    )
    online_steps: int = Field(
        0, ge=0, description="online fine-tuning environment steps after the offline steps"
    )
    updates_per_env_step: int = Field(1, ge=1, description="updates per fine-tuning env step")
    compile: StrictBool | Literal["auto"] = Field(
        "auto",
        description="the speed setting of the learner: auto (a GPU: the whole update captured "
        "as one CUDA graph; the CPU: the compiled stages when the run is long enough to pay "
        "back the compile, else eager), true (compiled or graph) or false (eager)",
    )
    matmul_precision: Literal["highest", "high"] = Field(
        "highest",
        description="float32 matrix products: highest (full float32) or high (TF32 on GPUs that "
        "have it: faster for large packs, about 3 decimal digits); set before the learner is "
        "built or captured",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return no_bool_for_numbers(cls, value, info)

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_choice(cls, value: Any) -> Any:
        if value is True or value is False or value == "auto":
            return value
        raise ValueError("use auto, true or false")

    @property
    def total_updates(self) -> int:
        """Offline updates plus the fine-tuning phase's (``updates_per_env_step`` per step)."""
        return self.steps + self.online_steps * self.updates_per_env_step

    def for_preset(self, preset: str) -> Self:
        """These settings with the preset's evaluation schedule where they leave it open."""
        every, episodes = EVAL_SCHEDULES.get(preset, DEFAULT_EVAL_SCHEDULE)
        return self.model_copy(
            update={
                "eval_every": self.eval_every or min(every, self.steps),
                "eval_episodes": self.eval_episodes or episodes,
            }
        )

    def episodes_at(self, step: int) -> int:
        """Episodes of the evaluation at ``step``: full size at the end of each phase."""
        assert self.eval_episodes is not None, "resolve the schedule first (for_preset)"
        final = step in (self.steps, self.total_updates)
        return self.eval_episodes if final else self.interim_eval_episodes or self.eval_episodes

    @property
    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or self.eval_every

    def problems(self, prefix: str) -> list[str]:
        """Relations between the fields; ``prefix`` names them (``training.`` or ``--``)."""

        def name(field: str) -> str:
            return prefix + (field.replace("_", "-") if prefix == "--" else field)

        out = []
        if self.eval_every is None:  # the preset's, checked once resolved
            return out
        if self.eval_every > self.steps:
            out.append(
                f"{name('eval_every')}: {self.eval_every} exceeds {name('steps')} "
                f"({self.steps}); there would be no evaluation before the end"
            )
        every = self.checkpoint_every
        if every is not None and every % self.eval_every:
            out.append(
                f"{name('checkpoint_every')}: must be a multiple of {name('eval_every')} "
                f"({self.eval_every}); got {every}"
            )
        return out


class TrialRun(RunSettings):
    """A trial's run settings plus the resources the sweep gave it (older trials lack some)."""

    model_config = ConfigDict(extra="ignore")

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    share_critics: bool = True

    @property
    def evaluation_workers(self) -> int:
        """Processes stepping the evaluation environments: ``eval_workers``, else one per CPU
        the trial owns."""
        return self.eval_workers or max(1, int(self.cpus_per_trial))


class Pack(BaseModel):
    """The configurations one packed trial trains together."""

    members: list[dict[str, Any]] = Field(min_length=1)
    overrides: dict[str, Any] = Field(default_factory=dict)


class TrialConfig(BaseModel):
    """One training run of K >= 1 configurations on one dataset."""

    model_config = ConfigDict(extra="ignore")

    dataset: str
    seed: int = Field(0, ge=0, le=MAX_SEED)
    preset: str | None = None
    iql: dict[str, Any] = Field(default_factory=dict)
    pack: Pack | None = None
    sweep: str = ""
    run: TrialRun

    @model_validator(mode="after")
    def _schedule(self) -> TrialConfig:
        """The evaluation schedule the run leaves open is its preset's."""
        if self.run.eval_every is None or self.run.eval_episodes is None:
            self.run = self.run.for_preset(self.preset_name)
        return self

    @property
    def packed(self) -> bool:
        """A packed trial reports each member under its own prefix and W&B run."""
        return self.pack is not None

    @property
    def total_updates(self) -> int:
        return self.run.total_updates

    @property
    def preset_name(self) -> str:
        return self.preset or DatasetProfile.from_id(self.dataset).preset

    def overrides(self) -> dict[str, Any]:
        return {**self.iql, **(self.pack.overrides if self.pack else {})}

    def base_config(self) -> IQLConfig:
        """The resolved IQL config shared by every member (its own tau and beta aside)."""
        return build_config(self.dataset, self.preset, self.total_updates, self.overrides())

    def members(self, base: IQLConfig | None = None) -> list[Member]:
        """The configurations, in order; a member without tau or beta takes the preset's."""
        base = base or self.base_config()
        if self.pack is None:
            return [Member(expectile=base.expectile, beta=base.beta, seed=self.seed)]
        return [
            Member(
                expectile=float(m.get("expectile", base.expectile)),
                beta=float(m.get("beta", base.beta)),
                seed=int(m.get("seed", self.seed)),
            )
            for m in self.pack.members
        ]

    def configurations(self) -> list[tuple[int, IQLConfig, Member]]:
        """(member index, full IQL config, member) of every configuration the trial trains."""
        base = self.base_config()
        return [
            (k, base.model_copy(update={"expectile": m.expectile, "beta": m.beta}), m)
            for k, m in enumerate(self.members(base))
        ]

    def member_id(self, trial_id: str, k: int) -> str:
        """The id of member ``k``'s row in the tables and of its W&B run."""
        return f"{trial_id}-m{k}" if self.packed else trial_id

    def metric_prefix(self, k: int) -> str:
        """Where member ``k``'s metrics sit in the trial's Tune results."""
        return f"m{k}/" if self.packed else ""

    def failed_key(self, k: int) -> str:
        """The result key that says member ``k`` failed (1) and left the others training."""
        return self.metric_prefix(k) + "failed"

    def error_key(self, k: int) -> str:
        """The result key holding why member ``k`` failed (empty while it has not)."""
        return self.metric_prefix(k) + "error"

    def problems(self) -> list[str]:
        """What the learner cannot train of this configuration (the one capability check)."""
        size = len(self.pack.members) if self.pack is not None else 1
        if unsupported(size, self.run.online_steps):  # said in the spec's words
            return [
                "resources.pack: online fine-tuning (training.online_steps) trains one "
                "configuration per trial, each with its own environment and growing buffer; "
                "use pack: 1"
            ]
        return []


def member_of(config_id: str) -> int | None:
    """The member index in a configuration id (``<trial>-m<k>``), or None for a plain trial."""
    head, sep, tail = config_id.rpartition("-m")
    return int(tail) if sep and head and tail.isdigit() else None
