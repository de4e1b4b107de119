"""Desired netlink state of one host, as plain values, and its `ip` rendering.

`kernel_plan(topology, host)` is a pure function: it lists, in the tutorial's
order, every object the host must have in kernel mode (links, addresses,
routes, sysctls, namespaces).  `ovs_plan` is the same layout for ovs mode,
where an Open vSwitch bridge takes the Linux bridge's and the vxlan device's
place: it is split in what must exist before the switch (namespaces, veths)
and what needs the switch's internal port (the gateway address, the routes).
The netlink reconciler compares each value with the machine and applies the
difference; `render` prints the same list as the `ip`/`sysctl` commands a
person would type, so `ovsvx plan` reads like the tutorial.

Names of workload namespaces are logical here (``ns1``); where they live on
the machine (a lab adds a prefix) is the backend's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ovsvx.model.topology import Host, Topology, mac_for

#: Routes ovsvx adds carry this protocol number (`ip route show proto 211`), so
#: destroy can tell them from the routes a person or another daemon added.
RTPROT_OVSVX = 211
#: Links ovsvx creates carry this alias (`ip link show` prints it), for the same reason.
LINK_ALIAS = "ovsvx"
ZERO_MAC = "00:00:00:00:00:00"
#: The userspace datapath's bridge for the underlay NIC; the VTEP address moves onto it.
PHYS_BRIDGE = "br-phy"


@dataclass(frozen=True)
class Netns:
    """A workload namespace."""

    name: str


@dataclass(frozen=True)
class Vxlan:
    """The VXLAN device; with a single peer it names it as `remote`, as the tutorial does.

    Under EVPN it names no peer and learns nothing from the traffic: FRR's zebra
    writes its forwarding entries from the routes, and it is the port of the
    routed VNI's bridge (`master`).
    """

    name: str
    vni: int
    port: int
    local: IPv4Address
    remote: IPv4Address | None
    dev: str
    mac: str  # fixed, so an OVS peer knows this host's router MAC (mixed modes)
    learning: bool = True
    master: str | None = None


@dataclass(frozen=True)
class FloodEntry:
    """An all-zero FDB entry: unknown and broadcast frames go to this VTEP too (hosts > 2)."""

    dev: str
    dst: IPv4Address


@dataclass(frozen=True)
class Bridge:
    name: str
    mac: str | None = None  # None: the kernel's choice


@dataclass(frozen=True)
class Veth:
    """A veth pair: `name` on the host (in `master`, or left for OVS when None), `peer` inside `netns`.

    The namespace end gets a fixed MAC so flows can address it; ovs mode also
    lowers its MTU to the overlay's (OVS's flows route, but send no
    "fragmentation needed"), and on the userspace datapath turns TX checksum
    offload off, because that datapath does not complete partial checksums.
    """

    name: str
    peer: str
    netns: str
    master: str | None
    mac: str
    mtu: int | None = None
    tx_offload: bool = True


@dataclass(frozen=True)
class Up:
    """A link someone else creates (an OVS internal port) that must be administratively up."""

    dev: str
    mtu: int | None = None


@dataclass(frozen=True)
class Address:
    dev: str
    address: IPv4Address
    prefixlen: int
    netns: str | None = None

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True)
class MovedAddress:
    """An address that must sit on `dev` instead of `origin` (the VTEP, onto br-phy)."""

    address: IPv4Address
    prefixlen: int
    origin: str
    dev: str

    @property
    def cidr(self) -> str:
        return f"{self.address}/{self.prefixlen}"


@dataclass(frozen=True)
class Route:
    """A route; `dst` None is the default route."""

    dst: IPv4Network | None
    gateway: IPv4Address
    dev: str
    onlink: bool = False
    netns: str | None = None

    @property
    def dst_text(self) -> str:
        return "default" if self.dst is None else str(self.dst)


@dataclass(frozen=True)
class Sysctl:
    key: str
    value: str


Resource = Netns | Vxlan | FloodEntry | Bridge | Veth | Up | Address | MovedAddress | Route | Sysctl


def kernel_plan(topology: Topology, host: Host) -> tuple[Resource, ...]:
    """Everything `host` needs in kernel mode, in the order the tutorial builds it."""
    if topology.evpn:
        return evpn_kernel_plan(topology, host)
    peers = topology.peers(host)
    single = peers[0].vtep if len(peers) == 1 else None
    steps: list[Resource] = [
        Vxlan(host.vxlan, topology.vni, topology.port, host.vtep, single, host.nic, mac_for(host.vxlan_address)),
        *(FloodEntry(host.vxlan, p.vtep) for p in peers if single is None),
        # ESP's bytes come after the vxlan device's own MTU (its NIC's less VXLAN's): the device says less
        *([Up(host.vxlan, topology.overlay_mtu)] if topology.encrypted else []),
        Address(host.vxlan, host.vxlan_address, 32),
        *_gateway_side(host),
        *_routes(topology, host, via_dev=host.vxlan),
    ]
    return tuple(steps)


def _gateway_side(host: Host) -> list[Resource]:
    """The namespaces' side of kernel mode, the same in both controls: the bridge that is their gateway,
    their veths, and the tutorial's sysctls."""
    return [
        Bridge(host.bridge),
        Address(host.bridge, host.gateway, host.prefixlen),
        *_workloads(host, master=host.bridge, mtu=None, tx_offload=True),
        RP_FILTER_ALL,
        _bridge_rp_filter(host),
        FORWARDING,
    ]


