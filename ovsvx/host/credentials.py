"""What an encrypted host proves itself with: its pre-shared key, or its certificate, key and the CA's
certificate, read from the files the topology names.  A file that cannot serve (missing, a link, a key
open to others) is refused naming the field and file, never what it holds."""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path

from ovsvx.errors import TopologyError
from ovsvx.host import secretfile
from ovsvx.model.topology import Host, Topology

#: A pre-shared key shorter than this is refused: IKEv2 with a PSK is only as strong as the key.
PSK_MIN_CHARS = 16
NOT_PLAIN = "not a plain file (a link or a folder is not followed)"


@dataclass(frozen=True)
class Credentials:
    """What one host proves itself with, read from its files: the pre-shared key, or its certificate and
    key and the CA's certificate (PEM).  Never shown: only `load` sends it, to charon."""

    secret: str = field(default="", repr=False)
    cert: bytes = b""
    key: bytes = field(default=b"", repr=False)
    ca: bytes = b""


def read_credentials(topology: Topology, host: Host) -> Credentials:
    """The host's credentials; a file that cannot serve is refused, naming the field and file, never what
    it holds.  Key files must be root's and closed to others."""
    assert topology.ipsec is not None
    read = {name: _read(name, path, secret) for name, path, secret in topology.ipsec.files(host.name)}
    if "psk_file" not in read:
        return Credentials(cert=read["cert"], key=read["key"], ca=read["ca"])
    secret = read["psk_file"].decode("utf-8", errors="replace").strip()
    if len(secret) < PSK_MIN_CHARS:
        raise TopologyError(
            f"ipsec.psk_file: {topology.ipsec.psk_file}: the key is shorter than {PSK_MIN_CHARS} characters "
            "(make one with `head -c 32 /dev/urandom | base64 > FILE`)"
        )
    return Credentials(secret=secret)


def _read(name: str, path: Path, secret: bool = False) -> bytes:
    data, problem = _checked(path, secret)
    if problem:
        raise TopologyError(f"ipsec.{name}: {path}: {problem}")
    return data


def file_problem(path: Path, secret: bool = True) -> str:
    """Why `path` cannot serve ("" when it can): missing, not a plain file, or (a secret) open to others."""
    return _checked(path, secret)[1]


def _checked(path: Path, secret: bool) -> tuple[bytes, str]:
    """The file's content and "", or no content and why it cannot serve (secretfile reads it once)."""
    try:
        opened = secretfile.open_file(path)
    except OSError as err:
        return b"", NOT_PLAIN if err.errno == errno.ELOOP else f"cannot read: {err.strerror}"
    if not opened.regular:
        return b"", NOT_PLAIN
    if secret and not opened.roots_alone:
        return b"", (
            f"must be root's and closed to others (owner uid {opened.uid}, mode {opened.mode:04o}):"
            " chown root and chmod 600 it"
        )
    return opened.data, ""
