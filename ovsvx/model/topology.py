"""The topology: hosts, their underlay and overlay addressing, and the names of what is built.

Everything else in ovsvx derives from a `Topology`: immutable values, with the names ovsvx derives
from them (devices, MACs) and the overlay's nodes.  A topology comes from `reader` (TOML, read
strictly), checked across its fields by `checks`; `writer` gives it back as data or TOML, and
`generated` makes large ones in the tutorial's pattern.  Every refusal is a single `TopologyError`
naming the field as a path (``hosts[1].vtep``) and what is allowed there.  Nothing here assumes two
hosts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from ovsvx.errors import UsageError

#: Bytes VXLAN adds to every frame on an IPv4 underlay: outer Ethernet 14, IP 20, UDP 8, VXLAN 8.
VXLAN_OVERHEAD = 50
#: Bytes ESP in transport mode adds to each VXLAN packet with AES-GCM-16 (swanctl.py's only proposal): header
#: 8, IV 8, padding 0-3 with its length and next-header bytes 2, ICV 16: at most 37, rounded up.  NAT
#: traversal's UDP header is not counted: ovsvx turns it off (the VTEPs reach each other directly).
ESP_OVERHEAD = 40
IFNAMSIZ = 15  # the kernel's interface-name limit, not counting the terminating NUL


class Mode(StrEnum):
    """How a host is built: the tutorial's Linux bridge and vxlan device, or Open vSwitch and os-ken."""

    KERNEL = "kernel"
    OVS = "ovs"


class Control(StrEnum):
    """How hosts learn each other: from the topology file (every host holds every other), or from BGP EVPN
    routes, so a host joins or leaves without the others being touched."""

    STATIC = "static"
    EVPN = "evpn"


class Encryption(StrEnum):
    """What protects the VXLAN packets between the VTEPs: nothing (the tutorial), or IPsec (ESP, keyed by
    IKEv2 through strongSwan: ipsec.py)."""

    NONE = "none"
    IPSEC = "ipsec"


#: 4-byte AS numbers; 0 and 4294967295 are reserved (RFC 7607, RFC 7300).
ASN_RANGE = (1, 4294967294)


#: A host's namespaces take OpenFlow ports 1..MAX_NAMESPACES; its tunnel ports come after them.
MAX_NAMESPACES = 99
#: UDP ports a VXLAN overlay may take: none of the well-known ones (below 1024: DNS, NTP, ...), nor those
#: of Open vSwitch's own control channels.  deploy drops the port for everyone but the peers.
PORT_RANGE = (1024, 65535)
RESERVED_PORTS = {6633: "OpenFlow", 6640: "OVSDB", 6653: "OpenFlow"}
#: Ports charon takes for IKE under encryption = "ipsec" (500 is below PORT_RANGE already).
IKE_PORTS = {500: "port", 4500: "NAT-traversal port"}
SHOWN_CHARS = 60  # an error quotes at most this much of a bad value
#: Addresses that are never an overlay's, nor an underlay's: no host of a network lives there (RFC 6890).
NEVER_ROUTED = {
    IPv4Network("0.0.0.0/8"): "'this network'",
    IPv4Network("127.0.0.0/8"): "loopback",
    IPv4Network("169.254.0.0/16"): "link-local (cloud metadata lives there)",
    IPv4Network("224.0.0.0/4"): "multicast",
    IPv4Network("240.0.0.0/4"): "reserved (and broadcast)",
}
#: bgp.max_prefixes: at least one route a session, and no more than a speaker's tables are sized for.
MAX_PREFIXES_RANGE = (1, 100_000)


def shown(value: object) -> str:
    """A value as an error quotes it: its repr, cut short when long (a 1 MB string is not echoed)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Namespace:
    """A workload namespace hanging off its host's bridge by a veth pair."""

    name: str
    address: IPv4Address
    veth: str  # the end inside the namespace (tutorial: tap1)
    peer: str  # the end on the host, enslaved to the bridge (tutorial: tap2)


