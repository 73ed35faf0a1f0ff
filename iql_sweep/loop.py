"""The one training loop, over a learner of K >= 1 members: ``iql-sweep train``, plain Ray trials
and packed Ray trials all run it.

It owns the schedule (updates to the next evaluation in as few learner calls as the progress bar
allows; during fine-tuning one environment step every ``updates_per_env_step`` updates), the
metric reads (one host synchronisation per evaluation), per-member non-finite isolation (a member
whose losses turn NaN/inf is stopped and reported before any rollout; when every member has, the
run fails with :class:`TrainingDivergedError`), one batched evaluation of the live members,
checkpoint timing and timers. What happens with the results is the sinks' business: files for
the CLI (:class:`FileSink`), Ray Tune reports for trials (``ray_trial.TuneSink``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from iql_sweep.checkpoint import CLI_FILE, make_checkpoint, restore, save_rotating
from iql_sweep.errors import ConfigError, TrainingDivergedError
from iql_sweep.evaluation import Evaluator
from iql_sweep.files import atomic_write_text
from iql_sweep.iql.learner import METRIC_KEYS, IQLLearner
from iql_sweep.online import OnlineCollector
from iql_sweep.progress import step_progress
from iql_sweep.trial_config import TrialConfig

#: Updates per learner call in the offline phase when a progress bar is drawn.
CHUNK = 500


@dataclass
class Evaluation:
    """What the loop hands its sinks after each evaluation."""

    step: int
    phase: str
    rows: dict[int, dict[str, Any]]  # member -> metrics row, for the members still training
    failed: dict[int, str]  # every member stopped so far -> why
    state: dict[str, Any] | None  # the checkpoint, when one is due
    speed: str = ""  # the learner's speed setting now
    capture_failure: str | None = None  # why a CUDA graph was given up, when it was


class Sink(Protocol):
    """Where evaluations go."""

    def evaluation(self, result: Evaluation) -> None: ...


@dataclass
class LoopResult:
    """Every member's evaluation rows and the members that failed."""

    history: dict[int, list[dict[str, Any]]]
    failed: dict[int, str] = field(default_factory=dict)
    wall_seconds: float = 0.0


