"""Copies of one environment stepped together, in this process or spread over worker processes.

Evaluation steps many episodes at once (every member's, every seed's). On one core that is
today's synchronous vector env; a trial that owns more CPUs gives each worker process a
contiguous slice of the environments, so the simulators run in parallel while the policy stays
one batched forward in the trial's process. Every environment is the same object with the same
seed and actions whichever process steps it, so returns do not depend on the number of workers.
Workers are started with ``spawn`` (a trial's process runs Ray's and torch's threads, which a
``fork`` could catch mid-lock) and kept for the evaluator's life.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
import traceback
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec

from iql_sweep.envs import register_robotics_envs

#: observations, rewards, terminated, truncated, and the envs' ``info["success"]`` (NaN where an
#: environment reports none)
Step = tuple[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _success(info: dict[str, Any], size: int) -> np.ndarray:
    """A vector env's per-environment ``success`` (OGBench's tasks report one every step)."""
    out = np.full(size, np.nan)
    if "success" in info:
        given = np.asarray(info.get("_success", np.ones(size, dtype=bool)), dtype=bool)
        out[given] = np.asarray(info["success"], dtype=np.float64)[given]
    return out


def _vector(spec: EnvSpec, count: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make(spec) for _ in range(count)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
    )


def _serve(conn, spec: EnvSpec, count: int) -> None:
    """A worker: ``count`` environments answering reset/step/close over ``conn``."""
    envs = None
    try:
        register_robotics_envs()
        envs = _vector(spec, count)
        conn.send(("ok", None))
        while True:
            command, payload = conn.recv()
            if command == "close":
                break
            if command == "reset":
                obs, _ = envs.reset(seed=payload)
                conn.send(("ok", obs))
            else:
                obs, reward, terminated, truncated, info = envs.step(payload)
                success = _success(info, len(reward))
                conn.send(("ok", (obs, reward, terminated, truncated, success)))
    except (EOFError, KeyboardInterrupt):  # the evaluator went away
        pass
    except Exception:  # noqa: BLE001 - reported to the evaluator, which raises it
        conn.send(("error", traceback.format_exc()))
    finally:
        if envs is not None:
            envs.close()
        conn.close()


#: Spread environments over workers only when one step costs at least this long: measured by
#: benchmarks/eval_cost.py (2 cores; benchmarks/RESULTS.md), 2 workers of 25 envs each ran
#: AntMaze 1.66x, Adroit door 1.79x and Kitchen 1.84x one process, but PointMaze (about 30 us a
#: step) 0.98x, and with 3 envs per worker PointMaze 0.34x and AntMaze 0.77x: the pipes cost
#: more than a cheap simulator.
MIN_STEP_SECONDS_TO_SPREAD = 1e-4


def step_seconds(spec: EnvSpec, steps: int = 30) -> float:
    """The median cost of one step of ``spec`` under seeded random actions (a quick calibration:
    milliseconds for cheap environments)."""
    env = gym.make(spec)
    try:
        env.reset(seed=0)
        env.action_space.seed(0)
        times = []
        for _ in range(steps):
            action = env.action_space.sample()
            start = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            times.append(time.perf_counter() - start)
            if terminated or truncated:
                env.reset()
        return float(np.median(times))
    finally:
        env.close()


def _concat(parts: list[Any]) -> Any:
    """Batched observations of the workers, joined in order (Dict spaces key by key)."""
    if isinstance(parts[0], dict):
        return {key: _concat([p[key] for p in parts]) for key in parts[0]}
    return np.concatenate(parts)


def split(size: int, workers: int) -> list[int]:
    """How many environments each worker steps: contiguous, as even as possible."""
    workers = max(1, min(workers, size))
    base, extra = divmod(size, workers)
    return [base + (i < extra) for i in range(workers)]


class EnvPool:
    """``size`` copies of the environment ``spec``, stepped in ``workers`` processes (1: in
    this process). ``reset(seeds)`` and ``step(actions)`` work on all of them at once, in order;
    an environment that ended resets itself on its next step (gymnasium's next-step autoreset)."""

    def __init__(self, spec: EnvSpec, size: int, workers: int = 1):
        self.size = size
        self.counts = split(size, workers)
        self._local: gym.vector.SyncVectorEnv | None = None
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        if len(self.counts) == 1:
            self._local = _vector(spec, size)
            return
        context = mp.get_context("spawn")
        try:
            for count in self.counts:
                parent, child = context.Pipe()
                proc = context.Process(target=_serve, args=(child, spec, count), daemon=True)
                proc.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(proc)
            for conn in self._conns:
                self._answer(conn)
        except BaseException:
            self.close()
            raise

    @property
    def workers(self) -> int:
        return len(self.counts)

    def _answer(self, conn) -> Any:
        try:
            status, payload = conn.recv()
        except EOFError:
            raise RuntimeError("an environment worker process died") from None
        if status == "error":
            raise RuntimeError(f"an environment worker failed:\n{payload}")
        return payload

    def _slices(self, values: list[Any] | np.ndarray) -> list[Any]:
        out, start = [], 0
        for count in self.counts:
            out.append(values[start : start + count])
            start += count
        return out

    def reset(self, seeds: list[int]) -> Any:
        """Reset every environment, environment ``i`` with ``seeds[i]``; their observations."""
        if self._local is not None:
            return self._local.reset(seed=list(seeds))[0]
        for conn, part in zip(self._conns, self._slices(list(seeds))):
            conn.send(("reset", part))
        return _concat([self._answer(conn) for conn in self._conns])

    def step(self, actions: np.ndarray) -> Step:
        """One step of every environment: observations, rewards, terminated, truncated and
        success (NaN where the environment reports none)."""
        if self._local is not None:
            obs, reward, terminated, truncated, info = self._local.step(actions)
            return obs, reward, terminated, truncated, _success(info, len(reward))
        for conn, part in zip(self._conns, self._slices(actions)):
            conn.send(("step", part))
        answers = [self._answer(conn) for conn in self._conns]
        obs = _concat([a[0] for a in answers])
        reward, terminated, truncated, success = (
            np.concatenate([a[i] for a in answers]) for i in (1, 2, 3, 4)
        )
        return obs, reward, terminated, truncated, success

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
            self._local = None
        for conn in self._conns:
            with contextlib.suppress(BrokenPipeError, OSError):
                conn.send(("close", None))
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        for conn in self._conns:
            conn.close()
        self._conns, self._procs = [], []
