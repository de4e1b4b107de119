"""ovsvx's routes in one stack, the one way they are compared, written and swept.

Every route ovsvx makes carries proto 211 (`RTPROT_OVSVX`), so a route in the
way that is not ovsvx's is seen and left alone.  Three callers share this: the
plan's reconciler (`netlink.Reconciler`: each namespace's default route and, in
static control, each peer's subnet), ovs mode's controller under EVPN (each
peer's subnet as its route arrives, `ovs/evpnroutes.py`), and deploy waiting
for those routes.
"""

from __future__ import annotations

import errno
from collections.abc import Collection
from ipaddress import IPv4Network
from socket import AF_INET
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from ovsvx.host import netstack
from ovsvx.host.netstack import RT_TABLE_MAIN
from ovsvx.host.plan import RTPROT_OVSVX, Route
from ovsvx.model.findings import DIFFERS, FOREIGN, MISSING, OK, State

RTNH_F_ONLINK = 4  # the gateway is on the link, whatever its subnet (the tutorial's `onlink`)
RTPROT_ZEBRA, RTPROT_BGP = 11, 186  # FRR's routes: what zebra installs from BGP under EVPN (kernel mode)


def table(ipr: Any) -> list[Any]:
    """The main table's IPv4 routes, dumped once for a pass of comparisons."""
    return list(ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN))


def destination(route: Any) -> str:
    """A dumped route's destination as `ip route` names it: 192.168.2.0/24, or 0.0.0.0/0."""
    return f"{route.get('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"


def compare(dumped: list[Any], dev: int | None, wanted: Route) -> tuple[State, str]:
    """How the table holds `wanted` through the device of index `dev`: ok, missing, differs (ovsvx's,
    not as wanted) or foreign (another's route to the same destination; the detail names its proto)."""
    dst = None if wanted.dst is None else str(wanted.dst.network_address)
    dst_len = 0 if wanted.dst is None else wanted.dst.prefixlen
    for route in dumped:
        if route.get("RTA_DST") != dst or route["dst_len"] != dst_len:
            continue
        if route["proto"] != RTPROT_OVSVX:
            return FOREIGN, f"proto {route['proto']}"
        onlink = bool(route["flags"] & RTNH_F_ONLINK)
        if route.get("RTA_GATEWAY") != str(wanted.gateway) or dev is None or route.get("RTA_OIF") != dev:
            return DIFFERS, "replace"
        return (OK, "") if onlink == wanted.onlink else (DIFFERS, "replace")
    return MISSING, ""


def foreign(dumped: list[Any]) -> list[IPv4Network]:
    """The destinations of the routes neither ovsvx nor FRR made (a LAN of the host's, a VPN's routes):
    what EVPN's route policy must not let an overlay route shadow or cover (`routepolicy.refusal`)."""
    found = {
        IPv4Network(destination(route))
        for route in dumped
        if route["proto"] not in (RTPROT_OVSVX, RTPROT_ZEBRA, RTPROT_BGP)
    }
    return sorted(found)


def foreign_in(netns: str | None) -> list[IPv4Network]:
    """`foreign` of the main table of the stack `netns`."""
    with netstack.stack(netns) as ipr:
        return foreign(table(ipr))


def write(ipr: Any, wanted: Route, dev: int | None) -> None:
    """Make the table hold `wanted` through the device of index `dev` (replacing ovsvx's own)."""
    ipr.route(
        "replace",
        dst=wanted.dst_text if wanted.dst else "0.0.0.0/0",
        gateway=str(wanted.gateway),
        oif=dev,
        flags=RTNH_F_ONLINK if wanted.onlink else 0,
        proto=RTPROT_OVSVX,
        table=RT_TABLE_MAIN,
    )


def sweep(ipr: Any, dumped: list[Any], keep: Collection[str] = (), dev: int | None = None) -> list[str]:
    """Delete ovsvx's routes (only those through `dev`, if given) whose destination is not in `keep`;
    returns each one deleted.  One already gone is fine."""
    removed = []
    for route in dumped:
        dst = destination(route)
        if route["proto"] != RTPROT_OVSVX or dst in keep or (dev is not None and route.get("RTA_OIF") != dev):
            continue
        try:
            ipr.route("del", dst=dst, table=RT_TABLE_MAIN, proto=RTPROT_OVSVX, **({"oif": dev} if dev else {}))
            removed.append(f"- route {dst}")
        except NetlinkError as err:
            if err.code != errno.ESRCH:
                raise
    return removed
