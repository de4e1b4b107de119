"""The overlay's metrics, for an operator's Prometheus: read at each scrape, served by prometheus_client.

What is exported, per host (names after Prometheus' conventions: `ovsvx_`, base
units, `_total` for what only grows):

- per tunnel, labelled with the peer it goes to ("*" for a device or port that
  serves every peer): packets and bytes each way (the vxlan device's or OVS port's
  counters), and when something last came in from it, as seen between scrapes;
- per peer (static control): whether it answered lately, as the host's own ARP
  state says (the kernel's neighbour entry, or the MAC the switch learned);
- per flow purpose (ovs mode; the cookies say it): packets and bytes matched;
- under EVPN, per BGP session: established or not, for how long, routes received;
  and the routes the host refused;
- from the agent that serves them (not a lab): its passes, the repairs it made by
  kind (link, route, address, ...), and how long its last pass took and whether it
  converged;
- with `--probes` only: `verify`'s pings from this host (a lab: from every node),
  each as a gauge with its round trip.

Without `--probes` nothing is sent and nothing is changed: a scrape reads
counters, OVSDB and the BGP view.  `--metrics ADDR:PORT` says where (loopback unless an address is
given): the endpoint is unauthenticated, so it is for a local Prometheus or an
SSH tunnel, not for the network.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ovsvx.deploy.agent import Passes
from ovsvx.deploy.backends import BACKENDS, Piece, backend, decided
from ovsvx.deploy.deploy import Scope
from ovsvx.errors import ConflictError, UsageError
from ovsvx.host import record
from ovsvx.host.record import Deployment
from ovsvx.model.bgp import BgpView
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Topology
from ovsvx.model.traffic import Traffic
from ovsvx.observe import verify
from ovsvx.ovs.switch import tunnel_remotes

DEFAULT_PORT = 9477
LOOPBACK = "127.0.0.1"
READING_S = 1.0  # a reading serves every scrape within this
PROBES_S = 15.0  # --probes pings are run again at most this often (a Prometheus scrape interval)
MAX_SCRAPES = 4  # requests served at once; more are turned away, not queued on threads without bound
SCRAPE_TIMEOUT_S = 5.0  # a client that sends its request slower than this is dropped
EVERY_PEER = "*"


def parse_address(text: str) -> tuple[str, int]:
    """`--metrics PORT` (on loopback) or `--metrics ADDR:PORT`."""
    host, _, port_text = text.rpartition(":")
    try:
        address = str(IPv4Address(host or LOOPBACK))
        port = int(port_text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise UsageError(f"--metrics {text!r} is not allowed: PORT or ADDR:PORT (an IPv4 address, a port 1-65535)")
    return address, port


# --- the collector ---------------------------------------------------------------------------------


class OverlayCollector(Collector):
    """Reads one deployment (a lab, or this host) at a scrape, at most once per READING_S.

    The endpoint serves each request on a thread of its own: scrapes that come
    together wait for one reading under the lock and share it, so a burst of
    them costs what one scrape does.  `--probes` pings are kept for PROBES_S:
    a scrape never starts more pings than one interval's.
    """

    def __init__(self, scope: Scope, passes: Passes | None = None, probes: bool = False):
        self.scope = scope
        self.passes = passes
        self.probes = probes
        self.heard: dict[tuple[str, str], tuple[int, float | None]] = {}  # (host, tunnel) -> (received, when grew)
        self.lock = threading.Lock()  # one reading at a time, and `heard` read and written by one thread
        self.reading: tuple[float, list[Metric]] | None = None  # when it was read, and what
        self.pinged: tuple[float, list[verify.Result]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            now = time.monotonic()
            if self.reading is None or now - self.reading[0] >= READING_S:
                self.reading = (now, self._read())
            yield from self.reading[1]

    def _read(self) -> list[Metric]:
        families = Families()
        deployment = record.load(self.scope.kind, self.scope.prefix)
        families.deployed.add_metric([], 1 if deployment is not None else 0)
        if deployment is not None:
            for site in deployment.sites():
                self._host(families, deployment, site)
            if self.probes:
                families.probed(self._pings(deployment))
        if self.passes is not None:
            families.passes(self.passes)
        return families.all()

    def _pings(self, deployment: Deployment) -> list[verify.Result]:
        """`verify`'s pings that can start here (its TCP probe would load the overlay at every scrape),
        run again only once PROBES_S have passed."""
        now = time.monotonic()
        if self.pinged is None or now - self.pinged[0] >= PROBES_S:
            self.pinged = (now, verify.run(deployment, [p for p in verify.local_probes(deployment) if p.kind != "tcp"]))
        return self.pinged[1]

    def _host(self, families: Families, deployment: Deployment, site: Site) -> None:
        host, mode = site.host.name, deployment.modes[site.host.name]
        chosen = backend(mode, site, deployment)
        pieces = BACKENDS[mode].pieces(deployment.topology, site.host, decided(deployment, host))
        peers = tunnel_peers(deployment.topology, site.host, pieces)
        for tunnel, counted in chosen.tunnel_traffic().items():
            peer = peers.get(tunnel, EVERY_PEER)
            families.tunnel(host, peer, tunnel, counted, self._last_heard(host, tunnel, counted.received_packets))
        for purpose, counted in sorted(chosen.flow_traffic().items()):
            families.flow(host, purpose, counted)
        for peer, answered in sorted(chosen.answering().items()):
            families.answered.add_metric([host, peer], 1 if answered else 0)
        if deployment.topology.evpn:
            families.bgp(host, chosen.bgp())

    def _last_heard(self, host: str, tunnel: str, received: int) -> float | None:
        """When the tunnel's received counter last grew, as seen between scrapes (None: not seen yet)."""
        before, when = self.heard.get((host, tunnel), (received, None))
        if received != before:
            when = time.time()
        self.heard[(host, tunnel)] = (received, when)
        return when


