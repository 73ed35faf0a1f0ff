"""One driver per experiment folder: ``run`` and ``resume`` hold a lock file while they drive a
sweep, so a second driver on the same folder is refused instead of reporting finished trials as
errors and doubling the W&B runs. A crashed driver's lock does not block forever: on the same
host, a lock whose process is gone is taken over."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from iql_sweep.errors import ConfigError

LOCK = ".driver.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def driver_lock(experiment: Path) -> Iterator[None]:
    """Hold ``<experiment>/.driver.lock`` for the duration; refuse when a live driver holds it."""
    path = Path(experiment) / LOCK
    me = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(os.path.basename(a) for a in sys.argv[:2]),
    }
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _holder(path)
            same_host = held is not None and held.get("host") == me["host"]
            if held is None or (same_host and not _alive(int(held.get("pid", -1)))):
                path.unlink(missing_ok=True)  # stale: its driver is gone
                continue
            raise ConfigError(
                f"EXPERIMENT_DIR: another driver ({held.get('command', 'iql-sweep')}, pid "
                f"{held.get('pid')} on {held.get('host')}, since {held.get('since')}) is driving "
                f"{experiment}; wait for it to finish or stop it"
                + ("" if same_host else f" (if it is gone, remove {path})")
            ) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    else:
        raise ConfigError(f"EXPERIMENT_DIR: could not take the lock {path}; try again")
    try:
        yield
    finally:
        if (_holder(path) or {}).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)
