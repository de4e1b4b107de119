"""How an ovs-mode host forwards, read from its switch: `ofproto/trace` on its bridge, each matched flow
named by its purpose (from the cookie), its actions, what the datapath does, and the tunnel it ends in."""

from __future__ import annotations

import re
from dataclasses import replace

from ovsvx.host.record import Deployment
from ovsvx.model.path import PROBE_PORT, Arp, Dropped, Forwarded, Hop, Packet
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, mac_for
from ovsvx.ovs import daemons, ofctl, openflow, tables
from ovsvx.ovs.flowwatch import generated_by_cookie
from ovsvx.ovs.switch import Port, tunnel_ports, workload_ports


class OvsForwarding:
    """One ovs-mode host's forwarding decisions, as `trace` tells them."""

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.host = site.host
        self.deployment = deployment
        self.topology = deployment.topology
        self.home = daemons.ovs_home(deployment, site)
        self.where = f"{site.host.name} ({site.host.bridge}, ovs)"

    def _trace(self, spec: str) -> tuple[str, list[str], dict[str, str]]:
        """ofproto/trace of one packet: OVS's text, the matched flows named, and the final flow's fields."""
        text = ofctl.tool(self.home, "ovs-appctl", "ofproto/trace", self.host.bridge, spec)
        matched, final = _read_trace(text, self.host.bridge, generated_by_cookie(self.deployment, self.site))
        return text, matched, final

    def forward(self, packet: Packet, arrived_from: str | None, sender: Host | None = None) -> Forwarded:
        host = self.host
        if arrived_from == "tunnel":  # by the sender's port (EVPN: the one port), from its VTEP
            assert sender is not None
            ports = tunnel_ports(self.topology, host)
            port = (ports.get(sender.name) or next(iter(ports.values()))).name
            tunnel = f"tun_id={self.topology.vni:#x},tun_src={sender.vtep},"
        elif arrived_from is None:
            port, tunnel = "LOCAL", ""
        else:
            port, tunnel = workload_ports(host)[arrived_from].name, ""
        match = {"icmp": "icmp", "tcp": f"tcp,tp_dst={PROBE_PORT}", "udp": f"udp,tp_dst={PROBE_PORT}"}[packet.proto]
        why, eth_dst = [], packet.eth_dst
        if packet.unresolved is not None:  # the sender must ARP first; the switch answers with ovsvx's MAC
            eth_dst = mac_for(packet.unresolved)
            why.append(
                f"(the sender has not resolved {packet.unresolved} yet: the ARP responder will answer "
                f"{eth_dst}, so the packet is traced with that)"
            )
        text, matched, final = self._trace(
            f"{tunnel}in_port={port},{match},dl_src={packet.eth_src},dl_dst={eth_dst},"
            f"nw_src={packet.src},nw_dst={packet.dst},nw_ttl={packet.ttl}"
        )
        why += matched + _datapath_summary(text, ofctl.tool(self.home, "ovs-appctl", "dpctl/show"))
        packet = replace(
            packet,
            eth_src=final.get("dl_src", packet.eth_src),
            eth_dst=final.get("dl_dst", eth_dst),
            ttl=int(final.get("nw_ttl", packet.ttl)),
            unresolved=None,
        )
        if _datapath_actions(text) == "drop":
            raise Dropped(Hop(self.where, "flows drop it here", why, packet.headers()))
        peer = _tunnel_peer(matched, tunnel_ports(self.topology, host))
        if peer == "*":  # EVPN's one tunnel port: the peer is the host of the destination's subnet
            peer = next(h.name for h in self.topology.hosts if packet.dst in h.subnet)
        if peer is not None:
            remote = self.topology.host(peer).vtep
            return Forwarded(
                Hop(self.where, f"flows send it into the tunnel to {remote}", why, packet.headers()), packet, peer
            )
        return Forwarded(Hop(self.where, "flows deliver it on this host", why, packet.headers()), packet)

    def answer_arp(self, arp: Arp) -> tuple[list[Hop], Host | None]:
        """The switch's ARP responder answers the host's or a namespace's ARP, where it came in."""
        port = "LOCAL" if arp.src.is_host else workload_ports(self.host)[arp.src.name].name
        return [self._arp_hop(port, arp, tunnel=False)], None

    def answer_arp_from_tunnel(self, arp: Arp, sender: Host) -> list[Hop]:
        port = next(iter(tunnel_ports(self.topology, self.host).values())).name
        return [self._arp_hop(port, arp, tunnel=True)]

    def _arp_hop(self, port: str, arp: Arp, tunnel: bool) -> Hop:
        _, why, final = self._trace(
            f"{f'tun_id={self.topology.vni:#x},' if tunnel else ''}in_port={port},arp,arp_op=1,"
            f"arp_spa={arp.src.address},arp_tpa={arp.nexthop},arp_sha={arp.src_mac},dl_src={arp.src_mac},"
            "dl_dst=ff:ff:ff:ff:ff:ff"
        )
        if "arp_op=2" not in ",".join(f"{k}={v}" for k, v in final.items()):
            return Hop(self.where, "the flows do not answer it", why, [])
        headers = [
            f"Ether {final.get('dl_src')} > {final.get('dl_dst')}",
            f"ARP {final.get('arp_spa')} is-at {final.get('arp_sha')}",
        ]
        return Hop(self.where, f"the ARP responder answers in the datapath, back out of {port}", why, headers)


