"""Evaluation rollouts in the dataset's evaluation env."""

from __future__ import annotations

import numpy as np
import torch

from iql_sweep.data.minari_io import load_transitions
from iql_sweep.evaluation import Evaluator


def test_random_policy_scores_near_zero_and_is_reproducible(umaze_id):
    data = load_transitions(umaze_id)
    evaluator = Evaluator(data, episodes=30, seed=0)

    def random_policy(seed):
        g = torch.Generator().manual_seed(seed)
        return lambda obs: torch.rand(obs.shape[0], 2, generator=g) * 2 - 1

    first = evaluator(random_policy(1))
    again = evaluator(random_policy(1))
    evaluator.close()
    assert first.returns.shape == (30,)
    np.testing.assert_array_equal(first.returns, again.returns)
    assert abs(first.normalized_score) < 15.0
    assert first.returns.max() <= 300  # at most one reward per step of the 300-step horizon


def test_actions_are_mapped_back_to_the_env_box(umaze_id):
    data = load_transitions(umaze_id)
    evaluator = Evaluator(data, episodes=1)
    evaluator.low, evaluator.high = np.array([-2.0, 0.0]), np.array([2.0, 1.0])
    np.testing.assert_allclose(evaluator._to_env_action(np.array([-1.0, 1.0])), [-2.0, 1.0])
    np.testing.assert_allclose(evaluator._to_env_action(np.array([0.5, 0.0])), [1.0, 0.5])
    evaluator.close()
