"""The netlink pieces of a host's desired state, as plain values, and their `ip` rendering.

Each mode's plan is a list of these (`kernel/plan.py`: the tutorial's layout,
in its order; `ovs/plan.py`: the same around an Open vSwitch bridge, split in
what must exist before the switch and what needs its internal port).  The
netlink reconciler compares each value with the machine and applies the
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


def workloads(host: Host, master: str | None, mtu: int | None, tx_offload: bool) -> list[Resource]:
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


def bridge_rp_filter(host: Host) -> Sysctl:
    return Sysctl(f"net.ipv4.conf.{host.bridge}.rp_filter", "0")


def default_routes(host: Host) -> list[Route]:
    return [Route(None, host.gateway, ns.veth, netns=ns.name) for ns in host.namespaces]


def peer_routes(topology: Topology, host: Host, via_dev: str) -> list[Route]:
    """Each namespace's default route via the gateway; each peer's subnet via its vxlan address, onlink."""
    routes = default_routes(host)
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
