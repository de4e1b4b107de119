"""The processes ovsvx runs for a host, mode-blind: its folder, and each daemon by its own pidfile.

Processes are only ever touched by the pid in their own pidfile, and only
when /proc confirms the pid is still the program that wrote it.  OVS's daemons,
the controller, FRR's and charon all go through here.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from ovsvx import waits
from ovsvx.host.record import Deployment
from ovsvx.model.site import Site

STOP_WAIT_S = 5.0  # after SIGTERM, before SIGKILL


def site_dir(deployment: Deployment, site: Site) -> Path:
    """ovsvx's own folder for one host of a deployment (controller pid and log, a lab host's OVS)."""
    return deployment.folder / site.host.name


def running_pid(pidfile: Path, marker: str | tuple[str, ...]) -> int | None:
    """The pid in `pidfile` if that process is alive and its command line still contains `marker` (or
    one of them)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return None
    markers = (marker,) if isinstance(marker, str) else marker
    return (
        pid if any(m in cmdline for m in markers) else None
    )  # a zombie's or a reused pid's command line does not match


def rss_mib(pid: int) -> float | None:
    """The resident memory of a process in MiB (VmRSS), or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return None if found is None else int(found) / 1024


def stop_pid(pidfile: Path, marker: str | tuple[str, ...]) -> bool:
    """SIGTERM the process of `pidfile` (SIGKILL after STOP_WAIT_S); True if there was one."""
    pid = running_pid(pidfile, marker)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    if not waits.until(lambda: running_pid(pidfile, marker) != pid, STOP_WAIT_S):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def serving(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket `path`."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True
