"""The PointMaze generator: planner, controller, episode statistics, reference scores."""

from __future__ import annotations

import gymnasium as gym
import minari
import numpy as np
import pytest

from iql_sweep.data.generators import GENERATORS, get_generator, name_for_id
from iql_sweep.data.pointmaze import (
    MAZES,
    collect_pointmaze,
    free_cells,
    plan_path,
)
from iql_sweep.envs import register_robotics_envs
from iql_sweep.errors import ConfigError


def maze_map(name: str) -> list[list]:
    register_robotics_envs()
    return gym.spec(MAZES[name].env_id).kwargs["maze_map"]


def test_umaze_path_by_hand():
    # U-maze: the only way from the bottom-left cell (3,1) to the top-left cell (1,1).
    expected = [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    assert plan_path(maze_map("umaze"), (3, 1), (1, 1), "dfs") == expected
    assert plan_path(maze_map("umaze"), (3, 1), (1, 1), "bfs") == expected
    assert plan_path(maze_map("umaze"), (1, 1), (1, 1)) == []


@pytest.mark.parametrize("maze", ["medium", "large"])
def test_paths_are_valid_and_dfs_is_not_shortest(maze):
    grid = maze_map(maze)
    cells = free_cells(grid)
    longer = 0
    for start in cells[::3]:
        for goal in cells[::4]:
            dfs, bfs = plan_path(grid, start, goal, "dfs"), plan_path(grid, start, goal, "bfs")
            for path in (dfs, bfs):
                prev = start
                for cell in path:
                    assert abs(cell[0] - prev[0]) + abs(cell[1] - prev[1]) == 1
                    assert grid[cell[0]][cell[1]] != 1
                    prev = cell
                assert prev == goal
            assert len(bfs) <= len(dfs)
            longer += len(dfs) > len(bfs)
    assert longer > 0  # depth-first detours, as in the official datasets


def test_collected_umaze_matches_official_statistics():
    """Official D4RL/pointmaze/umaze-v2: 13210 episodes, mean length 75.7 for 1M steps."""
    episodes = collect_pointmaze(MAZES["umaze"], dense=False, steps=100_000, seed=123)
    lengths = np.array([len(e["rewards"]) for e in episodes])
    assert lengths.sum() == 100_000
    assert abs(lengths.mean() - 75.7) / 75.7 < 0.06
    # Every episode but the last ends on a goal hit, and each episode has one goal throughout.
    assert all(e["rewards"][-1] == 1.0 and e["truncations"][-1] for e in episodes[:-1])
    for e in episodes[:200]:
        goals = e["observations"]["desired_goal"]
        assert np.all(goals == goals[0])
        assert e["rewards"][:-1].sum() == 0.0  # the sparse reward fires at the hit only
    actions = np.concatenate([e["actions"] for e in episodes])
    assert np.abs(actions).max() <= 1.0
    assert 0.3 < actions.std() < 1.0  # N(0, 0.5^2) noise on top of the PD action


def test_reference_scores_separate_random_from_controller(umaze_id):
    meta = minari.load_dataset(umaze_id).storage.metadata
    assert meta["ref_min_score"] < 40.0  # uniform random policy
    assert meta["ref_max_score"] > 180.0  # noise-free controller, about 218 over 100 episodes


def test_catalog_names_and_ids():
    assert get_generator("pointmaze-large-dense").dataset_id == "iql-sweep/pointmaze/large-dense-v0"
    assert name_for_id("iql-sweep/pointmaze/medium-v0") == "pointmaze-medium"
    assert len(GENERATORS) == 9  # 3 mazes x (sparse, dense, corrupted)
    corrupted = get_generator("iql-sweep/pointmaze/umaze-corrupted-v0")
    assert corrupted.name == "pointmaze-umaze-corrupted" and corrupted.corruption.share == 0.75
    with pytest.raises(ConfigError, match="NAME: unknown dataset 'pointmaze-huge'"):
        get_generator("pointmaze-huge")
