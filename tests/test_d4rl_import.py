"""``iql-sweep datasets import-d4rl`` on a file written in the original D4RL layout (flat
arrays, terminals and timeouts), checked against an independent split, then trained and
evaluated on Gymnasium's Hopper-v5 through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import minari
import numpy as np
import pytest

from iql_sweep.data.d4rl_import import episode_bounds
from iql_sweep.data.profile import DatasetProfile


def write_d4rl_file(path, next_observations: bool, seed: int = 0) -> dict[str, np.ndarray]:
    """A hopper-shaped D4RL file: 11-d observations, 3-d actions; episodes of random length
    ending in a terminal, and one cut by a timeout at step 1000 as D4RL's files are."""
    rng = np.random.default_rng(seed)
    lengths = [40, 17, 1000, 63, 25]  # the 1000-step one ends by timeout, the last by the file
    ends = np.cumsum(lengths) - 1
    n = int(ends[-1]) + 1
    arrays = {
        "observations": rng.normal(size=(n, 11)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        "rewards": rng.normal(1, 0.1, size=n).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    arrays["terminals"][ends[[0, 1, 3]]] = True
    arrays["timeouts"][ends[2]] = True
    if next_observations:
        arrays["next_observations"] = rng.normal(size=(n, 11)).astype(np.float32)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
        f.create_dataset("infos/qpos", data=np.zeros((n, 6)))  # D4RL files carry extras
    return arrays


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iql_sweep.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_episode_bounds_split_at_terminals_timeouts_and_the_end():
    terminals = np.array([0, 0, 1, 0, 0, 0, 1, 0, 0], bool)
    timeouts = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0], bool)
    assert episode_bounds(terminals, timeouts) == [
        (0, 2, "terminal"),
        (3, 4, "timeout"),
        (5, 6, "terminal"),
        (7, 8, "end"),
    ]


@pytest.mark.parametrize("with_next", [False, True], ids=["no-next-obs", "next-obs"])
def test_import_matches_an_independent_split(tmp_path, with_next, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # a private root
    path = tmp_path / "hopper_medium-v2.hdf5"
    arrays = write_d4rl_file(path, with_next)
    dataset_id = f"d4rl/hopper/medium{'-next' if with_next else ''}-v2"
    result = cli("datasets", "import-d4rl", str(path), "--id", dataset_id, "--env", "Hopper-v5")
    assert result.returncode == 0, result.stdout + result.stderr
    dataset = minari.load_dataset(dataset_id)
    episodes = list(dataset.iterate_episodes())
    # Independently: the episodes end after steps 39, 56, 1056 (timeout), 1119; 1144 ends the file.
    starts, ends = [0, 40, 57, 1057, 1120], [39, 56, 1056, 1119, 1144]
    cut = {2, 4}  # timeout and end of file: the last step has no next observation
    assert len(episodes) == 5
    for k, (episode, first, last) in enumerate(zip(episodes, starts, ends)):
        keep = last if (with_next or k not in cut) else last - 1
        np.testing.assert_array_equal(episode.actions, arrays["actions"][first : keep + 1])
        np.testing.assert_allclose(episode.rewards, arrays["rewards"][first : keep + 1])
        np.testing.assert_allclose(
            episode.observations[:-1], arrays["observations"][first : keep + 1]
        )
        if with_next:
            final = arrays["next_observations"][last]
        else:
            final = arrays["observations"][last if k not in cut else keep + 1]
        np.testing.assert_allclose(episode.observations[-1], final)
        assert bool(episode.terminations[-1]) == (k not in cut)
        assert bool(episode.truncations[-1]) == (k in cut)
        assert not episode.terminations[:-1].any() and not episode.truncations[:-1].any()
    meta = dataset.storage.metadata
    assert (meta["ref_min_score"], meta["ref_max_score"]) == DatasetProfile.from_id(
        "hopper"
    ).d4rl_scores
    assert json.loads(meta["eval_env_spec"])["id"] == "Hopper-v5"
    left_out = 0 if with_next else 2
    assert f"({left_out} steps cut by a timeout left out)" in result.stdout


def test_an_imported_dataset_trains_and_evaluates_on_hopper(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # a private root
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_file(path, next_observations=False, seed=1)
    imported = cli("datasets", "import-d4rl", str(path), "--id", "d4rl/hopper/train-v2",
                   "--env", "Hopper-v5")  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    out = tmp_path / "run"
    result = cli(
        "train", "--dataset", "d4rl/hopper/train-v2", "--steps", "200", "--eval-every", "100",
        "--eval-episodes", "2", "--batch-size", "64", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [100, 200]
    low, high = DatasetProfile.from_id("hopper").d4rl_scores
    for row in rows:  # D4RL normalisation of the Hopper-v5 returns
        expected = 100 * (row["return_mean"] - low) / (high - low)
        assert row["normalized_score"] == pytest.approx(expected)
        assert row["return_mean"] != 0  # Hopper-v5 really ran


def test_bad_imports_are_refused_with_one_line(tmp_path, monkeypatch, capsys):
    """Through the console's entry point, in this process (the real child process: the
    successful import above)."""
    from iql_sweep.cli import main

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))  # a private root
    path = tmp_path / "hopper_medium-v2.hdf5"
    write_d4rl_file(path, next_observations=False)
    broken = tmp_path / "broken.hdf5"
    with h5py.File(broken, "w") as f:
        f.create_dataset("observations", data=np.zeros((3, 11)))
    for args, expected in (
        ([str(path), "--id", "d4rl/hopper/x-v2", "--env", "Walker2d-v5"], "--env: Walker2d-v5 has"),
        ([str(path), "--id", "d4rl/hopper/x-v2", "--env", "NoSuchEnv-v0"], "--env: 'NoSuchEnv-v0'"),
        ([str(path), "--id", "../x-v2", "--env", "Hopper-v5"], "--id: '../x-v2' is not a Minari"),
        ([str(broken), "--id", "d4rl/hopper/x-v2", "--env", "Hopper-v5"], "lacks the D4RL arrays"),
        ([str(tmp_path / "none.hdf5"), "--id", "a/b-v0", "--env", "Hopper-v5"], "no such file"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(["datasets", "import-d4rl", *args])
        said = capsys.readouterr()
        text = " ".join((said.out + said.err).split())
        assert exited.value.code == 2 and "Traceback" not in text and expected in text, text
