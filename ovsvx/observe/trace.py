"""Explain, hop by hop and without sending traffic, how a packet from SRC to DST is forwarded.

The story follows the tutorial: ns1 -> host1 -> vxlan -> underlay -> host2 ->
ns2, and each hop says what was decided and on what basis, read from the
machine as it is now.  This module tells what every mode shares: the source's
own routing (its route, device, next hop and neighbour entry, or the ARP it
would need) and the underlay between the VTEPs.  What a host does in between
is its mode's own story (`Backend.forwarding`):

* kernel mode (`kernel/trace.py`): the route lookup, the Linux bridge's FDB
  entry for the destination MAC, and the vxlan device's FDB entry that picks
  the remote VTEP (the tutorial's all-zero entry);
* ovs mode (`ovs/trace.py`): `ofproto/trace` on its bridge, each matched flow
  named by its purpose (from the cookie), its actions, and the tunnel it ends in.

Each hop also shows the headers the packet carries when it leaves.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from ipaddress import IPv4Address
from typing import Any

from ovsvx.deploy import lab
from ovsvx.deploy.backends import backend
from ovsvx.errors import UsageError
from ovsvx.host import ipsec, lookups, netstack
from ovsvx.host.record import Deployment
from ovsvx.model.path import PROTOCOLS, Arp, Dropped, Forwarding, Hop, Packet
from ovsvx.model.topology import Host, Node, find_node


class Tracer:
    """One trace: the hops from a source node to a destination, in order."""

    def __init__(self, deployment: Deployment, proto: str):
        if proto not in PROTOCOLS:
            raise UsageError(f"--proto {proto!r} is not allowed: one of {', '.join(PROTOCOLS)}")
        self.deployment = deployment
        self.topology = deployment.topology
        self.proto = proto
        self.hops: list[Hop] = []

    def netns(self, node: str) -> str | None:
        return lab.node_netns(self.deployment, node)

    def forwarding(self, host: Host) -> Forwarding:
        """How `host` forwards: its mode's own explanation."""
        site = self.deployment.site_of(host.name)
        return backend(self.deployment.modes[host.name], site, self.deployment).forwarding()

    def run(self, src: Node, dst: Node) -> list[Hop]:
        packet = self.origin(src, dst)
        src_host = self.topology.host(src.host)
        try:
            done = self.forwarding(src_host).forward(packet, None if src.is_host else src.name, None)
            self.hops.append(done.hop)
            packet = done.packet
            if done.peer is not None:
                dst_host = self.topology.host(dst.host)
                packet = self.underlay(src_host, dst_host, packet)
                done = self.forwarding(dst_host).forward(packet, "tunnel", src_host)
                self.hops.append(done.hop)
                packet = done.packet
        except Dropped as dropped:
            self.hops.append(dropped.hop)
            return self.hops  # the hop that dropped it is the last
        self.hops.append(Hop(dst.name, f"delivered: {dst.address} is {dst.name}'s address", [], packet.headers()))
        return self.hops

    def run_arp(self, src: Node, dst: Node) -> list[Hop]:
        """The ARP `src` sends first on its way to `dst` (for its next hop), and who answers it."""
        with netstack.stack(self.netns(src.name)) as ipr:
            dev, nexthop = lookups.lookup(ipr, dst.address)
            src_mac, (_, neigh) = lookups.mac(ipr, dev), lookups.neighbour(ipr, nexthop, dev)
            route = lookups.route_text(ipr, dst.address)
            sender = ipr.route("get", dst=str(dst.address))[0].get("RTA_PREFSRC") or str(src.address)
        src = replace(src, address=IPv4Address(sender))  # the kernel asks from the route's source address
        asking = [f"Ether {src_mac} > ff:ff:ff:ff:ff:ff", f"ARP who-has {nexthop} tell {src.address} ({src_mac})"]
        self.hops.append(
            Hop(src.name, f"broadcasts ARP for its next hop {nexthop} on {dev}", [f"route: {route}", neigh], asking)
        )
        arp = Arp(src, src_mac, nexthop, dev, asking)
        host = self.topology.host(src.host)
        answered, crossed_to = self.forwarding(host).answer_arp(arp)
        self.hops += answered
        if crossed_to is not None:
            self.hops += self.forwarding(crossed_to).answer_arp_from_tunnel(arp, host)
        return self.hops

    def origin(self, src: Node, dst: Node) -> Packet:
        """The source's own routing: which route, which device, which next hop, and its MAC."""
        with netstack.stack(self.netns(src.name)) as ipr:
            dev, nexthop = lookups.lookup(ipr, dst.address)
            mac, neigh = lookups.neighbour(ipr, nexthop, dev)
            route = lookups.route_text(ipr, dst.address)
            packet = Packet(
                lookups.mac(ipr, dev),
                mac or f"<MAC of {nexthop}>",
                src.address,
                dst.address,
                64,
                self.proto,
                unresolved=None if mac else nexthop,
            )
        self.hops.append(
            Hop(src.name, f"sends via {dev} to next hop {nexthop}", [f"route: {route}", neigh], packet.headers())
        )
        return packet

    def underlay(self, src_host: Host, dst_host: Host, packet: Packet) -> Packet:
        """The encapsulated packet between the VTEPs: the underlay's own route and neighbour, and the ESP
        it travels in when the overlay is encrypted."""
        with netstack.stack(self.netns(src_host.name)) as ipr:
            dev, nexthop = lookups.lookup(ipr, dst_host.vtep)
            mac, neigh = lookups.neighbour(ipr, nexthop, dev)
            own_mac = lookups.mac(ipr, dev)
            why = [f"route: {lookups.route_text(ipr, dst_host.vtep)}", neigh]
        esp = ""
        carried = f"VXLAN over UDP {self.topology.port}"
        if self.topology.encrypted:
            sealed = ipsec.esp_on_the_way(self.deployment, self.deployment.site_of(src_host.name), dst_host)
            esp, carried = sealed.header, f"ESP (transport mode) carrying {carried}"
            why.append(sealed.why)
        outer = (
            f"Ether {own_mac} > {mac or f'<MAC of {nexthop}>'} / IP {src_host.vtep} > "
            f"{dst_host.vtep}{esp} / UDP > {self.topology.port} / VXLAN vni {self.topology.vni}"
        )
        packet = replace(packet, outer=outer)
        where = f"{src_host.name} {dev} -> {dst_host.name} {dst_host.nic}"
        self.hops.append(Hop("underlay", f"{where}: {carried}", why, packet.headers()))
        return replace(packet, outer="")


def run(deployment: Deployment, src_name: str, dst_name: str, proto: str = "icmp") -> list[Hop]:
    src, dst = find_node(deployment.topology, src_name), find_node(deployment.topology, dst_name)
    if src == dst:
        raise UsageError("trace needs two different nodes")
    tracer = Tracer(deployment, proto)
    return tracer.run_arp(src, dst) if proto == "arp" else tracer.run(src, dst)


def to_json(src: str, dst: str, proto: str, hops: list[Hop]) -> dict[str, Any]:
    """`trace --json`: what was traced, and each hop."""
    return {"src": src, "dst": dst, "proto": proto, "hops": [asdict(h) for h in hops]}
