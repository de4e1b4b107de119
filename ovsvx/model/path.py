"""The path a packet takes, as values: what `trace` says of each hop and where `capture` listens.

Each mode's wing fills these in for its own hosts (`kernel/trace.py`, `ovs/trace.py`); `observe/`
strings the hops together from the source's routing to delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Protocol

from ovsvx.model.topology import Host, Node

PROTOCOLS = ("icmp", "tcp", "udp", "arp")
PROBE_PORT = 5201  # the destination port traced for tcp and udp (iperf3's)


@dataclass(frozen=True)
class Packet:
    """What the traced packet looks like at a point on its way."""

    eth_src: str
    eth_dst: str
    src: IPv4Address
    dst: IPv4Address
    ttl: int
    proto: str
    outer: str = ""  # the encapsulation, when in the tunnel
    unresolved: IPv4Address | None = None  # a next hop whose MAC nobody has asked for yet (eth_dst says so)

    def headers(self) -> list[str]:
        found = [self.outer] if self.outer else []
        found += [
            f"Ether {self.eth_src} > {self.eth_dst}",
            f"IP {self.src} > {self.dst} ttl {self.ttl}",
            self.proto.upper() + (f" dport {PROBE_PORT}" if self.proto in ("tcp", "udp") else " echo-request"),
        ]
        return found


@dataclass
class Hop:
    where: str
    what: str
    why: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Arp:
    """The ARP a node sends for its next hop: who asks, from which MAC, for which address."""

    src: Node
    src_mac: str
    nexthop: IPv4Address
    dev: str  # the device it leaves by
    asking: list[str]  # its headers


class Dropped(Exception):  # noqa: N818 - not an error: the trace ends where the packet is dropped
    """The host dropped the packet: the trace ends at this hop."""

    def __init__(self, hop: Hop):
        super().__init__(hop.what)
        self.hop = hop


@dataclass(frozen=True)
class Forwarded:
    """What a host did with the packet: its hop, the packet as it leaves, and the peer it tunnels to
    (None: delivered on this host)."""

    hop: Hop
    packet: Packet
    peer: str | None = None


class Forwarding(Protocol):
    """How one host forwards, read from its machine as it is now: each mode's own explanation."""

    def forward(self, packet: Packet, arrived_from: str | None, sender: Host | None) -> Forwarded:
        """The packet from a namespace (its name), the host itself (None) or the tunnel ("tunnel", sent by
        `sender`).  Raises Dropped with the hop that dropped it."""
        ...

    def answer_arp(self, arp: Arp) -> tuple[list[Hop], Host | None]:
        """The ARP sent from this host or one of its namespaces: the hops that answer it here, or the peer
        the ARP crosses the tunnel to."""
        ...

    def answer_arp_from_tunnel(self, arp: Arp, sender: Host) -> list[Hop]:
        """The ARP that came through the tunnel from `sender`, answered here."""
        ...


@dataclass(frozen=True)
class Watched:
    """Where a host's frames can be captured, in the order a packet meets them (tcpdump's device names in
    the host's own stack), and whether its NIC shows the wire (else the lab's switch port does)."""

    devices: list[str]
    nic: bool = True
