"""Processes by their pid files: a controller an earlier ovsvx started is still known, and stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ovsvx.host import processes
from ovsvx.ovs import daemons


def test_a_controller_started_before_the_packages_is_still_ovsvxs_and_stops(tmp_path: Path) -> None:
    """An upgraded host may still run `python -m ovsvx.controller` (the flat layout's module): deploy
    must know its pid file, or it would find the controller's socket taken and refuse."""
    old = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "ovsvx.controller"])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "something.else"])
    try:
        pidfile, other = tmp_path / "controller.pid", tmp_path / "other.pid"
        pidfile.write_text(f"{old.pid}\n")
        other.write_text(f"{stranger.pid}\n")
        assert processes.running_pid(pidfile, daemons.CONTROLLER_PIDS) == old.pid
        assert processes.running_pid(other, daemons.CONTROLLER_PIDS) is None  # a reused pid is not ours
        assert processes.stop_pid(pidfile, daemons.CONTROLLER_PIDS)
        assert old.wait(timeout=10) is not None and not pidfile.exists()
    finally:
        for process in (old, stranger):
            process.kill()
            process.wait()
