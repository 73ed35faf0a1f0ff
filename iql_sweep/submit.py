"""``ray submit CLUSTER.yaml SPEC.yaml [-- ARGS]`` on the head: the sweep of SPEC on the cluster.

``ray submit`` uploads its file argument to ``~/`` and runs ``python ~/FILE ARGS`` on the head;
``cluster/submit.bash`` (sourced by the head's ``~/.bashrc``) sends a YAML file here. This starts
``iql-sweep run SPEC --address auto`` with the results on the cluster's shared storage
(``--output``, else ``$IQL_SWEEP_OUTPUT``), says where they are before and after, and passes the
other arguments on (e.g. ``--smoke``). ``sweeps/run.py`` (``ray submit CLUSTER sweeps/run.py --
SPEC ...``) comes here too. A relative SPEC is looked up in the working directory, then in the
project the cluster syncs (``$IQL_SWEEP_PROJECT``, default ``~/iql-sweep``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

USAGE = "usage: python -m iql_sweep.submit SPEC.yaml [iql-sweep run options, e.g. --smoke]"


def run_args(argv: list[str]) -> list[str]:
    """The ``iql-sweep`` arguments for ``argv`` = SPEC [options]."""
    if not argv or argv[0].startswith("-"):
        raise SystemExit(USAGE)
    project = Path(os.environ.get("IQL_SWEEP_PROJECT", "~/iql-sweep")).expanduser()
    spec = Path(argv[0]).expanduser()
    if not spec.exists() and (project / spec).exists():
        spec = project / spec
    args = ["run", str(spec), *argv[1:]]
    if "--address" not in args:
        args += ["--address", "auto"]
    shared = os.environ.get("IQL_SWEEP_OUTPUT")
    if "--output" not in args and shared:
        args += ["--output", shared]
    return args


def _experiment(args: list[str]) -> Path | None:
    """Where the results will be (None when the spec is invalid: ``run`` then says why)."""
    from iql_sweep.errors import IQLSweepError
    from iql_sweep.sweep import load_spec_for_run

    output = args[args.index("--output") + 1] if "--output" in args else None
    try:
        spec = load_spec_for_run(Path(args[1]), "--smoke" in args, output)
    except (IQLSweepError, OSError):
        return None
    return spec.experiment_dir().resolve()


def main(argv: list[str]) -> None:
    from iql_sweep.cli import main as cli_main

    args = run_args(argv)
    where = _experiment(args)
    if where is not None:
        print(f"iql-sweep: results go to {where} on the head", flush=True)
    try:
        cli_main(args)
    finally:
        if where is not None and where.is_dir():
            print(
                f"iql-sweep: results in {where}; fetch them with: "
                f"ray rsync-down CLUSTER.yaml {where} ./results/",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
