"""Desired state of one host in kernel mode, as plain values, and its `ip` rendering.

`kernel_plan(topology, host)` is a pure function: it lists, in the tutorial's
order, every object the host must have (links, addresses, routes, sysctls,
namespaces).  The kernel backend compares each with the machine and applies
the difference; `render` prints the same list as the `ip`/`sysctl` commands a
person would type, so `ovsvx plan` reads like the tutorial.

Names of workload namespaces are logical here (``ns1``); where they live on
the machine (a lab adds a prefix) is the backend's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ovsvx.topology import Host, Topology

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
    """The VXLAN device; with a single peer it names it as `remote`, as the tutorial does."""

    name: str
    vni: int
    port: int
    local: IPv4Address
    remote: IPv4Address | None
    dev: str


@dataclass(frozen=True)
class FloodEntry:
    """An all-zero FDB entry: unknown and broadcast frames go to this VTEP too (hosts > 2)."""

    dev: str
    dst: IPv4Address


@dataclass(frozen=True)
class Bridge:
    name: str


@dataclass(frozen=True)
class Veth:
    """A veth pair: `name` on the host in `master`, `peer` inside namespace `netns`."""

    name: str
    peer: str
    netns: str
    master: str


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


Resource = Netns | Vxlan | FloodEntry | Bridge | Veth | Address | Route | Sysctl


def kernel_plan(topology: Topology, host: Host) -> tuple[Resource, ...]:
    """Everything `host` needs in kernel mode, in the order the tutorial builds it."""
    peers = topology.peers(host)
    single = peers[0].vtep if len(peers) == 1 else None
    steps: list[Resource] = [
        Vxlan(host.vxlan, topology.vni, topology.port, host.vtep, single, host.nic),
        *(FloodEntry(host.vxlan, p.vtep) for p in peers if single is None),
        Address(host.vxlan, host.vxlan_address, 32),
        Bridge(host.bridge),
        Address(host.bridge, host.gateway, host.prefixlen),
    ]
    for ns in host.namespaces:
        steps += [
            Netns(ns.name),
            Veth(ns.peer, ns.veth, ns.name, host.bridge),
            Address(ns.veth, ns.address, host.prefixlen, netns=ns.name),
        ]
    steps += [
        Sysctl("net.ipv4.conf.all.rp_filter", "0"),
        Sysctl(f"net.ipv4.conf.{host.bridge}.rp_filter", "0"),
        Sysctl("net.ipv4.ip_forward", "1"),
    ]
    steps += [Route(None, host.gateway, ns.veth, netns=ns.name) for ns in host.namespaces]
    steps += [Route(p.subnet, p.vxlan_address, host.vxlan, onlink=True) for p in peers]
    return tuple(steps)


# --- rendering as the tutorial's commands ---------------------------------------


def _in(netns: str | None, command: str) -> str:
    return command if netns is None else f"ip netns exec {netns} {command}"


def render(resource: Resource) -> list[str]:
    """The `ip`/`bridge`/`sysctl` commands that create `resource` by hand."""
    match resource:
        case Netns(name):
            return [f"ip netns add {name}"]
        case Vxlan(name, vni, port, local, remote, dev):
            target = f" remote {remote}" if remote is not None else ""
            return [
                f"ip link add {name} type vxlan id {vni} dstport {port}{target} local {local} dev {dev}",
                f"ip link set dev {name} up",
            ]
        case FloodEntry(dev, dst):
            return [f"bridge fdb append {ZERO_MAC} dev {dev} dst {dst}"]
        case Bridge(name):
            return [f"ip link add {name} type bridge", f"ip link set dev {name} up"]
        case Veth(name, peer, netns, master):
            return [
                f"ip link add {peer} type veth peer name {name}",
                f"ip link set dev {name} up",
                f"ip link set {peer} netns {netns}",
                _in(netns, f"ip link set dev {peer} up"),
                f"ip link set dev {name} master {master}",
            ]
        case Address(dev, _, _, netns):
            return [_in(netns, f"ip addr add {resource.cidr} dev {dev}")]
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
        case Vxlan(name, vni, port, local, remote, dev):
            return f"vxlan {name} (id {vni}, dstport {port}, local {local}" + (
                f", remote {remote})" if remote else ")")
        case FloodEntry(dev, dst):
            return f"fdb {ZERO_MAC} dev {dev} dst {dst}"
        case Bridge(name):
            return f"bridge {name}"
        case Veth(name, peer, netns, master):
            return f"veth {name} (in {master}) <-> {netns}:{peer}"
        case Address(dev, _, _, netns):
            return f"address {resource.cidr} on {netns + ':' if netns else ''}{dev}"
        case Sysctl(key, value):
            return f"sysctl {key}={value}"
        case Route(_, gateway, dev, onlink, netns):
            return (f"route {netns + ': ' if netns else ''}{resource.dst_text} via {gateway} dev {dev}"
                    + (" onlink" if onlink else ""))
    raise TypeError(f"not a plan resource: {resource!r}")
