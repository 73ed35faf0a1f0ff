"""PointMaze datasets made with the recipe of Minari's ``D4RL/pointmaze/*-v2``.

Collection: ``PointMaze_<Maze>[Dense]-v3`` as a continuing task whose goal is resampled on arrival
(``continuing_task=True, reset_target=True``); a cell planner (depth-first search by default, as
the official datasets) gives a path of cell centres, a PD controller
``a = 10 * (waypoint - xy) - 1 * velocity`` tracks it (next waypoint within 0.1; intermediate
waypoints jittered by ``-0.2 * U[0, 1)`` per axis; the last one is the exact goal), Gaussian action
noise N(0, 0.5^2) is added and the action clipped to [-1, 1]. An episode ends (``truncations``)
whenever the goal is reached, never with a terminal, so IQL bootstraps through goal hits.

Reference scores follow Minari's protocol: the evaluation env is the same maze with one fixed goal
cell (``continuing_task=True, reset_target=False``, the registered horizon: 300/600/800 steps);
``ref_min_score`` is a uniform-random policy's mean return, ``ref_max_score`` the noise-free
controller's, over 100 episodes, the first reset seeded with 123.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from iql_sweep.envs import register_robotics_envs

#: Neighbour order of the depth-first search (row, col deltas), pushed in this order, so the
#: last one is explored first; this is the order of the official dataset generator.
_DFS_MOVES = ((0, 1), (0, -1), (-1, 0), (1, 0))


@dataclass(frozen=True)
class MazeRecipe:
    """One PointMaze layout: its registered env id and the goal cell of its evaluation map."""

    name: str
    env_id: str
    dense_env_id: str
    eval_goal_cell: tuple[int, int]


MAZES: dict[str, MazeRecipe] = {
    "umaze": MazeRecipe("umaze", "PointMaze_UMaze-v3", "PointMaze_UMazeDense-v3", (1, 1)),
    "medium": MazeRecipe("medium", "PointMaze_Medium-v3", "PointMaze_MediumDense-v3", (6, 6)),
    "large": MazeRecipe("large", "PointMaze_Large-v3", "PointMaze_LargeDense-v3", (7, 9)),
}


def free_cells(maze_map: list[list]) -> list[tuple[int, int]]:
    """Every non-wall cell (row, col) of a maze map."""
    return [(i, j) for i, row in enumerate(maze_map) for j, cell in enumerate(row) if cell != 1]


def plan_path(
    maze_map: list[list], start: tuple[int, int], goal: tuple[int, int], planner: str = "dfs"
) -> list[tuple[int, int]]:
    """Cells from ``start`` (excluded) to ``goal`` (included); empty when start == goal.

    ``planner="dfs"`` reproduces the official generator's depth-first paths (not shortest);
    ``"bfs"`` gives a shortest path.
    """
    free = set(free_cells(maze_map))
    if start not in free or goal not in free:
        raise ValueError(f"start {start} and goal {goal} must be free cells of the maze")
    parent: dict[tuple[int, int], tuple[int, int]] = {}
    seen = {start}
    frontier: deque[tuple[int, int]] = deque([start])
    while frontier:
        cell = frontier.pop() if planner == "dfs" else frontier.popleft()
        if cell == goal:
            break
        for di, dj in _DFS_MOVES:
            nxt = (cell[0] + di, cell[1] + dj)
            if nxt in free and nxt not in seen:
                seen.add(nxt)
                parent[nxt] = cell
                frontier.append(nxt)
    if goal != start and goal not in parent:
        raise ValueError(f"goal {goal} is unreachable from {start}")
    path = []
    cell = goal
    while cell != start:
        path.append(cell)
        cell = parent[cell]
    return path[::-1]


class WaypointController:
    """Follows planner waypoints with a PD law; replans when the desired goal moves."""

    def __init__(
        self,
        maze,
        rng: np.random.Generator,
        planner: str = "dfs",
        p_gain: float = 10.0,
        d_gain: float = -1.0,
        waypoint_threshold: float = 0.1,
        waypoint_jitter: float = 0.2,
    ):
        self.maze = maze
        self.rng = rng
        self.planner = planner
        self.p_gain, self.d_gain = p_gain, d_gain
        self.threshold, self.jitter = waypoint_threshold, waypoint_jitter
        self._goal_xy: np.ndarray | None = None

    def _cell(self, xy: np.ndarray) -> tuple[int, int]:
        i, j = self.maze.cell_xy_to_rowcol(xy)
        return int(i), int(j)

    def _replan(self, xy: np.ndarray, goal_xy: np.ndarray) -> None:
        self._goal_xy = goal_xy.copy()
        self._goal_cell = self._cell(goal_xy)
        self._path = plan_path(self.maze.maze_map, self._cell(xy), self._goal_cell, self.planner)
        self._k = 0
        if self._path:
            self._target_cell = self._path[0]
            self._target_xy = self.maze.cell_rowcol_to_xy(np.array(self._target_cell))
        else:
            self._target_cell = self._goal_cell
            self._target_xy = self._goal_xy

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        xy, goal = obs["achieved_goal"], obs["desired_goal"]
        if self._goal_xy is None or np.linalg.norm(self._goal_xy - goal) > 1e-3:
            self._replan(xy, goal)
        if (
            np.linalg.norm(self._target_xy - xy) <= self.threshold
            and self._target_cell != self._goal_cell
        ):
            self._k += 1
            self._target_cell = self._path[self._k]
            if self._target_cell == self._goal_cell:
                self._target_xy = self._goal_xy
            else:
                centre = self.maze.cell_rowcol_to_xy(np.array(self._target_cell))
                self._target_xy = centre - self.rng.uniform(size=2) * self.jitter
        velocity = obs["observation"][2:4]
        return self.p_gain * (self._target_xy - xy) + self.d_gain * velocity


def make_collection_env(recipe: MazeRecipe, dense: bool, max_steps: int) -> gym.Env:
    """The continuing-task env the data is collected in."""
    register_robotics_envs()
    env_id = recipe.dense_env_id if dense else recipe.env_id
    return gym.make(env_id, continuing_task=True, reset_target=True, max_episode_steps=max_steps)


def eval_env_spec(recipe: MazeRecipe, dense: bool) -> gym.envs.registration.EnvSpec:
    """The evaluation env: the same maze with one fixed goal cell, the registered horizon."""
    register_robotics_envs()
    env_id = recipe.dense_env_id if dense else recipe.env_id
    maze_map = copy.deepcopy(gym.spec(env_id).kwargs["maze_map"])
    i, j = recipe.eval_goal_cell
    maze_map[i][j] = "g"
    env = gym.make(env_id, maze_map=maze_map, continuing_task=True, reset_target=False)
    spec = env.spec
    env.close()
    return spec


@dataclass(frozen=True)
class Corruption:
    """How a dataset is corrupted with suboptimal actions (the paper's stitching u-maze).

    Corruption comes in stretches of ``hold`` steps. In a stretch the executed action is
    ``"random"``: one uniform action in [-1, 1]^2 held for the stretch (a drift the wrong way,
    not jitter that averages out), or ``"reverse"``: the controller's action negated (pushing
    away from its next waypoint). Outside stretches the base recipe acts (controller + noise).
    A stretch starts at a clean step with probability ``q = share / (hold * (1 - share) + share)``
    (clean runs then last ``(1 - q) / q`` steps on average), so the long-run fraction of corrupted
    steps is ``share``. Every episode opens with a stretch,
    so no episode is the controller's alone from its start to its goal (this adds about
    ``(1 - share) * hold / mean episode length`` to the measured share).
    """

    share: float = 0.75
    mode: str = "random"
    hold: int = 10

    def __post_init__(self) -> None:
        from iql_sweep.errors import ConfigError

        if not 0.0 < self.share < 1.0:
            raise ConfigError(f"--corrupt-share: must be in (0, 1) (got {self.share})")
        if self.mode not in ("random", "reverse"):
            raise ConfigError(f"--corrupt-mode: use 'random' or 'reverse' (got {self.mode!r})")
        if self.hold < 1:
            raise ConfigError(f"--corrupt-hold: must be a positive integer (got {self.hold})")

    @property
    def start_probability(self) -> float:
        return self.share / (self.hold * (1.0 - self.share) + self.share)

    def describe(self) -> str:
        return (
            f"{self.share:.0%} of actions corrupted ({self.mode}, stretches of {self.hold} "
            "steps, one at the start of every episode)"
        )


class CorruptedActions:
    """The ``action_fn`` of :func:`collect_pointmaze` for a :class:`Corruption`; records, per
    step, whether the action was corrupted and the controller's own action."""

    def __init__(self, corruption: Corruption, noise_std: float = 0.5):
        self.c = corruption
        self.noise_std = noise_std
        self.left = 0  # steps left in the current stretch
        self.held = np.zeros(2)
        self.new_episode = True
        self.flags: list[bool] = []

    def __call__(self, obs: dict, controller: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.left == 0 and (self.new_episode or rng.uniform() < self.c.start_probability):
            self.left = self.c.hold
            self.held = rng.uniform(-1.0, 1.0, size=2)
        self.new_episode = False
        corrupted = self.left > 0
        self.flags.append(corrupted)
        if corrupted:
            self.left -= 1
            return self.held.copy() if self.c.mode == "random" else -controller
        return controller + rng.normal(0.0, self.noise_std, size=2)

    def episode_ended(self) -> None:
        self.new_episode = True
        self.left = 0


@dataclass
class Segment:
    """One episode being recorded (observations hold one more row than actions)."""

    obs: dict[str, list]
    actions: list
    rewards: list
    truncations: list
    corrupted: list
    controller_actions: list

    @classmethod
    def start(cls, first_obs: dict[str, np.ndarray]) -> Segment:
        return cls({k: [v.copy()] for k, v in first_obs.items()}, [], [], [], [], [])


def collect_pointmaze(
    recipe: MazeRecipe,
    dense: bool,
    steps: int,
    seed: int = 123,
    noise_std: float = 0.5,
    planner: str = "dfs",
    on_step: Callable[[int], None] | None = None,
    action_fn: Callable[[dict, np.ndarray, np.random.Generator], np.ndarray] | None = None,
    corruption: Corruption | None = None,
) -> list[dict]:
    """Run the noisy waypoint controller for ``steps`` steps; one dict per goal-to-goal episode.

    ``action_fn(obs, controller_action, rng)`` may replace the executed action; by default the
    action is ``clip(controller + N(0, noise_std^2), -1, 1)``. With ``corruption``, actions are
    corrupted as :class:`Corruption` says and each episode records ``infos`` with the per-step
    ``corrupted`` flag and the controller's ``controller_action`` (Minari's L+1 info rows: the
    first is the reset's).
    """
    corrupter = CorruptedActions(corruption, noise_std) if corruption is not None else None
    if corrupter is not None:
        action_fn = corrupter
    env = make_collection_env(recipe, dense, steps + 1)
    rng = np.random.default_rng(seed)
    controller = WaypointController(env.unwrapped.maze, rng, planner=planner)
    obs, _ = env.reset(seed=seed)
    episodes: list[dict] = []
    seg = Segment.start(obs)
    for t in range(steps):
        action = controller_action = controller(obs)
        if action_fn is None:
            action = np.clip(action + rng.normal(0.0, noise_std, size=2), -1.0, 1.0)
        else:
            action = np.clip(action_fn(obs, action, rng), -1.0, 1.0)
        obs, reward, terminated, truncated, info = env.step(action)
        success = bool(info.get("success", False))
        last = t == steps - 1
        for k, v in obs.items():
            seg.obs[k].append(v.copy())
        seg.actions.append(action.astype(np.float32))
        seg.rewards.append(float(reward))
        seg.truncations.append(success or last or truncated)
        if corrupter is not None:
            seg.corrupted.append(corrupter.flags[-1])
            seg.controller_actions.append(np.clip(controller_action, -1.0, 1.0))
        if success or last or truncated or terminated:
            episodes.append(_finish(seg, len(episodes), seed, with_infos=corrupter is not None))
            if corrupter is not None:
                corrupter.episode_ended()
            # The env returned this observation before resampling the goal: the next episode
            # starts at the same state but with the new goal.
            first = {k: v.copy() for k, v in obs.items()}
            first["desired_goal"] = np.asarray(env.unwrapped.goal, dtype=np.float64).copy()
            obs = first
            seg = Segment.start(obs)
        if on_step is not None:
            on_step(1)
    env.close()
    return episodes


def _finish(seg: Segment, index: int, seed: int, with_infos: bool = False) -> dict:
    n = len(seg.actions)
    extra = {}
    if with_infos:
        extra["infos"] = {
            "corrupted": np.concatenate([[False], np.asarray(seg.corrupted, dtype=bool)]),
            "controller_action": np.concatenate(
                [np.zeros((1, 2)), np.asarray(seg.controller_actions)]
            ).astype(np.float32),
        }
    return {
        **extra,
        "id": index,
        "seed": seed if index == 0 else None,
        "observations": {k: np.asarray(v) for k, v in seg.obs.items()},
        "actions": np.asarray(seg.actions, dtype=np.float32),
        "rewards": np.asarray(seg.rewards, dtype=np.float64),
        "terminations": np.zeros(n, dtype=bool),
        "truncations": np.asarray(seg.truncations, dtype=bool),
    }


def reference_return(
    spec: gym.envs.registration.EnvSpec,
    policy: str,
    episodes: int = 100,
    seed: int = 123,
    planner: str = "dfs",
) -> float:
    """Mean return of ``"random"`` (uniform actions) or ``"expert"`` (noise-free controller) in the
    evaluation env, with Minari's protocol (first reset seeded, the rest unseeded)."""
    register_robotics_envs()
    env = gym.make(spec)
    env.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    controller = WaypointController(env.unwrapped.maze, rng, planner=planner)
    total = 0.0
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed if ep == 0 else None)
        done = False
        while not done:
            if policy == "random":
                action = env.action_space.sample()
            else:
                action = np.clip(controller(obs), -1.0, 1.0)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / episodes