@dataclass(frozen=True)
class Host:
    """One VTEP: its underlay NIC and address, and the overlay subnet behind it."""

    name: str
    nic: str
    vtep: IPv4Address
    subnet: IPv4Network
    gateway: IPv4Address
    bridge: str
    vxlan: str
    vxlan_address: IPv4Address
    namespaces: tuple[Namespace, ...]
    mode: Mode | None = None  # None: whatever the command line says

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen


@dataclass(frozen=True)
class Bgp:
    """The EVPN control plane: one AS for the whole overlay (iBGP), whose hosts each peer with every route
    reflector; a host's router id is its VTEP."""

    asn: int
    route_reflectors: tuple[IPv4Address, ...]
    # A root-only file holding the sessions' TCP MD5 password (RFC 2385), read where a session is made and
    # never written anywhere else; None: the sessions have none.
    password_file: Path | None = None
    # The overlay's address range: a route from BGP is taken only inside it (`routepolicy`).  Empty: the
    # smallest range that covers the topology's own subnets (`Topology.overlay_range`).
    accept: tuple[IPv4Network, ...] = ()
    max_prefixlen: int = 30  # the longest prefix taken (a host's subnet is at most a /30)
    max_prefixes: int = 1024  # the most routes one session brings; a speaker that sends more loses its session


#: Stands for a host's name in an [ipsec] path, so that one topology serves every host of a lab.
HOST_IN_PATH = "{host}"
#: The files of `ipsec` that certificates take (psk_file is the other way).
CERTIFICATE_FIELDS = ("cert", "key", "ca")


@dataclass(frozen=True)
class Ipsec:
    """How the VTEPs prove themselves to each other in IKE: a pre-shared key in a root-only file, or
    certificates: each host's own (naming its VTEP as an IP address in subjectAltName) with its key,
    and the CA that signed them.  Key files are read where charon is given them and never written
    anywhere else (not in `plan`, the record, a log or an error)."""

    psk_file: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    @property
    def certificates(self) -> bool:
        return self.psk_file is None

    def of(self, path: Path, host: str) -> Path:
        """`path` for `host`: {host} in it replaced by the host's name."""
        return Path(str(path).replace(HOST_IN_PATH, host))

    def files(self, host: str) -> list[tuple[str, Path, bool]]:
        """The files `host` reads, each as (its field, its path, whether it holds a secret)."""
        if self.psk_file is not None:
            return [("psk_file", self.psk_file, True)]
        assert self.cert is not None and self.key is not None and self.ca is not None
        return [
            ("cert", self.of(self.cert, host), False),
            ("key", self.of(self.key, host), True),
            ("ca", self.ca, False),
        ]


@dataclass(frozen=True)
class Topology:
    """A VXLAN overlay: one VNI and UDP port, the hosts that take part, and how they learn each other."""

    vni: int
    port: int
    underlay: IPv4Network
    underlay_mtu: int
    hosts: tuple[Host, ...]
    control: Control = Control.STATIC
    bgp: Bgp | None = None  # set exactly when control is EVPN
    encryption: Encryption = Encryption.NONE
    ipsec: Ipsec | None = None  # set exactly when encryption is IPsec

    @property
    def evpn(self) -> bool:
        return self.control == Control.EVPN

    @property
    def encrypted(self) -> bool:
        return self.encryption == Encryption.IPSEC

    @property
    def encapsulation(self) -> int:
        """The bytes each frame gains on the underlay: VXLAN's, and ESP's when encrypted."""
        return VXLAN_OVERHEAD + (ESP_OVERHEAD if self.encrypted else 0)

    @property
    def overlay_mtu(self) -> int:
        """The largest inner frame payload that fits the underlay after encapsulation."""
        return self.underlay_mtu - self.encapsulation

    @property
    def overlay_range(self) -> tuple[IPv4Network, ...]:
        """Where the overlay's subnets lie, as EVPN's route policy takes them: `bgp.accept`, else the
        smallest network that covers every host's subnet."""
        if self.bgp is not None and self.bgp.accept:
            return self.bgp.accept
        return (covering(h.subnet for h in self.hosts),)

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise UsageError(f"unknown host {name!r}: the topology has {', '.join(h.name for h in self.hosts)}")

    def peers(self, host: Host) -> tuple[Host, ...]:
        """The other hosts, whose subnets this host reaches through the tunnel."""
        return tuple(h for h in self.hosts if h.name != host.name)

    def namespace(self, name: str) -> tuple[Host, Namespace]:
        for host in self.hosts:
            for ns in host.namespaces:
                if ns.name == name:
                    return host, ns
        raise UsageError(f"unknown namespace {name!r}")


