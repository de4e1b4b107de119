"""Ovs mode under EVPN: the controller is a BGP EVPN speaker (os-ken's BGPSpeaker), like FRR in kernel mode.

It peers with every route reflector of the topology and advertises this
host's subnet as a type-5 route exactly as FRR does in kernel mode: next hop
the VTEP, the routed VNI as the label, route target AS:VNI, the VXLAN
encapsulation and the Router's MAC community (the MAC of the host's vxlan
address).  Each type-5 route it receives that an overlay route can be
(`routepolicy.refusal`; a refused one is logged and counted) becomes an
`EvpnPeer`, from which the switch's flows are generated again
(`flows.host_flows`), and a route in the host's own table (`subnet via VTEP
dev br1 onlink`, as FRR writes it), so the host itself reaches the peer; a
route ovsvx did not make is never replaced.  A withdrawn route takes both
away.

os-ken knows no Router's MAC community (RFC 9135: type 0x06, sub-type 0x03),
which FRR needs to route to this host: `RouterMacCommunity` teaches os-ken's
packet library to read and write it, and the speaker's EVPN VRF adds it to
the one route it originates.

When the last reflector session drops, the routes are kept, stale, as a
graceful-restart helper keeps a restarting peer's (RFC 4724): traffic flows on
while the reflector restarts, and what is not announced again once sessions
are back is swept.  (FRR keeps no EVPN route that way: kernel hosts do lose
theirs.)

What the speaker knows (sessions and routes) is written to a JSON file next
to the controller's log after each change: `status` reads it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from pathlib import Path
from socket import AF_INET, IP_TTL, IPPROTO_IP
from typing import Any

from os_ken.lib.packet import bgp
from os_ken.services.protocols.bgp import base as bgp_base
from os_ken.services.protocols.bgp.bgpspeaker import BGPSpeaker
from os_ken.services.protocols.bgp.info_base.vrfevpn import VrfEvpnTable
from os_ken.services.protocols.bgp.rtconf.common import BGP_CONN_RETRY_TIME

from ovsvx.files import replace_file
from ovsvx.host import gtsm, secretfile
from ovsvx.model import routepolicy
from ovsvx.model.bgp import Refused
from ovsvx.model.topology import Host, Topology, mac_for
from ovsvx.ovs import oskenfixes  # noqa: F401 - mends os-ken's route processor on import
from ovsvx.ovs.flows import EvpnPeer, route_of

LOG = logging.getLogger("ovsvx.evpn")
ROUTER_MAC = (0x06, 0x03)  # EVPN extended community, Router's MAC sub-type (RFC 9135)
CONNECT_RETRY_S = 10  # os-ken's shortest
# While no reflector answers, the routes held are kept (as a graceful-restart helper keeps a restarting
# peer's, RFC 4724) for at most KEEP_S; once a session is back, a kept route not announced again
# within REFRESH_S (every host has redialled and re-advertised by then) is dropped.
KEEP_S = 120.0
REFRESH_S = 30.0
PUBLISH_S = 0.2  # route changes are written for `status` at most this often
MAX_UNLISTED = 100_000  # refused routes counted beyond those listed; past that, a flood is not even counted


@bgp._ExtendedCommunity.register_type(ROUTER_MAC)
class RouterMacCommunity(bgp._ExtendedCommunity):
    """The Router's MAC extended community: the MAC a routed packet to this VTEP is sent to."""

    _VALUE_PACK_STR = "!B6s"
    _VALUE_FIELDS = ["subtype", "mac"]

    def __init__(self, **kwargs: Any):
        super().__init__()
        self.do_init(RouterMacCommunity, self, kwargs)

    @classmethod
    def of(cls, mac: str) -> RouterMacCommunity:
        return cls(subtype=ROUTER_MAC[1], mac=bytes.fromhex(mac.replace(":", "")))

    @property
    def text(self) -> str:
        return ":".join(f"{b:02x}" for b in self.mac)


_own_router_mac: dict[str, str] = {}  # route distinguisher -> the router MAC its type-5 routes carry


def _insert_with_router_mac(table: Any, path: Any) -> Any:
    """VrfEvpnTable.insert, adding the Router's MAC community to a type-5 route this speaker originates."""
    mac = _own_router_mac.get(table.vrf_conf.route_dist)
    attribute = path.pathattr_map.get(bgp.BGP_ATTR_TYPE_EXTENDED_COMMUNITIES)
    communities: list[Any] = attribute.communities if attribute is not None else []
    wanted = mac is not None and attribute is not None and isinstance(path.nlri, bgp.EvpnIpPrefixNLRI)
    if wanted and not any(isinstance(c, RouterMacCommunity) for c in communities):
        communities.append(RouterMacCommunity.of(str(mac)))
    return _plain_insert(table, path)


