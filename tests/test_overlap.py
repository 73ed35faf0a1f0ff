"""Evaluation beside training (``training.overlap_eval``): the episodes run on a copy of the
actors taken at the evaluation's step while the learner trains on, and give exactly the rows,
returns and checkpoints of the sequential loop, for one configuration and for a pack."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from iql_sweep.checkpoint import load_checkpoint
from iql_sweep.evaluation import EvaluationStopped, Evaluator
from iql_sweep.loop import CLOCK_KEYS, FileSink
from iql_sweep.training import assemble
from iql_sweep.trial_config import TrialConfig


def pack_trial(umaze_id: str, overlap: bool, members: int) -> TrialConfig:
    pack = None
    if members > 1:
        grid = [{"expectile": t, "beta": b} for t in (0.7, 0.9) for b in (1.0, 3.0)]
        pack = {"members": grid[:members]}
    return TrialConfig(
        dataset=umaze_id,
        seed=3,
        preset="maze",
        # a fast actor: the policy, and so the returns, move between evaluations
        iql={"batch_size": 32, "hidden_dims": (32, 32), "actor_lr": 1e-2},
        pack=pack,
        run={
            "steps": 60,
            "eval_every": 20,
            "eval_episodes": 3,
            "interim_eval_episodes": 2,
            "overlap_eval": overlap,
        },
    )


class StepsAtHandOver:
    """A sink recording where the learner was when each evaluation's rows arrived."""

    def __init__(self, learner):
        self.learner, self.seen = learner, []

    def evaluation(self, result) -> None:
        self.seen.append((result.step, self.learner.step))


def train_once(umaze_id, out, overlap: bool, members: int):
    trial = pack_trial(umaze_id, overlap, members)
    run = assemble(trial, torch.device("cpu"))
    out.mkdir()
    handed = StepsAtHandOver(run.learner)
    result = run.loop([FileSink(out, members=members), handed]).run()
    return result, handed.seen


@pytest.mark.parametrize("members", [1, 3], ids=["one", "pack"])
def test_overlapped_evaluation_gives_the_sequential_rows_and_checkpoints(
    umaze_id, tmp_path, members
):
    sequential, seq_seen = train_once(umaze_id, tmp_path / "seq", False, members)
    overlapped, ovl_seen = train_once(umaze_id, tmp_path / "ovl", True, members)

    # it really overlapped: each interim evaluation's rows arrived one interval later, the
    # final one at once; sequentially every row arrives at its own step
    assert seq_seen == [(20, 20), (40, 40), (60, 60)]
    assert ovl_seen == [(20, 40), (40, 60), (60, 60)]
    for k in range(members):
        seq, ovl = sequential.history[k], overlapped.history[k]
        assert [r["eval_episodes"] for r in ovl] == [2, 2, 3]
        assert [{key: v for key, v in r.items() if key not in CLOCK_KEYS} for r in ovl] == [
            {key: v for key, v in r.items() if key not in CLOCK_KEYS} for r in seq
        ]
    # the returns move between steps: a policy copied at another step would show
    returns = [r["return_mean"] for rows in overlapped.history.values() for r in rows]
    assert len(set(returns)) > 1
    # the checkpoint of step 40 (checkpoint.prev.pt) was copied at 40, while training went on
    for name in ("checkpoint.prev.pt", "checkpoint.pt"):
        a = load_checkpoint(tmp_path / "seq" / name)
        b = load_checkpoint(tmp_path / "ovl" / name)
        assert a["learner"]["step"] == b["learner"]["step"] == (40 if "prev" in name else 60)
        for net in ("value", "q", "q_target", "actor"):
            for key, tensor in a["learner"][net].items():
                assert torch.equal(tensor, b["learner"][net][key]), f"{name} {net}.{key}"
        for key in ("exp_avg", "exp_avg_sq"):
            for i, state in a["learner"]["actor_opt"]["state"].items():
                assert torch.equal(state[key], b["learner"]["actor_opt"]["state"][i][key])
        assert [r["step"] for r in b["loop"]["history"][0]] == list(
            range(20, a["learner"]["step"] + 1, 20)
        )
        assert (
            b["loop"]["history"][0][-1]["return_mean"] == a["loop"]["history"][0][-1]["return_mean"]
        )


def test_a_frozen_policy_keeps_acting_as_the_actor_was(umaze_id):
    """The copy taken at an update acts as the learner did then, however the learner moves on."""
    run = assemble(pack_trial(umaze_id, True, 3), torch.device("cpu"))
    learner = run.learner
    learner.advance(5)
    obs = torch.randn(2, 4, learner.obs_dim)
    before = learner.act(obs, [0, 2])
    frozen = learner.frozen_policy()
    learner.advance(5)
    assert not torch.equal(learner.act(obs, [0, 2]), before)
    assert torch.equal(frozen.act(obs, [0, 2]), before)
    every = frozen.act(obs[0])  # one batch of observations for every member
    assert every.shape == (3, 4, learner.act_dim)
    assert torch.equal(every[[0, 2]], frozen.act(obs[0].expand(2, 4, -1), [0, 2]))


def test_a_stopped_evaluation_ends_at_its_next_step(umaze_id):
    from iql_sweep.data.minari_io import load_transitions

    evaluator = Evaluator(load_transitions(umaze_id), episodes=2, seeds=[0])
    stop = threading.Event()
    calls = []

    def act(obs, members):
        calls.append(1)
        if len(calls) == 3:
            stop.set()
        return torch.zeros(*obs.shape[:2], 2)

    with pytest.raises(EvaluationStopped):
        evaluator.evaluate(act, [0], stop=stop)
    assert len(calls) == 3 and evaluator.env_steps == 2 * 3
    evaluator.close()


def test_a_failing_evaluation_in_flight_fails_the_run(umaze_id, tmp_path, monkeypatch):
    """An error inside the helper thread is the run's, raised at the next hand-over, and the
    checkpoint kept is the last one whose evaluation ended."""
    original = Evaluator.evaluate

    def fail_at_40(self, act, members, device="cpu", episodes=None, stop=None):
        if fail_at_40.calls == 1:
            raise RuntimeError("the environment broke")
        fail_at_40.calls += 1
        return original(self, act, members, device, episodes, stop)

    fail_at_40.calls = 0
    monkeypatch.setattr(Evaluator, "evaluate", fail_at_40)
    with pytest.raises(RuntimeError, match="the environment broke"):
        train_once(umaze_id, tmp_path / "run", True, 1)
    kept = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert kept["learner"]["step"] == 20
    assert [r["step"] for r in kept["loop"]["history"][0]] == [20]
    assert np.isfinite(kept["loop"]["history"][0][0]["return_mean"])
