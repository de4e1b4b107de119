"""Run the os-ken OpenFlow controller for one host, in the foreground.

os-ken 4.x has no `osken-manager` command: like Neutron's OVS agent, ovsvx
parses os-ken's configuration with no arguments, sets the listening address
(a Unix socket: os-ken listens on one when its host is a path in an existing
folder), and lets the app manager load and run the app.  Threads are os-ken's native
ones (OSKEN_HUB_TYPE=native, its 4.x default).

Users run it as `ovsvx controller`; ovsvx itself starts it as
`python -m ovsvx.ovs.controller` with the same options, which skips the CLI's
imports: half a second of CPU for each of a 32-host lab's controllers.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from ovsvx.errors import OvsvxError, UsageError
from ovsvx.host import record
from ovsvx.host.record import Kind
from ovsvx.model import reader
from ovsvx.model import topology as topo
from ovsvx.model.topology import Host, Topology
from ovsvx.ovs.daemons import check_port_free, claim_socket, controller_socket
from ovsvx.ovs.flows import EvpnPeer, host_flows
from ovsvx.ovs.peerwatch import peer_probes

# The controller's log lines: date, time, logger, level, message (the date and time hold no spaces).
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def logged_errors(text: str) -> list[str]:
    """The messages of the ERROR lines of a controller log written in LOG_FORMAT."""
    fields = (line.split(" ", 4) for line in text.splitlines())
    return [f[4] for f in fields if len(f) == 5 and f[3] == "ERROR"]


@dataclass(frozen=True)
class Listen:
    """Where the controller listens: a Unix socket (`path`), or a TCP port on loopback."""

    host: str  # the socket's path, or a loopback address
    port: int = 0  # 0 for a Unix socket

    def __str__(self) -> str:
        return f"unix:{self.host}" if self.port == 0 else f"{self.host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """'unix:/var/run/openvswitch/ovsvx-host1.openflow', or '127.0.0.1:6653' (loopback only: OpenFlow has no
    authentication, and a switch elsewhere would be handed this host's flows)."""
    allowed = "unix:PATH (an absolute path) or a loopback ADDRESS:PORT with a port in 1..65535"
    if text.startswith("unix:"):
        if not text[5:].startswith("/"):
            raise UsageError(f"--listen {topo.shown(text)} is not allowed: {allowed}")
        return Listen(text[5:])
    address, sep, port = text.rpartition(":")
    if not sep or not address or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--listen {topo.shown(text)} is not allowed: {allowed}")
    try:
        loopback = ip_address(address.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--listen {topo.shown(text)} is not allowed: {allowed}, never another address")
    return Listen(address, int(port))


def serve(
    listen: str | None,
    host_name: str | None,
    prefix: str | None = None,
    topology_file: Path | None = None,
    evpn_state: Path | None = None,
) -> None:
    """Run the controller for one host: of the lab `prefix`, of a topology file, or else of this machine's
    deployment (the default topology when there is none).  Without `listen`, on the socket that
    deploy gives the host's OVS."""
    deployment = record.require(Kind.LAB, record.check_prefix(prefix)) if prefix is not None else None
    if deployment is not None:
        topology = deployment.topology
    elif topology_file is not None:
        topology = reader.load(topology_file)
    else:
        deployment = record.load(Kind.HOST, "")
        topology = deployment.topology if deployment else reader.default()
        host_name = host_name or (next(iter(deployment.modes)) if deployment else None)
    if host_name is None:
        raise UsageError(f"--serve is needed: one of {', '.join(h.name for h in topology.hosts)}")
    host = topology.host(host_name)
    if listen is not None:
        address = parse_listen(listen)
    elif deployment is not None:
        address = Listen(str(_socket_of(deployment, host)))
    else:
        raise UsageError("--listen is needed: nothing is deployed here whose socket the controller could serve")
    if address.port:
        check_port_free(None, address.host, address.port)
    else:
        claim_socket(Path(address.host))
    run(topology, host, address, evpn_state)


def _socket_of(deployment: record.Deployment, host: Host) -> Path:
    return controller_socket(deployment, deployment.site_of(host.name))


def run(topology: Topology, host: Host, listen: Listen, evpn_state: Path | None = None) -> None:
    """Serve `host`'s bridge its generated flows until interrupted; under EVPN, also speak BGP for it
    (what it knows is written to `evpn_state`)."""
    os.environ.setdefault("OSKEN_HUB_TYPE", "native")
    os.umask(0o077)  # a Unix socket only root may connect to, as only root may serve it
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    from ovsvx.ovs import ofapp

    cfg.CONF(project="os_ken", args=[])
    _accept_unix_connections()
    cfg.CONF.set_override("ofp_listen_host", listen.host)  # a path whose folder exists: os-ken's Unix socket
    cfg.CONF.set_override("ofp_tcp_listen_port", listen.port or 6653)  # (not used for a Unix socket)
    flows = host_flows(topology, host)
    if topology.evpn:  # router MACs come with the routes: no peer to ask
        served = ofapp.Served({host.bridge: flows}, on_start=lambda app: _speak_evpn(app, topology, host, evpn_state))
    else:
        served = ofapp.Served({host.bridge: flows}, {host.bridge: peer_probes(topology, host, flows)})
    ofapp.FlowInstaller.serving = served
    logging.getLogger("ovsvx.ovs.controller").info(
        "serving %d flows for %s's bridge %s on %s",
        len(flows),
        host.name,
        host.bridge,
        listen,
    )
    AppManager.run_apps(["ovsvx.ovs.ofapp"])


class _UnixConnection:
    """A switch's connection on a Unix socket, for os-ken: it sets TCP_NODELAY on every connection, which
    a Unix socket refuses (EOPNOTSUPP) and which means nothing there; everything else is the socket's."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def setsockopt(self, level: int, option: int, value: int) -> None:
        if level != socket.IPPROTO_TCP:
            self._sock.setsockopt(level, option, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _accept_unix_connections() -> None:
    """os-ken listens on a Unix socket (its hub does), but its datapath then fails on the TCP option
    above before the switch's first message: hand it the connection wrapped."""
    from os_ken.controller import controller as osken

    make = osken.Datapath.__init__

    def init(datapath: Any, sock: socket.socket, address: Any) -> None:
        make(datapath, _UnixConnection(sock) if sock.family == socket.AF_UNIX else sock, address)

    osken.Datapath.__init__ = init


def _speak_evpn(app: Any, topology: Topology, host: Host, state: Path | None) -> None:
    """Start the BGP speaker; each change of its routes gives the bridge new flows and the host new routes."""
    from ovsvx.ovs import evpnroutes, evpnspeaker

    routes = evpnroutes.HostRoutes(host.bridge)

    def on_peers(peers: tuple[EvpnPeer, ...]) -> None:
        app.replace_flows(host.bridge, host_flows(topology, host, peers))
        routes.want(peers)

    evpnspeaker.Speaker(topology, host, on_peers, state, lambda: routes.foreign(topology)).start()


def main() -> int:
    """`python -m ovsvx.ovs.controller --listen unix:PATH --serve HOST [--prefix P]`, as ovsvx starts it."""
    parser = argparse.ArgumentParser(prog="python -m ovsvx.ovs.controller", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--serve", required=True)
    parser.add_argument("--prefix")
    parser.add_argument("--evpn-state", type=Path, help="where the EVPN speaker writes its sessions and routes")
    args = parser.parse_args()
    try:
        serve(args.listen, args.serve, args.prefix, evpn_state=args.evpn_state)
    except OvsvxError as err:
        print(f"ovsvx controller: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # run as the package's module: ofapp sets up the class this module imported
    from ovsvx.ovs.controller import main as package_main

    sys.exit(package_main())
