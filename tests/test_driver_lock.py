"""One driver per experiment folder: a live driver's lock refuses a second one; a dead
driver's lock (same host) is taken over; the lock goes when its driver finishes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from iql_sweep.driver_lock import LOCK, driver_lock
from iql_sweep.errors import ConfigError


def _lock_file(folder, pid: int, host: str | None = None) -> None:
    (folder / LOCK).write_text(
        json.dumps(
            {
                "pid": pid,
                "host": host or socket.gethostname(),
                "since": "earlier",
                "command": "iql-sweep run",
            }
        )
    )


def test_a_live_driver_refuses_a_second_one(tmp_path):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_file(tmp_path, alive.pid)
        with (
            pytest.raises(ConfigError, match=f"pid {alive.pid} .* is driving"),
            driver_lock(tmp_path),
        ):
            pass
    finally:
        alive.kill()
        alive.wait()
    # its process is gone now: the stale lock is taken over, and released at the end
    with driver_lock(tmp_path):
        held = json.loads((tmp_path / LOCK).read_text())
        assert held["pid"] != alive.pid
    assert not (tmp_path / LOCK).exists()


def test_another_hosts_lock_is_refused_with_how_to_clear_it(tmp_path):
    _lock_file(tmp_path, 1, host="elsewhere")
    with (
        pytest.raises(ConfigError, match=r"if it is gone, remove .*\.driver\.lock"),
        driver_lock(tmp_path),
    ):
        pass
    (tmp_path / LOCK).write_text("{damaged")
    with driver_lock(tmp_path):  # an unreadable lock is no one's
        assert (tmp_path / LOCK).is_file()
