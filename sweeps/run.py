"""Entry script for the cluster launcher: ``ray submit`` uploads one Python file and runs it on the
head, so a YAML spec cannot be its script. This file takes the spec instead:

    ray submit cluster/gpu.yaml sweeps/run.py -- sweeps/tau_ablation.yaml \
        --output /mnt/shared/results

It runs ``iql-sweep run SPEC --address auto [options]`` on the head; a relative SPEC is looked up
in the working directory, then in the project synced by the cluster's ``file_mounts``
(``~/iql-sweep``, or ``$IQL_SWEEP_PROJECT``). Arguments after ``--`` are passed on unquoted by
``ray submit``: avoid spaces in paths.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        sys.exit("usage: run.py SPEC [iql-sweep run options, e.g. --output /mnt/shared/results]")
    project = Path(os.environ.get("IQL_SWEEP_PROJECT", "~/iql-sweep")).expanduser()
    spec = Path(argv[0])
    if not spec.exists() and (project / spec).exists():
        spec = project / spec
    args = ["run", str(spec), *argv[1:]]
    if "--address" not in args:
        args += ["--address", "auto"]
    from iql_sweep.cli import app

    app(args, prog_name="iql-sweep")


if __name__ == "__main__":
    main(sys.argv[1:])
