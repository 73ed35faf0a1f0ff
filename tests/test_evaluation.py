"""Evaluation rollouts in the dataset's evaluation env, one policy or a pack's members at once."""

from __future__ import annotations

from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

from iql_sweep.data.minari_io import load_transitions
from iql_sweep.env_pool import EnvPool, step_seconds
from iql_sweep.evaluation import EnvAdapter, Evaluator


def test_random_policy_scores_near_zero_and_is_reproducible(umaze_id):
    data = load_transitions(umaze_id)
    evaluator = Evaluator(data, episodes=30, seeds=[0])

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


def _towards(direction: np.ndarray):
    """A deterministic policy: a constant push plus a pull towards the goal."""

    def act(obs: torch.Tensor) -> torch.Tensor:
        goal_pull = obs[..., 4:6] - obs[..., 0:2]
        return (torch.as_tensor(direction, dtype=obs.dtype) + goal_pull).clamp(-1, 1)

    return act


def test_a_pack_is_evaluated_together_as_each_member_alone(umaze_id):
    """Members stepped together (one batched forward per env step, several rounds of envs)
    get exactly the returns each gets alone with its own seeds."""
    data = load_transitions(umaze_id)
    policies = [_towards(np.array(d)) for d in ([0.0, 0.0], [0.3, -0.2], [-0.5, 0.5])]
    seeds = [100, 200, 300]
    calls = []

    def members_act(obs: torch.Tensor, members: list[int]) -> torch.Tensor:
        calls.append(tuple(members))
        return torch.stack([policies[k](obs[i]) for i, k in enumerate(members)])

    together = Evaluator(data, episodes=5, seeds=seeds, max_envs=6, max_envs_per_member=3)
    results = together.evaluate(members_act, [0, 1, 2])
    together.close()
    assert {len(c) for c in calls} == {2, 1}  # 2 members per round of 6 envs, then the last
    for k in range(3):
        alone = Evaluator(data, episodes=5, seeds=[seeds[k]])
        expected = alone(policies[k])
        alone.close()
        np.testing.assert_array_equal(results[k].returns, expected.returns)
    assert len({tuple(r.returns) for r in results.values()}) == 3


def test_actions_are_mapped_back_to_the_box_the_dataset_records(umaze_id):
    """Evaluation and fine-tuning share one adapter, which reads the box from the data."""
    data = load_transitions(umaze_id)
    boxed = replace(
        data,
        action_low=np.array([-2.0, 0.0], dtype=np.float32),
        action_high=np.array([2.0, 1.0], dtype=np.float32),
    )
    adapter = EnvAdapter.from_data(boxed)
    np.testing.assert_allclose(adapter.to_env(np.array([-1.0, 1.0])), [-2.0, 1.0])
    np.testing.assert_allclose(adapter.to_env(np.array([[0.5, 0.0]])), [[1.0, 0.5]])
    evaluator = Evaluator(boxed, episodes=1)
    np.testing.assert_array_equal(evaluator.adapter.high, [2.0, 1.0])
    evaluator.close()
    env = gym.make(adapter.spec)
    obs, _ = env.reset(seed=0)
    one = adapter.flatten_one(obs)  # the dataset's layout: observation, then desired goal
    expected = np.hstack([obs["observation"], obs["desired_goal"]]).astype(np.float32)
    np.testing.assert_array_equal(one, expected)
    env.close()


