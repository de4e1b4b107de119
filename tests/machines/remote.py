"""Run commands on host2 from host1, through the control folder that `scripts/vm/machines` shares.

A request is a shell script dropped as rpc/N.sh; host2 runs it and leaves N.out and N.rc.  host2's
server comes back after a reboot, and a request cut short by one ends with status 255.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from ovsvx import waits
from tests.conftest import REPO

CTL = Path(os.environ.get("OVSVX_MACHINES_CTL", "/ctl"))
RPC = CTL / "rpc"
REQUEST_S = 120.0  # a request's default limit (scaled): an enable under emulation takes ~30 s


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str


def submit(script: str) -> str:
    """Hand host2 a script to run (in this checkout, with this run's wait scale); its request id."""
    request = f"{time.time_ns()}"
    prologue = f"export OVSVX_WAIT_SCALE={shlex.quote(str(waits.scale()))} CI={shlex.quote(os.environ.get('CI', ''))}\n"
    (RPC / f"{request}.cwd").write_text(str(REPO))
    tmp = RPC / f"{request}.tmp"
    tmp.write_text(prologue + script + "\n")
    tmp.rename(RPC / f"{request}.sh")
    return request


def result(request: str, seconds: float = REQUEST_S) -> Done:
    rc = RPC / f"{request}.rc"
    if not waits.until(rc.exists, seconds, interval=0.2):
        raise AssertionError(f"host2 did not finish request {request} within {waits.scaled(seconds):.0f} s")
    return Done(int(rc.read_text()), (RPC / f"{request}.out").read_text())


def on_host2(script: str, seconds: float = REQUEST_S) -> Done:
    return result(submit(script), seconds)


def boots() -> int:
    """How many times host2 has booted in this run."""
    try:
        return int((CTL / "host2-boots").read_text())
    except (OSError, ValueError):
        return 0


def probe(namespace: str, address: str) -> None:
    """At its next boots, host2 times how long `namespace` takes to get an answer from `address`."""
    (CTL / "probe").write_text(f"{namespace} {address}\n")
