#!/usr/bin/env bash
# Set-up on a fresh machine: a virtual environment in .venv with torch and the project.
#   scripts/setup.sh          # the package and its dependencies
#   scripts/setup.sh --dev    # plus pytest, ruff, hypothesis, check-jsonschema, scipy, selenium,
#                             # import-linter, ogbench (the iql-sweep[ogbench] extra),
#                             # and the system packages the tests need: openssh-server, rsync,
#                             # netcat-openbsd (the cluster launcher), chromium and
#                             # chromium-driver (the report page); installed with apt-get as root
# torch is installed first at the version pinned here (2.13.0: on CPU-only machines of this
# project a local CPU wheel); the package itself only asks for a range.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_PIN="${IQL_SWEEP_TORCH:-torch==2.13.0}"
target="."
if [[ "${1:-}" == "--dev" ]]; then
  target=".[dev]"
  need=()
  [[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
  command -v rsync >/dev/null || need+=(rsync)
  command -v nc >/dev/null || need+=(netcat-openbsd)
  [[ -x /usr/bin/chromium ]] || need+=(chromium)
  [[ -x /usr/bin/chromedriver ]] || need+=(chromium-driver)
  if (( ${#need[@]} )); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
      echo "note: the tests need ${need[*]} (install them as root)" >&2
    fi
  fi
fi
if [[ ! -x .venv/bin/python ]]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
# Byte-compiled once, on every core, after both installs (pip compiles file by file).
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --no-compile "$TORCH_PIN"
fi
.venv/bin/python -m pip install --quiet --no-compile -e "$target"
# A file that does not compile (test data inside some packages) is left as it is.
.venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages >/dev/null || true
echo "set-up done: $(.venv/bin/python -c 'import torch, ray, minari; print(f"torch {torch.__version__}, ray {ray.__version__}, minari {minari.__version__}")')"