class TrainingLoop:
    """Train ``learner`` to ``trial.total_updates``, evaluating every ``eval_every`` updates."""

    def __init__(
        self,
        trial: TrialConfig,
        learner: IQLLearner,
        evaluator: Evaluator,
        sinks: Sequence[Sink],
        collector: OnlineCollector | None = None,
        progress: bool = False,
    ):
        problems = trial.problems()
        if problems:
            raise ConfigError("\n".join(problems))
        self.trial, self.learner, self.evaluator = trial, learner, evaluator
        self.sinks, self.collector, self.progress = list(sinks), collector, progress
        self.history: dict[int, list[dict[str, Any]]] = {k: [] for k in range(learner.num_members)}
        self.failed: dict[int, str] = {}

    # --- state ---------------------------------------------------------------------------------
    def _loop_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"history": self.history, "failed": self.failed}
        if self.collector is not None:
            state["collector"] = self.collector.state_dict()
        return state

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        loop = restore(checkpoint, self.learner)
        self.history = {int(k): list(v) for k, v in loop["history"].items()}
        self.failed = {int(k): v for k, v in loop["failed"].items()}
        if self.collector is not None and "collector" in loop:
            assert self.learner.buffer is not None
            self.collector.load_state_dict(loop["collector"], self.learner.buffer)

    # --- the schedule --------------------------------------------------------------------------
    def _next_evaluation(self, step: int) -> int:
        run = self.trial.run
        target = min((step // run.eval_every + 1) * run.eval_every, run.total_updates)
        return min(target, run.steps) if step < run.steps else target

    def _train_to(self, target: int, advance) -> None:
        run, learner = self.trial.run, self.learner
        while learner.step < target:
            if learner.step < run.steps:  # to the evaluation in one call (bar: in chunks)
                n = min(CHUNK if self.progress else target, target - learner.step)
            else:  # fine-tuning: an environment step every updates_per_env_step updates
                assert self.collector is not None and learner.buffer is not None
                done = (learner.step - run.steps) % run.updates_per_env_step
                if done == 0:
                    self.collector.step(learner, learner.buffer)
                n = min(run.updates_per_env_step - done, target - learner.step)
            learner.advance(n)
            advance(n)

    # --- one evaluation ------------------------------------------------------------------------
    def _metric_rows(self, step: int, returns_seen: int) -> tuple[dict[int, dict], int]:
        """Each live member's mean metrics since the last evaluation (one host read), and the
        number of updates they cover; members whose metrics are not finite are stopped."""
        means, count = self.learner.pop_metrics()
        phase = "online" if step > self.trial.run.steps else "offline"
        rows = {}
        for k in range(self.learner.num_members):
            if k in self.failed:
                continue
            row: dict[str, Any] = {"step": step, "phase": phase}
            row.update({key: float(means[i, k]) for i, key in enumerate(METRIC_KEYS)})
            if self.collector is not None:
                assert self.learner.buffer is not None
                new = self.collector.returns[returns_seen:]
                row["env_steps"] = self.collector.env_steps
                row["buffer_size"] = self.learner.buffer.size
                row["online_return"] = sum(new) / len(new) if new else None
            bad = [key for key in METRIC_KEYS if not math.isfinite(row[key])]
            if bad:
                self._diverged(k, bad, step, count)
                continue
            rows[k] = row
        return rows, count

    def _diverged(self, k: int, bad: list[str], step: int, count: int) -> None:
        """Stop member ``k``; the run fails once every member has."""
        self.failed[k] = f"TrainingDivergedError: {', '.join(bad)} became non-finite by step {step}"
        if len(self.failed) < self.learner.num_members:
            return
        if self.learner.num_members == 1:
            raise TrainingDivergedError(
                f"{self.trial.dataset}: {', '.join(bad)} became non-finite between steps "
                f"{step - count} and {step}; the checkpoint from step {step - count} or earlier "
                "is kept. Lower the learning rates or beta, or check the rewards"
            )
        raise TrainingDivergedError(
            f"every member of the pack diverged by step {step}: {self.failed[0]}"
        )

    def run(self, checkpoint: dict[str, Any] | None = None) -> LoopResult:
        """Train to the end (from ``checkpoint`` when given); returns every member's rows."""
        if checkpoint is not None:
            self._restore(checkpoint)
        run, learner = self.trial.run, self.learner
        total = run.total_updates
        wall_start = interval_start = time.perf_counter()
        returns_seen = len(self.collector.returns) if self.collector is not None else 0
        label = f"IQL {self.trial.dataset}" + (
            f" ({learner.num_members} configurations)" if learner.num_members > 1 else ""
        )
        bar = step_progress(label, total - learner.step, enabled=self.progress)
        collector = closing(self.collector) if self.collector is not None else nullcontext()
        with closing(self.evaluator), collector, bar as advance:
            while learner.step < total:
                self._train_to(self._next_evaluation(learner.step), advance)
                step = learner.step
                learner.synchronize()  # the updates queued on a GPU count once they are done
                elapsed = time.perf_counter() - interval_start
                rows, count = self._metric_rows(step, returns_seen)
                if self.collector is not None:
                    returns_seen = len(self.collector.returns)
                # one batched evaluation of every live member (a NaN policy never reaches it)
                episodes = run.episodes_at(step)  # interim ones may be smaller
                results = self.evaluator.evaluate(
                    learner.act, list(rows), learner.device, episodes=episodes
                )
                for k, row in rows.items():
                    row.update(
                        **results[k].row(),
                        eval_episodes=episodes,
                        updates_per_second=count / max(elapsed, 1e-9),
                        wall_seconds=time.perf_counter() - wall_start,
                        speed=learner.speed,
                    )
                    self.history[k].append(row)
                due = step % run.checkpoint_interval == 0 or step in (run.steps, total)
                state = make_checkpoint(self.trial, learner, self._loop_state()) if due else None
                phase = "online" if step > run.steps else "offline"
                result = Evaluation(
                    step,
                    phase,
                    rows,
                    dict(self.failed),
                    state,
                    learner.speed,
                    learner.capture_failure,
                )
                for sink in self.sinks:
                    sink.evaluation(result)
                advance(0, _progress_info(rows))
                interval_start = time.perf_counter()
        return LoopResult(self.history, dict(self.failed), time.perf_counter() - wall_start)


def _progress_info(rows: dict[int, dict[str, Any]]) -> str:
    scores = [r["normalized_score"] for r in rows.values() if r["normalized_score"] is not None]
    if scores:
        return f"score {max(scores):.1f}" if len(rows) == 1 else f"best score {max(scores):.1f}"
    returns = [r["return_mean"] for r in rows.values()]
    return f"return {max(returns):.1f}" if returns else ""


class MetricsLog:
    """Evaluation rows as JSONL (appended) and CSV (rewritten), safe to resume."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.rows: list[dict[str, Any]] = []

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Continue from the rows a checkpoint holds (later rows of a crashed run are dropped)."""
        self.rows = [dict(r) for r in rows]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / "metrics.jsonl", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in self.rows)
        self._write_csv()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with open(self.out_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        self._write_csv()

    def _write_csv(self) -> None:
        pd.DataFrame(self.rows).to_csv(self.out_dir / "metrics.csv", index=False)


class FileSink:
    """The CLI's outputs in a run folder: metrics.jsonl/csv and the checkpoint (config.json is
    written when the run is assembled). Rows of a pack carry their ``member``."""

    def __init__(self, out_dir: Path, members: int = 1):
        self.out_dir, self.members = Path(out_dir), members
        self.log = MetricsLog(self.out_dir)
        self._fallback_recorded = False

    def restore(self, history: dict[int, list[dict[str, Any]]]) -> None:
        rows = [self._tag(k, r) for k, rs in history.items() for r in rs]
        self.log.restore(sorted(rows, key=lambda r: r["step"]))

    def _tag(self, k: int, row: dict[str, Any]) -> dict[str, Any]:
        return row if self.members == 1 else {"member": k, **row}

    def evaluation(self, result: Evaluation) -> None:
        for k, row in result.rows.items():
            self.log.append(self._tag(k, row))
        if result.capture_failure is not None and not self._fallback_recorded:
            self._record_fallback(result.speed, result.capture_failure)
            self._fallback_recorded = True
        if result.state is not None:
            save_rotating(result.state, self.out_dir / CLI_FILE)

    def _record_fallback(self, speed: str, cause: str) -> None:
        """config.json says the setting the run went on with after a failed graph capture."""
        path = self.out_dir / "config.json"
        if not path.exists():
            return
        info = json.loads(path.read_text())
        info["speed"] = speed
        info["speed_reason"] = f"the CUDA graph capture failed ({cause}); compiled stages"
        atomic_write_text(path, json.dumps(info, indent=2))
