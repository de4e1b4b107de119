"""Files the topology names for a secret (`bgp.password_file`, `[ipsec]`'s keys) and their neighbours.

Such a file is opened once, through no link (O_NOFOLLOW), and judged by what was opened (fstat), so
nothing can swap it between the check and the read; it serves a secret only when root alone may read
or change it.  Callers word their own refusals, naming their own field.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path


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
