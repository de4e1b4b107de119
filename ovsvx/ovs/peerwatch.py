"""Does each peer still answer?  The ovs-mode controller's neighbour reachability, like the kernel's.

The switch learns a peer's router MAC from its ARP (`flows.LearnPeerMac`) and
keeps it five minutes.  A peer rebuilt with a new MAC (the tutorial's
commands give its vxlan device a random one) would stay dark that long:
frames go to the old MAC, the peer drops them, and while the learned flow
exists nobody asks again.

So the controller reads two counters per peer every `WATCH_S`: the packets
the learned flow sent towards the peer, and the packets that came in from
the peer's tunnel.  What the kernel's neighbour state machine treats as
suspect is a packet sent that stays unanswered for a while (its "delay"
state), so a peer is asked again only when something was sent to it in one
period and nothing at all came back from it in that period nor in the whole
period after: every packet had at least one full period to be answered,
however late in a period it left.  One period alone is not enough: a ping
sent just before a reading, answered just after it, would look unanswered
(seen on an emulated CPU).  The period is scaled like every deadline
(`waits.scaled`), so a slow machine waits as much longer as everything else
does.  The controller then asks the peer again with one ARP request (at most
one a second per peer, like the kernel's unicast probes), and the switch
learns the answer's MAC at once, new or not.  Idle peers and peers that
answer cost nothing.

This module is pure: the probes' frames and the counters' cookies come from
the topology and the generated flows; `unanswered` decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network

from ovsvx.host.plan import ZERO_MAC
from ovsvx.model.topology import Host, Topology, mac_for
from ovsvx.ovs.openflow import Flow, learned_cookie
from ovsvx.ovs.switch import tunnel_ports
from ovsvx.ovs.tables import CLASSIFY

WATCH_S = 0.5  # how often the counters are read (scaled): a changed peer MAC is asked for within three of these
READINGS = 3  # what `unanswered` decides from: a period with traffic sent, and the period after it
PROBE_GAP_S = 1.0  # at most one ARP request per peer this often


@dataclass(frozen=True)
class PeerProbe:
    """An ARP request for a peer's vxlan address, where it goes, and the counters that say whether the
    peer answers traffic."""

    peer: str
    port: str  # the tunnel port towards the peer
    subnet: IPv4Network  # the peer's subnet: a packet-in for it asks for this probe
    frame: bytes
    sent_cookie: int  # the flow the switch learns for the peer: what went towards it
    heard_cookies: frozenset[int]  # the flows that take in what arrives by its tunnel


@dataclass(frozen=True)
class Counts:
    sent: int
    heard: int


def peer_probes(topology: Topology, host: Host, flows: tuple[Flow, ...]) -> list[PeerProbe]:
    """For each peer, the ARP request for its vxlan address as the host's vxlan device would send it
    (sender: this host's vxlan address and MAC).  Built with os-ken's own packet library, which the
    controller has loaded anyway."""
    from os_ken.lib.packet import arp, ether_types, ethernet, packet

    own_mac = mac_for(host.vxlan_address)
    ports = tunnel_ports(topology, host)
    probes = []
    for index, peer in enumerate(topology.peers(host)):
        frame = packet.Packet()
        frame.add_protocol(ethernet.ethernet(dst="ff:ff:ff:ff:ff:ff", src=own_mac, ethertype=ether_types.ETH_TYPE_ARP))
        frame.add_protocol(
            arp.arp(
                opcode=arp.ARP_REQUEST,
                src_mac=own_mac,
                src_ip=str(host.vxlan_address),
                dst_mac=ZERO_MAC,
                dst_ip=str(peer.vxlan_address),
            )
        )
        frame.serialize()
        port = ports[peer.name].name
        heard = frozenset(f.cookie for f in flows if f.table == CLASSIFY and ("in_port", port) in f.match)
        probes.append(PeerProbe(peer.name, port, peer.subnet, bytes(frame.data), learned_cookie(index), heard))
    return probes


def counts(probes: list[PeerProbe], packets: dict[int, int]) -> dict[str, Counts]:
    """Each peer's counters (by tunnel port) from one reading of packet counts by cookie."""
    return {
        p.port: Counts(packets.get(p.sent_cookie, 0), sum(packets.get(c, 0) for c in p.heard_cookies)) for p in probes
    }


def unanswered(probes: list[PeerProbe], readings: Sequence[dict[str, Counts]]) -> list[PeerProbe]:
    """The peers that were sent to between the oldest two of the last `READINGS` readings (oldest first) and
    from which nothing at all came between the oldest and the newest.

    A learned flow that was rewritten (a new MAC) starts its count again, which reads as nothing sent.
    """
    if len(readings) < READINGS:
        return []
    older, old, now = tuple(readings)[-READINGS:]
    return [
        p
        for p in probes
        if all(p.port in r for r in (older, old, now))
        and old[p.port].sent > older[p.port].sent
        and now[p.port].heard == older[p.port].heard
    ]
