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
ovsvx did not make (`evpnspeaker.HostRoutes`).  That is os-ken's speaker,
in ovs mode, which logs each refusal and counts it for `status`.

FRR, in kernel mode, is given the prefix rules as a prefix-list and a
route-map on its reflector sessions (`frr_policy`).  Its route-maps cannot
test an EVPN route's next hop (`match ip next-hop` matched none on FRR 8.4,
host1's good route included), so the next-hop rule is the speaker's alone;
what FRR has there is its next-hop tracking, which by default resolves a
next hop through no default route (not exercised by the suite).  bgpd keeps
no count of what its route-map denied, so only ovs-mode hosts count.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ovsvx.topology import Host, Topology, usable

ROUTE_MAP = "ovsvx-evpn-in"  # FRR: what a host takes from its reflectors
REFUSED_PREFIXES = "ovsvx-not-overlay"  # FRR: prefixes no overlay route may have


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


def refused_prefixes(topology: Topology, host: Host) -> list[tuple[IPv4Network, int]]:
    """The prefixes `refusal` turns down, as prefix-list entries (a prefix, and the longest length it
    covers): the default route, each network around or inside the underlay and the host's subnet."""
    entries: list[tuple[IPv4Network, int]] = [(IPv4Network("0.0.0.0/0"), 0)]
    for network in (topology.underlay, host.subnet):
        entries += [(network.supernet(new_prefix=length), length) for length in range(1, network.prefixlen)]
        entries.append((network, 32))  # the network itself and everything inside it
    return entries


def frr_policy(topology: Topology, host: Host) -> list[str]:
    """bgpd's configuration lines for `refusal`'s rules on prefixes: a prefix-list of what no overlay
    route may be, and the route-map that the reflector sessions apply to what comes in.  Routes of other
    types (FRR's own bookkeeping of the VNI) pass untouched."""
    lines = []
    for seq, (network, longest) in enumerate(refused_prefixes(topology, host), start=1):
        covers = f" le {longest}" if longest > network.prefixlen else ""
        lines.append(f"ip prefix-list {REFUSED_PREFIXES} seq {seq * 5} permit {network}{covers}")
    lines += [
        f"route-map {ROUTE_MAP} deny 10",
        " match evpn route-type prefix",
        f" match ip address prefix-list {REFUSED_PREFIXES}",
        "exit",
        f"route-map {ROUTE_MAP} permit 20",
        "exit",
    ]
    return lines
