"""One exception family for everything ovsvx reports to a user.

Library code raises these and never exits; only the CLI turns them into a
one-line message and an exit status.  Each message says what is wrong and,
where there is one, what to do next.
"""

import logging
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


class OvsvxError(Exception):
    """Base of every error ovsvx expects and explains; the CLI prints str(err)."""

    exit_code = 1


class TopologyError(OvsvxError):
    """The topology file (or a value given for it) is malformed or inconsistent."""

    exit_code = 2


class UsageError(OvsvxError):
    """A command-line value that is not part of the topology is wrong (unknown node, bad mode)."""

    exit_code = 2


class PreconditionError(OvsvxError):
    """The machine lacks something ovsvx needs: root, a system tool, the VTEP address, a free port."""

    exit_code = 3


class ConflictError(OvsvxError):
    """Something ovsvx would create already exists and was not made by ovsvx."""

    exit_code = 4


class NotDeployedError(OvsvxError):
    """The command needs a deployment (lab or host) and there is none."""

    exit_code = 5


class ApplyError(OvsvxError):
    """The kernel, OVSDB or a daemon refused a change ovsvx asked for."""

    exit_code = 6


def unexpected(err: BaseException) -> OvsvxError:
    """An error ovsvx did not foresee, as one line: its kind, its own words, and the innermost place in
    ovsvx it came through (what a bug report needs; OVSVX_DEBUG=1 shows the whole traceback)."""
    where = ""
    frame = err.__traceback__
    while frame is not None:
        path = Path(frame.tb_frame.f_code.co_filename)
        if path.is_relative_to(PACKAGE):
            where = f" (in {path.relative_to(PACKAGE)}:{frame.tb_lineno}, {frame.tb_frame.f_code.co_name})"
        frame = frame.tb_next
    said = str(err) or repr(err)
    return ApplyError(f"unexpected {type(err).__name__}: {said}{where}")


def quiet_after_interrupt() -> None:
    """Ctrl-C can land inside one of pyroute2's asyncio loops; its half-run coroutines then complain as
    they are collected (asyncio's log, "Exception ignored").  They hold no state of ours: once the
    interrupt is being handled, say nothing of them."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    sys.unraisablehook = lambda _: None