_plain_insert = VrfEvpnTable.insert
VrfEvpnTable.insert = _insert_with_router_mac


#: Linux's IP_MINTTL (the socket module names it from Python 3.12 on): the lowest TTL a socket takes.
IP_MINTTL = 21


class _OneHopSockets:
    """The socket module as os-ken's BGP base module sees it: each IPv4 socket it dials with leaves with
    TTL 255 and takes only TTL 255 (GTSM, `gtsm`).  os-ken knows no TTL security; its dialling code makes
    its socket through this module-level name and connects at once, so this is the one place to set both
    before the SYN."""

    def __init__(self, module: Any):
        self._module = module

    def socket(self, *args: Any, **kwargs: Any) -> Any:
        sock = self._module.socket(*args, **kwargs)
        if sock.family == AF_INET:
            sock.setsockopt(IPPROTO_IP, IP_TTL, gtsm.TTL)
            sock.setsockopt(IPPROTO_IP, IP_MINTTL, gtsm.TTL)
        return sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


bgp_base.socket = _OneHopSockets(bgp_base.socket)


class _QuickRetrySpeaker(BGPSpeaker):
    """os-ken's speaker, dialling a lost reflector again every CONNECT_RETRY_S instead of its default 30 s
    (the constructor does not offer the setting; the core takes it at start)."""

    def _core_start(self, settings: dict[str, Any]) -> None:
        super()._core_start({**settings, BGP_CONN_RETRY_TIME: CONNECT_RETRY_S})


@dataclass(frozen=True)
class Session:
    peer: str
    state: str  # "Established" or "Down", as FRR's summary words it
    since: float  # when it entered that state (seconds since the epoch): `status` shows how long


class RouteBook:
    """The peers a host's routes give: those taken, those refused (with why), and those kept stale while
    no reflector answers.  The speaker holds its lock around every call."""

    def __init__(self, topology: Topology, host: Host, foreign: Callable[[], Sequence[IPv4Network]] = lambda: ()):
        self.topology, self.host = topology, host
        self.foreign = foreign  # the host's routes that ovsvx did not make
        assert topology.bgp is not None
        self.cap = topology.bgp.max_prefixes
        self.peers: dict[IPv4Network, EvpnPeer] = {}
        self.refused: dict[IPv4Network, tuple[EvpnPeer, str]] = {}  # announced, not taken: why (at most `cap`)
        self.unlisted: set[IPv4Network] = set()  # refused beyond `cap`: only counted (the set bounds itself)
        self.stale: set[IPv4Network] = set()  # kept through a reflector's absence, not announced again yet

    def current(self) -> tuple[EvpnPeer, ...]:
        return tuple(sorted(self.peers.values(), key=lambda p: p.subnet))

    def withdrawn(self, subnet: IPv4Network, answering: bool) -> bool:
        """Forget a withdrawn route (a refused one too); True when the peers changed.  A route kept while
        no reflector answers stays until the sweep: the reflector went away, not the route."""
        self.refused.pop(subnet, None)
        self.unlisted.discard(subnet)
        if subnet in self.stale and not answering:
            return False
        if self.peers.pop(subnet, None) is None:
            return False
        LOG.info("EVPN: type-5 route of %s withdrawn", subnet)
        return True

    def take(self, peer: EvpnPeer | None) -> bool:
        """Hold an announced route's peer, unless no overlay route could be what it announces, or the book
        holds `cap` routes already (then it is refused, logged and counted, and a peer held for that prefix
        before goes).  True when the peers changed."""
        if peer is None:
            return False
        why = self.refusal(peer)
        if why is not None:
            self._refuse(peer, why)
            return self.peers.pop(peer.subnet, None) is not None
        LOG.info("EVPN: type-5 route of %s via VTEP %s, router MAC %s", *asdict(peer).values())
        self.refused.pop(peer.subnet, None)
        self.unlisted.discard(peer.subnet)
        self.peers[peer.subnet] = peer
        self.stale.discard(peer.subnet)
        return True

    def refusal(self, peer: EvpnPeer) -> str | None:
        """Why the route is not taken: the policy's cheap rules first, the host's table (`foreign`) only for
        a route they take, and the cap."""
        policy = routepolicy.refusal(self.topology, self.host, peer.subnet, peer.vtep)
        why = policy or routepolicy.refusal(self.topology, self.host, peer.subnet, peer.vtep, self.foreign())
        if why is None and peer.subnet not in self.peers and len(self.peers) >= self.cap:
            why = f"the speaker holds bgp.max_prefixes ({self.cap}) routes already"
        return why

    def _refuse(self, peer: EvpnPeer, why: str) -> None:
        """Keep the refusal for status (logged once), or only count it once `cap` of them are kept: a flood
        of routes must not grow the speaker without bound."""
        if peer.subnet in self.refused or len(self.refused) < self.cap:
            if self.refused.get(peer.subnet) != (peer, why):
                LOG.warning("EVPN: type-5 route of %s via VTEP %s refused: %s", peer.subnet, peer.vtep, why)
            self.refused[peer.subnet] = (peer, why)
        elif len(self.unlisted) < MAX_UNLISTED:
            if not self.unlisted:
                LOG.warning("EVPN: %d routes refused and listed; more are only counted", self.cap)
            self.unlisted.add(peer.subnet)

    def refusals(self) -> tuple[dict[IPv4Network, tuple[EvpnPeer, str]], int]:
        """What `status` shows of the refusals (listed, and how many more): a change in it is published."""
        return dict(self.refused), len(self.unlisted)

    def sweep(self) -> list[IPv4Network]:
        """Drop the kept routes nobody announced again; those dropped."""
        gone = sorted(self.stale & set(self.peers))
        for subnet in gone:
            del self.peers[subnet]
        self.stale.clear()
        return gone

    def published(self, sessions: list[Session]) -> dict[str, Any]:
        """What `status` reads of the speaker (`daemons.evpn_state`)."""
        return {
            "sessions": [{**asdict(s), "received": len(self.peers)} for s in sessions],
            "routes": [asdict(route_of(p)) for p in self.peers.values()],
            "refused": [asdict(Refused(str(p.subnet), str(p.vtep), why)) for p, why in self.refused.values()],
            "unlisted": len(self.unlisted),
        }


