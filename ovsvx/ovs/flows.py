"""OpenFlow 1.3 flows for ovs mode, generated from the topology, and the flow files rendered from them.

The flows reproduce the tutorial's kernel routing hop for hop, with no
packet-in on the way:

* ARP is answered in the datapath (the gateway, this host's vxlan address, the
  namespaces, and the peers' vxlan addresses for the host's own onlink route);
  ARP that arrives from the tunnel is answered only for this host's vxlan
  address, as a kernel-mode peer asks for it.
* What a namespace sends to a peer's subnet is routed: TTL - 1, source MAC =
  this host's vxlan MAC, destination MAC = the peer's vxlan MAC, into the
  tunnel, exactly as the kernel's vxlan1 sends it.  The peer's MAC is the
  one ovsvx gives it, unless the switch has learned another from the peer's
  own ARP through the tunnel (a peer built by hand with the tutorial's
  commands has a random one).  Until one is learned, the packet is also
  copied to the controller, which asks the peer with an ARP request, as the
  kernel's neighbour code would.
* What arrives from the tunnel for a namespace is routed again: TTL - 1,
  source MAC = the gateway's, destination MAC = the namespace's.
* The host's own traffic (the bridge's internal port, LOCAL) reaches the
  namespaces and the peers as it does in kernel mode, without a TTL change.
* Everything else is dropped by a priority-0 flow in each table, whose packet
  counter shows what was dropped where.
* Under EVPN (control = "evpn") the peers are not the topology's: they are the
  type-5 routes the controller's BGP speaker holds (`EvpnPeer`), each with its
  VTEP, set per packet on the one flow-based tunnel port, and its router MAC.
  Nothing is learned and no peer is asked: the route says it all.  The port
  takes packets only from the VTEPs the routes name: any other sender of the
  underlay is dropped in table 0.

Each flow is an `openflow.Flow` in one of `tables`' tables, its cookie naming its purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from ovsvx.errors import UsageError
from ovsvx.model.bgp import BgpView, EvpnRoute
from ovsvx.model.topology import Host, Namespace, Topology, mac_for
from ovsvx.ovs.openflow import (
    TUNNEL_DST,
    TUNNEL_SRC,
    Action,
    DecTtl,
    Flow,
    Goto,
    LearnPeerMac,
    Move,
    Output,
    SetField,
    check,
    learned_cookie,
)
from ovsvx.ovs.switch import evpn_tunnel_port, tunnel_ports, workload_ports
from ovsvx.ovs.tables import (
    ARP,
    ARP_REPLY,
    ARP_REQUEST,
    CLASSIFY,
    CONTROLLER,
    ETH_ARP,
    ETH_IP,
    FROM_HOST,
    FROM_TUNNEL,
    FROM_WORKLOAD,
    IN_PORT,
    LOCAL,
    TABLES,
    TO_PEER,
    Purpose,
)


def _arp_reply(address: IPv4Address, mac: str) -> tuple[Action, ...]:
    """Turn an ARP request into the reply for `address` and send it back where it came from."""
    return (
        Move("eth_src", "eth_dst", 48),
        SetField("eth_src", mac),
        SetField("arp_op", ARP_REPLY),
        Move("arp_sha", "arp_tha", 48),
        Move("arp_spa", "arp_tpa", 32),
        SetField("arp_sha", mac),
        SetField("arp_spa", str(address)),
        Output(IN_PORT),
    )


def _arp(address: IPv4Address, mac: str, note: str, in_port: str | None = None, priority: int = 100) -> Flow:
    match: list[tuple[str, str | int]] = [("in_port", in_port)] if in_port else []
    match += [("eth_type", ETH_ARP), ("arp_op", ARP_REQUEST), ("arp_tpa", str(address))]
    return Flow(ARP, priority, tuple(match), _arp_reply(address, mac), Purpose.ARP_RESPONDER, note)


def _ip_to(
    table: int, dst: IPv4Address | IPv4Network, actions: tuple[Action, ...], purpose: Purpose, note: str
) -> Flow:
    priority = 200 if isinstance(dst, IPv4Address) else 100
    return Flow(table, priority, (("eth_type", ETH_IP), ("ipv4_dst", str(dst))), actions, purpose, note)


def _classify(port: str, ip_table: int, what: str) -> list[Flow]:
    return [
        Flow(
            CLASSIFY,
            100,
            (("in_port", port), ("eth_type", ETH_ARP)),
            (Goto(ARP),),
            Purpose.CLASSIFY,
            f"ARP from {what}",
        ),
        _classify_ip(port, ip_table, what),
    ]


def _classify_ip(port: str, ip_table: int, what: str) -> Flow:
    return Flow(
        CLASSIFY,
        100,
        (("in_port", port), ("eth_type", ETH_IP)),
        (Goto(ip_table),),
        Purpose.CLASSIFY,
        f"IPv4 from {what}",
    )


@dataclass(frozen=True)
class EvpnPeer:
    """A remote subnet as an EVPN type-5 route gives it: behind `vtep`, routed to `router_mac`."""

    subnet: IPv4Network
    vtep: IPv4Address
    router_mac: str


def route_of(peer: EvpnPeer) -> EvpnRoute:
    """A received route as status shows it."""
    vtep = str(peer.vtep)
    return EvpnRoute(5, str(peer.subnet), vtep, peer.router_mac, vtep)


def peers_of(view: BgpView) -> tuple[EvpnPeer, ...]:
    """The peers a speaker's routes name: what the flows were generated from."""
    return tuple(
        EvpnPeer(IPv4Network(r.prefix), IPv4Address(r.vtep), r.router_mac)
        for r in sorted(view.routes, key=lambda r: IPv4Network(r.prefix))
    )


