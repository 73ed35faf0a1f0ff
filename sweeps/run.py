"""Entry script for the cluster launcher, the long form of ``ray submit CLUSTER SPEC.yaml``:

    ray submit cluster/gpu.yaml sweeps/run.py -- sweeps/tau_ablation.yaml --smoke

It runs ``iql-sweep run SPEC --address auto`` on the head with the results on the cluster's shared
storage (``iql_sweep/submit.py``). Arguments after ``--`` are passed on unquoted by ``ray
submit``: avoid spaces in paths.
"""

from __future__ import annotations

import sys

from iql_sweep.submit import main

if __name__ == "__main__":
    main(sys.argv[1:])
