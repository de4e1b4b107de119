"""Capture one ping on every interface along its path, and decode each frame's layers.

This is the tutorial's section 1.3 (tcpdump on every interface while ns1
pings ns2 for the first time) produced from real packets: the ARP caches on
the path are flushed, tcpdump listens at each point, one ping goes, and every
frame seen is decoded by scapy, outer Ethernet / IP / UDP / VXLAN, inner
Ethernet, then ARP or IP / ICMP, in time order.

Where a frame can be seen differs by mode.  Kernel mode: the namespace's veth,
the host end of the veth (a bridge port), the bridge, the vxlan device
(frames before encapsulation / after decapsulation) and the underlay NIC
(encapsulated).  Ovs mode has no vxlan device of the host's and the bridge's
internal port only carries the host's own traffic; the veth ends show what
enters and leaves the switch and the underlay NIC the encapsulated frames.
On OVS's kernel datapath the tunnel is the kernel's own device,
vxlan_sys_<port>, shared by every vxlan port on that UDP port: it shows the
frames as kernel mode's vxlan device does, before encapsulation and after
decapsulation.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from socket import AF_INET
from typing import Any

from ovsvx import waits
from ovsvx.deploy import lab
from ovsvx.deploy.backends import backend
from ovsvx.errors import ApplyError, UsageError
from ovsvx.host import netstack, preflight
from ovsvx.host.record import Deployment
from ovsvx.model.topology import Host, Node, find_node

LISTEN_WAIT_S = 5.0
SETTLE_S = 0.5  # after the ping's answer, for the last frames to reach every tcpdump
STOP_WAIT_S = 5.0  # a tcpdump flushing its pcap after SIGINT
SNAPLEN = 256  # enough for every header of a VXLAN-encapsulated ICMP or ARP
ICMP_TYPES = {0: "echo-reply", 3: "destination-unreachable", 8: "echo-request", 11: "time-exceeded"}


@dataclass(frozen=True)
class Point:
    """An interface where frames are captured."""

    node: str  # the topology node it belongs to (host1, ns1)
    ifname: str
    netns: str | None  # the real namespace

    @property
    def label(self) -> str:
        return f"{self.node}:{self.ifname}"


@dataclass(frozen=True)
class Frame:
    time: float
    point: str
    layers: tuple[dict[str, Any], ...]

    @property
    def summary(self) -> str:
        return " / ".join(describe_layer(layer) for layer in self.layers)


# --- where to look ---------------------------------------------------------------------


def _host_points(deployment: Deployment, host: Host, ns: str | None) -> list[Point]:
    """A host's interfaces on the path, in the order a packet from namespace `ns` meets them, as its
    mode says (`Backend.watched`).  Where the NIC does not show the wire (OVS's AF_XDP ports take frames
    before tcpdump's hook), a lab watches it from its other end, the underlay switch's port."""
    where = lab.node_netns(deployment, host.name)
    site = deployment.site_of(host.name)
    watched = backend(deployment.modes[host.name], site, deployment).watched(ns)
    found = [Point(host.name, name, where) for name in watched.devices]
    if watched.nic:
        found.append(Point(host.name, host.nic, where))
    elif deployment.is_lab:
        found.append(Point(lab.UNDERLAY_SWITCH, lab.switch_port(deployment, host.name), lab.switch_netns(deployment)))
    return found


def points(deployment: Deployment, src: Node, dst: Node) -> list[Point]:
    """Every interface a packet from src to dst crosses, in path order."""
    topology = deployment.topology
    found: list[Point] = []
    if not src.is_host:
        _, ns = topology.namespace(src.name)
        found.append(Point(src.name, ns.veth, lab.node_netns(deployment, src.name)))
    found += _host_points(deployment, topology.host(src.host), None if src.is_host else src.name)
    if dst.host != src.host:
        found += reversed(_host_points(deployment, topology.host(dst.host), None if dst.is_host else dst.name))
    if not dst.is_host:
        _, ns = topology.namespace(dst.name)
        found.append(Point(dst.name, ns.veth, lab.node_netns(deployment, dst.name)))
    unique: dict[str, Point] = {}
    for point in found:
        unique.setdefault(point.label, point)
    return list(unique.values())


# --- capturing ------------------------------------------------------------------------------


def flush_neighbours(netns: str | None) -> None:
    """Forget every learned IPv4 neighbour in a namespace (the tutorial's first ping starts cold)."""
    with netstack.stack(netns) as ipr:
        for entry in ipr.get_neighbours(family=AF_INET):
            if entry["state"] & netstack.NUD_PERMANENT:  # configured, not learned
                continue
            address = entry.get("NDA_DST")
            if address:
                ipr.neigh("del", dst=address, ifindex=entry["ifindex"])


@contextmanager
def _tcpdumps(where: list[Point], folder: Path, port: int, encrypted: bool) -> Iterator[None]:
    """tcpdump at every point, writing pcaps of the ping's frames (ARP, ICMP, and the tunnel's UDP, or
    the ESP that carries it); stopped (and flushed) when the block ends."""
    wanted = f"arp or icmp or udp port {port}" + (" or esp" if encrypted else "")
    running: list[subprocess.Popen[str]] = []
    try:
        for point in where:
            pcap = folder / f"{point.label.replace(':', '-')}.pcap"
            process = netstack.popen(
                point.netns,
                [
                    "tcpdump",
                    "-i",
                    point.ifname,
                    "-w",
                    str(pcap),
                    "-U",
                    "--immediate-mode",
                    "-n",
                    "-s",
                    str(SNAPLEN),
                    wanted,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            running.append(process)
            _wait_listening(process, point)
        yield
        time.sleep(waits.scaled(SETTLE_S))
    finally:
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in running:
            try:
                process.wait(timeout=waits.scaled(STOP_WAIT_S))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(process: subprocess.Popen[str], point: Point) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + waits.scaled(LISTEN_WAIT_S)
    line = process.stderr.readline()  # "listening on IF, link-type ..." once the socket is open
    if "listening on" not in line or time.monotonic() > deadline:
        raise ApplyError(f"tcpdump could not listen on {point.label}: {line.strip() or 'no answer'}")


def run(deployment: Deployment, src_name: str, dst_name: str, pcap_dir: Path | None = None) -> list[Frame]:
    """Flush the ARP caches on the path, capture one ping from src to dst everywhere, decode it all."""
    preflight.require_tools("tcpdump", "ping")
    src, dst = find_node(deployment.topology, src_name), find_node(deployment.topology, dst_name)
    if src == dst:
        raise UsageError("capture needs two different nodes")
    where = points(deployment, src, dst)
    with tempfile.TemporaryDirectory(prefix="ovsvx-capture-") as scratch:
        folder = Path(scratch)
        for netns in {p.netns for p in where}:
            flush_neighbours(netns)
        with _tcpdumps(where, folder, deployment.topology.port, deployment.topology.encrypted):
            netstack.run(
                lab.node_netns(deployment, src.name), ["ping", "-n", "-c", "1", "-W", "2", str(dst.address)], timeout=10
            )
        frames = read(folder, where)
        if pcap_dir is not None:
            pcap_dir.mkdir(parents=True, exist_ok=True)
            for pcap in folder.glob("*.pcap"):
                shutil.copy(pcap, pcap_dir / pcap.name)
    return frames


# --- decoding -------------------------------------------------------------------------------


def read(folder: Path, where: list[Point]) -> list[Frame]:
    """Every frame of every point's pcap, decoded, in time order."""
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    import scapy.layers.all  # noqa: F401  (binds link types and UDP 4789 to their decoders)
    from scapy.utils import rdpcap

    frames = []
    for point in where:
        pcap = folder / f"{point.label.replace(':', '-')}.pcap"
        if not pcap.exists():
            continue
        for packet in rdpcap(str(pcap)):
            frames.append(Frame(float(packet.time), point.label, tuple(decode(packet))))
    return sorted(frames, key=lambda f: f.time)


def decode(packet: Any) -> list[dict[str, Any]]:
    """The layers of one frame as plain data: Ethernet, IPv4, UDP, VXLAN, again inside, ARP, ICMP; of
    an encrypted one, what is in clear: ESP's SPI and sequence number."""
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.ipsec import ESP
    from scapy.layers.l2 import ARP, Ether
    from scapy.layers.vxlan import VXLAN

    layers: list[dict[str, Any]] = []
    layer = packet
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if isinstance(layer, Ether):
            layers.append({"layer": "ethernet", "src": layer.src, "dst": layer.dst})
        elif isinstance(layer, IP):
            layers.append({"layer": "ipv4", "src": layer.src, "dst": layer.dst, "ttl": layer.ttl})
        elif isinstance(layer, UDP):
            layers.append({"layer": "udp", "sport": layer.sport, "dport": layer.dport})
        elif isinstance(layer, VXLAN):
            layers.append({"layer": "vxlan", "vni": layer.vni})
        elif isinstance(layer, ESP):
            layers.append({"layer": "esp", "spi": f"0x{layer.spi:08x}", "seq": layer.seq})
            break  # the rest is ciphertext
        elif isinstance(layer, ARP):
            layers.append(
                {
                    "layer": "arp",
                    "op": "request" if layer.op == 1 else "reply",
                    "sender_mac": layer.hwsrc,
                    "sender_ip": layer.psrc,
                    "target_mac": layer.hwdst,
                    "target_ip": layer.pdst,
                }
            )
        elif isinstance(layer, ICMP):
            kind = ICMP_TYPES.get(layer.type, f"type {layer.type}")
            echo = layer.type in (0, 8)
            layers.append(
                {
                    "layer": "icmp",
                    "type": kind,
                    "code": layer.code,
                    "id": layer.id if echo else None,
                    "seq": layer.seq if echo else None,
                }
            )
            break
        layer = layer.payload
    return layers


def describe_layer(layer: dict[str, Any]) -> str:
    match layer["layer"]:
        case "ethernet":
            return f"Ether {layer['src']} > {layer['dst']}"
        case "ipv4":
            return f"IP {layer['src']} > {layer['dst']} ttl {layer['ttl']}"
        case "udp":
            return f"UDP {layer['sport']} > {layer['dport']}"
        case "vxlan":
            return f"VXLAN vni {layer['vni']}"
        case "esp":
            return f"ESP spi {layer['spi']} seq {layer['seq']} (encrypted: VXLAN inside)"
        case "arp" if layer["op"] == "request":
            return f"ARP who-has {layer['target_ip']} tell {layer['sender_ip']} ({layer['sender_mac']})"
        case "arp":
            return f"ARP {layer['sender_ip']} is-at {layer['sender_mac']} (to {layer['target_ip']})"
        case "icmp" if layer["id"] is not None:
            return f"ICMP {layer['type']} id {layer['id']} seq {layer['seq']}"
        case "icmp":
            return f"ICMP {layer['type']} code {layer['code']}"
    return str(layer["layer"])


def to_json(src: str, dst: str, frames: list[Frame]) -> dict[str, Any]:
    """`capture --json`: the ping's ends, and every frame in time order with its layers."""
    return {
        "src": src,
        "dst": dst,
        "frames": [{"time": f.time, "point": f.point, "layers": list(f.layers)} for f in frames],
    }