def tunnel_peers(topology: Topology, host: Host, pieces: Iterable[Piece]) -> dict[str, str]:
    """Each tunnel device or port of `host` -> the peer host it goes to (EVERY_PEER where it serves all)."""
    by_vtep = {str(h.vtep): h.name for h in topology.peers(host)}
    return {tunnel: by_vtep.get(remote, EVERY_PEER) for tunnel, remote in tunnel_remotes(pieces).items()}


class Families:
    """The metric families of one scrape, filled host by host."""

    def __init__(self) -> None:
        tunnel = ["host", "peer", "tunnel"]
        self.deployed = GaugeMetricFamily("ovsvx_deployed", "1 if the deployment this serves exists, else 0")
        self.sent_packets = CounterMetricFamily(
            "ovsvx_tunnel_tx_packets", "Packets sent into the tunnel", labels=tunnel
        )
        self.sent_bytes = CounterMetricFamily("ovsvx_tunnel_tx_bytes", "Bytes sent into the tunnel", labels=tunnel)
        self.received_packets = CounterMetricFamily(
            "ovsvx_tunnel_rx_packets", "Packets received from the tunnel", labels=tunnel
        )
        self.received_bytes = CounterMetricFamily(
            "ovsvx_tunnel_rx_bytes", "Bytes received from the tunnel", labels=tunnel
        )
        self.heard = GaugeMetricFamily(
            "ovsvx_tunnel_last_received_timestamp_seconds",
            "When the tunnel's received counter last grew, as seen between scrapes",
            labels=tunnel,
        )
        self.answered = GaugeMetricFamily(
            "ovsvx_peer_answered",
            "1 if the peer answered lately (kernel: a live neighbour entry; ovs: its router MAC learned, 5 min)",
            labels=["host", "peer"],
        )
        purpose = ["host", "purpose"]
        self.flow_packets = CounterMetricFamily(
            "ovsvx_flow_packets", "Packets matched, by flow purpose", labels=purpose
        )
        self.flow_bytes = CounterMetricFamily("ovsvx_flow_bytes", "Bytes matched, by flow purpose", labels=purpose)
        session = ["host", "peer"]
        self.established = GaugeMetricFamily(
            "ovsvx_bgp_session_established", "1 if the BGP session is established", labels=session
        )
        self.uptime = GaugeMetricFamily(
            "ovsvx_bgp_session_uptime_seconds", "How long the session has been established", labels=session
        )
        self.received_routes = GaugeMetricFamily(
            "ovsvx_bgp_routes_received", "EVPN routes received on the session", labels=session
        )
        self.refused_routes = GaugeMetricFamily(
            "ovsvx_bgp_routes_refused", "EVPN routes the host refused (its route policy)", labels=["host"]
        )
        probe = ["kind", "src", "dst"]
        self.probe_ok = GaugeMetricFamily("ovsvx_probe_ok", "1 if verify's probe passed (--probes)", labels=probe)
        self.probe_rtt = GaugeMetricFamily("ovsvx_probe_rtt_seconds", "The probe's round trip (--probes)", labels=probe)
        self.agent: list[Metric] = []

    def tunnel(self, host: str, peer: str, tunnel: str, counted: Traffic, heard: float | None) -> None:
        labels = [host, peer, tunnel]
        self.sent_packets.add_metric(labels, counted.sent_packets)
        self.sent_bytes.add_metric(labels, counted.sent_bytes)
        self.received_packets.add_metric(labels, counted.received_packets)
        self.received_bytes.add_metric(labels, counted.received_bytes)
        if heard is not None:
            self.heard.add_metric(labels, heard)

    def flow(self, host: str, purpose: str, counted: Traffic) -> None:
        self.flow_packets.add_metric([host, purpose], counted.sent_packets)
        self.flow_bytes.add_metric([host, purpose], counted.sent_bytes)

    def bgp(self, host: str, view: BgpView) -> None:
        for session in view.sessions:
            labels = [host, session.peer]
            self.established.add_metric(labels, 1 if session.up else 0)
            self.received_routes.add_metric(labels, session.received)
            seconds = uptime_seconds(session.uptime)
            if session.up and seconds is not None:
                self.uptime.add_metric(labels, seconds)
        if view.answering:  # the speaker's (ovs mode) or zebra's (kernel mode) refusals
            self.refused_routes.add_metric([host], view.refused_count)

    def probed(self, results: Iterable[verify.Result]) -> None:
        for result in results:
            labels = [result.probe.kind, result.probe.src, result.probe.dst]
            self.probe_ok.add_metric(labels, 1 if result.ok else 0)
            if result.rtt_ms is not None:
                self.probe_rtt.add_metric(labels, result.rtt_ms / 1000)

    def passes(self, passes: Passes) -> None:
        with passes.lock:
            done = CounterMetricFamily("ovsvx_agent_passes", "The agent's passes, by result", labels=["result"])
            done.add_metric(["converged"], passes.converged)
            done.add_metric(["failed"], passes.failed)
            repairs = CounterMetricFamily("ovsvx_agent_repairs", "Pieces the agent repaired, by kind", labels=["kind"])
            for kind, count in sorted(passes.repairs.items()):
                repairs.add_metric([kind], count)
            last = GaugeMetricFamily("ovsvx_agent_last_pass_seconds", "How long the agent's last pass took")
            last.add_metric([], passes.last_seconds)
            ok = GaugeMetricFamily("ovsvx_agent_last_pass_converged", "1 if the last pass converged the host")
            ok.add_metric([], 1 if passes.last_ok else 0)
            at = GaugeMetricFamily("ovsvx_agent_last_pass_timestamp_seconds", "When the agent's last pass ended")
            at.add_metric([], passes.last_at)
            self.agent = [done, repairs, last, ok, at]

    def all(self) -> list[Metric]:
        """The families with something to say (a lab has no agent; static control, no sessions)."""
        every = [
            self.deployed,
            self.sent_packets,
            self.sent_bytes,
            self.received_packets,
            self.received_bytes,
            self.heard,
            self.answered,
            self.flow_packets,
            self.flow_bytes,
            self.established,
            self.uptime,
            self.received_routes,
            self.refused_routes,
            self.probe_ok,
            self.probe_rtt,
            *self.agent,
        ]
        return [family for family in every if family.samples]


