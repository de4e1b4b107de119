"""Desired Open vSwitch state of one host in ovs mode, as plain values, and its `ovs-vsctl` rendering.

Ovs mode replaces the tutorial's Linux bridge by an OVS bridge of the same
name (br1) holding the namespace's veth (tap2) and one vxlan port per peer
(for the tutorial's two hosts, a single port named as the tutorial's vxlan
device, vxlan1), or, under EVPN, one flow-based vxlan port, vxlan1, for
whatever peers the routes name.  The bridge runs `fail_mode=secure`, so only the flows of
`flows.py` forward (installed by an OpenFlow controller on loopback, or loaded
from a file), and they stay installed while the controller is away.

On the userspace (netdev) datapath the underlay NIC joins a second bridge,
br-phy, which takes the VTEP address: OVS then sends and receives tunnel
packets through its own stack.  With the kernel module (system datapath) the
kernel's routing carries the tunnel and br-phy is not needed.

Every port gets a fixed OpenFlow port number (`ofport_request`) so the flows'
port numbers never change across restarts; every bridge carries
``external_ids:ovsvx`` so destroy removes only ovsvx's bridges.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ovsvx.errors import UsageError
from ovsvx.host.plan import Resource, Vxlan
from ovsvx.model.topology import MAX_NAMESPACES, PHYS_BRIDGE, Host, Topology, mac_for, tunnel_port_name
from ovsvx.ovs.settings import AUTO, Datapath, PortType

OWNER_KEY = "ovsvx"
FIRST_TUNNEL_OFPORT = MAX_NAMESPACES + 1  # 100: after every namespace's port


@dataclass(frozen=True)
class Port:
    name: str
    type: str  # "" for an existing kernel device, "vxlan" for a tunnel
    ofport: int
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class OvsBridge:
    name: str
    datapath_type: str
    ports: tuple[Port, ...]
    hwaddr: str | None = None  # the internal port's MAC; flows address the gateway by it
    controller: str | None = None  # "unix:/var/run/openvswitch/ovsvx-host1.openflow"; None: flows from ovs-ofctl
    fail_mode: str | None = None  # "secure": only our flows forward; None: OVS's default (NORMAL switching)
    mtu: int | None = None  # of the internal port

    @property
    def other_config(self) -> dict[str, str]:
        """OVS's bridge options: the internal port's MAC, and no in-band control on a bridge with a
        fail mode, whose hidden flows would switch the host's own ARP past the ARP responder."""
        config = {"hwaddr": self.hwaddr} if self.hwaddr else {}
        if self.fail_mode:
            config["disable-in-band"] = "true"
        return config


def tunnel_ports(topology: Topology, host: Host, csum: bool = False) -> dict[str, Port]:
    """The vxlan port towards each peer, by peer name (the tutorial's two hosts: one port, vxlan1); under
    EVPN, one flow-based port for every peer, under the name "*".  `csum`: see `tunnel_csum`."""
    if topology.evpn:
        return {"*": evpn_tunnel_port(topology, host, csum)}
    peers = topology.peers(host)
    ports = {}
    for i, peer in enumerate(peers):
        name = tunnel_port_name(host, i, len(peers))
        options = (("remote_ip", str(peer.vtep)), *_tunnel_options(topology, csum))
        ports[peer.name] = Port(name, "vxlan", FIRST_TUNNEL_OFPORT + i, options)
    return ports


def evpn_tunnel_port(topology: Topology, host: Host, csum: bool = False) -> Port:
    """Under EVPN, the one vxlan port, named as the tutorial's device: its remote is set by each flow
    (`remote_ip=flow`), from the route the flow was made for, so peers come and go without a port change."""
    return Port(host.vxlan, "vxlan", FIRST_TUNNEL_OFPORT, (("remote_ip", "flow"), *_tunnel_options(topology, csum)))


def _tunnel_options(topology: Topology, csum: bool) -> tuple[tuple[str, str], ...]:
    return (("key", str(topology.vni)), ("dst_port", str(topology.port)), *((("csum", "true"),) if csum else ()))


#: --tunnel-csum: "auto" (on for the kernel datapath only), "on" or "off".
TUNNEL_CSUM = (AUTO, "on", "off")


def tunnel_csum(datapath: str, asked: str = AUTO) -> bool:
    """Whether the vxlan ports send an outer UDP checksum: as `asked` (--tunnel-csum), which by default
    ("auto") is on the kernel datapath only, for the reasons below.  OVS sends none by
    default; with one, a receiving NIC that checks it can vouch for the inner packet's checksum too, so
    the receiving kernel verifies nothing in software (antrea measured 2.6 -> 5.2 Gbit/s on real NICs,
    its issue 1048).  veth underlays need no checksum checked at all, so the lab and the guest cannot
    show the gain: there the runs could not tell on from off (docs/performance.md).  Receivers take
    either (zero means none): kernel-mode, tutorial-built (`noudpcsum`) and EVPN peers were shown to
    interoperate.  On the userspace datapath ovs-vswitchd would compute it per packet in software: no."""
    return Datapath(datapath) == Datapath.SYSTEM if asked == AUTO else asked == "on"


