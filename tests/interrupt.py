"""A simulated kill of a training run: the agent's ``update`` raises at a given step."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def kill_update_at(monkeypatch: pytest.MonkeyPatch, agent_class: type, step: int) -> Callable:
    """Patch ``agent_class.update`` to raise KeyboardInterrupt when the agent's step counter
    reads ``step``; returns a function that restores the real ``update``."""
    original = agent_class.update

    def crash(self, batch):
        if self.step == step:
            raise KeyboardInterrupt("simulated kill")
        return original(self, batch)

    monkeypatch.setattr(agent_class, "update", crash)
    return lambda: monkeypatch.setattr(agent_class, "update", original)
