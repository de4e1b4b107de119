"""Explain, hop by hop and without sending traffic, how a packet from SRC to DST is forwarded.

The story follows the tutorial: ns1 -> host1 -> vxlan -> underlay -> host2 ->
ns2, and each hop says what was decided and on what basis, read from the
machine as it is now:

* a node's own stack (a namespace, or a kernel-mode host): the route lookup
  (which route, which device, which next hop), the neighbour entry for the
  next hop or the ARP it would need, the Linux bridge's FDB entry for the
  destination MAC, and the vxlan device's FDB entry that picks the remote
  VTEP (the tutorial's all-zero entry);
* an ovs-mode host: `ofproto/trace` on its bridge, each matched flow named by
  its purpose (from the cookie), its actions, and the tunnel it ends in.

Each hop also shows the headers the packet carries when it leaves.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from ipaddress import IPv4Address, ip_network
from socket import AF_INET
from typing import Any

from ovsvx.deploy import lab
from ovsvx.deploy.deploy import site_of
from ovsvx.errors import UsageError
from ovsvx.host import ipsec, netstack
from ovsvx.host.netlink import fdb_entries
from ovsvx.host.netstack import NUD_STATES, RT_TABLE_MAIN
from ovsvx.host.plan import ZERO_MAC, routed_vni_bridge
from ovsvx.kernel import frr
from ovsvx.kernel.backend import frr_home
from ovsvx.model.record import Deployment
from ovsvx.model.topology import Host, Mode, Node, find_node, mac_for
from ovsvx.ovs import daemons, flows, ofctl
from ovsvx.ovs.backend import generated_flows
from ovsvx.ovs.switch import Port, tunnel_ports, workload_ports

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


class _Dropped(Exception):  # noqa: N818 - not an error: the trace ends where the flows drop the packet
    """The switch dropped the packet: the trace ends at that hop."""


@dataclass
class Hop:
    where: str
    what: str
    why: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)


# --- reading a kernel stack -------------------------------------------------------------


def _ifname(ipr: Any, index: int | None) -> str:
    if index is None:
        return "?"
    found = ipr.get_links(index)
    return found[0].get("IFLA_IFNAME") if found else str(index)


def _mac(ipr: Any, name: str) -> str:
    found = ipr.link_lookup(ifname=name)
    return ipr.get_links(found[0])[0].get("IFLA_ADDRESS") if found else "?"


def _route_text(ipr: Any, dst: IPv4Address) -> str:
    """The table entry a lookup for dst uses (longest prefix), as `ip route` prints it."""
    best: tuple[int, str] | None = None
    for route in ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN):
        net = ip_network(f"{route.get('RTA_DST') or '0.0.0.0'}/{route['dst_len']}")
        if dst in net and (best is None or net.prefixlen > best[0]):
            text = "default" if net.prefixlen == 0 else str(net)
            if route.get("RTA_GATEWAY"):
                text += f" via {route.get('RTA_GATEWAY')}"
            text += f" dev {_ifname(ipr, route.get('RTA_OIF'))}"
            text += " onlink" if route["flags"] & 4 else ""
            text += (
                f" proto {route['proto']}"
                if route["proto"] not in (2, 3, 4)
                else (" proto kernel" if route["proto"] == 2 else "")
            )
            best = (net.prefixlen, text)
    return best[1] if best else "no route"


def _lookup(
    ipr: Any, dst: IPv4Address, src: IPv4Address | None = None, iif: str | None = None
) -> tuple[str, IPv4Address]:
    """(output device, next hop) of a route lookup, as the kernel resolves it."""
    args: dict[str, Any] = {"dst": str(dst)}
    if iif is not None and src is not None:
        args.update(src=str(src), iif=ipr.link_lookup(ifname=iif)[0])
    result = ipr.route("get", **args)[0]
    gateway = result.get("RTA_GATEWAY")
    return _ifname(ipr, result.get("RTA_OIF")), IPv4Address(gateway) if gateway else dst


def _neighbour(ipr: Any, address: IPv4Address, dev: str) -> tuple[str | None, str]:
    """(MAC, description) of the neighbour entry for address on dev, or the ARP that is needed."""
    index = ipr.link_lookup(ifname=dev)
    for entry in ipr.get_neighbours(family=AF_INET):
        if entry.get("NDA_DST") == str(address) and index and entry["ifindex"] == index[0]:
            state = NUD_STATES.get(entry["state"], hex(entry["state"]))
            mac = entry.get("NDA_LLADDR")
            if mac and state not in ("INCOMPLETE", "FAILED"):
                return mac, f"neighbour: {address} dev {dev} lladdr {mac} {state}"
    return None, f"neighbour: none for {address} on {dev}: ARP who-has {address} first"


def _bridge_port(ipr: Any, bridge: str, mac: str) -> str:
    """Which port of a Linux bridge a destination MAC leaves by, from its FDB."""
    index = ipr.link_lookup(ifname=bridge)[0]
    for entry in ipr.fdb("dump"):
        if entry.get("NDA_LLADDR") == mac and entry.get("NDA_MASTER") == index:
            port = _ifname(ipr, entry["ifindex"])
            own = " permanent: the bridge's own MAC (it takes its port's), so up to the host's routing"
            return f"fdb: {mac} dev {port} master {bridge}" + (own if entry["state"] & 0x80 else "")
        if entry.get("NDA_LLADDR") == mac and entry["ifindex"] == index:
            return f"fdb: {mac} dev {bridge} self: the bridge's own MAC, up to the host's routing"
    return f"fdb: {mac} not learned on {bridge}: flooded to every port"


def _vxlan_remote(ipr: Any, vxlan: str, mac: str | None) -> tuple[str, str]:
    """(remote VTEP, description) from the vxlan device's FDB: the MAC's own entry, else all-zero."""
    entries = [e for e in fdb_entries(ipr, ipr.link_lookup(ifname=vxlan)[0]) if e.get("NDA_DST")]
    for wanted in ([mac] if mac else []) + [ZERO_MAC]:
        for entry in entries:
            if entry.get("NDA_LLADDR") == wanted:
                remote = entry.get("NDA_DST")
                note = " (the all-zero default: unknown and broadcast go here)" if wanted == ZERO_MAC else ""
                return remote, f"vxlan fdb: {wanted} dev {vxlan} dst {remote}{note}"
    return "?", f"vxlan fdb: no entry on {vxlan} for {mac}: dropped"


# --- the hops -------------------------------------------------------------------------------


class Tracer:
    def __init__(self, deployment: Deployment, proto: str):
        if proto not in PROTOCOLS:
            raise UsageError(f"--proto {proto!r} is not allowed: one of {', '.join(PROTOCOLS)}")
        self.deployment = deployment
        self.topology = deployment.topology
        self.proto = proto
        self.hops: list[Hop] = []

    def netns(self, node: str) -> str | None:
        return lab.node_netns(self.deployment, node)

    def run(self, src: Node, dst: Node) -> list[Hop]:
        packet = self.origin(src, dst)
        src_host = self.topology.host(src.host)
        try:
            packet, tunnel_to = self.through_host(src_host, packet, arrived_from=None if src.is_host else src.name)
            if tunnel_to is not None:
                dst_host = self.topology.host(dst.host)
                packet = self.underlay(src_host, dst_host, packet)
                packet, _ = self.through_host(dst_host, packet, arrived_from="tunnel", sender=src_host)
        except _Dropped:
            return self.hops  # the hop that dropped it is the last
        self.hops.append(Hop(dst.name, f"delivered: {dst.address} is {dst.name}'s address", [], packet.headers()))
        return self.hops

    def run_arp(self, src: Node, dst: Node) -> list[Hop]:
        """The ARP `src` sends first on its way to `dst` (for its next hop), and who answers it."""
        with netstack.stack(self.netns(src.name)) as ipr:
            dev, nexthop = _lookup(ipr, dst.address)
            src_mac, (_, neigh) = _mac(ipr, dev), _neighbour(ipr, nexthop, dev)
            route = _route_text(ipr, dst.address)
            sender = ipr.route("get", dst=str(dst.address))[0].get("RTA_PREFSRC") or str(src.address)
        src = replace(src, address=IPv4Address(sender))  # the kernel asks from the route's source address
        asking = [f"Ether {src_mac} > ff:ff:ff:ff:ff:ff", f"ARP who-has {nexthop} tell {src.address} ({src_mac})"]
        self.hops.append(
            Hop(src.name, f"broadcasts ARP for its next hop {nexthop} on {dev}", [f"route: {route}", neigh], asking)
        )
        host = self.topology.host(src.host)
        if self.deployment.modes[host.name] == Mode.OVS:
            port = "LOCAL" if src.is_host else workload_ports(host)[src.name].name
            self.arp_through_switch(host, port, src, src_mac, nexthop)
        elif not src.is_host:
            answer = (
                ("the host answers: it is its address on " + host.bridge)
                if nexthop in (host.gateway, host.vxlan_address)
                else "forwarded to the port that holds it"
            )
            with netstack.stack(self.netns(host.name)) as ipr:
                mac = _mac(ipr, host.bridge)
            self.hops.append(
                Hop(
                    host.name,
                    f"{host.bridge} floods the broadcast to its ports and up to {host.name}'s stack; {answer}",
                    [],
                    [f"Ether {mac} > {src_mac}", f"ARP {nexthop} is-at {mac}"],
                )
            )
        else:
            with netstack.stack(self.netns(host.name)) as ipr:
                remote, fdb = _vxlan_remote(ipr, dev, None)
            peer = next(p for p in self.topology.peers(host) if str(p.vtep) == remote)
            self.hops.append(
                Hop(
                    host.name,
                    f"{dev} encapsulates the broadcast for VTEP {remote}: the ARP crosses the tunnel",
                    [fdb],
                    asking,
                )
            )
            if self.deployment.modes[peer.name] == Mode.OVS:
                self.arp_through_switch(
                    peer,
                    next(iter(tunnel_ports(self.topology, peer).values())).name,
                    src,
                    src_mac,
                    nexthop,
                    tunnel=True,
                )
            else:
                self.hops.append(
                    Hop(
                        peer.name,
                        f"{peer.vxlan} decapsulates it; {peer.name} answers: {nexthop} is its address on {peer.vxlan}",
                        [],
                        [f"ARP {nexthop} is-at <{peer.vxlan}'s MAC>, back through the tunnel"],
                    )
                )
        return self.hops

    def arp_through_switch(
        self, host: Host, port: str, src: Node, src_mac: str, nexthop: IPv4Address, tunnel: bool = False
    ) -> None:
        home = daemons.ovs_home(self.deployment, site_of(self.deployment, host.name))
        spec = (
            f"{f'tun_id={self.topology.vni:#x},' if tunnel else ''}in_port={port},arp,arp_op=1,"
            f"arp_spa={src.address},arp_tpa={nexthop},arp_sha={src_mac},dl_src={src_mac},"
            "dl_dst=ff:ff:ff:ff:ff:ff"
        )
        text = ofctl.tool(home, "ovs-appctl", "ofproto/trace", host.bridge, spec)
        generated = {f.cookie: f for f in generated_flows(self.deployment, site_of(self.deployment, host.name))}
        why, final = _read_trace(text, host.bridge, generated)
        answered = "arp_op=2" in ",".join(f"{k}={v}" for k, v in final.items())
        what = (
            f"the ARP responder answers in the datapath, back out of {port}"
            if answered
            else "the flows do not answer it"
        )
        headers = (
            [
                f"Ether {final.get('dl_src')} > {final.get('dl_dst')}",
                f"ARP {final.get('arp_spa')} is-at {final.get('arp_sha')}",
            ]
            if answered
            else []
        )
        self.hops.append(Hop(f"{host.name} ({host.bridge}, ovs)", what, why, headers))

    def origin(self, src: Node, dst: Node) -> Packet:
        """The source's own routing: which route, which device, which next hop, and its MAC."""
        with netstack.stack(self.netns(src.name)) as ipr:
            dev, nexthop = _lookup(ipr, dst.address)
            mac, neigh = _neighbour(ipr, nexthop, dev)
            route = _route_text(ipr, dst.address)
            packet = Packet(
                _mac(ipr, dev),
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

    def through_host(
        self, host: Host, packet: Packet, arrived_from: str | None, sender: Host | None = None
    ) -> tuple[Packet, str | None]:
        """What `host` does with the packet (from the tunnel: sent by `sender`); returns it and the peer it
        tunnels to (None: delivered here)."""
        if self.deployment.modes[host.name] == Mode.OVS:
            return self.through_switch(host, packet, arrived_from, sender)
        return self.through_kernel(host, packet, arrived_from)

    def through_kernel(self, host: Host, packet: Packet, arrived_from: str | None) -> tuple[Packet, str | None]:
        with netstack.stack(self.netns(host.name)) as ipr:
            why = []
            if arrived_from == "tunnel":
                owner = routed_vni_bridge(self.topology) if self.topology.evpn else host.vxlan
                why.append(
                    f"decapsulated by {host.vxlan} (VNI {self.topology.vni}, UDP {self.topology.port}); "
                    f"inner destination MAC {packet.eth_dst} is {owner}'s own"
                )
                iif = host.vxlan
            elif arrived_from is not None:
                why.append(_bridge_port(ipr, host.bridge, packet.eth_dst))
                iif = host.bridge
            else:
                iif = None
            local = packet.dst in (host.gateway, host.vxlan_address)
            if local:
                self.hops.append(Hop(host.name, "delivers to itself", why, packet.headers()))
                return packet, None
            dev, nexthop = _lookup(ipr, packet.dst, packet.src if iif else None, iif)
            why.append(f"route: {_route_text(ipr, packet.dst)}")
            ttl = packet.ttl - 1 if iif is not None else packet.ttl
            tunnel = routed_vni_bridge(self.topology) if self.topology.evpn else host.vxlan
            mac, neigh = _neighbour(ipr, nexthop, dev)
            why.append(
                neigh
                + (
                    " (through the tunnel: the ARP is encapsulated like any frame)"
                    if dev == host.vxlan and mac is None
                    else ""
                )
            )
            packet = replace(
                packet,
                eth_src=_mac(ipr, dev),
                eth_dst=mac or f"<MAC of {nexthop}>",
                ttl=ttl,
                unresolved=None if mac else nexthop,
            )
            if dev == tunnel:
                remote, fdb = _vxlan_remote(ipr, host.vxlan, mac)
                why.append(fdb)
                if self.topology.evpn:
                    why.append(self.evpn_route(host, packet.dst, remote))
                peer = next(p for p in self.topology.peers(host) if str(p.vtep) == remote)
                what = (
                    ("routes" if iif else "sends")
                    + f" into {host.vxlan}"
                    + (f", TTL {ttl}" if iif else "")
                    + f", towards VTEP {remote}"
                )
                self.hops.append(Hop(host.name, what, why, packet.headers()))
                return packet, peer.name
            why.append(
                _bridge_port(ipr, host.bridge, packet.eth_dst)
                if mac
                else f"the reply to that ARP teaches {host.bridge}'s FDB the port"
            )
            self.hops.append(Hop(host.name, f"routes onto {dev}, TTL {ttl}", why, packet.headers()))
            return packet, None

    def evpn_route(self, host: Host, dst: IPv4Address, remote: str) -> str:
        """The EVPN route behind a tunnel hop: the one FRR holds for `dst`'s subnet."""
        held = frr.routes(frr_home(self.deployment, site_of(self.deployment, host.name))) or []
        route = next((r for r in held if r.type == 5 and dst in ip_network(r.prefix) and r.origin != "local"), None)
        if route is None:
            return f"EVPN: {host.name}'s bgpd holds no route for {dst}"
        return f"EVPN: remote VTEP {remote} and its router MAC from the {route.describe()}, sent by {route.origin}"

    def through_switch(
        self, host: Host, packet: Packet, arrived_from: str | None, sender: Host | None = None
    ) -> tuple[Packet, str | None]:
        home = daemons.ovs_home(self.deployment, site_of(self.deployment, host.name))
        if arrived_from == "tunnel":  # by the sender's port (EVPN: the one port), from its VTEP
            assert sender is not None
            ports = tunnel_ports(self.topology, host)
            port = (ports.get(sender.name) or next(iter(ports.values()))).name
            tunnel = f"tun_id={self.topology.vni:#x},tun_src={sender.vtep},"
        elif arrived_from is None:
            port, tunnel = "LOCAL", ""
        else:
            port, tunnel = workload_ports(host)[arrived_from].name, ""
        match = {"icmp": "icmp", "tcp": f"tcp,tp_dst={PROBE_PORT}", "udp": f"udp,tp_dst={PROBE_PORT}"}[self.proto]
        why, eth_dst = [], packet.eth_dst
        if packet.unresolved is not None:  # the sender must ARP first; the switch answers with ovsvx's MAC
            eth_dst = mac_for(packet.unresolved)
            why.append(
                f"(the sender has not resolved {packet.unresolved} yet: the ARP responder will answer "
                f"{eth_dst}, so the packet is traced with that)"
            )
        spec = (
            f"{tunnel}in_port={port},{match},dl_src={packet.eth_src},dl_dst={eth_dst},"
            f"nw_src={packet.src},nw_dst={packet.dst},nw_ttl={packet.ttl}"
        )
        text = ofctl.tool(home, "ovs-appctl", "ofproto/trace", host.bridge, spec)
        generated = {f.cookie: f for f in generated_flows(self.deployment, site_of(self.deployment, host.name))}
        matched, final = _read_trace(text, host.bridge, generated)
        why += matched + _datapath_summary(text, ofctl.tool(home, "ovs-appctl", "dpctl/show"))
        packet = replace(
            packet,
            eth_src=final.get("dl_src", packet.eth_src),
            eth_dst=final.get("dl_dst", eth_dst),
            ttl=int(final.get("nw_ttl", packet.ttl)),
            unresolved=None,
        )
        if _datapath_actions(text) == "drop":
            self.hops.append(Hop(f"{host.name} ({host.bridge}, ovs)", "flows drop it here", why, packet.headers()))
            raise _Dropped
        peer = _tunnel_peer(matched, tunnel_ports(self.topology, host))
        if peer == "*":  # EVPN's one tunnel port: the peer is the host of the destination's subnet
            peer = next(h.name for h in self.topology.hosts if packet.dst in h.subnet)
        if peer is not None:
            remote = self.topology.host(peer).vtep
            self.hops.append(
                Hop(
                    f"{host.name} ({host.bridge}, ovs)",
                    f"flows send it into the tunnel to {remote}",
                    why,
                    packet.headers(),
                )
            )
            return packet, peer
        self.hops.append(
            Hop(f"{host.name} ({host.bridge}, ovs)", "flows deliver it on this host", why, packet.headers())
        )
        return packet, None

    def underlay(self, src_host: Host, dst_host: Host, packet: Packet) -> Packet:
        """The encapsulated packet between the VTEPs: the underlay's own route and neighbour."""
        with netstack.stack(self.netns(src_host.name)) as ipr:
            dev, nexthop = _lookup(ipr, dst_host.vtep)
            mac, neigh = _neighbour(ipr, nexthop, dev)
            own_mac = _mac(ipr, dev)
            why = [f"route: {_route_text(ipr, dst_host.vtep)}", neigh]
        esp = ""
        carried = f"VXLAN over UDP {self.topology.port}"
        if self.topology.encrypted:
            home = ipsec.home(self.deployment, site_of(self.deployment, src_host.name))
            spi = ipsec.out_spi(home, self.topology, dst_host)
            to = ipsec.child_names(self.topology, dst_host)[0]
            esp = f" / ESP spi {spi or '<none: no SA>'}"
            carried = f"ESP (transport mode) carrying {carried}"
            why.append(
                f"xfrm: charon's SA {to} encrypts it, spi {spi}"
                if spi
                else f"xfrm: no SA {to} yet: the packet starts IKE, and the kernel drops it meanwhile"
            )
        outer = (
            f"Ether {own_mac} > {mac or f'<MAC of {nexthop}>'} / IP {src_host.vtep} > "
            f"{dst_host.vtep}{esp} / UDP > {self.topology.port} / VXLAN vni {self.topology.vni}"
        )
        packet = replace(packet, outer=outer)
        where = f"{src_host.name} {dev} -> {dst_host.name} {dst_host.nic}"
        self.hops.append(Hop("underlay", f"{where}: {carried}", why, packet.headers()))
        return replace(packet, outer="")


_TABLE_LINE = re.compile(r"^\s*(\d+)\. (?:(.*?), )?priority (\d+)(?:, cookie (0x[0-9a-f]+))?$")  # no match: any


def _read_trace(text: str, bridge: str, generated: dict[int, flows.Flow]) -> tuple[list[str], dict[str, str]]:
    """The matched flows of `bridge` named by purpose, with their actions; and the final flow's fields."""
    lines: list[str] = []
    in_bridge = False
    final: dict[str, str] = {}
    for raw in text.splitlines():
        if raw.startswith("bridge("):
            in_bridge = raw == f'bridge("{bridge}")'
            continue
        if raw.startswith("Final flow:"):
            final = dict(part.split("=", 1) for part in raw.split(":", 1)[1].strip().split(",") if "=" in part)
            in_bridge = False  # what follows (megaflow, datapath actions) is OVS's summary
            continue
        if not in_bridge:
            continue
        table = _TABLE_LINE.match(raw)
        if table:
            number, match, priority, cookie = table.groups()
            known = flows.explain(int(cookie, 16), generated) if cookie else None
            name = ": ".join(known) if known else "not generated by ovsvx"
            info = flows.TABLES.get(int(number))
            lines.append(
                f"table {number} ({info.name if info else '?'}) {name} [{match or 'any'}, priority {priority}, "
                f"cookie {cookie or '0x0'}]"
            )
        elif raw.strip() and not raw.startswith("-"):
            lines.append("    " + raw.strip())
    return lines, final


_OUTPUT_ACTION = re.compile(r"^\s*output:(\d+)$")


def _tunnel_peer(matched: list[str], tunnels: dict[str, Port]) -> str | None:
    """The peer whose tunnel port the matched flows output to, if any (by OpenFlow port number, which
    the switch plan fixes; both datapaths print it the same way)."""
    by_ofport = {port.ofport: peer for peer, port in tunnels.items()}
    for line in matched:
        found = _OUTPUT_ACTION.match(line)
        if found and int(found.group(1)) in by_ofport:
            return by_ofport[int(found.group(1))]
    return None


_DATAPATH_PORT = re.compile(r"^\s*port (\d+): (\S+)", re.MULTILINE)
_OUTPUT = re.compile(r"(?:out_port\((\d+)\)|(?:^|,)(\d+)(?=,|$))")


def _datapath_actions(trace: str) -> str | None:
    """ofproto/trace's "Datapath actions" line: what the datapath does with the packet ("drop", or a list)."""
    lines = trace.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Datapath actions:")), None)


def _datapath_summary(trace: str, dpctl_show: str) -> list[str]:
    """What the datapath itself does with the packet (ofproto/trace's "Datapath actions"), its output ports
    named from `dpctl/show`: the kernel datapath's tunnel is its vxlan_sys_4789 device, the userspace
    datapath's a tnl_push out of br-phy."""
    actions = _datapath_actions(trace)
    if actions is None:
        return []
    datapath = dpctl_show.splitlines()[0].rstrip(":") if dpctl_show.strip() else "datapath"
    ports = dict(_DATAPATH_PORT.findall(dpctl_show))
    outputs = [ports.get(a or b, a or b) for a, b in _OUTPUT.findall(actions)]
    return [f"datapath {datapath}: {actions}" + (f" (out: {', '.join(outputs)})" if outputs else "")]


def run(deployment: Deployment, src_name: str, dst_name: str, proto: str = "icmp") -> list[Hop]:
    src, dst = find_node(deployment.topology, src_name), find_node(deployment.topology, dst_name)
    if src == dst:
        raise UsageError("trace needs two different nodes")
    tracer = Tracer(deployment, proto)
    return tracer.run_arp(src, dst) if proto == "arp" else tracer.run(src, dst)


def to_json(hops: list[Hop]) -> list[dict[str, Any]]:
    return [asdict(h) for h in hops]
