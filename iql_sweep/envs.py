"""The simulators datasets are evaluated in: gymnasium-robotics' environments, registered once."""

from __future__ import annotations

import contextlib
import io

import gymnasium as gym


def register_robotics_envs() -> None:
    """Register gymnasium-robotics' environments (idempotent; its import-time notice about the
    Adroit v1 rewards, irrelevant here, is silenced)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