def workload_ports(host: Host, port_type: str = PortType.SYSTEM) -> dict[str, Port]:
    """The host end of each namespace's veth, by namespace name."""
    kind = PortType(port_type).interface_type
    return {ns.name: Port(ns.peer, kind, i + 1) for i, ns in enumerate(host.namespaces)}


def switch_plan(
    topology: Topology,
    host: Host,
    datapath: str,
    controller: str | None,
    port_type: str = PortType.SYSTEM,
    csum: str = AUTO,
) -> tuple[OvsBridge, ...]:
    """The bridges `host` needs in ovs mode (br-phy first, on the userspace datapath); `csum`: the
    tunnels' outer checksum as --tunnel-csum says it."""
    bridges = []
    if Datapath(datapath) == Datapath.NETDEV:
        bridges.append(OvsBridge(PHYS_BRIDGE, datapath, (Port(host.nic, PortType(port_type).interface_type, 1),)))
    tunnels = tunnel_ports(topology, host, tunnel_csum(datapath, csum))
    ports = (*workload_ports(host, port_type).values(), *tunnels.values())
    bridges.append(
        OvsBridge(
            host.bridge,
            datapath,
            ports,
            hwaddr=mac_for(host.gateway),
            controller=controller,
            fail_mode="secure",
            mtu=topology.overlay_mtu,
        )
    )
    return tuple(bridges)


def render(bridge: OvsBridge) -> list[str]:
    """The `ovs-vsctl` commands that create `bridge` by hand."""
    settings = [f"datapath_type={bridge.datapath_type}", f"external_ids:{OWNER_KEY}=true"]
    settings += [f"other_config:{key}={value}" for key, value in bridge.other_config.items()]
    if bridge.fail_mode:
        settings.append(f"fail_mode={bridge.fail_mode}")
    lines = [f"ovs-vsctl add-br {bridge.name} -- set bridge {bridge.name} {' '.join(settings)}"]
    if bridge.controller:
        lines.append(f"ovs-vsctl set-controller {bridge.name} {bridge.controller}")
    if bridge.mtu:
        lines.append(f"ovs-vsctl set interface {bridge.name} mtu_request={bridge.mtu}")
    for port in bridge.ports:
        spec = [f"ofport_request={port.ofport}"]
        if port.type:
            spec.insert(0, f"type={port.type}")
        spec += [f"options:{k}={v}" for k, v in port.options]
        lines.append(f"ovs-vsctl add-port {bridge.name} {port.name} -- set interface {port.name} {' '.join(spec)}")
    return lines


_OVS_CONFIG_RE = re.compile(r"^(?:(?P<host>[A-Za-z0-9][A-Za-z0-9_.-]*):)?(?P<key>[a-z][a-z0-9-]*)=(?P<value>[^\s;=]+)$")


def ovs_config(specs: tuple[str, ...], host: str, hosts: list[str]) -> dict[str, str]:
    """OVS's own settings for `host` from `--ovs-config [HOST:]KEY=VALUE` (other_config of the
    Open_vSwitch row, e.g. pmd-cpu-mask=0x2); a spec without HOST is for every host, an empty one
    (`--ovs-config ''`) asks for none."""
    wanted: dict[str, str] = {}
    for spec in filter(None, specs):
        found = _OVS_CONFIG_RE.fullmatch(spec)
        if found is None:
            raise UsageError(
                f"--ovs-config {spec!r} is not allowed: [HOST:]KEY=VALUE, e.g. pmd-maxsleep=50 "
                "or host2:pmd-cpu-mask=0x2"
            )
        if found["host"] and found["host"] not in hosts:
            raise UsageError(f"--ovs-config {spec!r} names unknown host {found['host']!r}: one of {', '.join(hosts)}")
        if found["host"] in (None, host):
            wanted[found["key"]] = found["value"]
    return wanted


def tunnel_remotes(pieces: Iterable[Resource | OvsBridge]) -> dict[str, str]:
    """Each tunnel among a host's pieces, a vxlan device or an OVS vxlan port, by name -> the remote VTEP
    it names: "" for kernel mode's device towards several peers, "flow" for EVPN's flow-based port."""
    remotes: dict[str, str] = {}
    for piece in pieces:
        if isinstance(piece, Vxlan):
            remotes[piece.name] = str(piece.remote or "")
        elif isinstance(piece, OvsBridge):
            remotes.update((p.name, dict(p.options).get("remote_ip", "")) for p in piece.ports if p.type == "vxlan")
    return remotes
