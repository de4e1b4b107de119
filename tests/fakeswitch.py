"""A tiny OpenFlow pipeline simulator: runs a packet (a dict of fields) through generated flows.

Enough of OpenFlow 1.3 for ovsvx's flows (exact and CIDR matches, goto, set,
move, dec_ttl, output, and the learn action that writes a peer's MAC) to check their behaviour without a switch, in the
spirit of Faucet's fakeoftable.  The lab tests check the same flows on a real
OVS.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from ovsvx.ovs.openflow import DecTtl, Flow, Goto, LearnPeerMac, Move, Output, SetField
from ovsvx.ovs.tables import CONTROLLER, ETH_IP, IN_PORT, Purpose


@dataclass
class Result:
    outputs: list[tuple[str, dict[str, Any]]]  # (port, packet as it left)
    path: list[Flow]  # the flows that matched, in order
    learned: list[Flow]  # flows a learn action wrote
    packet_ins: list[dict[str, Any]]  # copies sent to the controller

    @property
    def dropped(self) -> bool:
        return not self.outputs


def _matches(flow: Flow, packet: dict[str, Any]) -> bool:
    for field, want in flow.match:
        have = packet.get(field)
        if have is None:
            return False
        if field in ("ipv4_dst", "arp_tpa") and "/" in str(want):
            if IPv4Address(have) not in IPv4Network(str(want)):
                return False
        elif str(have) != str(want):
            return False
    return True


def run(flows: tuple[Flow, ...], packet: dict[str, Any]) -> Result:
    """Send `packet` (with in_port) through table 0 onwards; return where copies left."""
    packet = dict(packet)
    table, outputs, path, learned, packet_ins = 0, [], [], [], []
    while table is not None:
        candidates = [f for f in flows if f.table == table and _matches(f, packet)]
        if not candidates:
            break
        flow = max(candidates, key=lambda f: f.priority)
        path.append(flow)
        table = None
        for action in flow.actions:
            match action:
                case SetField(field, value):
                    packet[field] = value
                case Move(src, dst, _):
                    packet[dst] = packet[src]
                case DecTtl():
                    packet["ttl"] -= 1
                case Output(port) if port == CONTROLLER:
                    packet_ins.append(dict(packet))
                case Output(port):
                    outputs.append((packet["in_port"] if port == IN_PORT else port, dict(packet)))
                case Goto(next_table):
                    table = next_table
                case LearnPeerMac(learn_table, priority, _, subnet):
                    learned.append(
                        Flow(
                            learn_table,
                            priority,
                            (("eth_type", ETH_IP), ("ipv4_dst", str(subnet))),
                            (SetField("eth_dst", packet["arp_sha"]), Output(packet["in_port"])),
                            Purpose.LEARNED,
                        )
                    )
    return Result(outputs, path, learned, packet_ins)
