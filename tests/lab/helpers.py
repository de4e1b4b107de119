"""What several lab tests do to a lab: run ovsvx inside a host, verify, ping across, find processes.

Shared here so that test modules never import each other.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from ovsvx import waits
from tests.conftest import Runner, run_ovsvx, start_ovsvx


def processes_of(prefix: str) -> list[str]:
    """Command lines of every process that belongs to the lab (its OVS daemons, its controller)."""
    marks = (f"lab-{prefix}/", f"--prefix {prefix}")
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if entry.name.isdigit() and any(m in cmdline for m in marks):
            found.append(f"{entry.name}: {cmdline}")
    return found


def status(prefix: str) -> dict[str, Any]:
    return json.loads(run_ovsvx("status", "--prefix", prefix, "--json", check=False).stdout)


def pid_of(prefix: str, host: str, what: str) -> int:
    detail = status(prefix)["hosts"][host]["details"][what]
    found = re.match(r"pid (\d+)", detail)
    assert found, f"{what} on {host} is not running: {detail}"
    return int(found.group(1))


def in_host(prefix: str, host: str, *argv: str) -> str:
    return run_ovsvx("exec", "--prefix", prefix, host, "--", *argv).stdout


def start_ping(prefix: str, count: int = 40) -> subprocess.Popen[str]:
    pinging = ("ping", "-n", "-c", str(count), "-i", "0.1", "-W", "1", "192.168.2.100")
    return start_ovsvx("exec", "--prefix", prefix, "ns1", "--", *pinging, stderr=subprocess.STDOUT)


def ping_result(ping: subprocess.Popen[str]) -> tuple[int, int, int]:
    """(transmitted, received, duplicates) of a finished ping."""
    text, _ = ping.communicate(timeout=waits.scaled(30))
    sent, got = re.search(r"(\d+) packets transmitted, (\d+) received", text).groups()
    return int(sent), int(got), text.count("(DUP!)")


def verify(ovsvx: Runner, prefix: str) -> dict[str, Any]:
    done = ovsvx("verify", "--prefix", prefix, "--json", check=False)
    report = json.loads(done.stdout)
    assert (done.returncode == 0) == report["ok"]
    return report


def failed(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in report["checks"] if not c["ok"]]
