"""A stranger on a lab's underlay: VXLAN frames built by scapy, sent from its NIC, and a listener in a
namespace for what gets through (test_intruder.py, test_evpn_lab.py)."""

from __future__ import annotations

import socket
import subprocess
import time

from ovsvx import waits
from ovsvx.host import netstack
from ovsvx.model import reader, topology

TOPO = reader.default()
INTRUDER_ADDRESS = "10.33.30.200"  # a machine of the underlay that is no VTEP of the topology
INTRUDER_MAC = "02:66:66:66:66:66"
ECHO_ID = 0x6666


def inner_macs(host: topology.Host) -> list[str]:
    """Every MAC the host or its namespace would take a frame for: its vxlan device (kernel mode) or
    gateway (ovs mode), the namespace itself, and broadcast."""
    ns = host.namespaces[0]
    return [
        topology.mac_for(host.vxlan_address),
        topology.mac_for(host.gateway),
        topology.mac_for(ns.address),
        "ff:ff:ff:ff:ff:ff",
    ]


def crafted(host: topology.Host, own_mac: str, vtep_mac: str, src: str = INTRUDER_ADDRESS) -> list[bytes]:
    """VXLAN frames (VNI 100, port 4789) from the intruder's NIC (`own_mac`) to `host`, each an ICMP echo
    to its namespace, from the address `src` (the intruder's own, or a forged one).  The source MAC is
    given: scapy would take it from this process's own namespace, which need not have a NIC at all (all
    zeros then, which a bridge drops)."""
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    peer_subnet = next(h.subnet for h in TOPO.peers(host))
    outer = (
        Ether(src=own_mac, dst=vtep_mac)
        / IP(src=src, dst=str(host.vtep))
        / UDP(sport=43210, dport=TOPO.port)
        / VXLAN(vni=TOPO.vni, flags=0x08)
    )
    inner = IP(src=str(peer_subnet[66]), dst=str(host.namespaces[0].address)) / ICMP(id=ECHO_ID)
    return [bytes(outer / Ether(src=INTRUDER_MAC, dst=mac) / inner) for mac in inner_macs(host)]


def inject(intruder: str, host: topology.Host, repeat: int = 5, src: str = INTRUDER_ADDRESS) -> int:
    """Send the crafted frames from the intruder's NIC, from address `src`; returns how many were sent."""
    assert netstack.run(intruder, ["ping", "-c", "1", "-W", "2", str(host.vtep)]).returncode == 0
    with netstack.stack(intruder) as ns:
        vtep_mac = ns.get_neighbours(dst=str(host.vtep))[0].get("NDA_LLADDR")
        own_mac = ns.get_links(ifname="eth0")[0].get("IFLA_ADDRESS")
    frames = crafted(host, own_mac, vtep_mac, src) * repeat

    def send() -> None:
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
            raw.bind(("eth0", 0))
            for frame in frames:
                raw.send(frame)

    netstack.call_in(intruder, send)
    return len(frames)


class Listener:
    """tcpdump in a workload namespace, for frames from the intruder or its echo requests."""

    def __init__(self, prefix: str, ns: topology.Namespace):
        filter_ = f"ether host {INTRUDER_MAC} or (icmp and icmp[4:2] == {ECHO_ID})"
        self.process = netstack.popen(
            prefix + ns.name,
            ["tcpdump", "-l", "-nn", "-e", "-i", ns.veth, filter_],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:  # tcpdump says "listening on ..." once it captures
            if "listening on" in line:
                break

    def seen(self) -> list[str]:
        time.sleep(waits.scaled(1.0))  # let the last frames arrive
        self.process.terminate()
        out, _ = self.process.communicate(timeout=waits.scaled(10))
        return [line for line in out.splitlines() if line.strip()]


def open_up(netns: str, family: str, table: str) -> None:
    """What an intruder with root would do to a table of ovsvx's: every drop made an accept, in place (the
    same chains, sets, comments and counters, so its shape is unchanged)."""
    listing = netstack.run(netns, ["nft", "list", "table", family, table])
    assert listing.returncode == 0, listing.stderr
    assert " drop" in listing.stdout
    opened = listing.stdout.replace(" drop", " accept")
    done = netstack.run(netns, ["nft", "-f", "-"], stdin=f"delete table {family} {table}\n{opened}")
    assert done.returncode == 0, done.stderr