class Speaker:
    """One host's EVPN speaker: its sessions, the peers its routes give, and what follows from them."""

    def __init__(
        self,
        topology: Topology,
        host: Host,
        on_peers: Callable[[tuple[EvpnPeer, ...]], None],
        state_file: Path | None,
        foreign: Callable[[], Sequence[IPv4Network]] = lambda: (),
    ):
        assert topology.bgp is not None
        self.topology, self.host, self.bgp = topology, host, topology.bgp
        self.on_peers = on_peers
        self.state_file = state_file
        self.book = RouteBook(topology, host, foreign)
        self.sessions = {str(rr): Session(str(rr), "Down", time.time()) for rr in self.bgp.route_reflectors}
        self.lock = threading.Lock()
        self.sweep: threading.Timer | None = None
        self._pending: threading.Timer | None = None  # a publish to come (`_publish_soon`)
        self.route_dist = f"{host.vtep}:1"
        self.route_target = f"{self.bgp.asn}:{topology.vni}"

    def start(self) -> None:
        from os_ken.services.protocols.bgp.bgpspeaker import EVPN_IP_PREFIX_ROUTE, RF_L2_EVPN, TUNNEL_TYPE_VXLAN

        _own_router_mac[self.route_dist] = mac_for(self.host.vxlan_address)
        self.speaker = _QuickRetrySpeaker(
            as_number=self.bgp.asn,
            router_id=str(self.host.vtep),
            bgp_server_port=0,  # the reflectors are dialled; nothing listens
            best_path_change_handler=self._best_path,
            peer_up_handler=lambda address, _as: self._session(address, "Established"),
            peer_down_handler=lambda address, _as: self._session(address, "Down"),
        )
        self.speaker.vrf_add(self.route_dist, [self.route_target], [self.route_target], route_family=RF_L2_EVPN)
        self.speaker.evpn_prefix_add(
            route_type=EVPN_IP_PREFIX_ROUTE,
            route_dist=self.route_dist,
            ethernet_tag_id=0,
            ip_prefix=str(self.host.subnet),
            gw_ip_addr="0.0.0.0",
            vni=self.topology.vni,
            tunnel_type=TUNNEL_TYPE_VXLAN,
            next_hop=str(self.host.vtep),
        )
        # TCP MD5 (RFC 2385): os-ken packs the key into TCP_MD5SIG's struct as it is, so it must be bytes (a
        # str fails there, in the thread that dials, and no session ever comes up); it keeps it out of its log
        secret = password.encode() if (password := secretfile.bgp_password(self.topology)) is not None else None
        for rr in self.bgp.route_reflectors:
            self.speaker.neighbor_add(str(rr), self.bgp.asn, enable_ipv4=False, enable_evpn=True, password=secret)
        self._publish()

    def _session(self, address: str, state: str) -> None:
        """A session came up or went down.  The last one down leaves the routes in place, stale: traffic
        keeps flowing on them while the reflectors restart, and they are swept once sessions are back."""
        LOG.info("BGP session with %s: %s", address, state)
        with self.lock:
            self.sessions[address] = Session(address, state, time.time())
            book = self.book
            if state != "Established" and not self._answering() and book.peers and not book.stale:
                book.stale = set(book.peers)
                LOG.info("EVPN: no reflector answers: keeping %d route(s) for up to %g s", len(book.stale), KEEP_S)
                self._sweep_in(KEEP_S)
            elif state == "Established" and book.stale:
                self._sweep_in(REFRESH_S)
        self._publish()

    def _answering(self) -> bool:
        return any(s.state == "Established" for s in self.sessions.values())

    def _sweep_in(self, seconds: float) -> None:
        if self.sweep is not None:
            self.sweep.cancel()
        self.sweep = threading.Timer(seconds, self._sweep_stale)
        self.sweep.daemon = True
        self.sweep.start()

    def _sweep_stale(self) -> None:
        """Drop the kept routes nobody announced again."""
        with self.lock:
            gone = self.book.sweep()
            current = self.book.current()
        if gone:
            LOG.info("EVPN: %s not announced again after the reflectors' return: dropped", ", ".join(map(str, gone)))
            try:
                self.on_peers(current)
            finally:
                self._publish()

    def _best_path(self, event: Any) -> None:
        """os-ken's handler: nothing may escape into its session code, which drops the session on any error."""
        try:
            self._route_changed(event)
        except Exception:  # noqa: BLE001 - logged with its traceback, the session goes on
            LOG.exception("EVPN: handling a route change failed")

    def _route_changed(self, event: Any) -> None:
        """A best path came or went: a withdrawal is known by its prefix alone."""
        nlri = event.path.nlri
        if not isinstance(nlri, bgp.EvpnIpPrefixNLRI):
            return
        with self.lock:
            refused = self.book.refusals()
            changed = (
                self.book.withdrawn(IPv4Network(nlri.ip_prefix), self._answering())
                if event.is_withdraw
                else self.book.take(route_peer(event.path, str(self.host.vtep)))
            )
            current = self.book.current()
        try:
            if changed:
                self.on_peers(current)
        finally:
            if changed or refused != self.book.refusals():
                self._publish_soon()

    def _publish_soon(self) -> None:
        """Publish within PUBLISH_S: a flood of routes writes the file a few times a second, not once a
        route (each write holds every refusal listed: once a route, the flood's cost grew with its square)."""
        with self.lock:
            if self._pending is not None:
                return
            self._pending = threading.Timer(PUBLISH_S, self._publish_pending)
            self._pending.daemon = True
            self._pending.start()

    def _publish_pending(self) -> None:
        with self.lock:
            self._pending = None
        self._publish()

    def _publish(self) -> None:
        """Write what the speaker knows for `status`, atomically (a controller run by hand keeps it).  The
        lock is held until the file is in place: the sweep runs on a timer thread, and two writers that took
        their snapshots in one order must not land in the other (the older one would be what `status` reads)."""
        if self.state_file is None:
            return
        with self.lock:
            data = self.book.published(list(self.sessions.values()))
            replace_file(self.state_file, json.dumps(data) + "\n")


def route_peer(path: Any, own_vtep: str) -> EvpnPeer | None:
    """The peer a received type-5 path stands for; None for other route types, this host's own route, a
    next hop that names no IPv4 VTEP, or a route without a router MAC (which no VXLAN peer could route to)."""
    if not isinstance(path.nlri, bgp.EvpnIpPrefixNLRI) or path.nexthop in ("0.0.0.0", None):
        return None
    vtep = routepolicy.vtep_of(path.nexthop)
    if vtep is None:
        LOG.warning("EVPN: type-5 route of %s via %s, no IPv4 VTEP: ignored", path.nlri.ip_prefix, path.nexthop)
        return None
    if str(vtep) == own_vtep:  # its own route, the next hop written either way
        return None
    attribute = path.get_pattr(bgp.BGP_ATTR_TYPE_EXTENDED_COMMUNITIES)
    communities = attribute.communities if attribute is not None else []
    mac = next((c.text for c in communities if isinstance(c, RouterMacCommunity)), None)
    if mac is None:
        LOG.warning("EVPN: type-5 route of %s from %s has no router MAC: ignored", path.nlri.ip_prefix, path.nexthop)
        return None
    return EvpnPeer(IPv4Network(path.nlri.ip_prefix), vtep, mac)
