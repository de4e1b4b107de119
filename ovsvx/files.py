"""Files ovsvx writes whole (records, stored topologies, units, the speaker's state): never half-written,
never through someone else's file.

A file is written to a temporary name beside it, created with O_EXCL and
O_NOFOLLOW (a file or link planted under that name is removed first, never
written through), then renamed over the real one: a reader sees the old
content or the new, and a crash leaves at most the temporary file, which the
next write removes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def replace_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Make `path` hold `text` (with permissions `mode`) in one rename."""
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a crash's leftover, or something planted: removed, never opened
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
