"""The paper's stitching experiment (Figure 2): learned V against a reference optimal value over a
maze's free space, for several expectiles, on data heavily corrupted by suboptimal actions.

Reference optimal value (computed independently of IQL). The point mass of PointMaze moves on two
independent slide joints: each axis accelerates by at most ``accel`` per step² from rest and
saturates at ``speed`` per step (both measured from the simulator by
:func:`measure_point_dynamics`). The time to cover a displacement is therefore governed by its
larger axis component, so distances are measured in the L∞ norm. The shortest L∞ path from a
point to the goal among the wall squares bends only at wall corners: it is found exactly on the
visibility graph of the corners (Dijkstra from the goal). The steps needed are then

    T(s) = ramp + ceil(max(0, D(s) - goal_radius) / speed)      (T = 0 inside the goal region)

with ``ramp`` the steps lost accelerating from rest. In the evaluation task the reward is 1 for
every step that ends within ``goal_radius`` of the goal, and the agent can stay there, so

    V*(s) = gamma^max(T(s) - 1, 0) / (1 - gamma).

Turning losses at corners are ignored, so T is a lower bound on the optimal steps and V* an upper
bound, tight on straight stretches. Learned values are compared with V* by their correlation over
the free space (scale-free) and by their far/goal ratio (mean over the farthest third of the
points over the mean in the goal region), after dividing by their value at the goal: IQL's scale
depends on how V generalises to the goal states, which the data visits only at episode ends.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd

from iql_sweep.checkpoint import TUNE_FILE, load_checkpoint, value_function
from iql_sweep.data.minari_io import load_transitions
from iql_sweep.envs import register_robotics_envs
from iql_sweep.errors import ConfigError
from iql_sweep.evaluation import env_spec_from_metadata
from iql_sweep.report import load_results
from iql_sweep.trial_config import member_of

GOAL_RADIUS = 0.45


@dataclass(frozen=True)
class PointDynamics:
    """Per-axis top speed (distance per step) and the steps lost accelerating from rest."""

    speed: float
    ramp: int


def measure_point_dynamics(steps: int = 60) -> PointDynamics:
    """Push the point at full throttle along x in an open corridor; read the top speed and the
    ramp (steps needed minus steps at top speed, to cover the distance travelled)."""
    register_robotics_envs()
    corridor = [[1] * 14, [1] + [0] * 12 + [1], [1] * 14]
    env = gym.make("PointMaze_UMaze-v3", maze_map=corridor, continuing_task=True)
    options = {"reset_cell": np.array([1, 1]), "goal_cell": np.array([1, 12])}
    obs, _ = env.reset(seed=0, options=options)
    xs = [float(obs["achieved_goal"][0])]
    for _ in range(steps):
        obs, *_ = env.step(np.array([1.0, 0.0]))
        xs.append(float(obs["achieved_goal"][0]))
    env.close()
    step = np.diff(xs)
    speed = float(step[-10:].mean())
    travelled = xs[-1] - xs[0]
    return PointDynamics(speed=speed, ramp=max(0, round(steps - travelled / speed)))


def _cell_xy(maze_map: list[list], scale: float = 1.0) -> tuple[float, float]:
    rows, cols = len(maze_map), len(maze_map[0])
    return cols * scale / 2.0, rows * scale / 2.0


def cell_centre(maze_map: list[list], cell: tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """gymnasium-robotics' ``cell_rowcol_to_xy``: x to the right, y up, the map centred."""
    xc, yc = _cell_xy(maze_map, scale)
    return np.array([(cell[1] + 0.5) * scale - xc, yc - (cell[0] + 0.5) * scale])


def wall_boxes(maze_map: list[list], scale: float = 1.0) -> np.ndarray:
    """``[n, 4]`` (xmin, ymin, xmax, ymax) of every wall cell."""
    boxes = []
    for i, row in enumerate(maze_map):
        for j, cell in enumerate(row):
            if cell == 1:
                x, y = cell_centre(maze_map, (i, j), scale)
                h = scale / 2.0
                boxes.append((x - h, y - h, x + h, y + h))
    return np.array(boxes, dtype=np.float64).reshape(-1, 4)


