"""The layers the README states, enforced: import-linter's contracts in pyproject.toml (cli >
paper > report > sweep > run > (iql | data) > shared basics; iql/ needs torch, numpy and
pydantic only). An arrow that runs up, e.g. training importing report.stats, breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_layers_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_an_arrow_that_runs_up_breaks_the_contract(tmp_path):
    """The same contracts on a copy of the package in which the training loop imports the
    report (run > report is an arrow up): import-linter refuses it, naming the import."""
    shutil.copytree(ROOT / "iql_sweep", tmp_path / "iql_sweep")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    loop = tmp_path / "iql_sweep" / "loop.py"
    loop.write_text(loop.read_text() + "\nfrom iql_sweep.report import stats  # noqa: E402\n")
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "Contracts: 1 kept, 1 broken." in result.stdout
    assert "iql_sweep.loop -> iql_sweep.report.stats" in result.stdout