def routed_vni_bridge(topology: Topology) -> str:
    """The bridge of EVPN's routed VNI on every kernel-mode host: `vni100` for VNI 100."""
    return f"vni{topology.vni}"


def evpn_kernel_plan(topology: Topology, host: Host) -> tuple[Resource, ...]:
    """Kernel mode under EVPN: the tutorial's layout, with the VNI made EVPN's routed VNI (symmetric IRB).

    The vxlan device names no peer and is the only port of a bridge of its own
    (`vni100`), which carries the tutorial's vxlan address and its MAC: that is
    the router MAC FRR advertises with this host's subnet (a type-5 route), and
    the MAC the peers' routed frames are sent to, as in static mode.  Nothing
    here depends on the other hosts: FRR adds each peer's route, router-MAC
    neighbour and forwarding entry as its route arrives, and takes them away
    when it is withdrawn.  The namespaces' side is as in static mode.
    """
    svi = routed_vni_bridge(topology)
    router_mac = mac_for(host.vxlan_address)
    steps: list[Resource] = [
        Bridge(svi, router_mac),
        Address(svi, host.vxlan_address, 32),
        Vxlan(
            host.vxlan, topology.vni, topology.port, host.vtep, None, host.nic, mac_for(host.vtep), False, master=svi
        ),
        *_gateway_side(host),
        *_default_routes(host),
    ]
    return tuple(steps)


def ovs_plan(topology: Topology, host: Host, datapath: str) -> tuple[tuple[Resource, ...], tuple[Resource, ...]]:
    """Ovs mode's netlink state: (before the switch exists, after it has its internal ports).

    The bridge's internal port carries the gateway address and the tutorial's
    vxlan address (there is no vxlan device: the tunnel is an OVS port), and
    the peers' subnets are routed onto it, so the host itself reaches every
    node as it does in kernel mode.  The userspace (netdev) datapath sends
    tunnel packets from its own stack, so the VTEP address moves from the NIC
    onto br-phy, the bridge that holds the NIC, and it reads its ports beside
    the host's IP stack, which must keep off them; the kernel datapath (system)
    takes its ports' frames before the IP stack and tunnels through the
    kernel's own vxlan device, so it needs neither.
    """
    userspace = datapath == "netdev"
    ports = [ns.peer for ns in host.namespaces] if userspace else []
    before: tuple[Resource, ...] = (
        *_workloads(host, master=None, mtu=topology.overlay_mtu, tx_offload=not userspace),
        RP_FILTER_ALL,
        FORWARDING,
        *(s for port in ports for s in _port_sysctls(port, ipv6=False)),
    )
    underlay: tuple[Resource, ...] = ()
    if userspace:
        underlay = (
            Up(PHYS_BRIDGE),
            MovedAddress(host.vtep, topology.underlay.prefixlen, host.nic, PHYS_BRIDGE),
            *_port_sysctls(host.nic, ipv6=True),
        )
    after = (
        *underlay,
        Up(host.bridge, topology.overlay_mtu),
        Address(host.bridge, host.gateway, host.prefixlen),
        Address(host.bridge, host.vxlan_address, 32),
        _bridge_rp_filter(host),
        # under EVPN the controller routes each peer's subnet as its route arrives
        *(_default_routes(host) if topology.evpn else _routes(topology, host, via_dev=host.bridge)),
    )
    return before, after


def _workloads(host: Host, master: str | None, mtu: int | None, tx_offload: bool) -> list[Resource]:
    steps: list[Resource] = []
    for ns in host.namespaces:
        steps += [
            Netns(ns.name),
            Veth(ns.peer, ns.veth, ns.name, master, mac_for(ns.address), mtu, tx_offload),
            Address(ns.veth, ns.address, host.prefixlen, netns=ns.name),
        ]
    return steps


# The tutorial's sysctls: reverse-path filtering off (all, and the bridge), forwarding on.
RP_FILTER_ALL = Sysctl("net.ipv4.conf.all.rp_filter", "0")
FORWARDING = Sysctl("net.ipv4.ip_forward", "1")


def _port_sysctls(port: str, ipv6: bool) -> tuple[Sysctl, ...]:
    """Keep the host's own IP stack off a device that is an OVS port on the userspace datapath.

    OVS reads such a device through a packet socket, but the kernel still
    receives every frame on it too: it would answer ARP there with the
    device's own MAC and route what arrives, a second copy of every packet.
    `ipv6` keeps IPv6 on (a real NIC may need it); a workload port needs none.
    """
    found = (Sysctl(f"net.ipv4.conf.{port}.arp_ignore", "8"), Sysctl(f"net.ipv4.conf.{port}.forwarding", "0"))
    return found if ipv6 else (*found, Sysctl(f"net.ipv6.conf.{port}.disable_ipv6", "1"))