def host_flows(topology: Topology, host: Host, evpn_peers: tuple[EvpnPeer, ...] = ()) -> tuple[Flow, ...]:
    """Every flow `host`'s bridge needs in ovs mode, in canonical order.  Under EVPN the peers are the
    routes the controller's BGP speaker holds (`evpn_peers`), not the topology's other hosts."""
    workloads = [(ns, port.name) for ns, port in zip(host.namespaces, workload_ports(host).values(), strict=True)]
    flows = _own_flows(host, workloads)
    flows += _evpn_flows(topology, host, evpn_peers) if topology.evpn else _static_peer_flows(topology, host)
    flows += [Flow(t, 0, (), (), Purpose.DROP, f"anything else in {TABLES[t].name}") for t in TABLES]
    check(flows)
    return tuple(sorted(flows, key=lambda f: (f.table, -f.priority, f.text)))


def _own_flows(host: Host, workloads: list[tuple[Namespace, str]]) -> list[Flow]:
    """What does not depend on the peers: the host, its namespaces, and delivery from the tunnel."""
    gateway_mac = mac_for(host.gateway)
    own_mac = mac_for(host.vxlan_address)
    to_host = (SetField("eth_dst", gateway_mac), Output(LOCAL))
    flows: list[Flow] = []
    for ns, port in workloads:
        flows += _classify(port, FROM_WORKLOAD, f"namespace {ns.name}")
    flows += _classify(LOCAL, FROM_HOST, f"the host {host.name}")
    flows.append(_arp(host.gateway, gateway_mac, "the gateway"))
    flows.append(_arp(host.vxlan_address, own_mac, f"{host.name}'s vxlan address"))
    flows += [_arp(ns.address, mac_for(ns.address), f"namespace {ns.name}") for ns, _ in workloads]
    flows.append(_ip_to(FROM_WORKLOAD, host.gateway, (Output(LOCAL),), Purpose.TO_HOST, "to the gateway"))
    flows.append(_ip_to(FROM_WORKLOAD, host.vxlan_address, to_host, Purpose.TO_HOST, "to the vxlan address"))
    for ns, port in workloads:
        flows.append(
            _ip_to(
                FROM_WORKLOAD,
                ns.address,
                (Output(port),),
                Purpose.LOCAL_L2,
                f"to namespace {ns.name} on the same bridge",
            )
        )
        flows.append(_ip_to(FROM_HOST, ns.address, (Output(port),), Purpose.LOCAL_L2, f"to namespace {ns.name}"))
        flows.append(
            _ip_to(
                FROM_TUNNEL,
                ns.address,
                (
                    DecTtl(),
                    SetField("eth_src", gateway_mac),
                    SetField("eth_dst", mac_for(ns.address)),
                    Output(port),
                ),
                Purpose.ROUTE_IN,
                f"routed to namespace {ns.name}",
            )
        )
    flows.append(_ip_to(FROM_TUNNEL, host.gateway, to_host, Purpose.TO_HOST, "to the gateway"))
    flows.append(_ip_to(FROM_TUNNEL, host.vxlan_address, to_host, Purpose.TO_HOST, "to the vxlan address"))
    return flows


def _towards(table: int, subnet: IPv4Network, own_mac: str, who: str) -> Flow:
    """Into TO_PEER from a namespace (routed: TTL - 1) or from the host itself, with this host's router
    MAC as the source, as its vxlan device would send it."""
    towards = (SetField("eth_src", own_mac), Goto(TO_PEER))
    if table == FROM_WORKLOAD:
        return _ip_to(table, subnet, (DecTtl(), *towards), Purpose.ROUTE_OUT, f"routed towards {who}")
    return _ip_to(table, subnet, towards, Purpose.HOST_OUT, f"towards {who}")


