"""Files the topology names for a secret (`bgp.password_file`, `[ipsec]`'s keys) and their neighbours.

Such a file is opened once, through no link (O_NOFOLLOW), and judged by what was opened (fstat), so
nothing can swap it between the check and the read; it serves a secret only when root alone may read
or change it.  Callers word their own refusals, naming their own field.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ovsvx.errors import PreconditionError
from ovsvx.model.topology import Topology


@dataclass(frozen=True)
class Opened:
    """What was opened: its content (none unless a plain file), owner and permission bits."""

    data: bytes = field(repr=False)
    uid: int
    mode: int
    regular: bool

    @property
    def roots_alone(self) -> bool:
        """Root's, and closed to everyone else: fit to hold a secret."""
        return self.uid == 0 and not self.mode & 0o077


def open_file(path: Path) -> Opened:
    """Open and read `path` without following a link (OSError as the kernel says: ELOOP for a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO planted there cannot hang us
    try:
        found = os.fstat(fd)
        regular = stat.S_ISREG(found.st_mode)
        data = b""
        if regular:  # a folder opens too, but is not read
            with open(fd, "rb", closefd=False) as file:
                data = file.read()
    finally:
        os.close(fd)
    return Opened(data, found.st_uid, stat.S_IMODE(found.st_mode), regular)


PASSWORD_MAX = 80  # TCP MD5's key length (TCP_MD5SIG_MAXKEYLEN)
_PASSWORD_RE = re.compile(rf"[!-~]{{1,{PASSWORD_MAX}}}")  # printable ASCII, no spaces: a word in FRR's syntax


def bgp_password(topology: Topology) -> str | None:
    """The BGP sessions' TCP MD5 password, from the topology's root-only `bgp.password_file`; None when it
    names none.  The file is refused unless it is root's alone (another user could read or set it), and
    its content is never shown: not in an error, `plan`, `status` or a log."""
    path = topology.bgp.password_file if topology.bgp is not None else None
    if path is None:
        return None
    try:
        opened = open_file(path)
    except OSError as err:
        raise PreconditionError(f"bgp.password_file {path}: cannot be read ({err.strerror})") from None
    if not opened.regular or not opened.roots_alone:
        raise PreconditionError(
            f"bgp.password_file {path}: must be a file of root's that no one else may read or write"
            f" (chown root {path}; chmod 600 {path})"
        )
    text = opened.data.decode(errors="replace").rstrip("\n")
    if not _PASSWORD_RE.fullmatch(text):
        raise PreconditionError(
            f"bgp.password_file {path}: the password must be 1..{PASSWORD_MAX} printable ASCII characters,"
            " no spaces, on one line"
        )
    return text
