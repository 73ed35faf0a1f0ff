"""Bad input is refused cleanly: a table of invalid specs over every field and every class of
problem (each refused with exit code 2, its YAML path named, no traceback), hostile files refused
within a memory and CPU bound the process measures itself, generated specs and mutated YAML
bytes that only ever give a spec or a clean refusal, and command-line misuse."""

from __future__ import annotations

import contextlib
import copy
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import minari
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from minari.data_collector import EpisodeBuffer
from typer.testing import CliRunner

from iql_sweep.cli import app
from iql_sweep.errors import ConfigError
from iql_sweep.spec import load_spec

runner = CliRunner()
DELETE = object()


@pytest.fixture(scope="module")
def base(umaze_id) -> dict:
    return {
        "name": "bad",
        "datasets": [umaze_id],
        "preset": "maze",
        "iql": {"batch_size": 32, "hidden_dims": [32, 32]},
        "search": {"grid": {"expectile": [0.5, 0.9], "seed": [0, 1]}},
        "training": {"steps": 60, "eval_every": 30, "eval_episodes": 2},
        "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 2},
        "wandb": {"mode": "disabled"},
        "output": "results",
    }


def _damaged_dataset(name: str, rewards_nan: bool) -> str:
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=20)
    if rewards_nan:
        rewards[3] = np.nan
    episode = EpisodeBuffer(
        id=0,
        observations=rng.normal(size=(21, 6)).astype(np.float32),
        actions=rng.uniform(-1, 1, (20, 2)).astype(np.float32),
        rewards=rewards,
        terminations=np.zeros(20, bool),
        truncations=np.eye(1, 20, 19, dtype=bool)[0],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(
            name,
            [episode],
            observation_space=gym.spaces.Box(-np.inf, np.inf, (6,), np.float32),
            action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
        )
    return name


@pytest.fixture(scope="module")
def damaged(minari_root) -> dict[str, str]:
    nan = _damaged_dataset("bad/nan-rewards-input-v0", True)
    truncated = _damaged_dataset("bad/truncated-input-v0", False)
    (main,) = (minari_root / truncated / "data").glob("*.hdf5")
    main.write_bytes(main.read_bytes()[:200])
    return {"nan": nan, "truncated": truncated}


def mutate(spec: dict, path: str, value) -> dict:
    spec = copy.deepcopy(spec)
    node = spec
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return spec


OPTUNA = {"num_samples": 2, "params": {"beta": {"type": "uniform", "low": 1.0, "high": 3.0}}}


def optuna(**params) -> dict:
    return {"optuna": {"num_samples": 2, "params": params}}


# (case id, YAML path (dotted) or a special marker, value, expected text in the refusal)
CASES = [
    # top level
    ("unknown-key", "flavour", "vanilla", "flavour: unknown key"),
    ("name-missing", "name", DELETE, "name: required key is missing"),
    ("name-space", "name", "my sweep!", "name: 'my sweep!' names the experiment"),
    ("name-dotdot", "name", "..", "name: '..' names the experiment"),
    ("name-dot", "name", ".", "name: '.' names the experiment"),
    ("name-long", "name", "x" * 200, "name: String should have at most 128"),
    ("name-number", "name", 7, "name: Input should be a valid string"),
    ("datasets-empty", "datasets", [], "datasets: List should have at least 1 item"),
    ("datasets-string", "datasets", "umaze", "datasets: Input should be a valid list"),
    ("datasets-number", "datasets", [123], "datasets[0]: Input should be a valid string"),
    ("dataset-not-id", "datasets", ["hopper"], "datasets[0]: 'hopper' is not a Minari id"),
    ("dataset-escape", "datasets", ["../outside/x-v0"], "datasets[0]: '../outside/x-v0' is not"),
    ("dataset-absent", "datasets", ["D4RL/door/human-v2"], "datasets[0]: 'D4RL/door/human-v2'"),
    ("preset-unknown", "preset", "hopper", "preset: unknown preset 'hopper'"),
    ("preset-number", "preset", 3, "preset: Input should be a valid string"),
    ("seed-negative", "seed", -1, "seed: Input should be greater than or equal to 0"),
    ("seed-huge", "seed", 2**40, "seed: Input should be less than or equal to"),
    ("seed-text", "seed", "zero", "seed: Input should be a valid integer"),
    ("output-empty", "output", "", "output: String should have at least 1 character"),
    # iql hyper-parameters
    ("iql-list", "iql", [1, 2], "iql: Input should be a valid dictionary"),
    ("iql-unknown", "iql.temperature", 3, "iql.temperature: unknown IQL hyper-parameter"),
    ("beta-negative", "iql.beta", -1, "iql.beta: Input should be greater than or equal to 0"),
    ("beta-nan", "iql.beta", float("nan"), "iql.beta: Input should be a finite number"),
    ("beta-inf", "iql.beta", float("inf"), "iql.beta: Input should be a finite number"),
    ("actor-lr-zero", "iql.actor_lr", 0, "iql.actor_lr: Input should be greater than 0"),
    ("actor-lr-inf", "iql.actor_lr", float("inf"), "iql.actor_lr: Input should be a finite"),
    ("critic-lr-negative", "iql.critic_lr", -1e-3, "iql.critic_lr: Input should be greater"),
    ("value-lr-nan", "iql.value_lr", float("nan"), "iql.value_lr: Input should be a finite"),
    ("expectile-one", "iql.expectile", 1.0, "iql.expectile: Input should be less than 1"),
    ("expectile-zero", "iql.expectile", 0, "iql.expectile: Input should be greater than 0"),
    ("expectile-text", "iql.expectile", "high", "iql.expectile: Input should be a valid number"),
    ("discount-above", "iql.discount", 1.5, "iql.discount: Input should be less than or equal"),
    ("discount-zero", "iql.discount", 0, "iql.discount: Input should be greater than 0"),
    ("polyak-zero", "iql.polyak", 0, "iql.polyak: Input should be greater than 0"),
    ("polyak-above", "iql.polyak", 2, "iql.polyak: Input should be less than or equal to 1"),
    ("awr-inf", "iql.max_awr_weight", float("inf"), "iql.max_awr_weight: Input should be a fin"),
    ("awr-zero", "iql.max_awr_weight", 0, "iql.max_awr_weight: Input should be greater than 0"),
    ("hidden-empty", "iql.hidden_dims", [], "iql.hidden_dims: Tuple should have at least 1"),
    ("hidden-zero", "iql.hidden_dims", [0, 256], "iql.hidden_dims: every hidden"),
    ("hidden-text", "iql.hidden_dims", "256", "iql.hidden_dims: Input should be a valid tuple"),
    ("batch-zero", "iql.batch_size", 0, "iql.batch_size: Input should be greater than or equal"),
    ("batch-text", "iql.batch_size", "big", "iql.batch_size: Input should be a valid integer"),
    ("batch-huge", "iql.batch_size", 10**7, "iql.batch_size: 10000000 exceeds the 30000"),
    ("dropout-one", "iql.actor_dropout", 1.0, "iql.actor_dropout: Input should be less than 1"),
    ("dropout-negative", "iql.actor_dropout", -0.1, "iql.actor_dropout: Input should be greate"),
    ("log-std-order", "iql.log_std_min", 3.0, "iql: log_std_min (3.0) must be below log_std_max"),
    ("log-std-nan", "iql.log_std_min", float("nan"), "iql.log_std_min: Input should be a finite"),
    ("reward-norm", "iql.reward_norm", "zscore", "iql.reward_norm: Input should be 'none'"),
    ("reward-shift-nan", "iql.reward_shift", float("nan"), "iql.reward_shift: Input should be"),
    ("action-clip-zero", "iql.action_clip", 0, "iql.action_clip: Input should be greater"),
    ("action-clip-above", "iql.action_clip", 1.5, "iql.action_clip: Input should be less than"),
    ("max-steps", "iql.max_steps", 10, "iql.max_steps: set by training.steps"),
    ("cosine-text", "iql.cosine_actor_schedule", "maybe", "iql.cosine_actor_schedule: Input sh"),
    # search: grid
    ("search-missing", "search", DELETE, "search: required key is missing"),
    ("search-both", "search.optuna", OPTUNA, "search: give exactly one of 'grid' or 'optuna'"),
    ("search-neither", "search", {}, "search: give exactly one of 'grid' or 'optuna'"),
    ("grid-empty", "search.grid", {}, "search.grid: give at least one dimension"),
    ("grid-dim-empty", "search.grid.expectile", [], "search.grid.expectile: empty list"),
    ("grid-out-of-range", "search.grid.expectile", [0.5, 1.2], "search.grid.expectile[1]: Inp"),
    ("grid-repeated", "search.grid.expectile", [0.5, 0.5], "search.grid.expectile: repeated"),
    ("grid-same-number", "search.grid.beta", [3, 3.0], "search.grid.beta: 3 and 3.0 are the same"),
    ("grid-same-text", "search.grid.expectile", [0.7, "0.7"], "expectile: 0.7 and '0.7' are"),
    ("grid-bool-number", "search.grid.beta", [True], "search.grid.beta[0]: a number is needed"),
    ("grid-nan", "search.grid.beta", [float("nan")], "search.grid.beta[0]: Input should be a fi"),
    ("grid-seed-negative", "search.grid.seed", [0, -2], "search.grid.seed[1]: seeds are integ"),
    ("grid-seed-float", "search.grid.seed", [0.5], "search.grid.seed[0]: seeds are integers"),
    ("grid-seed-bool", "search.grid.seed", [True], "search.grid.seed[0]: seeds are integers"),
    ("grid-seed-huge", "search.grid.seed", [2**35], "search.grid.seed[0]: seeds are integers"),
    ("grid-unknown", "search.grid.temperature", [1.0], "search.grid.temperature: unknown hyper"),
    ("grid-max-steps", "search.grid.max_steps", [10], "search.grid.max_steps: max_steps is set"),
    ("grid-not-list", "search.grid.expectile", "0.7", "search.grid.expectile: Input should be"),
    # search: optuna
    (
        "optuna-no-samples",
        "search",
        {"optuna": {**OPTUNA, "num_samples": 0}},
        "search.optuna.num_samples: Input should be greater than or equal to 1",
    ),
    (
        "optuna-no-params",
        "search",
        {"optuna": {"num_samples": 2, "params": {}}},
        "search.optuna.params: Dictionary should have at least 1 item",
    ),
    (
        "optuna-low-high",
        "search",
        optuna(expectile={"type": "uniform", "low": 0.9, "high": 0.5}),
        "search.optuna.params.expectile: 'low' (0.9) must be below",
    ),
    (
        "optuna-log-zero",
        "search",
        optuna(beta={"type": "loguniform", "low": 0.0, "high": 3.0}),
        "search.optuna.params.beta: a 'loguniform' distribution needs",
    ),
    (
        "optuna-int-floats",
        "search",
        optuna(batch_size={"type": "int", "low": 16.5, "high": 64}),
        "search.optuna.params.batch_size: an 'int' distribution needs whole-number bounds",
    ),
    (
        "optuna-int-bool",
        "search",
        optuna(cosine_actor_schedule={"type": "int", "low": 0, "high": 1}),
        "search.optuna.params.cosine_actor_schedule: an 'int' distribution draws integers",
    ),
    (
        "optuna-float-int",
        "search",
        optuna(batch_size={"type": "uniform", "low": 16, "high": 64}),
        "search.optuna.params.batch_size: a 'uniform' distribution draws floats",
    ),
    (
        "optuna-choice-empty",
        "search",
        optuna(beta={"type": "choice", "values": []}),
        "search.optuna.params.beta: a 'choice' distribution needs",
    ),
    (
        "optuna-seed-negative",
        "search",
        {"optuna": {**OPTUNA, "seed": -1}},
        "search.optuna.seed: Input should be greater than or equal to 0",
    ),
    (
        "optuna-type",
        "search",
        optuna(beta={"type": "normal", "low": 1, "high": 2}),
        "search.optuna.params.beta.type: Input should be",
    ),
    (
        "optuna-max-steps",
        "search",
        optuna(max_steps={"type": "int", "low": 1, "high": 9}),
        "search.optuna.params.max_steps: not a searchable hyper-parameter",
    ),
    (
        "optuna-out-of-range",
        "search",
        optuna(expectile={"type": "uniform", "low": 0.5, "high": 1.5}),
        "search.optuna.params.expectile: Input should be less than 1 (got 1.5)",
    ),
    # search: scheduler
    (
        "asha-grace-zero",
        "search.scheduler",
        {"grace_period": 0},
        "search.scheduler.grace_period: Input should be greater than or equal to 1",
    ),
    (
        "asha-grace-long",
        "search.scheduler",
        {"grace_period": 5},
        "search.scheduler.grace_period: 5 evaluations exceed the 2 a trial makes",
    ),
    (
        "asha-factor",
        "search.scheduler",
        {"reduction_factor": 1},
        "search.scheduler.reduction_factor: Input should be greater than 1",
    ),
    ("asha-type", "search.scheduler", {"type": "hyperband"}, "search.scheduler.type: Input sh"),
    # training
    ("training-missing", "training", DELETE, "training: required key is missing"),
    ("steps-zero", "training.steps", 0, "training.steps: Input should be greater than or equal"),
    ("steps-text", "training.steps", "many", "training.steps: Input should be a valid integer"),
    ("episodes-bool", "training.eval_episodes", True, "training.eval_episodes: a number is"),
    ("beta-bool", "iql.beta", True, "iql.beta: a number is needed here, not true or false"),
    ("eval-after-end", "training.eval_every", 120, "training.eval_every: 120 exceeds training"),
    ("eval-zero", "training.eval_every", 0, "training.eval_every: Input should be greater"),
    ("episodes-zero", "training.eval_episodes", 0, "training.eval_episodes: Input should be"),
    ("checkpoint-multiple", "training.checkpoint_every", 40, "training.checkpoint_every: must"),
    ("online-negative", "training.online_steps", -1, "training.online_steps: Input should be"),
    ("updates-per-env-zero", "training.updates_per_env_step", 0, "training.updates_per_env_st"),
    ("compile-text", "training.compile", "yes please", "training.compile: use auto, true or false"),
    ("compile-number", "training.compile", 1, "training.compile: use auto, true or false"),
    (
        "matmul-precision",
        "training.matmul_precision",
        "medium",
        "matmul_precision: Input should be",
    ),
    ("training-unknown", "training.stepz", 10, "training.stepz: unknown key"),
    # resources
    ("cpus-zero", "resources.cpus_per_trial", 0, "resources.cpus_per_trial: Input should be g"),
    ("cpus-inf", "resources.cpus_per_trial", float("inf"), "resources.cpus_per_trial: Input sh"),
    ("gpus-negative", "resources.gpus_per_trial", -1, "resources.gpus_per_trial: a number >= 0"),
    ("concurrency-zero", "resources.max_concurrent_trials", 0, "resources.max_concurrent_tria"),
    ("failures-negative", "resources.max_failures", -1, "resources.max_failures: Input should"),
    ("pack-zero", "resources.pack", 0, "resources.pack: must be a positive integer or 'auto'"),
    ("pack-true", "resources.pack", True, "resources.pack: a positive integer or"),
    ("pack-text", "resources.pack", "many", "resources.pack: a positive integer"),
    ("share-text", "resources.share_critics", "sometimes", "resources.share_critics: Input sh"),
    # wandb
    ("wandb-mode", "wandb.mode", "cloud", "wandb.mode: Input should be 'online', 'offline'"),
    ("wandb-project-slash", "wandb.project", "a/b", "wandb.project: W&B refuses"),
    ("wandb-project-empty", "wandb.project", "", "wandb.project: String should have at least"),
    ("wandb-project-long", "wandb.project", "p" * 200, "wandb.project: String should have at"),
    ("wandb-entity-hash", "wandb.entity", "a#b", "wandb.entity: W&B refuses"),
    ("wandb-tags-text", "wandb.tags", "x", "wandb.tags: Input should be a valid list"),
]


def refusal(args: list[str]) -> str:
    """Run the CLI in-process; it must refuse with exit code 2 and no traceback."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize(("case", "path", "value", "expected"), CASES, ids=[c[0] for c in CASES])
def test_an_invalid_spec_is_refused_naming_its_yaml_path(
    base, tmp_path, case, path, value, expected
):
    spec = mutate(base, path, value)
    if case == "optuna-no-samples" or case.startswith("optuna-") or case == "search-both":
        spec.pop("resources", None)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    output = refusal(["validate", str(tmp_path / "spec.yaml")])
    assert expected in output, output


def _path_cases(tmp_path: Path) -> list[tuple[str, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root ignores permissions; the immutable flag binds root too
        subprocess.run(["chattr", "+i", str(locked)], check=True)
    else:
        locked.chmod(0o500)
    return [
        (str(a_file), f"output: {a_file} is a file; give a folder"),
        (str(a_file / "deeper"), f"lies under the file {a_file}"),
        (str(locked), f"output: cannot write in {locked}"),
        # a folder that looks writable but cannot hold folders (root passes access() there)
        ("/proc/iql-sweep-results", "output: cannot create folders in /proc"),
    ]


def test_output_paths_are_checked_before_anything_starts(base, tmp_path):
    try:
        for output, expected in _path_cases(tmp_path):
            (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**base, "output": output}))
            assert expected in refusal(["validate", str(tmp_path / "spec.yaml")])
        experiment_file = tmp_path / "out" / "bad"
        experiment_file.parent.mkdir()
        experiment_file.write_text("not a folder")
        (tmp_path / "spec.yaml").write_text(
            yaml.safe_dump({**base, "output": str(tmp_path / "out")})
        )
        assert f"output: {experiment_file} is a file" in refusal(
            ["validate", str(tmp_path / "spec.yaml")]
        )
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(tmp_path / "locked")], check=False)


def test_damaged_datasets_are_found_by_validate(base, damaged, tmp_path):
    for kind, expected in (
        ("nan", "field 'rewards' holds 1 non-finite"),
        ("truncated", "damaged or inconsistent with metadata.json"),
    ):
        spec = {**base, "datasets": [damaged[kind]]}
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
        output = refusal(["validate", str(tmp_path / "spec.yaml")])
        assert "datasets[0]:" in output and expected in output, output


HOSTILE = {
    "duplicate-key": ("name: a\nname: b\n", "SPEC: key 'name' appears twice (lines 1 and 2)"),
    "not-a-mapping": ("- a\n- b\n", "(top level): a sweep spec is a YAML mapping"),
    "empty": ("", "(top level): a sweep spec is a YAML mapping"),
    "syntax": ("name: [a, b\n", "is not valid YAML at line 2"),
    "alias-bomb": (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{k}: &{k} [{', '.join(['*' + p] * 10)}]\n" for p, k in zip("abcdefgh", "bcdefghi")
        ),
        "SPEC: its YAML aliases expand to more than 50,000 values",
    ),
    "deep": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "SPEC: nested deeper than 32 levels"),
    "recursive": ("a: &a [1, *a]\n", "refers to a value that contains it"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_refused_with_one_line(tmp_path, case):
    text, expected = HOSTILE[case]
    (tmp_path / "spec.yaml").write_text(text)
    assert expected in refusal(["validate", str(tmp_path / "spec.yaml")])


def test_unreadable_files_are_refused_with_one_line(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x00\x01\x02 name: x")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n" + "# padding\n" * 300_000)
    for path, expected in (
        (binary, "is a binary file, not a YAML spec"),
        (latin, "is not UTF-8 text (byte 0xe9 at offset 9)"),
        (big, "a sweep spec is a small YAML file (at most 1 MiB)"),
        (tmp_path, "is a folder; give the spec's YAML file"),
        (tmp_path / "missing.yaml", "SPEC: no such file"),
    ):
        assert expected in refusal(["validate", str(path)]), path


# The child limits its own CPU time and reports its own peak memory (VmHWM of its address
# space: ru_maxrss would carry over the forking test process's peak through exec).
LIMITED = """
import atexit, resource, runpy, sys
resource.setrlimit(resource.RLIMIT_CPU, (60, 60))
def peak():
    line = next(x for x in open("/proc/self/status") if x.startswith("VmHWM"))
    print("PEAK_KB", line.split()[1], file=sys.stderr)
atexit.register(peak)
sys.argv = ["iql-sweep", *sys.argv[1:]]
runpy.run_module("iql_sweep.cli", run_name="__main__")
"""


def _measured(args: list[str]) -> tuple[int, str, float, float]:
    """Run the CLI in a child process under a CPU-time limit: its exit code, output, CPU seconds
    (the kernel's accounting) and peak resident memory in MiB (the child's own)."""
    child = subprocess.Popen(
        [sys.executable, "-c", LIMITED, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    peak = int(output.rsplit("PEAK_KB", 1)[1].split()[0]) / 1024
    return os.waitstatus_to_exitcode(status), output, usage.ru_utime + usage.ru_stime, peak


def test_hostile_files_cost_no_more_than_a_valid_spec(base, tmp_path):
    """The alias bomb, 100,000-deep nesting and a 10 MB file are answered like a valid spec:
    under 200 MB of memory and within the CPU time a valid spec's check takes (plus start-up
    noise), measured by the kernel for each child process."""
    (tmp_path / "valid.yaml").write_text(yaml.safe_dump({**base, "output": str(tmp_path)}))
    code, output, valid_cpu, valid_mib = _measured(["validate", str(tmp_path / "valid.yaml")])
    assert code == 0, output
    hostile = {
        "bomb.yaml": HOSTILE["alias-bomb"][0],
        "deep.yaml": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "huge.yaml": "name: x\n" + "k: v\n" * 2_000_000,
    }
    for name, text in hostile.items():
        (tmp_path / name).write_text(text)
        code, output, cpu, mib = _measured(["validate", str(tmp_path / name)])
        assert code == 2 and "Traceback" not in output, output
        assert mib < 200, (name, mib)
        assert cpu < max(2 * valid_cpu, valid_cpu + 2.0), (name, cpu, valid_cpu)


def test_no_traceback_reaches_the_console(umaze_id, tmp_path, capsys):
    """Misuse of the other commands through the console's entry point (``cli.main``: one line,
    exit 2): the first in a real child process, the others in this one."""
    from iql_sweep.cli import main

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (["figure", "expectiles", "--out", str(tmp_path)], "--out: give a .png file name"),
        (["train", "--dataset", umaze_id, "--out", str(a_file), "--steps", "10"], "--out:"),
        (["train", "--dataset", "../outside/x-v0"], "is not a Minari dataset id"),
        (["resume", str(tmp_path)], "holds no sweep"),
        (["report", str(tmp_path / "nowhere")], "EXPERIMENT_DIR: no such folder"),
        (["sync", str(tmp_path)], "holds no W&B runs"),
        (["dashboard", str(tmp_path)], "holds no sweep"),
    ]
    (args, expected), *others = cases
    child = subprocess.run(
        [sys.executable, "-m", "iql_sweep.cli", *args], capture_output=True, text=True, timeout=120
    )
    text = " ".join((child.stdout + child.stderr).split())
    assert child.returncode == 2 and "Traceback" not in text and expected in text, text
    for args, expected in others:
        with pytest.raises(SystemExit) as exited:
            main(args)
        said = capsys.readouterr()
        text = " ".join((said.out + said.err).split())
        assert exited.value.code == 2 and "Traceback" not in text, (args, text)
        assert expected in text, (args, text)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_mutated_yaml_bytes_give_a_spec_or_a_clean_refusal(base, tmp_path_factory, data):
    text = yaml.safe_dump(base).encode()
    edits = data.draw(
        st.lists(st.tuples(st.integers(0, len(text) - 1), st.binary(max_size=3)), max_size=4)
    )
    for at, new in edits:
        text = text[:at] + new + text[at + 1 :]
    path = tmp_path_factory.mktemp("mut") / "spec.yaml"
    path.write_bytes(text)
    with contextlib.suppress(ConfigError):  # a spec, or a clean refusal: nothing else
        load_spec(path, check_datasets=False)


def test_an_address_where_nothing_listens_is_refused_within_seconds(base, tmp_path):
    """Ray would retry a dead address for about a minute; the driver asks first."""
    import time

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**base, "output": str(tmp_path)}))
    started = time.monotonic()
    output = refusal(["run", str(tmp_path / "spec.yaml"), "--address", "127.0.0.1:9"])
    assert "--address: nothing answers at 127.0.0.1:9 (Connection refused)" in output
    assert time.monotonic() - started < 15
    assert not (tmp_path / base["name"]).exists()  # no work started
    output = refusal(["run", str(tmp_path / "spec.yaml"), "--address", "head-node"])
    assert "--address: use 'auto' or HOST:PORT (got 'head-node')" in output


def test_validate_offline_checks_all_but_the_remote_datasets(base, tmp_path):
    """Without internet a spec naming remote datasets is refused by plain validate (the remote
    cannot be asked) and accepted by validate --offline, which says what it did not check;
    every other check still runs."""
    spec = {**base, "datasets": [*base["datasets"], "D4RL/antmaze/umaze-v1"]}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert "cannot be reached" in refusal(["validate", str(tmp_path / "spec.yaml")])
    result = runner.invoke(app, ["validate", str(tmp_path / "spec.yaml"), "--offline"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "not checked (--offline): D4RL/antmaze/umaze-v1" in text and "valid" in text
    broken = {**spec, "iql": {**spec["iql"], "expectile": 1.5}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(broken))
    assert "iql.expectile" in refusal(["validate", str(tmp_path / "spec.yaml"), "--offline"])


def test_train_refuses_what_a_spec_refuses(umaze_id, tmp_path):
    """`train` validates its run as a spec's trials are: a negative seed, or a batch larger
    than the dataset, is refused before any training (both used to train)."""
    common = ["train", "--dataset", umaze_id, "--steps", "10", "--out", str(tmp_path / "r")]
    assert "--seed: must be at least 0 (got -1)" in refusal([*common, "--seed", "-1"])
    output = refusal([*common, "--batch-size", "100000"])
    assert "--batch-size: 100000 exceeds the 30000 transitions of" in output
    assert not (tmp_path / "r").exists()
