"""The layers the README states, enforced: import-linter's contracts in pyproject.toml (cli >
paper > report > sweep > run > (iql | data) > shared basics; iql/ needs torch, numpy and
pydantic only). An arrow that runs up, e.g. training importing report.stats, breaks it."""

from __future__ import annotations

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