def wall_corners(maze_map: list[list], scale: float = 1.0) -> np.ndarray:
    """Grid corners touching both a wall and a free cell: where shortest paths may bend."""
    rows, cols = len(maze_map), len(maze_map[0])
    xc, yc = _cell_xy(maze_map, scale)
    corners = []
    for i in range(1, rows):
        for j in range(1, cols):
            around = [
                maze_map[i - 1][j - 1],
                maze_map[i - 1][j],
                maze_map[i][j - 1],
                maze_map[i][j],
            ]
            walls = sum(1 for c in around if c == 1)
            if 0 < walls < 4:
                corners.append((j * scale - xc, yc - i * scale))
    return np.array(corners, dtype=np.float64).reshape(-1, 2)


def visible(p: np.ndarray, q: np.ndarray, boxes: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """For segments p[i] -> q[j], whether none crosses a wall's interior: ``[len(p), len(q)]``.
    Segments may run along a wall or touch a corner (Liang-Barsky clipping on boxes shrunk by
    ``eps``)."""
    p = np.asarray(p, dtype=np.float64)[:, None, None, :]  # [P, 1, 1, 2]
    d = np.asarray(q, dtype=np.float64)[None, :, None, :] - p  # [P, Q, 1, 2]
    lo = boxes[None, None, :, :2] + eps  # [1, 1, W, 2]
    hi = boxes[None, None, :, 2:] - eps
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - p) / d
        t2 = (hi - p) / d
    parallel = d == 0
    inside_slab = (p > lo) & (p < hi)
    t_near = np.where(parallel, np.where(inside_slab, -np.inf, np.inf), np.minimum(t1, t2))
    t_far = np.where(parallel, np.where(inside_slab, np.inf, -np.inf), np.maximum(t1, t2))
    enter = t_near.max(axis=-1)
    leave = t_far.min(axis=-1)
    hits = (enter < leave) & (enter < 1.0) & (leave > 0.0)
    return ~hits.any(axis=-1)