def _bridge_rp_filter(host: Host) -> Sysctl:
    return Sysctl(f"net.ipv4.conf.{host.bridge}.rp_filter", "0")


def _default_routes(host: Host) -> list[Route]:
    return [Route(None, host.gateway, ns.veth, netns=ns.name) for ns in host.namespaces]


def _routes(topology: Topology, host: Host, via_dev: str) -> list[Route]:
    """Each namespace's default route via the gateway; each peer's subnet via its vxlan address, onlink."""
    routes = _default_routes(host)
    routes += [Route(p.subnet, p.vxlan_address, via_dev, onlink=True) for p in topology.peers(host)]
    return routes


# --- rendering as the tutorial's commands ---------------------------------------


def _in(netns: str | None, command: str) -> str:
    return command if netns is None else f"ip netns exec {netns} {command}"


def render(resource: Resource) -> list[str]:
    """The `ip`/`bridge`/`sysctl` commands that create `resource` by hand."""
    match resource:
        case Netns(name):
            return [f"ip netns add {name}"]
        case Vxlan(name, vni, port, local, remote, dev, mac, learning, master):
            target = f" remote {remote}" if remote is not None else ""
            return [
                f"ip link add {name} type vxlan id {vni} dstport {port}{target} local {local} dev {dev}"
                + ("" if learning else " nolearning"),
                f"ip link set dev {name} address {mac}" + (f" master {master}" if master else "") + " up",
            ]
        case FloodEntry(dev, dst):
            return [f"bridge fdb append {ZERO_MAC} dev {dev} dst {dst}"]
        case Bridge(name, mac):
            address = f" address {mac}" if mac else ""
            return [f"ip link add {name} type bridge", f"ip link set dev {name}{address} up"]
        case Veth(name, peer, netns, master, mac, mtu, tx_offload):
            mtu_text = f" mtu {mtu}" if mtu else ""
            return [
                f"ip link add {peer} type veth peer name {name}",
                f"ip link set dev {name}{mtu_text} up",
                f"ip link set {peer} netns {netns}",
                _in(netns, f"ip link set dev {peer} address {mac}{mtu_text} up"),
                *([] if tx_offload else [_in(netns, f"ethtool -K {peer} tx off")]),
                *([f"ip link set dev {name} master {master}"] if master else []),
            ]
        case Up(dev, mtu):
            return [f"ip link set dev {dev}" + (f" mtu {mtu}" if mtu else "") + " up"]
        case Address(dev, _, _, netns):
            return [_in(netns, f"ip addr add {resource.cidr} dev {dev}")]
        case MovedAddress(_, _, origin, dev):
            return [f"ip addr del {resource.cidr} dev {origin}", f"ip addr add {resource.cidr} dev {dev}"]
        case Sysctl(key, value):
            return [f"sysctl -w {key}={value}"]
        case Route(_, gateway, dev, onlink, netns):
            suffix = " onlink" if onlink else ""
            return [_in(netns, f"ip route add {resource.dst_text} via {gateway} dev {dev}{suffix}")]
    raise TypeError(f"not a plan resource: {resource!r}")


def describe(resource: Resource) -> str:
    """A short name for a resource, as status and deploy report it."""
    match resource:
        case Netns(name):
            return f"netns {name}"
        case Vxlan(name, vni, port, local, remote, dev, mac, learning, master):
            return (
                f"vxlan {name} (id {vni}, dstport {port}, local {local}"
                + (f", remote {remote}" if remote else "")
                + ("" if learning else ", nolearning")
                + (f", in {master})" if master else ")")
            )
        case FloodEntry(dev, dst):
            return f"fdb {ZERO_MAC} dev {dev} dst {dst}"
        case Bridge(name, mac):
            return f"bridge {name}" + (f" {mac}" if mac else "")
        case Veth(name, peer, netns, master, mac):
            return f"veth {name}" + (f" (in {master})" if master else "") + f" <-> {netns}:{peer} {mac}"
        case Up(dev):
            return f"link {dev} up"
        case Address(dev, _, _, netns):
            return f"address {resource.cidr} on {netns + ':' if netns else ''}{dev}"
        case MovedAddress(_, _, origin, dev):
            return f"address {resource.cidr} on {dev} (moved from {origin})"
        case Sysctl(key, value):
            return f"sysctl {key}={value}"
        case Route(_, gateway, dev, onlink, netns):
            return f"route {netns + ': ' if netns else ''}{resource.dst_text} via {gateway} dev {dev}" + (
                " onlink" if onlink else ""
            )
    raise TypeError(f"not a plan resource: {resource!r}")


def piece_of(resource: Resource) -> str:
    """The device (or "netns NAME") a resource belongs to, where a picture colours it; "" for the
    host-wide ones (sysctls)."""
    match resource:
        case Netns(name):
            return f"netns {name}"
        case Vxlan(name=name) | Bridge(name=name) | Veth(name=name):
            return name
        case Address(dev=dev, netns=netns) | Route(dev=dev, netns=netns):
            return f"netns {netns}" if netns else dev
        case FloodEntry(dev=dev) | Up(dev=dev) | MovedAddress(dev=dev):
            return dev
    return ""
