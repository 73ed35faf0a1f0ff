"""The paper's experiments: expectiles of N(0, 1), the corrupted u-maze, the reference optimal
value, and the stitching figure end to end (a tiny sweep through the real platform)."""

from __future__ import annotations

import math
import subprocess
import sys

import minari
import numpy as np
import pandas as pd
import pytest

from iql_sweep.paper.expectiles import (
    conditional_sample,
    fit_conditional_expectiles,
    normal_expectile,
)
from iql_sweep.paper.stitching import (
    PointDynamics,
    decay_ratio,
    geodesic_distance,
    measure_point_dynamics,
    optimal_value,
    steps_to_goal,
)


def _bisect_expectile(tau: float) -> float:
    """Independent solution: the first-order condition of the asymmetric least squares problem,
    tau * E[(X - m)+] = (1 - tau) * E[(m - X)+], with the normal's closed-form partial moments."""

    def pdf(m):
        return math.exp(-m * m / 2) / math.sqrt(2 * math.pi)

    def cdf(m):
        return 0.5 * (1 + math.erf(m / math.sqrt(2)))

    def gap(m):
        upper = pdf(m) - m * (1 - cdf(m))  # E[(X - m)+]
        lower = m * cdf(m) + pdf(m)  # E[(m - X)+]
        return tau * upper - (1 - tau) * lower

    lo, hi = -10.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("tau", [0.05, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_normal_expectiles_match_an_independent_solution(tau):
    assert normal_expectile(tau) == pytest.approx(_bisect_expectile(tau), abs=2e-3)


def test_scaled_normal_expectile_and_symmetry():
    # expectiles are equivariant: e_tau(mu + s X) = mu + s e_tau(X); e_{1-tau} = -e_tau
    assert normal_expectile(0.8, mean=2.0, std=3.0) == pytest.approx(
        2.0 + 3.0 * _bisect_expectile(0.8), abs=5e-3
    )
    assert normal_expectile(0.2) == pytest.approx(-normal_expectile(0.8), abs=1e-6)


def test_conditional_expectile_net_tracks_mean_and_approaches_the_maximum():
    fit = fit_conditional_expectiles(taus=(0.5, 0.99), steps=1500)
    x = fit.grid
    true_mean = fit.upper - (0.4 + 1.2 * x) / 2  # y | x is uniform below the upper edge
    assert np.abs(fit.curves[0.5] - true_mean).mean() < 0.06
    gap_mean = (fit.upper - fit.curves[0.5]).mean()
    gap_high = (fit.upper - fit.curves[0.99]).mean()
    assert gap_high < 0.35 * gap_mean  # tau near 1 approaches the in-support maximum
    xs, ys = conditional_sample()
    assert (ys <= 1.0 + 0.5 * np.sin(2 * np.pi * xs) + 1e-12).all()


# --- the reference optimal value, checked by hand --------------------------------------------

CORRIDOR = [[1] * 7, [1, "g", 0, 0, 0, 0, 1], [1] * 7]
L_MAZE = [
    [1, 1, 1, 1, 1],
    [1, "g", 0, 0, 1],
    [1, 1, 1, 0, 1],
    [1, 1, 1, 0, 1],
    [1, 1, 1, 1, 1],
]


def test_geodesic_distance_in_a_corridor_is_the_cell_count():
    goal = np.array([-2.0, 0.0])  # centre of cell (1, 1) in a 7 x 3 map
    points = np.array([[-2.0 + k, 0.0] for k in range(5)])
    assert geodesic_distance(CORRIDOR, goal, points) == pytest.approx([0, 1, 2, 3, 4])


def test_geodesic_distance_bends_around_the_wall_corner():
    # goal: centre of (1, 1) = (-1, 1); start: centre of (3, 3) = (1, -1). The straight line
    # crosses wall (2, 2) = [-0.5, 0.5]^2; the shortest L-inf path bends at its corner
    # (0.5, 0.5): max(0.5, 1.5) + max(1.5, 0.5) = 3.0 (around the outside it would be 4).
    goal = np.array([-1.0, 1.0])
    d = geodesic_distance(L_MAZE, goal, np.array([[1.0, -1.0], [1.0, 1.0], [0.0, 1.0]]))
    assert d == pytest.approx([3.0, 2.0, 1.0])


def test_optimal_value_by_hand():
    dyn = PointDynamics(speed=0.05, ramp=10)
    # 3.0 away: (3.0 - 0.45) / 0.05 = 51 steps at top speed + 10 ramp = 61 steps; the first
    # rewarded step is step 60 (0-based), so V* = gamma^60 / (1 - gamma).
    steps = steps_to_goal(np.array([3.0, 0.3, 0.45]), dyn)
    assert steps.tolist() == [61.0, 0.0, 0.0]
    v = optimal_value(steps, 0.99)
    assert v[0] == pytest.approx(0.99**60 / 0.01)
    assert v[1] == pytest.approx(100.0) and v[2] == pytest.approx(100.0)
    # decay of V* from near to far points is gamma to the extra steps
    assert decay_ratio(np.array([100.0, 50.0, 25.0]), np.array([0.0, 1.0, 2.0])) == 0.25


def test_time_model_matches_the_simulator():
    """A full-throttle run down a corridor reaches the goal region in the steps the model says
    (within 2 steps), so T is the simulator's, not a guess."""
    import gymnasium as gym

    from iql_sweep.envs import register_robotics_envs

    dyn = measure_point_dynamics()
    assert 0.04 < dyn.speed < 0.07 and 5 <= dyn.ramp <= 20
    register_robotics_envs()
    corridor = [[1] * 9, [1] + [0] * 7 + [1], [1] * 9]
    env = gym.make("PointMaze_UMaze-v3", maze_map=corridor, continuing_task=True)
    obs, _ = env.reset(
        seed=0, options={"reset_cell": np.array([1, 7]), "goal_cell": np.array([1, 1])}
    )
    start, goal = obs["achieved_goal"].copy(), obs["desired_goal"].copy()
    steps = 0
    while np.linalg.norm(obs["achieved_goal"] - goal) > 0.45:
        obs, *_ = env.step(np.array([-1.0, 0.0]))
        steps += 1
    env.close()
    model = steps_to_goal(np.array([np.abs(start - goal).max()]), dyn)[0]
    assert abs(model - steps) <= 2, (model, steps)


# --- the corrupted u-maze ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def corrupted_id(minari_root):
    from iql_sweep.data.make import make_dataset

    return make_dataset(
        "pointmaze-umaze-corrupted", steps=30_000, ref_episodes=20, progress=False
    ).dataset_id


def test_corrupted_dataset_is_corrupted_and_valid(corrupted_id, umaze_id):
    from iql_sweep.data.minari_io import load_transitions

    ds = minari.load_dataset(corrupted_id)
    assert (
        ds.total_steps == 30_000
        and "75% of actions corrupted" in ds.storage.metadata["description"]
    )
    assert ds.recover_environment(eval_env=True).spec.max_episode_steps == 300
    flags, cos_bad, cos_good, held, lengths = [], [], [], [], []
    for ep in ds.iterate_episodes():
        f = ep.infos["corrupted"][1:].astype(bool)
        ctrl = ep.infos["controller_action"][1:]
        a = ep.actions
        assert f[0], "every episode opens with a corrupted stretch"
        if ep.truncations[-1] and ep.rewards[-1] > 0:  # reached its goal
            assert f.any()
        cos = (a * ctrl).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(ctrl, axis=1) + 1e-9)
        cos_bad.append(cos[f])
        cos_good.append(cos[~f])
        # random stretches hold one action: consecutive corrupted actions repeat
        both = f[1:] & f[:-1]
        held.append(np.all(a[1:][both] == a[:-1][both], axis=1))
        flags.append(f)
        lengths.append(len(f))
    share = np.concatenate(flags).mean()
    assert share == pytest.approx(0.75, abs=0.03)
    assert np.concatenate(cos_good).mean() > 0.8  # clean steps follow the controller
    assert abs(np.concatenate(cos_bad).mean()) < 0.3  # corrupted ones do not
    assert np.concatenate(held).mean() > 0.85  # (a stretch boundary breaks a few pairs)
    clean = load_transitions(umaze_id)
    assert np.mean(lengths) > 2.0 * clean.episode_lengths.mean()  # far slower to the goal
    data = load_transitions(corrupted_id)  # the project's loader takes it like any dataset
    assert data.size == 30_000 and data.obs_dim == 6


def test_corruption_settings_are_validated():
    from iql_sweep.data.make import make_dataset
    from iql_sweep.data.pointmaze import Corruption
    from iql_sweep.errors import ConfigError

    with pytest.raises(ConfigError, match="--corrupt-share"):
        Corruption(share=1.0)
    with pytest.raises(ConfigError, match="--corrupt-mode"):
        Corruption(mode="sideways")
    with pytest.raises(ConfigError, match="clean dataset"):
        make_dataset("pointmaze-umaze", steps=10, corruption=Corruption())


def test_reverse_corruption_pushes_away_from_the_waypoint():
    from iql_sweep.data.pointmaze import MAZES, Corruption, collect_pointmaze

    episodes = collect_pointmaze(
        MAZES["umaze"], False, 3000, seed=5, corruption=Corruption(share=0.5, mode="reverse")
    )
    f = np.concatenate([ep["infos"]["corrupted"][1:] for ep in episodes])
    ctrl = np.concatenate([ep["infos"]["controller_action"][1:] for ep in episodes])
    a = np.concatenate([ep["actions"] for ep in episodes])
    assert f.mean() == pytest.approx(0.5, abs=0.06)
    assert np.allclose(a[f], np.clip(-ctrl[f], -1, 1), atol=1e-6)


def test_stitching_figure_end_to_end(corrupted_id, tmp_path, cli_in_process):
    """`iql-sweep figure stitching --smoke`: the spec's tiny sweep on the corrupted u-maze
    through real Ray, then V of every member against V* and the PNG/CSV."""
    png = tmp_path / "stitching.png"
    result = cli_in_process(
        "figure",
        "stitching",
        "--smoke",
        "--output",
        str(tmp_path / "results"),
        "--out",
        str(png),
        cwd=tmp_path,
    )
    assert result.exit_code == 0, result.output[-3000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(png.with_suffix(".csv"))
    assert table["expectile"].tolist() == [0.5, 0.7] and (table["seeds"] == 2).all()
    assert table[["pearson_vs_optimal", "decay_ratio", "score_mean"]].notna().all().all()
    assert (table["optimal_decay_ratio"] > 0).all() and (table["optimal_decay_ratio"] < 1).all()


def test_expectile_figure_command(tmp_path):
    png = tmp_path / "e.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "iql_sweep.cli",
            "figure",
            "expectiles",
            "--out",
            str(png),
            "--fit-steps",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "+0.862" in result.stdout
