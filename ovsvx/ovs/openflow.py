"""The flow model: actions, a flow, its cookie and its `ovs-ofctl` text, as plain values.

A flow's cookie is its purpose code in bits 32..39 and a CRC-32 of the flow's text: `ovs-ofctl
dump-flows` tells each flow's purpose by its first hex digit, and identical cookies mean identical
flows, which is how the controller compares a switch with the generated set.  Flows the switch
learns itself carry the LEARNED purpose and the peer's index.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from ipaddress import IPv4Network

from ovsvx.ovs.tables import CONTROLLER, ETH_ARP, ETH_IP, IN_PORT, LOCAL, PACKET_IN_BYTES, TABLES, Purpose


@dataclass(frozen=True)
class Output:
    port: str  # a port name, LOCAL or IN_PORT


@dataclass(frozen=True)
class Goto:
    table: int


@dataclass(frozen=True)
class SetField:
    field: str  # OXM name as os-ken and ovs-ofctl spell it: eth_src, arp_op, ...
    value: str | int


@dataclass(frozen=True)
class Move:
    """Copy one field to another (Nicira reg_move): how an ARP reply swaps sender and target."""

    src: str
    dst: str
    bits: int


@dataclass(frozen=True)
class DecTtl:
    pass


@dataclass(frozen=True)
class LearnPeerMac:
    """Write (or rewrite) the flow in `table` that sends IPv4 for `subnet` to the MAC in this ARP
    packet's sender field, out of the port it came in by: the switch learns a peer's router MAC.
    It expires, so a peer whose MAC changed (rebuilt by hand) is asked again."""

    table: int
    priority: int
    cookie: int
    subnet: IPv4Network
    hard_timeout: int = 300  # forget it after 5 min: the next packet asks the peer again


Action = Output | Goto | SetField | Move | DecTtl | LearnPeerMac

#: The tunnel's remote and sending addresses, as os-ken names the Nicira fields (ovs-ofctl: tun_dst, tun_src).
TUNNEL_DST = "tun_ipv4_dst"
TUNNEL_SRC = "tun_ipv4_src"
#: Where ovs-ofctl spells a field differently from OXM.
OFCTL_FIELDS = {"ipv4_dst": "nw_dst", TUNNEL_DST: "tun_dst", TUNNEL_SRC: "tun_src"}

#: Nicira names of the fields `Move` copies, as ovs-ofctl writes them.
NXM_NAMES = {
    "eth_src": "NXM_OF_ETH_SRC",
    "eth_dst": "NXM_OF_ETH_DST",
    "arp_sha": "NXM_NX_ARP_SHA",
    "arp_tha": "NXM_NX_ARP_THA",
    "arp_spa": "NXM_OF_ARP_SPA",
    "arp_tpa": "NXM_OF_ARP_TPA",
    "eth_type": "NXM_OF_ETH_TYPE",
    "ipv4_dst": "NXM_OF_IP_DST",
    "in_port": "NXM_OF_IN_PORT",
}


@dataclass(frozen=True)
class Flow:
    """One flow: where it sits, what it matches, what it does, and why."""

    table: int
    priority: int
    match: tuple[tuple[str, str | int], ...]  # OXM names: in_port (a port name), eth_type, arp_op, arp_tpa, ipv4_dst
    actions: tuple[Action, ...]
    purpose: Purpose
    note: str = ""  # a person's reading of it, for the flows/ files and `ovsvx flows`

    @property
    def text(self) -> str:
        """The flow in `ovs-ofctl add-flow` syntax, without its cookie."""
        parts = [f"table={self.table}", f"priority={self.priority}", *(_match_text(k, v) for k, v in self.match)]
        return ",".join(parts) + ",actions=" + (",".join(_action_text(a) for a in self.actions) or "drop")

    @property
    def cookie(self) -> int:
        return (int(self.purpose) << 32) | zlib.crc32(self.text.encode())

    @property
    def line(self) -> str:
        return f"cookie={self.cookie:#x},{self.text}"


def _match_text(field: str, value: str | int) -> str:
    if field == "eth_type":
        return {ETH_ARP: "arp", ETH_IP: "ip"}[int(value)]
    return f"{OFCTL_FIELDS.get(field, field)}={value}"


def _action_text(action: Action) -> str:
    match action:
        case Output(port):
            return {LOCAL: "LOCAL", IN_PORT: "in_port", CONTROLLER: f"CONTROLLER:{PACKET_IN_BYTES}"}.get(
                port, f"output:{port}"
            )
        case Goto(table):
            return f"goto_table:{table}"
        case SetField(field, value):
            return f"set_field:{value}->{OFCTL_FIELDS.get(field, field)}"
        case Move(src, dst, _):
            return f"move:{NXM_NAMES[src]}[]->{NXM_NAMES[dst]}[]"
        case DecTtl():
            return "dec_ttl"
        case LearnPeerMac(table, priority, cookie, subnet, hard_timeout):
            net_bits = subnet.prefixlen
            network = int(subnet.network_address) >> (32 - net_bits)
            return (
                f"learn(table={table},hard_timeout={hard_timeout},priority={priority},cookie={cookie:#x},"
                f"{NXM_NAMES['eth_type']}[]={ETH_IP:#x},"
                f"{NXM_NAMES['ipv4_dst']}[{32 - net_bits}..31]={network:#x},"
                f"load:{NXM_NAMES['arp_sha']}[]->{NXM_NAMES['eth_dst']}[],output:{NXM_NAMES['in_port']}[])"
            )
    raise TypeError(action)


# --- cookies -----------------------------------------------------------------------


LEARNED_NOTE = "the peer's router MAC, learned from its ARP"


def explain(cookie: int, generated: dict[int, Flow]) -> tuple[str, str] | None:
    """What an installed flow is, by its cookie: (purpose, why) for a flow ovsvx generated or one the
    switch learned; None for a flow ovsvx did not make.  `flows` and `trace` both name flows by it."""
    flow = generated.get(cookie)
    if flow is not None:
        return flow.purpose.label, flow.note
    if is_learned(cookie):
        return Purpose.LEARNED.label, LEARNED_NOTE
    return None


def purpose_label(cookie: int) -> str:
    """The purpose a cookie says (its top bits), by label; "foreign" for a flow ovsvx did not make."""
    try:
        return Purpose(cookie >> 32).label
    except ValueError:
        return "foreign"


def learned_cookie(peer_index: int) -> int:
    """The cookie of the flow the switch learns for the peer at `peer_index` (see LearnPeerMac)."""
    return (int(Purpose.LEARNED) << 32) | peer_index


def is_learned(cookie: int) -> bool:
    """Flows the switch wrote itself: not generated, and kept when the controller syncs."""
    return cookie >> 32 == Purpose.LEARNED


def check(flows: list[Flow]) -> None:
    """Every flow sits in a declared table and goes only where that table may go; no two collide."""
    seen: dict[tuple[int, int, tuple[tuple[str, str | int], ...]], Flow] = {}
    for flow in flows:
        table = TABLES.get(flow.table)
        if table is None:
            raise ValueError(f"flow in undeclared table {flow.table}: {flow.text}")
        for action in flow.actions:
            if isinstance(action, Goto) and action.table not in table.next:
                raise ValueError(f"table {table.name} may not go to table {action.table}: {flow.text}")
            if isinstance(action, LearnPeerMac) and action.table not in TABLES:
                raise ValueError(f"flow learns into undeclared table {action.table}: {flow.text}")
        key = (flow.table, flow.priority, flow.match)
        if key in seen and seen[key] != flow:
            raise ValueError(f"two flows with one match: {flow.text} / {seen[key].text}")
        seen[key] = flow
