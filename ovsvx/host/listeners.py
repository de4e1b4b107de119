"""What listens where in a network stack: the sockets a stranger could talk to, and whose they are.

`status` shows them so a user sees at a glance that the controller and OVSDB
are on loopback (or a unix socket) and that only the tunnel port faces the
underlay.  Read from /proc, as `ss -tulnp` does: the namespace's socket tables
(from a thread inside it) and, for each socket's inode, the process holding
it.  Sockets with no process are the kernel's own (a vxlan device's UDP port).
"""

from __future__ import annotations

import os
import re
import socket
import struct
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path

from ovsvx.host import netstack
from ovsvx.host.netstack import TCP_LISTEN

UDP_UNCONNECTED = "07"
#: An ovsvx process, as it is started (`python -m ovsvx.ovs.controller`) or typed (`ovsvx controller`):
#: named "ovsvx controller" by the last word, whichever part of ovsvx it runs.
OVSVX_PROCESS = re.compile(r"-m ovsvx\.(?:\w+\.)*(\w+)|\bovsvx (\w+)")


@dataclass(frozen=True)
class Listener:
    proto: str  # "tcp" or "udp"
    address: str
    port: int
    owner: str  # "ovs-vswitchd (pid 12)", "kernel", ...

    @property
    def local_only(self) -> bool:
        return ip_address(self.address).is_loopback

    @property
    def text(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.proto} {host}:{self.port} {self.owner}"


def decode_address(hex_address: str) -> tuple[str, int]:
    """/proc/net/{tcp,udp}[6]'s "0100007F:19FD" (address in host-order 32-bit words) as ("127.0.0.1", 6653)."""
    address, port = hex_address.split(":")
    raw = bytes.fromhex(address)
    words = b"".join(struct.pack("=I", struct.unpack(">I", raw[i : i + 4])[0]) for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port, 16)


def parse_table(proto: str, text: str) -> list[tuple[str, str, int, int]]:
    """(proto, address, port, inode) of each listening socket in one /proc/net table."""
    wanted = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == wanted:
            address, port = decode_address(fields[1])
            found.append((proto, address, port, int(fields[9])))
    return found


def _socket_owners() -> dict[int, str]:
    """Socket inode -> "program (pid N)" for every process's open sockets."""
    owners = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if ovsvx := OVSVX_PROCESS.search(cmdline):
                name = f"ovsvx {ovsvx[1] or ovsvx[2]}"
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owners[int(target[8:-1])] = f"{name} (pid {entry.name})"
        except OSError:
            continue  # a process that ended while we looked
    return owners


def listening(netns: str | None) -> list[Listener]:
    """Every TCP listener and unconnected UDP socket in the stack, with its owner, in port order."""

    def read() -> dict[str, str]:
        tables = {}
        for name in ("tcp", "tcp6", "udp", "udp6"):
            try:
                tables[name] = Path(f"/proc/thread-self/net/{name}").read_text()
            except OSError:
                tables[name] = ""
        return tables

    tables = netstack.call_in(netns, read)
    owners = _socket_owners()
    found = {
        Listener(proto, address, port, owners.get(inode, "kernel") if inode else "kernel")
        for name, text in tables.items()
        for proto, address, port, inode in parse_table(name.rstrip("6"), text)
    }
    return sorted(found, key=lambda item: (item.port, item.proto, item.address))


OVERLAY_PROGRAMS = ("ovsdb-server", "ovs-vswitchd", "ovsvx controller")


def overlay_listeners(netns: str | None, tunnel_port: int) -> list[str]:
    """What the overlay's own parts listen on in the stack, each marked when it faces the network."""
    mine = [item for item in listening(netns) if item.port == tunnel_port or item.owner.startswith(OVERLAY_PROGRAMS)]
    return [
        item.text
        + (", the tunnel" if item.port == tunnel_port else "" if item.local_only else ", reachable from the network")
        for item in mine
    ]
