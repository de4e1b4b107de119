"""Ovs mode under EVPN: the host's own routes to the peers' subnets, as the controller's speaker learns
them (via each peer's VTEP, onlink on the bridge), written by `host/routes.py` like every route of ovsvx's."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from ipaddress import IPv4Network

from ovsvx.host import netstack, routes
from ovsvx.host.plan import Route
from ovsvx.host.record import Deployment
from ovsvx.model import routepolicy
from ovsvx.model.findings import FOREIGN, OK
from ovsvx.model.site import Site
from ovsvx.model.topology import Topology
from ovsvx.ovs import daemons
from ovsvx.ovs.flows import EvpnPeer, peers_of

LOG = logging.getLogger("ovsvx.evpn")


def peer_routes(bridge: str, peers: Iterable[EvpnPeer]) -> list[Route]:
    """Each peer's subnet via its VTEP, onlink on the bridge's internal port."""
    return [Route(p.subnet, p.vtep, bridge, onlink=True) for p in peers]


def routes_missing(deployment: Deployment, site: Site) -> list[str]:
    """The peers' subnets the controller knows and has not routed in the host yet."""
    wanted = peer_routes(site.host.bridge, peers_of(daemons.evpn_state(deployment, site)))
    with netstack.stack(site.netns) as ipr:
        found = ipr.link_lookup(ifname=site.host.bridge)
        dumped = routes.table(ipr)
        return [r.dst_text for r in wanted if routes.compare(dumped, found[0] if found else None, r)[0] != OK]


class HostRoutes:
    """The host's routes to the peers' subnets, kept by the controller for its whole life.

    The kernel takes an onlink route only through a device that is up, and
    the controller starts (and learns routes) before deploy sets the bridge up:
    what cannot be written yet is tried again every RETRY_S until it can.  One
    netlink handle serves the controller's whole life.
    """

    RETRY_S = 1.0
    FOREIGN_FRESH_S = 1.0  # how long a reading of the host's foreign routes serves a flood of announcements

    def __init__(self, bridge: str):
        from pyroute2 import IPRoute

        self.bridge = bridge
        self.ipr = IPRoute()
        self.lock = threading.Lock()
        self.wanted: tuple[EvpnPeer, ...] | None = None  # not written yet
        self.in_the_way: set[str] = set()  # peers' subnets another route holds (said once)
        self.waiting = False
        self._foreign: tuple[float, tuple[IPv4Network, ...]] | None = None  # when read, and what
        threading.Thread(target=self._retry, name="host-routes", daemon=True).start()

    def foreign(self, topology: Topology) -> tuple[IPv4Network, ...]:
        """The host's routes in or around the overlay's range that ovsvx did not make (the route policy's
        last rule), read again at most every FOREIGN_FRESH_S."""
        with self.lock:
            now = time.monotonic()
            if self._foreign is None or now - self._foreign[0] > self.FOREIGN_FRESH_S:
                self._foreign = (now, routepolicy.in_range(topology, routes.foreign(routes.table(self.ipr))))
            return self._foreign[1]

    def want(self, peers: tuple[EvpnPeer, ...]) -> None:
        with self.lock:
            self.wanted = peers
        self._write()

    def _retry(self) -> None:
        while True:
            time.sleep(self.RETRY_S)
            self._write()

    def _write(self) -> None:
        from pyroute2 import NetlinkError

        with self.lock:
            if self.wanted is None:
                return
            try:
                changes = self.sync(self.wanted)
            except (NetlinkError, LookupError) as err:
                if not self.waiting:
                    LOG.info("host routes wait for %s (%s); trying again every %g s", self.bridge, err, self.RETRY_S)
                self.waiting = True
                return
            self.wanted, self.waiting = None, False
        for change in changes:
            LOG.info("%s: %s", self.bridge, change)

    def sync(self, peers: tuple[EvpnPeer, ...]) -> list[str]:
        """Add what `peers` need, drop such routes whose peer is gone; returns what changed.  A route to a
        peer's subnet that ovsvx did not make is left in place, and the peer's route not written (said
        once).  LookupError: the bridge does not exist yet."""
        found = self.ipr.link_lookup(ifname=self.bridge)
        if not found:
            raise LookupError("OVS has not made it yet")
        wanted = peer_routes(self.bridge, peers)
        dumped = routes.table(self.ipr)
        changes = routes.sweep(self.ipr, dumped, keep={r.dst_text for r in wanted}, dev=found[0])
        states = {r.dst_text: routes.compare(dumped, found[0], r)[0] for r in wanted}
        in_the_way = {dst for dst, state in states.items() if state == FOREIGN}
        for dst in sorted(in_the_way - self.in_the_way):
            LOG.warning("EVPN: a route to %s that ovsvx did not make is in the way: left alone, not replaced", dst)
        self.in_the_way = in_the_way
        for route in wanted:
            if states[route.dst_text] not in (OK, FOREIGN):
                routes.write(self.ipr, route, found[0])
                changes.append(f"+ route {route.dst_text} via {route.gateway} dev {self.bridge} onlink")
        return changes
