"""How a kernel-mode host forwards, read from its stack: the route, the neighbour, the Linux bridge's
FDB and the vxlan device's FDB entry that picks the remote VTEP (the tutorial's all-zero entry); under
EVPN, the BGP route behind that entry."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, ip_network

from ovsvx.host import frr, lookups, netstack
from ovsvx.host.record import Deployment
from ovsvx.model.path import Arp, Forwarded, Hop, Packet
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, routed_vni_bridge


class KernelForwarding:
    """One kernel-mode host's forwarding decisions, as `trace` tells them."""

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.host = site.host
        self.deployment = deployment
        self.topology = deployment.topology

    def forward(self, packet: Packet, arrived_from: str | None, sender: Host | None = None) -> Forwarded:
        host = self.host
        with netstack.stack(self.site.netns) as ipr:
            why = []
            if arrived_from == "tunnel":
                owner = routed_vni_bridge(self.topology) if self.topology.evpn else host.vxlan
                why.append(
                    f"decapsulated by {host.vxlan} (VNI {self.topology.vni}, UDP {self.topology.port}); "
                    f"inner destination MAC {packet.eth_dst} is {owner}'s own"
                )
                iif: str | None = host.vxlan
            elif arrived_from is not None:
                why.append(lookups.bridge_port(ipr, host.bridge, packet.eth_dst))
                iif = host.bridge
            else:
                iif = None
            if packet.dst in (host.gateway, host.vxlan_address):
                return Forwarded(Hop(host.name, "delivers to itself", why, packet.headers()), packet)
            dev, nexthop = lookups.lookup(ipr, packet.dst, packet.src if iif else None, iif)
            why.append(f"route: {lookups.route_text(ipr, packet.dst)}")
            ttl = packet.ttl - 1 if iif is not None else packet.ttl
            tunnel = routed_vni_bridge(self.topology) if self.topology.evpn else host.vxlan
            mac, neigh = lookups.neighbour(ipr, nexthop, dev)
            through = " (through the tunnel: the ARP is encapsulated like any frame)"
            why.append(neigh + (through if dev == host.vxlan and mac is None else ""))
            packet = replace(
                packet,
                eth_src=lookups.mac(ipr, dev),
                eth_dst=mac or f"<MAC of {nexthop}>",
                ttl=ttl,
                unresolved=None if mac else nexthop,
            )
            if dev == tunnel:
                remote, fdb = lookups.vxlan_remote(ipr, host.vxlan, mac)
                why.append(fdb)
                if self.topology.evpn:
                    why.append(self._evpn_route(packet.dst, remote))
                peer = next(p for p in self.topology.peers(host) if str(p.vtep) == remote)
                what = f"{'routes' if iif else 'sends'} into {host.vxlan}{f', TTL {ttl}' if iif else ''}"
                return Forwarded(
                    Hop(host.name, f"{what}, towards VTEP {remote}", why, packet.headers()), packet, peer.name
                )
            why.append(
                lookups.bridge_port(ipr, host.bridge, packet.eth_dst)
                if mac
                else f"the reply to that ARP teaches {host.bridge}'s FDB the port"
            )
            return Forwarded(Hop(host.name, f"routes onto {dev}, TTL {ttl}", why, packet.headers()), packet)

    def _evpn_route(self, dst: IPv4Address, remote: str) -> str:
        """The EVPN route behind a tunnel hop: the one FRR holds for `dst`'s subnet."""
        held = frr.routes(frr.home(self.deployment, self.site)) or []
        route = next((r for r in held if r.type == 5 and dst in ip_network(r.prefix) and r.origin != "local"), None)
        if route is None:
            return f"EVPN: {self.host.name}'s bgpd holds no route for {dst}"
        return f"EVPN: remote VTEP {remote} and its router MAC from the {route.describe()}, sent by {route.origin}"

    def answer_arp(self, arp: Arp) -> tuple[list[Hop], Host | None]:
        """A namespace's ARP: the bridge floods it and the host answers for its own address.  The host's
        own ARP for a peer's vxlan address: the vxlan device encapsulates the broadcast for the peer."""
        host = self.host
        with netstack.stack(self.site.netns) as ipr:
            if not arp.src.is_host:
                bridge_mac = lookups.mac(ipr, host.bridge)
            else:
                remote, fdb = lookups.vxlan_remote(ipr, arp.dev, None)
        if not arp.src.is_host:
            answer = (
                ("the host answers: it is its address on " + host.bridge)
                if arp.nexthop in (host.gateway, host.vxlan_address)
                else "forwarded to the port that holds it"
            )
            what = f"{host.bridge} floods the broadcast to its ports and up to {host.name}'s stack; {answer}"
            return [
                Hop(
                    host.name,
                    what,
                    [],
                    [f"Ether {bridge_mac} > {arp.src_mac}", f"ARP {arp.nexthop} is-at {bridge_mac}"],
                )
            ], None
        peer = next(p for p in self.topology.peers(host) if str(p.vtep) == remote)
        what = f"{arp.dev} encapsulates the broadcast for VTEP {remote}: the ARP crosses the tunnel"
        return [Hop(host.name, what, [fdb], arp.asking)], peer

    def answer_arp_from_tunnel(self, arp: Arp, sender: Host) -> list[Hop]:
        host = self.host
        what = f"{host.vxlan} decapsulates it; {host.name} answers: {arp.nexthop} is its address on {host.vxlan}"
        return [Hop(host.name, what, [], [f"ARP {arp.nexthop} is-at <{host.vxlan}'s MAC>, back through the tunnel"])]
