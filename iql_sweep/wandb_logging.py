"""One W&B run per trial, written from the driver into the experiment folder.

The runs are opened in the driver process (not in Ray actors), so the W&B mode is the one the
spec asks for on any cluster, and the files land in ``<experiment>/wandb/`` beside the results
(``folder`` is the experiment folder; W&B adds the ``wandb`` level itself).
With no API key, ``online`` falls back to ``offline`` (sync later with ``wandb sync``); any W&B
error is logged and that trial continues unlogged: W&B never fails a sweep.
"""

from __future__ import annotations

import functools
import logging
import netrc
import os
from pathlib import Path
from typing import Any

from ray.tune import Callback

from iql_sweep.data.minari_io import load_transitions
from iql_sweep.iql.learner import METRIC_KEYS
from iql_sweep.iql.observations import ObservationStats
from iql_sweep.spec import WandbSettings
from iql_sweep.trial_config import TrialConfig

logger = logging.getLogger(__name__)

#: Metrics sent to W&B at every evaluation: scores, returns, the agent's losses and speed.
LOGGED_METRICS = (
    "score",
    "normalized_score",
    "normalized_score_std",
    "return_mean",
    "return_std",
    "success_rate",  # data scored by success (OGBench): normalized_score is it x 100
    *METRIC_KEYS,
    "updates_per_second",
    # fine-tuning runs: the phase (0 offline, 1 online), environment steps, training returns
    "online_phase",
    "env_steps",
    "buffer_size",
    "online_return",
)


def has_api_key() -> bool:
    """A W&B key in the environment or in ~/.netrc (what ``wandb login`` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def effective_mode(requested: str) -> str:
    """The mode runs are written in: ``online`` without a key becomes ``offline``."""
    if requested == "online" and not has_api_key():
        logger.warning("W&B: no API key found; writing runs offline (sync later: iql-sweep sync)")
        return "offline"
    return requested


def reachable(timeout: float = 5.0) -> str | None:
    """None when W&B answers with the key; else why not (within about ``timeout`` seconds)."""
    try:
        import wandb

        wandb.Api(timeout=timeout).viewer  # noqa: B018 - the request is the check
    except Exception as err:  # noqa: BLE001 - any failure means: write offline
        return str(err).splitlines()[0][:200] or type(err).__name__
    return None


@functools.lru_cache(maxsize=8)
def _observation_stats(dataset: str) -> dict[str, list[float]]:
    """The observation statistics a trial on ``dataset`` computes (the driver has the data)."""
    return ObservationStats.of(load_transitions(dataset).observations).state()


class WandbTrialLogger(Callback):
    """Ray Tune callback: opens, feeds and closes one W&B run per trial."""

    def __init__(self, settings: WandbSettings, sweep: str, folder: Path):
        self.settings = settings
        self.sweep = sweep
        self.folder = Path(folder)
        self.mode = effective_mode(settings.mode)
        if self.mode == "online":  # once per sweep, so no trial start waits on a dead network
            why = reachable()
            if why is not None:
                logger.warning(
                    "W&B unreachable (%s): writing every run offline; upload later with "
                    "'iql-sweep sync %s'",
                    why,
                    self.folder,
                )
                self.mode = "offline"
        self._runs: dict[str, list[tuple[Any, str, str]]] = {}
        self._member_failed: dict[str, set[str]] = {}

    def _configurations(self, trial) -> list[tuple[str, str, dict[str, Any], str, str]]:
        """(run id, run name, run config, metric prefix) per configuration the trial trains:
        one for a plain trial, one per member of a pack."""
        config = TrialConfig.model_validate(trial.config)
        common = {
            "dataset": config.dataset,
            "preset": config.preset,
            "sweep": self.sweep,
            "trial_id": trial.trial_id,
            "run": config.run.model_dump(mode="json"),
        }
        out = []
        for k, cfg, member in config.configurations():
            stats = _observation_stats(config.dataset) if cfg.normalize_observations else None
            run_config = {
                **common,
                "expectile": cfg.expectile,
                "beta": cfg.beta,
                "seed": member.seed,
                "configuration": f"τ {cfg.expectile:g}, β {cfg.beta:g}",  # dashboard groups
                "iql": cfg.model_dump(mode="json"),
            }
            if stats is not None:  # the statistics the trial normalises with (same data)
                run_config["observation_stats"] = stats
            if config.packed:
                run_config["pack_member"] = k
            run_id = config.member_id(trial.trial_id, k)
            name = str(trial) + run_id[len(trial.trial_id) :]
            out.append((run_id, name, run_config, config.metric_prefix(k), config.failed_key(k)))
        return out

    def _open(self, trial) -> list[tuple[Any, str, str]]:
        """The W&B runs of a trial's members: (run, metric prefix, failure key)."""
        if self.mode == "disabled":
            return []
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        runs = []
        for run_id, name, run_config, prefix, failed_key in self._configurations(trial):
            kwargs = {
                "project": self.settings.project,
                "entity": self.settings.entity,
                "group": self.settings.group_for(self.sweep, run_config["dataset"]),
                "tags": [*self.settings.tags, self.sweep],
                "job_type": "train",
                "name": name,
                "id": run_id,
                "resume": "allow",
                "config": run_config,
                "dir": str(self.folder),
                "reinit": "create_new",
            }
            run = self._init(run_id, self.mode, kwargs)
            if run is None and self.mode == "online":
                # W&B went away mid-sweep: this and every later run offline. The failed online
                # run keeps its id busy in W&B's service, so the offline copy takes a new one.
                self.mode = "offline"
                run = self._init(run_id, "offline", {**kwargs, "id": f"{run_id}-offline"})
            if run is not None:
                runs.append((run, prefix, failed_key))
        self._runs[trial.trial_id] = runs
        self._member_failed[trial.trial_id] = set()
        return runs

    def _init(self, trial_id: str, mode: str, kwargs: dict[str, Any]) -> Any | None:
        try:
            import wandb

            self.folder.mkdir(parents=True, exist_ok=True)
            settings = wandb.Settings(silent=True, x_disable_stats=True, init_timeout=15)
            return wandb.init(mode=mode, settings=settings, **kwargs)
        except Exception as err:  # noqa: BLE001 - W&B must never take the sweep down
            logger.warning("W&B (%s): could not start a run for trial %s: %s", mode, trial_id, err)
            return None

    def on_trial_start(self, iteration, trials, trial, **info):
        self._open(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        for run, prefix, failed_key in self._open(trial):
            if result.get(failed_key) == 1:
                self._member_failed[trial.trial_id].add(prefix)
            metrics = {
                k: result[prefix + k] for k in LOGGED_METRICS if result.get(prefix + k) is not None
            }
            if not metrics:
                continue
            try:
                run.log(metrics, step=int(result["step"]))
            except Exception as err:  # noqa: BLE001
                logger.warning("W&B: could not log trial %s: %s", trial.trial_id, err)

    def _finish(self, trial, exit_code: int) -> None:
        failed = self._member_failed.pop(trial.trial_id, set())
        for run, prefix, _ in self._runs.pop(trial.trial_id, []):
            try:
                run.finish(exit_code=1 if prefix and prefix in failed else exit_code)
            except Exception as err:  # noqa: BLE001
                logger.warning("W&B: could not close a run of trial %s: %s", trial.trial_id, err)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finish(trial, 0)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, 1)

    def on_experiment_end(self, trials, **info):
        for trial in trials:
            if trial.trial_id in self._runs:
                self._finish(trial, 0 if trial.status == "TERMINATED" else 1)
