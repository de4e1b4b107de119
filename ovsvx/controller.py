"""Run the os-ken OpenFlow controller for one host, in the foreground.

os-ken 4.x has no `osken-manager` command: like Neutron's OVS agent, ovsvx
parses os-ken's configuration with no arguments, sets the listening address,
and lets the app manager load and run the app.  Threads are os-ken's native
ones (OSKEN_HUB_TYPE=native, its 4.x default).

Users run it as `ovsvx controller`; ovsvx itself starts it as
`python -m ovsvx.controller` with the same options, which skips the CLI's
imports: half a second of CPU for each of a 32-host lab's controllers.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ovsvx import record
from ovsvx import topology as topo
from ovsvx.daemons import check_port_free
from ovsvx.errors import OvsvxError, UsageError
from ovsvx.flows import EvpnPeer, host_flows
from ovsvx.peerwatch import peer_probes
from ovsvx.topology import Host, Topology

# The controller's log lines: date, time, logger, level, message (the date and time hold no spaces).
LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def logged_errors(text: str) -> list[str]:
    """The messages of the ERROR lines of a controller log written in LOG_FORMAT."""
    fields = (line.split(" ", 4) for line in text.splitlines())
    return [f[4] for f in fields if len(f) == 5 and f[3] == "ERROR"]


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:6653' -> ('127.0.0.1', 6653)."""
    address, sep, port = text.rpartition(":")
    if not sep or not address or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r} is not allowed: ADDRESS:PORT with a port in 1..65535")
    return address, int(port)


def serve(
    listen: str,
    host_name: str | None,
    prefix: str | None = None,
    topology_file: Path | None = None,
    evpn_state: Path | None = None,
) -> None:
    """Run the controller for one host: of the lab `prefix`, of a topology file, or else of this machine's
    deployment (the default topology when there is none)."""
    if prefix is not None:
        topology = record.require("lab", record.check_prefix(prefix)).topology
    elif topology_file is not None:
        topology = topo.load(topology_file)
    else:
        here = record.load("host", "")
        topology = here.topology if here else topo.default()
        host_name = host_name or (next(iter(here.modes)) if here else None)
    if host_name is None:
        raise UsageError(f"--serve is needed: one of {', '.join(h.name for h in topology.hosts)}")
    host = topology.host(host_name)
    address = parse_listen(listen)
    check_port_free(None, *address)
    run(topology, host, address, evpn_state)


def run(topology: Topology, host: Host, listen: tuple[str, int], evpn_state: Path | None = None) -> None:
    """Serve `host`'s bridge its generated flows until interrupted; under EVPN, also speak BGP for it
    (what it knows is written to `evpn_state`)."""
    os.environ.setdefault("OSKEN_HUB_TYPE", "native")
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    from ovsvx import ofapp

    cfg.CONF(project="os_ken", args=[])
    cfg.CONF.set_override("ofp_listen_host", listen[0])
    cfg.CONF.set_override("ofp_tcp_listen_port", listen[1])
    flows = host_flows(topology, host)
    ofapp.FlowInstaller.flows_by_bridge = {host.bridge: flows}
    if topology.evpn:  # router MACs come with the routes: no peer to ask
        ofapp.FlowInstaller.on_start = lambda app: _speak_evpn(app, topology, host, evpn_state)
    else:
        ofapp.FlowInstaller.probes_by_bridge = {host.bridge: peer_probes(topology, host, flows)}
    logging.getLogger("ovsvx.controller").info(
        "serving %d flows for %s's bridge %s on %s:%d",
        len(ofapp.FlowInstaller.flows_by_bridge[host.bridge]),
        host.name,
        host.bridge,
        *listen,
    )
    AppManager.run_apps(["ovsvx.ofapp"])


def _speak_evpn(app: Any, topology: Topology, host: Host, state: Path | None) -> None:
    """Start the BGP speaker; each change of its routes gives the bridge new flows and the host new routes."""
    from ovsvx import evpnspeaker

    routes = evpnspeaker.HostRoutes(host.bridge)

    def on_peers(peers: tuple[EvpnPeer, ...]) -> None:
        app.replace_flows(host.bridge, host_flows(topology, host, peers))
        routes.want(peers)

    evpnspeaker.Speaker(topology, host, on_peers, state).start()


def main() -> int:
    """`python -m ovsvx.controller --listen A:P --serve HOST [--prefix P]`, as ovsvx starts it."""
    parser = argparse.ArgumentParser(prog="python -m ovsvx.controller", description=__doc__.splitlines()[0])
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
    from ovsvx.controller import main as package_main

    sys.exit(package_main())
