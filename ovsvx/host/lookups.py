"""Reading a network stack's forwarding decisions, as the kernel makes them: the route a lookup picks,
the neighbour entry of its next hop, a bridge's and a vxlan device's FDB entries (pyroute2).

`trace` explains each hop with these, in whatever mode the host is.
"""

from __future__ import annotations

from ipaddress import IPv4Address, ip_network
from socket import AF_INET
from typing import Any

from ovsvx.host.netlink import fdb_entries
from ovsvx.host.netstack import NUD_PERMANENT, NUD_STATES, RT_TABLE_MAIN
from ovsvx.host.plan import ZERO_MAC
from ovsvx.host.routes import RTNH_F_ONLINK

#: The kernel's own route protocols (rtnetlink.h): `ip route` prints "proto kernel" and hides boot and static.
RTPROT_KERNEL, RTPROT_BOOT, RTPROT_STATIC = 2, 3, 4


def _proto_text(proto: int) -> str:
    if proto == RTPROT_KERNEL:
        return " proto kernel"
    return "" if proto in (RTPROT_BOOT, RTPROT_STATIC) else f" proto {proto}"


def ifname(ipr: Any, index: int | None) -> str:
    if index is None:
        return "?"
    found = ipr.get_links(index)
    return found[0].get("IFLA_IFNAME") if found else str(index)


def mac(ipr: Any, name: str) -> str:
    found = ipr.link_lookup(ifname=name)
    return ipr.get_links(found[0])[0].get("IFLA_ADDRESS") if found else "?"


def route_text(ipr: Any, dst: IPv4Address) -> str:
    """The table entry a lookup for dst uses (longest prefix), as `ip route` prints it."""
    best: tuple[int, str] | None = None
    for route in ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN):
        net = ip_network(f"{route.get('RTA_DST') or '0.0.0.0'}/{route['dst_len']}")
        if dst in net and (best is None or net.prefixlen > best[0]):
            text = "default" if net.prefixlen == 0 else str(net)
            if route.get("RTA_GATEWAY"):
                text += f" via {route.get('RTA_GATEWAY')}"
            text += f" dev {ifname(ipr, route.get('RTA_OIF'))}"
            text += " onlink" if route["flags"] & RTNH_F_ONLINK else ""
            text += _proto_text(route["proto"])
            best = (net.prefixlen, text)
    return best[1] if best else "no route"


def lookup(
    ipr: Any, dst: IPv4Address, src: IPv4Address | None = None, iif: str | None = None
) -> tuple[str, IPv4Address]:
    """(output device, next hop) of a route lookup, as the kernel resolves it."""
    args: dict[str, Any] = {"dst": str(dst)}
    if iif is not None and src is not None:
        args.update(src=str(src), iif=ipr.link_lookup(ifname=iif)[0])
    result = ipr.route("get", **args)[0]
    gateway = result.get("RTA_GATEWAY")
    return ifname(ipr, result.get("RTA_OIF")), IPv4Address(gateway) if gateway else dst


def neighbour(ipr: Any, address: IPv4Address, dev: str) -> tuple[str | None, str]:
    """(MAC, description) of the neighbour entry for address on dev, or the ARP that is needed."""
    index = ipr.link_lookup(ifname=dev)
    for entry in ipr.get_neighbours(family=AF_INET):
        if entry.get("NDA_DST") == str(address) and index and entry["ifindex"] == index[0]:
            state = NUD_STATES.get(entry["state"], hex(entry["state"]))
            mac = entry.get("NDA_LLADDR")
            if mac and state not in ("INCOMPLETE", "FAILED"):
                return mac, f"neighbour: {address} dev {dev} lladdr {mac} {state}"
    return None, f"neighbour: none for {address} on {dev}: ARP who-has {address} first"


def bridge_port(ipr: Any, bridge: str, mac: str) -> str:
    """Which port of a Linux bridge a destination MAC leaves by, from its FDB."""
    index = ipr.link_lookup(ifname=bridge)[0]
    for entry in ipr.fdb("dump"):
        if entry.get("NDA_LLADDR") == mac and entry.get("NDA_MASTER") == index:
            port = ifname(ipr, entry["ifindex"])
            own = " permanent: the bridge's own MAC (it takes its port's), so up to the host's routing"
            return f"fdb: {mac} dev {port} master {bridge}" + (own if entry["state"] & NUD_PERMANENT else "")
        if entry.get("NDA_LLADDR") == mac and entry["ifindex"] == index:
            return f"fdb: {mac} dev {bridge} self: the bridge's own MAC, up to the host's routing"
    return f"fdb: {mac} not learned on {bridge}: flooded to every port"


def vxlan_remote(ipr: Any, vxlan: str, mac: str | None) -> tuple[str, str]:
    """(remote VTEP, description) from the vxlan device's FDB: the MAC's own entry, else all-zero."""
    entries = [e for e in fdb_entries(ipr, ipr.link_lookup(ifname=vxlan)[0]) if e.get("NDA_DST")]
    for wanted in ([mac] if mac else []) + [ZERO_MAC]:
        for entry in entries:
            if entry.get("NDA_LLADDR") == wanted:
                remote = entry.get("NDA_DST")
                note = " (the all-zero default: unknown and broadcast go here)" if wanted == ZERO_MAC else ""
                return remote, f"vxlan fdb: {wanted} dev {vxlan} dst {remote}{note}"
    return "?", f"vxlan fdb: no entry on {vxlan} for {mac}: dropped"
