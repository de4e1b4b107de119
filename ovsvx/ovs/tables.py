"""Ovs mode's OpenFlow pipeline, declared once: its tables (what each does, where it may go), the
purposes a flow's cookie names, and the ports and ethertypes flows speak of.  docs/design/flows.md's
table is made from here, and `openflow.check` holds every flow to it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

ETH_ARP = 0x0806
ETH_IP = 0x0800
ARP_REQUEST = 1
ARP_REPLY = 2
LOCAL = "LOCAL"  # the bridge's internal port: the host itself
IN_PORT = "IN_PORT"
CONTROLLER = "CONTROLLER"  # a copy to the controller (packet-in), cut to its headers
PACKET_IN_BYTES = 64  # enough for the Ethernet and IPv4 headers: the controller only reads the destination


@dataclass(frozen=True)
class TableInfo:
    id: int
    name: str
    does: str
    next: tuple[int, ...] = ()


CLASSIFY, ARP, FROM_WORKLOAD, FROM_HOST, FROM_TUNNEL, TO_PEER = 0, 10, 20, 30, 40, 50

#: The pipeline, declared once: docs/design/flows.md's table comes from here, and `check` holds every flow to it.
TABLES: dict[int, TableInfo] = {
    t.id: t
    for t in (
        TableInfo(
            CLASSIFY,
            "classify",
            "sorts by ingress port: a namespace, the host (LOCAL) or the tunnel; ARP to table 10, IPv4 to 20/30/40",
            (ARP, FROM_WORKLOAD, FROM_HOST, FROM_TUNNEL),
        ),
        TableInfo(ARP, "arp", "answers ARP requests in the datapath"),
        TableInfo(
            FROM_WORKLOAD,
            "from-workload",
            "routes what a namespace sends (to the host, another namespace here, or towards a peer with TTL-1)",
            (TO_PEER,),
        ),
        TableInfo(
            FROM_HOST,
            "from-host",
            "forwards what the host itself sends (to a namespace, or towards a peer)",
            (TO_PEER,),
        ),
        TableInfo(
            FROM_TUNNEL,
            "from-tunnel",
            "routes what arrives from the tunnel (to a namespace with TTL-1, or to the host)",
        ),
        TableInfo(
            TO_PEER,
            "to-peer",
            "sets the peer's router MAC (learned from its ARP, else ovsvx's) and sends into its tunnel",
        ),
    )
}


class Purpose(IntEnum):
    """What a flow is for; the value is the cookie's purpose code (cookie >> 32)."""

    CLASSIFY = 0x1
    ARP_RESPONDER = 0x2
    ROUTE_OUT = 0x3  # routed by this host into the tunnel (TTL - 1)
    HOST_OUT = 0x4  # the host's own traffic into the tunnel
    ROUTE_IN = 0x5  # routed by this host from the tunnel to a namespace (TTL - 1)
    TO_HOST = 0x6  # delivered to the host's own addresses (LOCAL)
    LOCAL_L2 = 0x7  # between the host and its namespaces, as the Linux bridge does
    LEARNED = 0x8  # written by the switch itself: a peer's router MAC learned from its ARP (low bits: peer)
    TO_PEER = 0x9  # the peer's router MAC and tunnel, and the ARP flows that learn that MAC
    DROP = 0xF  # the end of every table: counted, dropped

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")