_TABLE_LINE = re.compile(r"^\s*(\d+)\. (?:(.*?), )?priority (\d+)(?:, cookie (0x[0-9a-f]+))?$")  # no match: any


def _read_trace(text: str, bridge: str, generated: dict[int, openflow.Flow]) -> tuple[list[str], dict[str, str]]:
    """The matched flows of `bridge` named by purpose, with their actions; and the final flow's fields."""
    lines: list[str] = []
    in_bridge = False
    final: dict[str, str] = {}
    for raw in text.splitlines():
        if raw.startswith("bridge("):
            in_bridge = raw == f'bridge("{bridge}")'
            continue
        if raw.startswith("Final flow:"):
            final = dict(part.split("=", 1) for part in raw.split(":", 1)[1].strip().split(",") if "=" in part)
            in_bridge = False  # what follows (megaflow, datapath actions) is OVS's summary
            continue
        if not in_bridge:
            continue
        table = _TABLE_LINE.match(raw)
        if table:
            number, match, priority, cookie = table.groups()
            known = openflow.explain(int(cookie, 16), generated) if cookie else None
            name = ": ".join(known) if known else "not generated by ovsvx"
            info = tables.TABLES.get(int(number))
            lines.append(
                f"table {number} ({info.name if info else '?'}) {name} [{match or 'any'}, priority {priority}, "
                f"cookie {cookie or '0x0'}]"
            )
        elif raw.strip() and not raw.startswith("-"):
            lines.append("    " + raw.strip())
    return lines, final


_OUTPUT_ACTION = re.compile(r"^\s*output:(\d+)$")


def _tunnel_peer(matched: list[str], tunnels: dict[str, Port]) -> str | None:
    """The peer whose tunnel port the matched flows output to, if any (by OpenFlow port number, which
    the switch plan fixes; both datapaths print it the same way)."""
    by_ofport = {port.ofport: peer for peer, port in tunnels.items()}
    for line in matched:
        found = _OUTPUT_ACTION.match(line)
        if found and int(found.group(1)) in by_ofport:
            return by_ofport[int(found.group(1))]
    return None


_DATAPATH_PORT = re.compile(r"^\s*port (\d+): (\S+)", re.MULTILINE)
_OUTPUT = re.compile(r"(?:out_port\((\d+)\)|(?:^|,)(\d+)(?=,|$))")


def _datapath_actions(trace: str) -> str | None:
    """ofproto/trace's "Datapath actions" line: what the datapath does with the packet ("drop", or a list)."""
    lines = trace.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Datapath actions:")), None)


def _datapath_summary(trace: str, dpctl_show: str) -> list[str]:
    """What the datapath itself does with the packet (ofproto/trace's "Datapath actions"), its output ports
    named from `dpctl/show`: the kernel datapath's tunnel is its vxlan_sys_4789 device, the userspace
    datapath's a tnl_push out of br-phy."""
    actions = _datapath_actions(trace)
    if actions is None:
        return []
    datapath = dpctl_show.splitlines()[0].rstrip(":") if dpctl_show.strip() else "datapath"
    ports = dict(_DATAPATH_PORT.findall(dpctl_show))
    outputs = [ports.get(a or b, a or b) for a, b in _OUTPUT.findall(actions)]
    return [f"datapath {datapath}: {actions}" + (f" (out: {', '.join(outputs)})" if outputs else "")]
