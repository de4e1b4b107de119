"""How long ovsvx waits, and the one setting that stretches every wait on a slow machine.

Every wait in ovsvx is readiness polling: it returns the moment the thing is
ready, so the deadline only matters when something is wrong.  Deadlines are
named constants in the module that waits, written for a normal machine and
passed through `scaled`, which multiplies them by OVSVX_WAIT_SCALE (default
1).  An emulated guest, where a controller takes 15 s to start instead of 1,
sets it to 10 or more (scripts/vm/guest does) and nothing else changes: the fast
path is exactly as fast, a stuck one is found as late as it must be.  The
timeouts of external commands are deadlines too and go through the same
function.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import cache

from ovsvx.errors import UsageError

POLL_S = 0.05  # how often a wait looks again: cheap checks, a short gap


@cache
def scale() -> float:
    """OVSVX_WAIT_SCALE, read once; a bad value is a usage error where the first wait asks for it."""
    text = os.environ.get("OVSVX_WAIT_SCALE", "1")
    try:
        scale = float(text)
    except ValueError:
        scale = 0.0
    if not 1 <= scale <= 1000:
        raise UsageError(
            f"OVSVX_WAIT_SCALE={text!r} is not allowed: a number from 1 to 1000 "
            "(how many times longer than normal every deadline is)"
        )
    return scale


def scaled(seconds: float) -> float:
    """A deadline written for a normal machine, stretched for this one."""
    return seconds * scale()


def until(ready: Callable[[], bool], seconds: float, interval: float = POLL_S) -> bool:
    """Poll `ready` until it holds (True) or `seconds` (scaled here) have passed (False).

    Callers turn False into an error that names what did not become ready and
    quote `scaled(seconds)`, the time really waited.
    """
    deadline = time.monotonic() + scaled(seconds)
    while not ready():
        if time.monotonic() > deadline:
            return ready()
        time.sleep(interval)
    return True