def linf(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Pairwise L∞ distances ``[len(p), len(q)]``."""
    return np.abs(np.asarray(p)[:, None, :] - np.asarray(q)[None, :, :]).max(axis=-1)


def geodesic_distance(
    maze_map: list[list], goal_xy: np.ndarray, points: np.ndarray, scale: float = 1.0
) -> np.ndarray:
    """Shortest L∞ path length from each point to the goal avoiding the walls (exact, on the
    visibility graph of the wall corners)."""
    boxes = wall_boxes(maze_map, scale)
    nodes = np.vstack([np.asarray(goal_xy, dtype=np.float64)[None], wall_corners(maze_map, scale)])
    see = visible(nodes, nodes, boxes)
    weight = linf(nodes, nodes)
    dist = np.full(len(nodes), np.inf)
    dist[0] = 0.0
    heap = [(0.0, 0)]
    while heap:
        d, n = heapq.heappop(heap)
        if d > dist[n]:
            continue
        for m in np.flatnonzero(see[n]):
            nd = d + weight[n, m]
            if nd < dist[m] - 1e-12:
                dist[m] = nd
                heapq.heappush(heap, (nd, int(m)))
    points = np.asarray(points, dtype=np.float64)
    out = np.empty(len(points))
    for start in range(0, len(points), 256):
        chunk = points[start : start + 256]
        total = np.where(visible(chunk, nodes, boxes), linf(chunk, nodes) + dist[None], np.inf)
        out[start : start + 256] = total.min(axis=1)
    return out


def steps_to_goal(
    distance: np.ndarray, dynamics: PointDynamics, goal_radius: float = GOAL_RADIUS
) -> np.ndarray:
    """Lower bound on the steps from rest into the goal region (0 inside it)."""
    remaining = np.maximum(0.0, np.asarray(distance) - goal_radius)
    steps = dynamics.ramp + np.ceil(remaining / dynamics.speed - 1e-9)
    return np.where(remaining > 0, steps, 0.0)


def optimal_value(steps: np.ndarray, gamma: float) -> np.ndarray:
    """V* = sum over the steps ending in the goal region of gamma^t, t from T - 1 on."""
    return gamma ** np.maximum(np.asarray(steps) - 1.0, 0.0) / (1.0 - gamma)


def free_space_grid(
    maze_map: list[list], resolution: float = 0.1, scale: float = 1.0, margin: float = 0.05
) -> np.ndarray:
    """Points spaced ``resolution`` apart inside the free cells (``margin`` from their walls)."""
    points = []
    h = scale / 2.0
    offsets = np.arange(-h + margin, h - margin + 1e-9, resolution)
    for i, row in enumerate(maze_map):
        for j, cell in enumerate(row):
            if cell == 1:
                continue
            x, y = cell_centre(maze_map, (i, j), scale)
            for dx in offsets:
                for dy in offsets:
                    points.append((x + dx, y + dy))
    return np.unique(np.round(np.array(points), 6), axis=0)


# --- learned values from a sweep ------------------------------------------------------------


def latest_checkpoint(trial_dir: Path) -> Path:
    """The newest Tune checkpoint file of a trial folder."""
    found = sorted(Path(trial_dir).glob(f"checkpoint_*/{TUNE_FILE}"))
    if not found:
        raise ConfigError(f"EXPERIMENT_DIR: trial folder {trial_dir} holds no checkpoint")
    return found[-1]


def maze_observations(points: np.ndarray, goal_xy: np.ndarray, obs_keys: list[str]) -> np.ndarray:
    """Flat PointMaze observations at rest at ``points`` with the evaluation goal, in the
    dataset's key order (observation = x, y, vx, vy; desired_goal; achieved_goal = x, y)."""
    n = len(points)
    parts = {
        "observation": np.hstack([points, np.zeros((n, 2))]),
        "desired_goal": np.repeat(np.asarray(goal_xy)[None], n, axis=0),
        "achieved_goal": points,
    }
    return np.hstack([parts[k] for k in obs_keys]).astype(np.float32)


@dataclass
class StitchingResult:
    """Per configuration: the learned values on the grid; per tau: the comparison with V*."""

    points: np.ndarray
    distance: np.ndarray
    reference: np.ndarray
    values: pd.DataFrame  # columns: point index, trial_id, expectile, beta, seed, value
    table: pd.DataFrame  # one row per (expectile, beta)
    maze_map: list[list]
    goal_xy: np.ndarray
    dataset_id: str


def decay_ratio(values: np.ndarray, distance: np.ndarray) -> float:
    """Mean value over the farthest third of the points divided by the mean over the goal region
    (the nearest 5 % if no point lies in it): gamma^(extra steps) for V*, about 0 (or below) for
    a value that dies out far from the goal."""
    order = np.argsort(distance)
    third = max(1, len(order) // 3)
    goal = distance <= GOAL_RADIUS
    near = values[goal].mean() if goal.any() else values[order[: max(1, len(order) // 20)]].mean()
    far = values[order[-third:]].mean()
    return float(far / near) if near != 0 else math.nan


def analyse_experiment(experiment: Path, resolution: float = 0.1) -> StitchingResult:
    """Learned V of every finished configuration of a PointMaze sweep against V*."""
    results = load_results(experiment)
    trials = results.trials[results.trials["evaluations"] > 0]
    if trials.empty:
        raise ConfigError(f"EXPERIMENT_DIR: {experiment} has no finished configuration yet")
    datasets = trials["dataset"].unique()
    if len(datasets) != 1:
        raise ConfigError(
            f"EXPERIMENT_DIR: the stitching figure takes one PointMaze dataset; {experiment} "
            f"holds {', '.join(datasets)}"
        )
    dataset_id = str(datasets[0])
    data = load_transitions(dataset_id)
    spec = env_spec_from_metadata(data.metadata.get("eval_env_spec"), dataset_id)
    if "maze_map" not in spec.kwargs:
        raise ConfigError(f"EXPERIMENT_DIR: {dataset_id} is not a PointMaze dataset")
    register_robotics_envs()
    env = gym.make(spec)
    maze = env.unwrapped.maze
    maze_map, scale = maze.maze_map, maze.maze_size_scaling
    goal_cell = next(
        (i, j) for i, row in enumerate(maze_map) for j, c in enumerate(row) if c == "g"
    )
    goal_xy = cell_centre(maze_map, goal_cell, scale)
    env.close()
    points = free_space_grid(maze_map, resolution, scale)
    distance = geodesic_distance(maze_map, goal_xy, points, scale)
    obs = maze_observations(points, goal_xy, data.metadata["obs_keys"])
    rows, gammas = [], set()
    for trial in trials.itertuples():
        trial_id = str(trial.trial_id)
        state = load_checkpoint(latest_checkpoint(Path(experiment) / trial.trial_dir))
        gammas.add(state["config"]["discount"])
        values = value_function(state, member_of(trial_id) or 0)(obs)
        for i, value in enumerate(values):
            rows.append((i, trial_id, trial.expectile, trial.beta, trial.seed, float(value)))
    if len(gammas) != 1:
        raise ConfigError(
            f"EXPERIMENT_DIR: its configurations use several discounts {sorted(gammas)}; V* "
            "depends on gamma, so compare one discount at a time"
        )
    (gamma,) = gammas
    values = pd.DataFrame(rows, columns=["point", "trial_id", "expectile", "beta", "seed", "value"])
    reference = optimal_value(steps_to_goal(distance, measure_point_dynamics()), gamma)
    table = compare(values, reference, distance, trials)
    return StitchingResult(
        points, distance, reference, values, table, maze_map, goal_xy, dataset_id
    )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (Pearson on average ranks)."""
    ra = pd.Series(a).rank().to_numpy()
    rb = pd.Series(b).rank().to_numpy()
    return float(np.corrcoef(ra, rb)[0, 1])


def compare(
    values: pd.DataFrame, reference: np.ndarray, distance: np.ndarray, trials: pd.DataFrame
) -> pd.DataFrame:
    """Per (tau, beta), over seeds: correlation of V with V*, decay ratio of V against V*'s,
    and the policies' normalised score."""
    rows = []
    ref_decay = decay_ratio(reference, distance)
    goal = distance <= GOAL_RADIUS
    far = np.argsort(distance)[-max(1, len(distance) // 3) :]
    for (tau, beta), group in values.groupby(["expectile", "beta"]):
        per_seed = []
        for _, g in group.groupby("trial_id"):
            v = g.sort_values("point")["value"].to_numpy()
            per_seed.append(
                (
                    float(np.corrcoef(v, reference)[0, 1]),
                    _spearman(v, reference),
                    decay_ratio(v, distance),
                    float(v[goal].mean()) if goal.any() else math.nan,
                    float(v[far].mean()),
                )
            )
        arr = np.array(per_seed)
        scores = trials[(trials["expectile"] == tau) & (trials["beta"] == beta)]["last_score"]
        rows.append(
            {
                "expectile": tau,
                "beta": beta,
                "seeds": len(per_seed),
                "pearson_vs_optimal": arr[:, 0].mean(),
                "spearman_vs_optimal": arr[:, 1].mean(),
                "decay_ratio": arr[:, 2].mean(),
                "decay_ratio_std": arr[:, 2].std(),
                "optimal_decay_ratio": ref_decay,
                "v_goal": arr[:, 3].mean(),
                "v_far": arr[:, 4].mean(),
                "optimal_v_goal": float(reference[goal].mean()) if goal.any() else math.nan,
                "optimal_v_far": float(reference[far].mean()),
                "score_mean": float(scores.mean()),
                "score_std": float(scores.std(ddof=0)),
            }
        )
    return pd.DataFrame(rows)
