"""Run the os-ken OpenFlow controller for one host, in the foreground.

os-ken 4.x has no `osken-manager` command: like Neutron's OVS agent, ovsvx
parses os-ken's configuration with no arguments, sets the listening address,
and lets the app manager load and run the app.  Threads are os-ken's native
ones (OSKEN_HUB_TYPE=native, its 4.x default).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from ipaddress import IPv4Network

from ovsvx.errors import UsageError
from ovsvx.flows import host_flows
from ovsvx.switch import tunnel_ports
from ovsvx.topology import Host, Topology, mac_for


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:6653' -> ('127.0.0.1', 6653)."""
    address, sep, port = text.rpartition(":")
    if not sep or not address or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError(f"--listen {text!r} is not allowed: ADDRESS:PORT with a port in 1..65535")
    return address, int(port)


@dataclass(frozen=True)
class Probe:
    """An ARP request for a peer's vxlan address, and where it goes."""

    port: str  # the tunnel port towards the peer
    subnet: IPv4Network  # the peer's subnet: a packet-in for it asks for this probe
    frame: bytes


def arp_probes(topology: Topology, host: Host) -> list[Probe]:
    """For each peer, the ARP request for its vxlan address as the host's vxlan device would send it
    (sender: this host's vxlan address and MAC), with the tunnel port it goes out of."""
    from scapy.layers.l2 import ARP, Ether

    own_mac = mac_for(host.vxlan_address)
    ports = tunnel_ports(topology, host)
    return [
        Probe(ports[peer.name].name, peer.subnet,
              bytes(Ether(src=own_mac, dst="ff:ff:ff:ff:ff:ff")
                    / ARP(op=1, hwsrc=own_mac, psrc=str(host.vxlan_address), pdst=str(peer.vxlan_address))))
        for peer in topology.peers(host)
    ]


def run(topology: Topology, host: Host, listen: tuple[str, int]) -> None:
    """Serve `host`'s bridge its generated flows until interrupted."""
    os.environ.setdefault("OSKEN_HUB_TYPE", "native")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager

    from ovsvx import ofapp

    cfg.CONF(project="os_ken", args=[])
    cfg.CONF.set_override("ofp_listen_host", listen[0])
    cfg.CONF.set_override("ofp_tcp_listen_port", listen[1])
    ofapp.FlowInstaller.flows_by_bridge = {host.bridge: host_flows(topology, host)}
    ofapp.FlowInstaller.probes_by_bridge = {host.bridge: arp_probes(topology, host)}
    logging.getLogger("ovsvx.controller").info(
        "serving %d flows for %s's bridge %s on %s:%d", len(ofapp.FlowInstaller.flows_by_bridge[host.bridge]),
        host.name, host.bridge, *listen)
    AppManager.run_apps(["ovsvx.ofapp"])