def covering(networks: Iterable[IPv4Network]) -> IPv4Network:
    """The smallest network that holds every one of `networks`."""
    every = list(networks)
    found = every[0]
    while not all(n.subnet_of(found) for n in every):
        found = found.supernet()
    return found


# --- the names ovsvx derives -------------------------------------------------------------

#: The userspace datapath's bridge for the underlay NIC (ovs mode); the VTEP address moves onto it.
PHYS_BRIDGE = "br-phy"
#: Names every stack has, or Open vSwitch gives its datapaths: never one of the topology's.
RESERVED_IFNAMES = {
    "lo": "the loopback device",
    PHYS_BRIDGE: "ovs mode's bridge for the underlay NIC",
    "ovs-system": "Open vSwitch's kernel datapath",
    "ovs-netdev": "Open vSwitch's userspace datapath",
}


def routed_vni_bridge(topology: Topology) -> str:
    """The bridge of EVPN's routed VNI on every kernel-mode host: `vni100` for VNI 100."""
    return f"vni{topology.vni}"


def kernel_tunnel_device(port: int) -> str:
    """The device OVS's kernel datapath makes for all its vxlan ports on UDP `port` (the userspace
    datapath has none: it tunnels through its own stack)."""
    return f"vxlan_sys_{port}"


def tunnel_port_name(host: Host, index: int, peers: int) -> str:
    """Ovs mode's vxlan port towards the `index`th of `peers` peers (static control): the tutorial's
    vxlan1 for one peer, vxlan1-1, vxlan1-2, ... for more."""
    return host.vxlan if peers == 1 else f"{host.vxlan[:11]}-{index + 1}"


def derived_names(topology: Topology, host: Host) -> dict[str, str]:
    """The interfaces ovsvx makes or meets on `host` beside those the topology names, each with what it is."""
    names = dict(RESERVED_IFNAMES)
    names[kernel_tunnel_device(topology.port)] = "Open vSwitch's tunnel device for the overlay's port"
    if topology.evpn:
        names[routed_vni_bridge(topology)] = "EVPN's bridge of the routed VNI"
    else:
        count = len(topology.peers(host))
        for i in range(count if count > 1 else 0):
            names[tunnel_port_name(host, i, count)] = "ovs mode's vxlan port towards a peer"
    return names


def mac_for(address: IPv4Address) -> str:
    """The MAC ovsvx gives the interface holding `address`: 02:00 and the address's four bytes.

    Locally administered and deterministic, so flows can be computed before a
    switch exists, a kernel-mode peer and an OVS peer agree on each other's
    router MACs, and every capture shows which address a MAC belongs to
    (02:00:c0:a8:01:fe is 192.168.1.254).
    """
    return "02:00:" + ":".join(f"{b:02x}" for b in address.packed)


def usable(addr: IPv4Address, net: IPv4Network) -> bool:
    """A host address of `net`: inside it, and neither its network nor its broadcast address."""
    return addr in net and addr not in (net.network_address, net.broadcast_address)


# --- the overlay's nodes, by name or address ---------------------------------------------------


@dataclass(frozen=True)
class Node:
    """Something with an overlay address that a probe, a trace or a capture starts or ends at."""

    name: str
    host: str  # the host it lives on (a host is on itself)
    address: IPv4Address
    is_host: bool


def nodes(topology: Topology) -> list[Node]:
    found = []
    for host in topology.hosts:
        found.append(Node(host.name, host.name, host.gateway, True))
        found += [Node(ns.name, host.name, ns.address, False) for ns in host.namespaces]
    return found


def find_node(topology: Topology, name: str) -> Node:
    """A node by name, or the node holding an address."""
    every = nodes(topology)
    for node in every:
        if name in (node.name, str(node.address)):
            return node
    raise UsageError(
        f"unknown node or address {name!r}: one of {', '.join(n.name for n in every)}, or one of their addresses"
    )
