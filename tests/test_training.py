"""A run interrupted mid-way resumes from its checkpoint to the same parameters and rows."""

from __future__ import annotations

import pytest
import torch

from iql_sweep.checkpoint import load_checkpoint
from iql_sweep.iql.agent import IQLAgent
from iql_sweep.training import RunSettings, train
from tests.interrupt import kill_update_at


def settings(umaze_id, out):
    return RunSettings(
        dataset_id=umaze_id,
        steps=80,
        eval_every=20,
        eval_episodes=2,
        seed=4,
        device="cpu",
        out_dir=out,
        progress=False,
    )


def test_interrupted_run_resumes_exactly(umaze_id, tmp_path, monkeypatch):
    overrides = {"batch_size": 32, "hidden_dims": (64, 64), "actor_dropout": 0.1}
    straight = train(settings(umaze_id, tmp_path / "a"), preset="maze", overrides=overrides)

    restore = kill_update_at(monkeypatch, IQLAgent, 50)
    with pytest.raises(KeyboardInterrupt):
        train(settings(umaze_id, tmp_path / "b"), preset="maze", overrides=overrides)
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["agent"]["step"] == 40
    restore()
    resumed = train(settings(umaze_id, tmp_path / "b"), preset="maze", overrides=overrides)

    a = load_checkpoint(tmp_path / "a" / "checkpoint.pt")["agent"]
    b = load_checkpoint(tmp_path / "b" / "checkpoint.pt")["agent"]
    assert a["step"] == b["step"] == 80
    for net in ("value", "q", "q_target", "actor"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k}"
    assert [r["step"] for r in resumed.history] == [20, 40, 60, 80]
    keys = ("step", "normalized_score", "value_loss", "q_loss", "actor_loss")
    assert [{k: r[k] for k in keys} for r in resumed.history] == [
        {k: r[k] for k in keys} for r in straight.history
    ]


def test_non_finite_losses_stop_the_run_and_keep_the_last_checkpoint(
    umaze_id, tmp_path, monkeypatch
):
    from iql_sweep.errors import TrainingDivergedError

    out = tmp_path / "nan"
    original = IQLAgent.update

    def poison_after_30(self, batch):
        if self.step >= 30:
            batch = {**batch, "rewards": batch["rewards"] * float("nan")}
        return original(self, batch)

    monkeypatch.setattr(IQLAgent, "update", poison_after_30)
    with pytest.raises(TrainingDivergedError, match=r"q_loss.*between steps 20 and 40"):
        train(settings(umaze_id, out), preset="maze", overrides={"batch_size": 32})
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["agent"]["step"] == 20
    assert all(torch.isfinite(v).all() for v in state["agent"]["q"].values())
