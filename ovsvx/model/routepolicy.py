"""Which EVPN routes a host takes: only what an overlay route can be.

Any iBGP speaker that reaches a route reflector (with the password, where
there is one) can announce any prefix through it.  A host that installed
whatever came would give a rogue speaker its default route, its way to the
other VTEPs, or its own workloads.  So a type-5 route is taken only when

- its prefix is not the default route (/0);
- it neither lies inside the underlay nor contains it: the VTEPs are reached
  directly, never through the overlay;
- it neither lies inside this host's own subnet nor contains it;
- its next hop, the peer's VTEP, is a host address of the underlay;

and, where it becomes a route in the host's table, it never replaces a route
ovsvx did not make (`evpnroutes.HostRoutes`).  That is os-ken's speaker,
in ovs mode, which logs each refusal and counts it for `status`.

FRR, in kernel mode, holds every route to all of these rules in zebra, where
a route from BGP becomes a route of the host (`frr_policy`): a route-map on
what zebra takes from bgpd (`ip protocol bgp route-map`) denies the prefixes
and admits only next hops that are host addresses of the underlay (as IPv4,
or mapped into IPv6, as FRR's EVPN `network` statements send them); a denied
route stays in FRR's tables, inactive, and never reaches the kernel.  bgpd's
own inbound route-maps were tried first and do not work here: on FRR 8.4
`match ip address prefix-list` matches no EVPN route, so a rogue speaker's
default route was installed (`tests/lab/test_evpn_lab.py -k rogue`).  FRR
logs no refusal; `frr.refused_routes` reads them back from zebra for status.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from ovsvx.model.topology import Host, Topology, usable

ROUTE_MAP = "ovsvx-evpn-in"  # zebra: which routes from BGP the host takes
REFUSED_PREFIXES = "ovsvx-not-overlay"  # prefixes no overlay route may have
VTEPS = "ovsvx-vteps"  # next hops an overlay route may have: the underlay's host addresses (IPv4, and IPv6-mapped)


def refusal(topology: Topology, host: Host, prefix: IPv4Network, vtep: IPv4Address) -> str | None:
    """Why `host` refuses a type-5 route of `prefix` via `vtep`; None when it takes it."""
    if prefix.prefixlen == 0:
        return "the default route is never an overlay route"
    for what, network in (("the underlay", topology.underlay), ("this host's subnet", host.subnet)):
        if prefix.overlaps(network):
            where = "inside" if prefix.subnet_of(network) else "around"
            return f"{prefix} lies {where} {what} {network}"
    if not usable(vtep, topology.underlay):
        return f"its next hop {vtep} is not a host address of the underlay {topology.underlay}"
    return None


def vtep_of(next_hop: str | None) -> IPv4Address | None:
    """A route's next hop as the VTEP it names: an IPv4 address, or one mapped into IPv6 (`::ffff:a.b.c.d`,
    as FRR sends the routes of an EVPN `network` statement); None for anything else."""
    try:
        address = ip_address(next_hop or "")
    except ValueError:
        return None
    return address.ipv4_mapped if isinstance(address, IPv6Address) else address


def refused_prefixes(topology: Topology, host: Host) -> list[tuple[IPv4Network, int]]:
    """The prefixes `refusal` turns down, as prefix-list entries (a prefix, and the longest length it
    covers): the default route, each network around or inside the underlay and the host's subnet."""
    entries: list[tuple[IPv4Network, int]] = [(IPv4Network("0.0.0.0/0"), 0)]
    for network in (topology.underlay, host.subnet):
        entries += [(network.supernet(new_prefix=length), length) for length in range(1, network.prefixlen)]
        entries.append((network, 32))  # the network itself and everything inside it
    return entries


def frr_policy(topology: Topology, host: Host) -> list[str]:
    """zebra's configuration lines for `refusal`'s rules: a prefix-list of what no overlay route may be,
    one of the next hops it may have, and the route-map zebra holds every route from bgpd to."""
    lines = []
    for seq, (network, longest) in enumerate(refused_prefixes(topology, host), start=1):
        covers = f" le {longest}" if longest > network.prefixlen else ""
        lines.append(f"ip prefix-list {REFUSED_PREFIXES} seq {seq * 5} permit {network}{covers}")
    underlay = topology.underlay
    for family, mapped, bits in (("ip", "", 0), ("ipv6", "::ffff:", 96)):  # a next hop comes in either form
        lines += [
            f"{family} prefix-list {VTEPS} seq 5 deny {mapped}{underlay.network_address}/{bits + 32}",
            f"{family} prefix-list {VTEPS} seq 10 deny {mapped}{underlay.broadcast_address}/{bits + 32}",
            f"{family} prefix-list {VTEPS} seq 15 permit {mapped}{underlay.network_address}/"
            f"{bits + underlay.prefixlen} ge {bits + 32}",
        ]
    lines += [
        f"route-map {ROUTE_MAP} deny 10",
        f" match ip address prefix-list {REFUSED_PREFIXES}",
        "exit",
        f"route-map {ROUTE_MAP} permit 20",
        f" match ip next-hop prefix-list {VTEPS}",
        "exit",
        f"route-map {ROUTE_MAP} permit 25",
        f" match ipv6 next-hop prefix-list {VTEPS}",
        "exit",
        f"route-map {ROUTE_MAP} deny 30",
        "exit",
        f"ip protocol bgp route-map {ROUTE_MAP}",
    ]
    return lines