def uptime_seconds(text: str) -> float | None:
    """FRR's session uptime ("00:01:02", "1d02h03m", "2w3d04h") in seconds; None for anything else."""
    clock = re.fullmatch(r"(\d+):(\d\d):(\d\d)", text)
    if clock:
        return int(clock[1]) * 3600 + int(clock[2]) * 60 + int(clock[3])
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([wdhms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(int(n) * units[u] for n, u in parts)


# --- serving ---------------------------------------------------------------------------------------


def registry_for(scope: Scope, passes: Passes | None = None, probes: bool = False) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OverlayCollector(scope, passes, probes))
    return registry


def scrape(registry: CollectorRegistry) -> str:
    """One scrape, as the endpoint would answer it."""
    return generate_latest(registry).decode()


class _BoundedServer(ThreadingMixIn, WSGIServer):
    """A WSGI server with a thread per request, at most MAX_SCRAPES at once: a request beyond them is
    closed at once (the client sees a reset and scrapes again next interval)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[WSGIRequestHandler]):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_SCRAPES)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _QuietHandler(WSGIRequestHandler):
    """No line per request on stderr (the journal), and no client may hold its thread for long."""

    timeout = SCRAPE_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def serve(registry: CollectorRegistry, address: tuple[str, int]) -> str | None:
    """Serve `registry` on http://ADDR:PORT/metrics from a thread of its own (it stops with the process);
    a warning to say when ADDR is not loopback (the endpoint is unauthenticated)."""
    try:
        server = make_server(address[0], address[1], make_wsgi_app(registry), _BoundedServer, _QuietHandler)
    except OSError as err:
        raise ConflictError(f"--metrics {address[0]}:{address[1]}: cannot listen there: {err.strerror}") from None
    threading.Thread(target=server.serve_forever, name="ovsvx-metrics", daemon=True).start()
    return exposure(address)


def exposure(address: tuple[str, int]) -> str | None:
    """What to say of serving at `address`: nothing on loopback; elsewhere, that anyone who reaches it
    reads the metrics (they carry no secret, but they map the overlay)."""
    if IPv4Address(address[0]).is_loopback:
        return None
    return (
        f"metrics served on {address[0]}:{address[1]}, not loopback: unauthenticated, so anyone who reaches "
        "that address reads them (the overlay's hosts, peers and counters)"
    )