def _static_peer_flows(topology: Topology, host: Host) -> list[Flow]:
    """The peers of the topology: one tunnel port each, their router MACs learned from their ARP."""
    own_mac = mac_for(host.vxlan_address)
    tunnels = [(peer, tunnel_ports(topology, host)[peer.name].name) for peer in topology.peers(host)]
    flows: list[Flow] = []
    for peer, port in tunnels:
        flows += _classify(port, FROM_TUNNEL, f"the tunnel from {peer.name}")
    for index, (peer, port) in enumerate(tunnels):
        learn = LearnPeerMac(TO_PEER, 200, learned_cookie(index), peer.subnet)
        flows.append(
            _arp(
                peer.vxlan_address,
                mac_for(peer.vxlan_address),
                f"{peer.name}'s vxlan address (the host's onlink next hop)",
            )
        )
        asks = _arp(
            host.vxlan_address,
            own_mac,
            f"{peer.name} asks for {host.name}'s vxlan address: answer, and learn its MAC",
            in_port=port,
            priority=110,
        )
        flows.append(
            Flow(
                ARP,
                110,
                (*asks.match, ("arp_spa", str(peer.vxlan_address))),
                (learn, *asks.actions),
                Purpose.ARP_RESPONDER,
                asks.note,
            )
        )
        flows.append(
            Flow(
                ARP,
                110,
                (
                    ("in_port", port),
                    ("eth_type", ETH_ARP),
                    ("arp_op", ARP_REPLY),
                    ("arp_spa", str(peer.vxlan_address)),
                    ("arp_tpa", str(host.vxlan_address)),
                ),
                (learn,),
                Purpose.TO_PEER,
                f"{peer.name} answers for its vxlan address: learn its MAC",
            )
        )
        flows.append(
            Flow(
                ARP,
                105,
                (("in_port", port), ("eth_type", ETH_ARP)),
                (),
                Purpose.DROP,
                f"any other ARP from the tunnel from {peer.name}",
            )
        )

    for peer, port in tunnels:
        flows.append(_towards(FROM_WORKLOAD, peer.subnet, own_mac, peer.name))
        flows.append(_towards(FROM_HOST, peer.subnet, own_mac, peer.name))
        flows.append(
            _ip_to(
                TO_PEER,
                peer.subnet,
                (
                    SetField("eth_dst", mac_for(peer.vxlan_address)),
                    Output(port),
                    Output(CONTROLLER),
                ),
                Purpose.TO_PEER,
                f"{peer.name}'s router MAC as ovsvx sets it, until one is learned (and ask the "
                "controller to ARP for it)",
            )
        )
    return flows


def _evpn_flows(topology: Topology, host: Host, peers: tuple[EvpnPeer, ...]) -> list[Flow]:
    """The peers EVPN's type-5 routes give: one flow-based tunnel port for all, the route's VTEP set per
    packet and its router MAC as the destination; the port takes packets only from those VTEPs.  The
    host's own routes to a peer's subnet go via the peer's VTEP, onlink on the bridge (as FRR writes them
    in kernel mode), so the switch answers ARP for that VTEP from the host."""
    own_mac = mac_for(host.vxlan_address)
    port = evpn_tunnel_port(topology, host).name
    flows: list[Flow] = []
    for vtep in sorted({peer.vtep for peer in peers}):  # a VTEP no route names is dropped in table 0
        tunnel = _classify_ip(port, FROM_TUNNEL, f"the tunnel from VTEP {vtep}, which BGP announced")
        flows.append(replace(tunnel, match=(*tunnel.match, (TUNNEL_SRC, str(vtep)))))
    for peer in peers:
        who = f"{peer.subnet} (VTEP {peer.vtep}, EVPN)"
        flows.append(_arp(peer.vtep, peer.router_mac, f"VTEP {peer.vtep}, the host's onlink next hop", LOCAL, 90))
        flows.append(_towards(FROM_WORKLOAD, peer.subnet, own_mac, who))
        flows.append(_towards(FROM_HOST, peer.subnet, own_mac, who))
        flows.append(
            _ip_to(
                TO_PEER,
                peer.subnet,
                (SetField("eth_dst", peer.router_mac), SetField(TUNNEL_DST, str(peer.vtep)), Output(port)),
                Purpose.TO_PEER,
                f"the router MAC and VTEP of the type-5 route of {peer.subnet}",
            )
        )
    return flows


def render_file(topology: Topology, host: Host) -> str:
    """The host's flows as an `ovs-ofctl add-flows` file, grouped by table with a comment per flow."""
    lines = [
        f"# ovsvx flows for {host.name}'s bridge {host.bridge} (OpenFlow 1.3), generated from the topology.",
        f"# Load with: ovs-ofctl -O OpenFlow13 replace-flows {host.bridge} {host.name}.flows",
        "# Regenerate with: ovsvx flows --render (never edit by hand).",
    ]
    table = None
    for flow in host_flows(topology, host):
        if flow.table != table:
            table = flow.table
            info = TABLES[table]
            lines += ["", f"# table {info.id} ({info.name}): {info.does}"]
        lines.append(f"# {flow.purpose.label}: {flow.note}")
        lines.append(flow.line)
    return "\n".join(lines) + "\n"


def write_files(topology: Topology, folder: Path, host: str | None = None) -> list[Path]:
    """Write each host's (or only `host`'s) flows as an ovs-ofctl file, for --no-controller."""
    if topology.evpn:
        raise UsageError(
            'flows files are for --no-controller, which control = "evpn" does not allow: '
            "the controller makes the flows from the BGP routes it receives"
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for h in [topology.host(host)] if host else topology.hosts:
        path = folder / f"{h.name}.flows"
        path.write_text(render_file(topology, h))
        written.append(path)
    return written
