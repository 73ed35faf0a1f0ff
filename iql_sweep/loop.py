"""The one training loop, over a learner of K >= 1 members: ``iql-sweep train``, plain Ray trials
and packed Ray trials all run it.

It owns the schedule (updates to the next evaluation in as few learner calls as the progress bar
allows; during fine-tuning one environment step every ``updates_per_env_step`` updates), the
metric reads (one host synchronisation per evaluation), per-member non-finite isolation (a member
whose losses turn NaN/inf is stopped and reported before any rollout; when every member has, the
run fails with :class:`TrainingDivergedError`), one batched evaluation of the live members
(beside training, on a copy of the actors, unless ``training.overlap_eval`` is off), checkpoint
timing and timers. What happens with the results is the sinks' business: files for
the CLI (:class:`FileSink`), Ray Tune reports for trials (``ray_trial.TuneSink``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch

from iql_sweep.checkpoint import CLI_FILE, make_checkpoint, restore, save_rotating
from iql_sweep.errors import ConfigError, TrainingDivergedError
from iql_sweep.evaluation import Evaluator
from iql_sweep.files import atomic_write_text
from iql_sweep.iql.learner import METRIC_KEYS, IQLLearner, Policy
from iql_sweep.online import OnlineCollector
from iql_sweep.progress import step_progress
from iql_sweep.trial_config import TrialConfig

logger = logging.getLogger(__name__)

#: The row fields that read the clock: what differs between two runs of the same configuration.
CLOCK_KEYS = frozenset({"updates_per_second", "wall_seconds", "eval_seconds"})

#: Updates per learner call in the offline phase when a progress bar is drawn or an evaluation
#: is in flight (its rows are handed on between calls).
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
    eval_wait_seconds: float = 0.0  # the learner stood waiting for evaluations this long


@dataclass
class _Pending:
    """One evaluation of the learner as it was at ``step``: its rows wait for the returns."""

    step: int
    rows: dict[int, dict[str, Any]]
    failed: dict[int, str]  # the members stopped by then
    episodes: int
    updates_per_second: float
    speed: str
    capture_failure: str | None
    state: dict[str, Any] | None  # the checkpoint at ``step``; its history comes with the rows
    future: Future | None = None  # (returns, seconds), when it runs beside training
    stop: threading.Event = field(default_factory=threading.Event)


class TrainingLoop:
    """Train ``learner`` to ``trial.total_updates``, evaluating every ``eval_every`` updates.

    With ``training.overlap_eval`` (the default) an evaluation runs in a helper thread on a copy
    of the actors taken at its step (:meth:`IQLLearner.frozen_policy`) while the learner trains
    on; its rows and the checkpoint of that step (a copy taken then) go to the sinks when its
    episodes end, in step order, at most one evaluation in flight. The final evaluation runs
    alone. A run killed while an evaluation is in flight loses that evaluation and the updates
    since the last checkpoint written, as a sequential run killed during its evaluation would;
    resuming repeats them to the same rows. Any other way out (an error, an interrupt) stops the
    evaluation in flight at its next environment step."""

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
        self._threads = torch.get_num_threads()  # the learner's intra-op threads
        self._pending: _Pending | None = None
        self._advance: Callable[..., None] = lambda n=1, info=None: None
        self._wall_start = time.perf_counter()
        self._paused = 0.0  # seconds of this interval spent on evaluations, not training
        self._waited = 0.0  # seconds the learner stood waiting for evaluations, in all

    # --- state ---------------------------------------------------------------------------------
    def _loop_state(self) -> dict[str, Any]:
        """The loop's part of a checkpoint but the rows (added with the evaluation's own)."""
        state: dict[str, Any] = {"failed": dict(self.failed)}
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
    def _phase(self, step: int) -> str:
        return "online" if step > self.trial.run.steps else "offline"

    def _next_evaluation(self, step: int) -> int:
        run = self.trial.run
        target = min((step // run.eval_every + 1) * run.eval_every, run.total_updates)
        return min(target, run.steps) if step < run.steps else target

    def _train_to(self, target: int) -> None:
        run, learner = self.trial.run, self.learner
        while learner.step < target:
            if learner.step < run.steps:  # to the evaluation in one call (bar, or an
                # evaluation in flight to hand on when it ends: in chunks)
                chunked = self.progress or self._pending is not None
                n = min(CHUNK if chunked else target, target - learner.step)
            else:  # fine-tuning: an environment step every updates_per_env_step updates
                assert self.collector is not None and learner.buffer is not None
                done = (learner.step - run.steps) % run.updates_per_env_step
                if done == 0:
                    self.collector.step(learner, learner.buffer)
                n = min(run.updates_per_env_step - done, target - learner.step)
            learner.advance(n)
            self._advance(n)
            self._settle(wait=False)

    # --- one evaluation ------------------------------------------------------------------------
    def _metric_rows(self, step: int, returns_seen: int) -> tuple[dict[int, dict], int]:
        """Each live member's mean metrics since the last evaluation (one host read), and the
        number of updates they cover; members whose metrics are not finite are stopped."""
        means, count = self.learner.pop_metrics()
        phase = self._phase(step)
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

    def _evaluate(self, step: int, rows: dict[int, dict[str, Any]], ups: float) -> None:
        """One batched evaluation of the live members at ``step`` (a NaN policy never reaches
        it): beside training on a frozen copy when it overlaps, else here and now."""
        run, learner = self.trial.run, self.learner
        due = step % run.checkpoint_interval == 0 or step in (run.steps, run.total_updates)
        pending = _Pending(
            step,
            rows,
            dict(self.failed),
            run.episodes_at(step),  # interim ones may be smaller
            ups,
            learner.speed,
            learner.capture_failure,
            None,
        )
        if not run.overlap_eval or step == run.total_updates:
            start = time.perf_counter()
            results = self.evaluator.evaluate(
                learner.act, list(rows), learner.device, episodes=pending.episodes
            )
            seconds = time.perf_counter() - start
            self._waited += seconds
            if due:
                pending.state = make_checkpoint(self.trial, learner, self._loop_state())
            self._emit(pending, results, seconds)
            return
        policy = learner.frozen_policy()
        if due:  # a copy: the learner's tensors move on before the rows are in
            pending.state = copy.deepcopy(make_checkpoint(self.trial, learner, self._loop_state()))
        # a thread of its own that ends with the evaluation: a live thread that ran torch ops
        # beside the learner's kept every CPU update 2.5x slower for the rest of the run here
        # (190 -> 80 updates/s, PointMaze, 2 threads on 2 cores), one that ended did not
        helper = ThreadPoolExecutor(1, thread_name_prefix="iql-sweep-evaluation")
        pending.future = helper.submit(self._rollouts, policy, pending)
        helper.shutdown(wait=False)  # the thread exits once this evaluation is done
        self._pending = pending

    def _rollouts(self, policy: Policy, pending: _Pending) -> tuple[dict[int, Any], float]:
        """The helper thread's work: the episodes of ``pending`` with ``policy``, on one
        intra-op thread (its forwards are small; the learner keeps its own count)."""
        torch.set_num_threads(1)
        start = time.perf_counter()
        with policy.acting():
            results = self.evaluator.evaluate(
                policy.act,
                list(pending.rows),
                policy.device,
                episodes=pending.episodes,
                stop=pending.stop,
            )
        return results, time.perf_counter() - start

    def _settle(self, wait: bool) -> None:
        """Hand on the evaluation in flight once its episodes are done (``wait``: wait for
        them). Its failure is the run's."""
        pending = self._pending
        if pending is None or pending.future is None or not (wait or pending.future.done()):
            return
        start = time.perf_counter()
        self._pending = None
        try:
            results, seconds = pending.future.result()
        finally:
            torch.set_num_threads(self._threads)  # the default of later threads, as it was
        self._waited += time.perf_counter() - start
        self._emit(pending, results, seconds)
        self._paused += time.perf_counter() - start

    def _abandon(self) -> None:
        """On the way out of a run that did not end normally: stop the evaluation in flight and
        wait for its thread, before its environments close."""
        pending, self._pending = self._pending, None
        if pending is None or pending.future is None:
            return
        pending.stop.set()
        try:
            pending.future.result()
        except Exception:  # noqa: BLE001 - the run is already ending on its own error
            logger.debug("the evaluation in flight at step %d was stopped", pending.step)
        finally:
            torch.set_num_threads(self._threads)

    def _emit(self, pending: _Pending, results: dict[int, Any], seconds: float) -> None:
        """The evaluation's rows into the history, then to every sink with its checkpoint."""
        for k, row in pending.rows.items():
            row.update(
                **results[k].row(),
                eval_episodes=pending.episodes,
                eval_seconds=seconds,
                updates_per_second=pending.updates_per_second,
                wall_seconds=time.perf_counter() - self._wall_start,
                speed=pending.speed,
            )
            self.history[k].append(row)
        if pending.state is not None:
            pending.state["loop"]["history"] = self.history
        result = Evaluation(
            pending.step,
            self._phase(pending.step),
            pending.rows,
            pending.failed,
            pending.state,
            pending.speed,
            pending.capture_failure,
        )
        for sink in self.sinks:
            sink.evaluation(result)
        self._advance(0, _progress_info(pending.rows))

    def run(self, checkpoint: dict[str, Any] | None = None) -> LoopResult:
        """Train to the end (from ``checkpoint`` when given); returns every member's rows."""
        if checkpoint is not None:
            self._restore(checkpoint)
        run, learner = self.trial.run, self.learner
        total = run.total_updates
        self._wall_start = interval_start = time.perf_counter()
        self._waited, self._threads = 0.0, torch.get_num_threads()
        returns_seen = len(self.collector.returns) if self.collector is not None else 0
        label = f"IQL {self.trial.dataset}" + (
            f" ({learner.num_members} configurations)" if learner.num_members > 1 else ""
        )
        with ExitStack() as stack:
            stack.enter_context(closing(self.evaluator))
            if self.collector is not None:
                stack.enter_context(closing(self.collector))
            bar = step_progress(label, total - learner.step, enabled=self.progress)
            self._advance = stack.enter_context(bar)
            stack.callback(self._abandon)  # first out: before the envs close
            while learner.step < total:
                self._paused = 0.0
                self._train_to(self._next_evaluation(learner.step))
                step = learner.step
                learner.synchronize()  # the updates queued on a GPU count once they are done
                elapsed = time.perf_counter() - interval_start - self._paused
                self._settle(wait=True)  # the previous evaluation's rows before this one's
                rows, count = self._metric_rows(step, returns_seen)
                if self.collector is not None:
                    returns_seen = len(self.collector.returns)
                self._evaluate(step, rows, count / max(elapsed, 1e-9))
                interval_start = time.perf_counter()
        return LoopResult(
            self.history,
            dict(self.failed),
            time.perf_counter() - self._wall_start,
            self._waited,
        )


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
