"""A real learning test: short IQL training beats the random policy clearly."""

from __future__ import annotations

import json

import pytest
import torch

from iql_sweep.data.minari_io import load_transitions
from iql_sweep.evaluation import Evaluator
from iql_sweep.training import cli_trial, train
from iql_sweep.trial_config import RunSettings

pytestmark = pytest.mark.slow  # thousands of updates


def test_short_training_beats_random(umaze_id, tmp_path):
    torch.set_num_threads(2)
    settings = RunSettings(steps=2500, eval_every=1250, eval_episodes=30)
    summary = train(
        cli_trial(umaze_id, settings, seed=0, preset="maze"),
        device="cpu",
        out_dir=tmp_path / "run",
        progress=False,
    )

    evaluator = Evaluator(load_transitions(umaze_id), episodes=30, seeds=[10_000])
    g = torch.Generator().manual_seed(0)
    random_score = evaluator(lambda o: torch.rand(o.shape[0], 2, generator=g) * 2 - 1)
    evaluator.close()

    assert summary.final_score is not None
    assert summary.final_score > random_score.normalized_score + 20.0, (
        summary.final_score,
        random_score.normalized_score,
    )
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1250, 2500]
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("step,")
