"""Processes by their pid files: a controller an earlier ovsvx started is still known, and stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ovsvx.host import processes
from ovsvx.ovs import daemons


def test_a_pid_file_names_the_controller_only_while_its_process_runs_the_controller(tmp_path: Path) -> None:
    """A controller's pid file is believed only when that pid runs the controller's module: a pid the
    kernel gave to another process since is not stopped."""
    old = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", daemons.CONTROLLER_MODULE])
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
