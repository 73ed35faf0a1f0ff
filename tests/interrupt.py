"""A simulated kill of a training run: the learner stops at a given update and raises."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iql_sweep.iql.learner import IQLLearner


def kill_update_at(monkeypatch: pytest.MonkeyPatch, step: int) -> Callable:
    """Patch ``IQLLearner.advance`` to run up to update ``step`` and then raise
    KeyboardInterrupt (as a killed process would stop); returns a function that restores it."""
    original = IQLLearner.advance

    def crash(self, updates: int) -> None:
        if self.step <= step < self.step + updates:
            original(self, step - self.step)
            raise KeyboardInterrupt("simulated kill")
        original(self, updates)

    monkeypatch.setattr(IQLLearner, "advance", crash)
    return lambda: monkeypatch.setattr(IQLLearner, "advance", original)
