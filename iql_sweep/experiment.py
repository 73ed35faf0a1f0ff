"""One sweep's experiment folder: the one owner of what it holds and what it is called.

``<output>/<name>/`` holds Ray Tune's state and one folder per trial, and beside them the typed
copy of the spec the sweep ran (``sweep_spec.yaml``), Ray's log, the report, the W&B dashboard
definitions and the driver's lock."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path

import yaml

from iql_sweep.driver_lock import driver_lock
from iql_sweep.errors import ConfigError
from iql_sweep.files import atomic_write_text
from iql_sweep.spec import SweepSpec, validate_spec
from iql_sweep.yaml_input import load_yaml


class Experiment:
    """A sweep's folder, from its path or from the spec that makes it."""

    SPEC_COPY = "sweep_spec.yaml"
    RAY_LOG = "ray.log"
    REPORT = "report"
    DASHBOARD = "dashboard"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()

    @classmethod
    def of(cls, spec: SweepSpec, base: Path | None = None) -> Experiment:
        """The folder ``spec`` runs in (``output``, relative to ``base``, then its name)."""
        return cls(spec.experiment_dir(base))

    def __repr__(self) -> str:
        return f"Experiment({str(self.path)!r})"

    @property
    def spec_file(self) -> Path:
        return self.path / self.SPEC_COPY

    @property
    def ray_log(self) -> Path:
        return self.path / self.RAY_LOG

    @property
    def report_dir(self) -> Path:
        return self.path / self.REPORT

    @property
    def dashboard_dir(self) -> Path:
        return self.path / self.DASHBOARD

    def holds_sweep(self) -> bool:
        """Whether a sweep was started here (its spec copy is written before the first trial)."""
        return self.spec_file.is_file()

    def require_sweep(self) -> None:
        """Refuse a folder that holds no sweep, naming the argument and what is missing."""
        if not self.holds_sweep():
            raise ConfigError(
                f"EXPERIMENT_DIR: {self.path} holds no sweep ({self.SPEC_COPY} is missing)"
            )

    @cached_property
    def spec(self) -> SweepSpec:
        """The spec the sweep ran, typed (as it was validated when the sweep started)."""
        self.require_sweep()
        return validate_spec(load_yaml(self.spec_file), check_datasets=False, check_output=False)

    def spec_text(self) -> str:
        """The spec copy as written (the report page shows it); empty without one."""
        return self.spec_file.read_text() if self.holds_sweep() else ""

    def write_spec(self, spec: SweepSpec) -> None:
        """Record the spec the sweep runs (the GPU share settled), before any trial starts."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.spec_file, yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
        )
        self.__dict__.pop("spec", None)

    def lock(self) -> AbstractContextManager[None]:
        """Hold the folder's driver lock: a second driver is refused while this one runs."""
        return driver_lock(self.path)
