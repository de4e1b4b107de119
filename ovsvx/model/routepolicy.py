"""Which EVPN routes a host takes: only what an overlay route can be.

Any iBGP speaker that reaches a route reflector (with the password, where
there is one) can announce any prefix through it.  A host that installed
whatever came would give a rogue speaker its default route, its way to the
other VTEPs, its cloud's metadata service, or its own workloads.  So the
policy is positive: a type-5 route is taken only when

- its prefix is not the default route (/0), and nothing that is never routed
  (loopback, link-local, multicast, 0.0.0.0/8, 240.0.0.0/4: `NEVER_ROUTED`);
- it neither lies inside the underlay nor contains it (the VTEPs are reached
  directly, never through the overlay), nor this host's own subnet;
- it lies inside the overlay's range (`bgp.accept`; by default the smallest
  network that covers the topology's subnets) and is no longer than
  `bgp.max_prefixlen`;
- its next hop, the peer's VTEP, is a host address of the underlay;
- it neither lies inside nor covers a route of the host's that ovsvx did not
  make (a more specific route would win over it, a covering one would catch
  what it misses);

and no session brings more than `bgp.max_prefixes` routes: a speaker that
sends more loses its session at the reflector (FRR's `maximum-prefix`), and
os-ken's speaker takes no more than that many, refusing and counting the rest.

os-ken's speaker, in ovs mode, asks `refusal` of each route and logs and
counts each refusal for `status`.  FRR, in kernel mode, holds every route to
the same rules in zebra, where a route from BGP becomes a route of the host
(`frr_policy`): a route-map on what zebra takes from bgpd (`ip protocol bgp
route-map`) denies what may never be taken, then admits only prefixes of the
overlay's range with next hops that are host addresses of the underlay (as
IPv4, or mapped into IPv6, as FRR's EVPN `network` statements send them); a
denied route stays in FRR's tables, inactive, and never reaches the kernel.
The host's foreign routes are read when its configuration is made (deploy,
and so the agent, which hears the routes change).  bgpd's own inbound
route-maps were tried first and do not work here: on FRR 8.4 `match ip
address prefix-list` matches no EVPN route, so a rogue speaker's default
route was installed (`tests/lab/test_evpn_lab.py -k rogue`).  FRR logs no
refusal; `frr.refused_routes` reads them back from zebra for status.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, ip_address

from ovsvx.model.topology import NEVER_ROUTED, Host, Topology, usable

ROUTE_MAP = "ovsvx-evpn-in"  # zebra: which routes from BGP the host takes
REFUSED_PREFIXES = "ovsvx-not-overlay"  # prefixes no overlay route may have
OVERLAY_RANGE = "ovsvx-overlay"  # prefixes an overlay route may have: inside bgp.accept, up to bgp.max_prefixlen
VTEPS = "ovsvx-vteps"  # next hops an overlay route may have: the underlay's host addresses (IPv4, and IPv6-mapped)


def refusal(
    topology: Topology,
    host: Host,
    prefix: IPv4Network,
    vtep: IPv4Address,
    foreign: Sequence[IPv4Network] = (),
) -> str | None:
    """Why `host` refuses a type-5 route of `prefix` via `vtep`, given the routes of the host's that ovsvx
    did not make (`foreign`); None when it takes it."""
    if prefix.prefixlen == 0:
        return "the default route is never an overlay route"
    for reserved, what in NEVER_ROUTED.items():
        if prefix.overlaps(reserved):
            return f"{prefix} overlaps {reserved}, {what}: never an overlay route"
    for what, network in (("the underlay", topology.underlay), ("this host's subnet", host.subnet)):
        if prefix.overlaps(network):
            return f"{prefix} lies {_where(prefix, network)} {what} {network}"
    if not any(prefix.subnet_of(network) for network in topology.overlay_range):
        return f"{prefix} lies outside the overlay's range {', '.join(map(str, topology.overlay_range))} (bgp.accept)"
    assert topology.bgp is not None
    if prefix.prefixlen > topology.bgp.max_prefixlen:
        return f"{prefix} is longer than /{topology.bgp.max_prefixlen} (bgp.max_prefixlen)"
    if not usable(vtep, topology.underlay):
        return f"its next hop {vtep} is not a host address of the underlay {topology.underlay}"
    for route in foreign:
        if prefix.overlaps(route):
            return f"{prefix} lies {_where(prefix, route)} {route}, a route ovsvx did not make"
    return None


def _where(prefix: IPv4Network, network: IPv4Network) -> str:
    return "inside" if prefix.subnet_of(network) else "around"


def in_range(topology: Topology, routes: Sequence[IPv4Network]) -> tuple[IPv4Network, ...]:
    """Those of `routes` a route of the overlay could shadow or cover: inside or around its range, and
    not the default route (which every route is more specific than)."""
    return tuple(r for r in routes if r.prefixlen > 0 and any(r.overlaps(n) for n in topology.overlay_range))


def vtep_of(next_hop: str | None) -> IPv4Address | None:
    """A route's next hop as the VTEP it names: an IPv4 address, or one mapped into IPv6 (`::ffff:a.b.c.d`,
    as FRR sends the routes of an EVPN `network` statement); None for anything else."""
    try:
        address = ip_address(next_hop or "")
    except ValueError:
        return None
    return address.ipv4_mapped if isinstance(address, IPv6Address) else address


def refused_prefixes(
    topology: Topology, host: Host, foreign: Sequence[IPv4Network] = ()
) -> list[tuple[IPv4Network, int]]:
    """The prefixes `refusal` turns down whatever the range, as prefix-list entries (a prefix, and the
    longest length it covers): the default route; each network that is never routed, the underlay, the
    host's subnet and its foreign routes, with everything inside it and each network around it."""
    entries: list[tuple[IPv4Network, int]] = [(IPv4Network("0.0.0.0/0"), 0)]
    for network in (*NEVER_ROUTED, topology.underlay, host.subnet, *foreign):
        entries += [(network.supernet(new_prefix=length), length) for length in range(1, network.prefixlen)]
        entries.append((network, 32))  # the network itself and everything inside it
    return list(dict.fromkeys(entries))  # a supernet two networks share is listed once


def frr_policy(topology: Topology, host: Host, foreign: Sequence[IPv4Network] = ()) -> list[str]:
    """zebra's configuration lines for `refusal`'s rules: a prefix-list of what no overlay route may be,
    one of the overlay's range, one of the next hops it may have, and the route-map zebra holds every
    route from bgpd to."""
    assert topology.bgp is not None
    lines = []
    for seq, (network, longest) in enumerate(refused_prefixes(topology, host, foreign), start=1):
        covers = f" le {longest}" if longest > network.prefixlen else ""
        lines.append(f"ip prefix-list {REFUSED_PREFIXES} seq {seq * 5} permit {network}{covers}")
    longest = topology.bgp.max_prefixlen
    for seq, network in enumerate(topology.overlay_range, start=1):
        covers = f" le {longest}" if longest > network.prefixlen else ""
        lines.append(f"ip prefix-list {OVERLAY_RANGE} seq {seq * 5} permit {network}{covers}")
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
        f" match ip address prefix-list {OVERLAY_RANGE}",
        f" match ip next-hop prefix-list {VTEPS}",
        "exit",
        f"route-map {ROUTE_MAP} permit 25",
        f" match ip address prefix-list {OVERLAY_RANGE}",
        f" match ipv6 next-hop prefix-list {VTEPS}",
        "exit",
        f"route-map {ROUTE_MAP} deny 30",
        "exit",
        f"ip protocol bgp route-map {ROUTE_MAP}",
    ]
    return lines