def test_worker_processes_give_exactly_the_sequential_returns(umaze_id):
    """A pack's evaluation (3 members, 7 episodes each: rounds of uneven slices) in 2 worker
    processes returns, to the last bit, what one process returns with the same seeds."""
    data = load_transitions(umaze_id)
    seeds = [100, 200, 300]

    def act(obs, members):  # deterministic and different per member
        scale = torch.tensor([0.3, -0.6, 0.9])[members].view(-1, 1, 1)
        return torch.tanh(scale * obs[..., :2] + obs[..., 4:6])

    results = {}
    for workers in (1, 2):
        evaluator = Evaluator(
            data, episodes=7, seeds=seeds, max_envs=15, workers=workers, min_step_seconds=0
        )
        results[workers] = evaluator.evaluate(act, [0, 1, 2])
        if workers == 2:
            assert {pool.workers for pool in evaluator._envs.values()} == {2}
        evaluator.close()
    for k in range(3):
        np.testing.assert_array_equal(results[2][k].returns, results[1][k].returns)
    assert len({tuple(r.returns) for r in results[1].values()}) == 3


def test_a_mujoco_pool_steps_exactly_as_one_process():
    """Hopper (MuJoCo): observations, rewards and episode ends of 5 environments in 3 worker
    processes (slices of 2, 2, 1) equal gymnasium's synchronous vector env, step by step,
    through the resets that follow episode ends."""
    spec = gym.spec("Hopper-v5")
    pool = EnvPool(spec, 5, workers=3)
    reference = gym.vector.SyncVectorEnv(
        [lambda: gym.make(spec) for _ in range(5)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
    )
    try:
        assert pool.counts == [2, 2, 1]
        seeds = [7, 8, 9, 10, 11]
        np.testing.assert_array_equal(pool.reset(seeds), reference.reset(seed=seeds)[0])
        g = np.random.default_rng(0)
        ends = 0
        for _ in range(120):
            actions = g.uniform(-1, 1, size=(5, 3))
            got = pool.step(actions)
            want = reference.step(actions)[:4]
            for a, b in zip(got[:4], want, strict=True):
                np.testing.assert_array_equal(a, b)
            assert np.isnan(got[4]).all()  # Hopper reports no success
            ends += int((got[2] | got[3]).sum())
        assert ends > 0  # random Hopper falls: the autoreset path was compared too
    finally:
        pool.close()
        reference.close()
    assert pool._procs == []


def test_a_failing_worker_is_an_error_not_a_hang():
    spec = gym.spec("Hopper-v5")
    pool = EnvPool(spec, 2, workers=2)
    try:
        pool.reset([0, 1])
        with pytest.raises(RuntimeError, match="environment worker failed"):
            pool.step(np.zeros((2, 7)))  # Hopper takes 3 numbers per action
    finally:
        pool.close()


def test_only_environments_slow_enough_are_spread_over_workers(umaze_id, monkeypatch):
    """The rule, with the calibration's answer given (its figures: benchmarks/eval_cost.py):
    a step cheaper than the pipes to a worker stays in the trial's process."""
    import iql_sweep.evaluation as evaluation

    data = load_transitions(umaze_id)
    for seconds, expected in ((3e-5, 1), (3e-4, 2)):
        monkeypatch.setattr(evaluation, "step_seconds", lambda spec, s=seconds: s)
        evaluator = Evaluator(data, episodes=2, workers=2)
        evaluator.evaluate(lambda obs, members: torch.zeros(*obs.shape[:2], 2), [0])
        assert {pool.workers for pool in evaluator._envs.values()} == {expected}
        evaluator.close()
    assert 0 < step_seconds(gym.spec("PointMaze_UMaze-v3")) < 1.0  # a real measurement


def test_a_smaller_evaluation_is_a_prefix_of_a_larger(umaze_id):
    """Interim evaluations with fewer episodes see the same first episodes as the full one."""
    evaluator = Evaluator(load_transitions(umaze_id), episodes=6, seeds=[40, 50])

    def act(obs, members):
        return torch.tanh(obs[..., 4:6] - obs[..., :2])

    full = evaluator.evaluate(act, [0, 1])
    interim = evaluator.evaluate(act, [0, 1], episodes=2)
    evaluator.close()
    for k in (0, 1):
        assert len(full[k].returns) == 6 and len(interim[k].returns) == 2
        np.testing.assert_array_equal(interim[k].returns, full[k].returns[:2])
