"""The topology: hosts, their underlay and overlay addressing, and the names of what is built.

Everything else in ovsvx derives from a `Topology`.  It is loaded from TOML,
validated once and strictly (unknown keys, types, ranges, addressing,
interface-name limits), and is immutable afterwards.  Every error is a single
`TopologyError` naming the field as a path (``hosts[1].vtep``) and what is
allowed there.

The built-in default is the tutorial's two-host layout; it is kept as a
commented TOML file (``default.toml``) so that ``ovsvx topology init`` writes
exactly what the default parses from.  Nothing here assumes two hosts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from ovsvx.errors import TopologyError, UsageError

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


# matched whole (fullmatch: a trailing newline is not a name); an interface name never starts with "-",
# which tools it is handed to (ovs-ofctl, ethtool, ovs-appctl) would read as an option
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
_NODE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
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


# --- loading ---------------------------------------------------------------


def default_text() -> str:
    """The tutorial's topology as commented TOML, the starting point for `topology init`."""
    return resources.files("ovsvx.model").joinpath("default.toml").read_text(encoding="utf-8")


def default() -> Topology:
    return parse_text(default_text(), "built-in default")


def load(path: Path | None) -> Topology:
    """The topology in `path`, or the built-in default when no path is given."""
    if path is None:
        return default()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise TopologyError(f"{path}: cannot read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise TopologyError(f"{path}: not UTF-8 text") from None
    return parse_text(text, str(path))


def parse_text(text: str, source: str) -> Topology:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise TopologyError(f"{source}: malformed TOML: {err}") from None
    except RecursionError:
        raise TopologyError(f"{source}: malformed TOML: arrays or tables nested too deeply") from None
    try:
        return parse(data)
    except TopologyError as err:
        raise TopologyError(f"{source}: {err}") from None
    except RecursionError:
        raise TopologyError(f"{source}: values nested too deeply") from None


def parse(data: dict[str, Any]) -> Topology:
    """Build and validate a Topology from plain data (as TOML gives it)."""
    top = _Table(data, "")
    topology = Topology(
        vni=top.integer("vni", 1, 2**24 - 1),
        port=_port(top),
        underlay=top.network("underlay"),
        underlay_mtu=top.integer("underlay_mtu", 1280, 9216, default=1500),
        hosts=tuple(_host(t) for t in top.tables("hosts", minimum=2)),
        control=Control(top.choice("control", tuple(Control), default=Control.STATIC)),
        bgp=_bgp(bgp) if (bgp := top.table("bgp", optional=True)) else None,
        encryption=Encryption(top.choice("encryption", tuple(Encryption), default=Encryption.NONE)),
        ipsec=_ipsec(ipsec) if (ipsec := top.table("ipsec", optional=True)) else None,
    )
    top.done()
    _check(topology)
    return topology


def _port(top: _Table) -> int:
    port = top.integer("port", *PORT_RANGE)
    if port in RESERVED_PORTS:
        taken = ", ".join(f"{p} ({what})" for p, what in sorted(RESERVED_PORTS.items()))
        raise TopologyError(f"port: {port} is not allowed: it is {RESERVED_PORTS[port]}'s; not one of {taken}")
    return port


def _host(t: _Table) -> Host:
    host = Host(
        name=t.node_name("name"),
        nic=t.ifname("nic"),
        vtep=t.address("vtep"),
        subnet=t.network("subnet"),
        gateway=t.address("gateway"),
        bridge=t.ifname("bridge"),
        vxlan=t.ifname("vxlan"),
        vxlan_address=t.address("vxlan_address"),
        namespaces=tuple(_namespace(n) for n in t.tables("namespaces", minimum=1, maximum=MAX_NAMESPACES)),
        mode=_mode(t.choice("mode", tuple(Mode), default=None)),
    )
    t.done()
    _check_host(host, t.path)
    return host


def _bgp(t: _Table) -> Bgp:
    bgp = Bgp(
        asn=t.integer("asn", *ASN_RANGE),
        route_reflectors=tuple(t.addresses("route_reflectors")),
        password_file=t.absolute_path("password_file", default=None),
        accept=tuple(t.networks("accept", any_length=True)) if "accept" in t.data else (),
        max_prefixlen=t.integer("max_prefixlen", 1, 32, default=30),
        max_prefixes=t.integer("max_prefixes", *MAX_PREFIXES_RANGE, default=1024),
    )
    t.done()
    return bgp


CERTIFICATE_FIELDS = ("cert", "key", "ca")


def _ipsec(t: _Table) -> Ipsec:
    """A pre-shared key, or certificates: exactly one of the two, and all three files of the second."""
    ipsec = Ipsec(**{name: t.absolute_path(name, default=None) for name in ("psk_file", *CERTIFICATE_FIELDS)})
    t.done()
    given = [name for name in CERTIFICATE_FIELDS if getattr(ipsec, name) is not None]
    if ipsec.psk_file is not None and given:
        raise TopologyError(
            f"{t.field(given[0])}: not allowed with psk_file: one way of proving, a key or certificates"
        )
    if ipsec.psk_file is None and len(given) < len(CERTIFICATE_FIELDS):
        if not given:
            raise TopologyError(f"{t.field('psk_file')}: missing: a pre-shared key file, or cert, key and ca")
        lacking = next(name for name in CERTIFICATE_FIELDS if name not in given)
        raise TopologyError(f"{t.field(lacking)}: missing: certificates need cert, key and ca")
    return ipsec


def _mode(value: str | None) -> Mode | None:
    return None if value is None else Mode(value)


def _namespace(t: _Table) -> Namespace:
    ns = Namespace(
        name=t.node_name("name"),
        address=t.address("address"),
        veth=t.ifname("veth"),
        peer=t.ifname("peer"),
    )
    t.done()
    return ns


def _network(value: str, field: str, longest: int = 30) -> IPv4Network:
    """An IPv4 network with no host bits set, of /`longest` or shorter."""
    try:
        net = IPv4Network(value, strict=True)
    except ValueError:
        raise TopologyError(
            f"{field}: {shown(value)} is not allowed: an IPv4 network such as 192.168.1.0/24 (no host bits set)"
        ) from None
    if net.prefixlen > longest:
        raise TopologyError(f"{field}: {shown(value)} is not allowed: a prefix of /{longest} or shorter")
    return net


class _Table:
    """Reads one TOML table, remembering which keys were used so the rest can be refused."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise TopologyError(f"{path or 'topology'}: expected a table")
        self.data = data
        self.path = path
        self.used: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, default: Any = ...) -> Any:
        self.used.add(key)
        if key in self.data:
            return self.data[key]
        if default is ...:
            raise TopologyError(f"{self.field(key)}: missing")
        return default

    def integer(self, key: str, lo: int, hi: int, default: Any = ...) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise TopologyError(f"{self.field(key)}: {shown(value)} is not allowed: an integer in {lo}..{hi}")
        return value

    def string(self, key: str, default: Any = ...) -> Any:
        """A string; None only for an optional key that is absent (an explicit null is refused)."""
        value = self._get(key, default)
        if key not in self.data and value is None:
            return None
        if not isinstance(value, str):
            raise TopologyError(f"{self.field(key)}: {shown(value)} is not allowed: a string")
        return value

    def absolute_path(self, key: str, default: Any = ...) -> Any:
        """An absolute path of one line; None only for an optional key that is absent."""
        value = self.string(key, default)
        if value is not None and not (value.startswith("/") and value.isprintable()):
            raise TopologyError(
                f"{self.field(key)}: {shown(value)} is not allowed: an absolute path of printable characters"
            )
        return Path(value) if value is not None else None

    def choice(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> Any:
        value = self.string(key, default)
        if value is not None and value not in allowed:
            raise TopologyError(f"{self.field(key)}: {shown(value)} is not allowed: one of {', '.join(allowed)}")
        return value

    def ifname(self, key: str) -> str:
        value: str = self.string(key)
        if not 1 <= len(value) <= IFNAMSIZ or not _IFNAME_RE.fullmatch(value) or value in (".", ".."):
            raise TopologyError(
                f"{self.field(key)}: {shown(value)} is not allowed: an interface name of 1..{IFNAMSIZ} "
                "characters from A-Z a-z 0-9 _ . -, not starting with -"
            )
        return value

    def node_name(self, key: str) -> str:
        value: str = self.string(key)
        if not _NODE_NAME_RE.fullmatch(value):
            raise TopologyError(
                f"{self.field(key)}: {shown(value)} is not allowed: 1..32 characters from A-Z a-z 0-9 _ . -, "
                "starting with a letter or digit"
            )
        return value

    def address(self, key: str) -> IPv4Address:
        value = self.string(key)
        try:
            return IPv4Address(value)
        except ValueError:
            raise TopologyError(f"{self.field(key)}: {shown(value)} is not allowed: an IPv4 address") from None

    def network(self, key: str) -> IPv4Network:
        return _network(self.string(key), self.field(key))

    def networks(self, key: str, any_length: bool = False) -> list[IPv4Network]:
        """A non-empty list of IPv4 networks that do not overlap (`any_length`: up to /32)."""
        value = self._get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise TopologyError(
                f"{self.field(key)}: {shown(value)} is not allowed: a list of IPv4 networks, at least one"
            )
        found: list[IPv4Network] = []
        for i, text in enumerate(value):
            net = _network(text, f"{self.field(key)}[{i}]", longest=32 if any_length else 30)
            if clash := next((n for n in found if n.overlaps(net)), None):
                raise TopologyError(f"{self.field(key)}[{i}]: {net} overlaps {clash}, listed before it")
            found.append(net)
        return found

    def addresses(self, key: str) -> list[IPv4Address]:
        """A non-empty list of distinct IPv4 addresses."""
        value = self._get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise TopologyError(
                f"{self.field(key)}: {shown(value)} is not allowed: a list of IPv4 addresses, at least one"
            )
        found: list[IPv4Address] = []
        for i, text in enumerate(value):
            try:
                address = IPv4Address(text)
            except ValueError:
                raise TopologyError(f"{self.field(key)}[{i}]: {shown(text)} is not allowed: an IPv4 address") from None
            if address in found:
                raise TopologyError(f"{self.field(key)}[{i}]: {text} is listed twice")
            found.append(address)
        return found

    def table(self, key: str, optional: bool = False) -> _Table | None:
        value = self._get(key, None if optional else ...)
        return None if value is None else _Table(value, self.field(key))

    def tables(self, key: str, minimum: int, maximum: int | None = None) -> list[_Table]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value) or len(value) < minimum:
            raise TopologyError(f"{self.field(key)}: expected at least {minimum} [[{key}]] table(s)")
        if maximum is not None and len(value) > maximum:
            raise TopologyError(f"{self.field(key)}: {len(value)} [[{key}]] tables; at most {maximum} are allowed")
        return [_Table(v, f"{self.field(key)}[{i}]") for i, v in enumerate(value)]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise TopologyError(f"{self.field(unknown[0])}: unknown key; allowed here: {', '.join(sorted(self.used))}")


# --- validation across fields ------------------------------------------------


def usable(addr: IPv4Address, net: IPv4Network) -> bool:
    """A host address of `net`: inside it, and neither its network nor its broadcast address."""
    return addr in net and addr not in (net.network_address, net.broadcast_address)


def _check_host(host: Host, path: str) -> None:
    """Addresses inside their subnet and distinct; interface names distinct on the host."""
    _routable(host.subnet, f"{path}.subnet")
    own = [("gateway", host.gateway), ("vxlan_address", host.vxlan_address)]
    own += [(f"namespaces[{i}].address", ns.address) for i, ns in enumerate(host.namespaces)]
    seen: dict[IPv4Address, str] = {}
    for field, addr in own:
        if not usable(addr, host.subnet):
            raise TopologyError(f"{path}.{field}: {addr} is not allowed: a host address inside subnet {host.subnet}")
        if addr in seen:
            raise TopologyError(f"{path}.{field}: {addr} is already used by {path}.{seen[addr]}")
        seen[addr] = field
    names = [("nic", host.nic), ("bridge", host.bridge), ("vxlan", host.vxlan)]
    names += [(f"namespaces[{i}].peer", ns.peer) for i, ns in enumerate(host.namespaces)]
    taken: dict[str, str] = {}
    for field, name in names:
        if name in taken:
            raise TopologyError(f"{path}.{field}: interface {name!r} is already used by {path}.{taken[name]}")
        taken[name] = field


def _check(topology: Topology) -> None:
    """Names and addresses unique across hosts; subnets apart from each other and from the underlay."""
    names: dict[str, str] = {}
    vteps: dict[IPv4Address, str] = {}
    nets: list[tuple[IPv4Network, str]] = [(topology.underlay, "underlay")]
    _routable(topology.underlay, "underlay")
    for i, host in enumerate(topology.hosts):
        path = f"hosts[{i}]"
        _check_names(topology, host, path)
        for field, name in [("name", host.name)] + [
            (f"namespaces[{j}].name", ns.name) for j, ns in enumerate(host.namespaces)
        ]:
            if name in names:
                raise TopologyError(f"{path}.{field}: name {name!r} is already used by {names[name]}")
            names[name] = f"{path}.{field}"
        if not usable(host.vtep, topology.underlay):
            raise TopologyError(
                f"{path}.vtep: {host.vtep} is not allowed: a host address inside underlay {topology.underlay}"
            )
        if host.vtep in vteps:
            raise TopologyError(f"{path}.vtep: {host.vtep} is already used by {vteps[host.vtep]}")
        vteps[host.vtep] = f"{path}.vtep"
        for other, where in nets:
            if host.subnet.overlaps(other):
                raise TopologyError(f"{path}.subnet: {host.subnet} overlaps {where} ({other})")
        nets.append((host.subnet, f"{path}.subnet"))
    _check_control(topology, vteps)
    _check_encryption(topology)


def _check_names(topology: Topology, host: Host, path: str) -> None:
    """No interface the topology names on the host is one ovsvx derives there or one every stack has; a
    namespace's own end is no `lo` (the namespace's loopback)."""
    derived = derived_names(topology, host)
    named = [("nic", host.nic), ("bridge", host.bridge), ("vxlan", host.vxlan)]
    named += [(f"namespaces[{j}].peer", ns.peer) for j, ns in enumerate(host.namespaces)]
    for field, name in named:
        if name in derived:
            raise TopologyError(f"{path}.{field}: {name!r} is not allowed: it is the name of {derived[name]}")
    for j, ns in enumerate(host.namespaces):
        if ns.veth == "lo":
            raise TopologyError(f"{path}.namespaces[{j}].veth: 'lo' is not allowed: it is the namespace's loopback")


def _routable(network: IPv4Network, field: str) -> None:
    """A network where hosts can live: none of NEVER_ROUTED's ranges."""
    for reserved, what in NEVER_ROUTED.items():
        if network.overlaps(reserved):
            raise TopologyError(f"{field}: {network} is not allowed: it overlaps {reserved}, {what}")


#: Under EVPN the hosts' firewall admits the whole underlay to the VXLAN port (peers are not listed): a
#: /16 holds 65,534 VTEPs, and anything wider would open the tunnel to a far larger part of the network.
EVPN_WIDEST_UNDERLAY = 16


def _check_control(topology: Topology, vteps: dict[IPv4Address, str]) -> None:
    """EVPN needs its [bgp] table, static has no use for one; route reflectors sit on the underlay, apart
    from the VTEPs."""
    if topology.bgp is None:
        if topology.evpn:
            raise TopologyError('bgp: missing: control = "evpn" needs a [bgp] table with asn and route_reflectors')
        return
    if not topology.evpn:
        raise TopologyError('bgp: only read with control = "evpn" (control is "static"): remove [bgp] or set control')
    if topology.underlay.prefixlen < EVPN_WIDEST_UNDERLAY:
        raise TopologyError(
            f"underlay: {topology.underlay} is too wide under EVPN: at most a /{EVPN_WIDEST_UNDERLAY} "
            "(the firewall admits the whole underlay to the VXLAN port, since peers come and go)"
        )
    for i, address in enumerate(topology.bgp.route_reflectors):
        field = f"bgp.route_reflectors[{i}]"
        if not usable(address, topology.underlay):
            raise TopologyError(
                f"{field}: {address} is not allowed: a host address inside underlay {topology.underlay}"
            )
        if address in vteps:
            raise TopologyError(f"{field}: {address} is already used by {vteps[address]}")
    _check_route_policy(topology)


def _check_route_policy(topology: Topology) -> None:
    """The overlay's range holds every host's subnet (else the hosts would refuse each other's routes),
    and is no underlay and nothing that is never routed."""
    assert topology.bgp is not None
    for i, network in enumerate(topology.bgp.accept):
        field = f"bgp.accept[{i}]"
        _routable(network, field)
        if network.overlaps(topology.underlay):
            raise TopologyError(f"{field}: {network} is not allowed: it overlaps the underlay {topology.underlay}")
    for i, host in enumerate(topology.hosts):
        if not any(host.subnet.subnet_of(network) for network in topology.overlay_range):
            ranges = ", ".join(map(str, topology.overlay_range))
            raise TopologyError(f"hosts[{i}].subnet: {host.subnet} lies outside bgp.accept ({ranges})")
        if host.subnet.prefixlen > topology.bgp.max_prefixlen:
            raise TopologyError(
                f"hosts[{i}].subnet: {host.subnet} is longer than bgp.max_prefixlen (/{topology.bgp.max_prefixlen})"
            )


def _check_encryption(topology: Topology) -> None:
    """IPsec needs its [ipsec] table, and no IPsec has no use for one."""
    if topology.ipsec is None:
        if topology.encrypted:
            raise TopologyError(
                'ipsec: missing: encryption = "ipsec" needs an [ipsec] table with psk_file, or cert, key and ca'
            )
        return
    if not topology.encrypted:
        raise TopologyError(
            'ipsec: only read with encryption = "ipsec" (encryption is "none"): remove [ipsec] or set it'
        )
    if topology.port in IKE_PORTS:
        raise TopologyError(
            f'port: {topology.port} is not allowed with encryption = "ipsec": it is IKE\'s {IKE_PORTS[topology.port]}'
        )


# --- presentation -------------------------------------------------------------


def to_data(topology: Topology) -> dict[str, Any]:
    """Plain data for JSON output and for the deployment record (round-trips through `parse`)."""

    def host(h: Host) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": h.name,
            "nic": h.nic,
            "vtep": str(h.vtep),
            "subnet": str(h.subnet),
            "gateway": str(h.gateway),
            "bridge": h.bridge,
            "vxlan": h.vxlan,
            "vxlan_address": str(h.vxlan_address),
            "namespaces": [
                {"name": n.name, "address": str(n.address), "veth": n.veth, "peer": n.peer} for n in h.namespaces
            ],
        }
        if h.mode is not None:
            data["mode"] = h.mode
        return data

    data: dict[str, Any] = {
        "vni": topology.vni,
        "port": topology.port,
        "underlay": str(topology.underlay),
        "underlay_mtu": topology.underlay_mtu,
    }
    if topology.bgp is not None:
        data["control"] = str(topology.control)
        data["bgp"] = {"asn": topology.bgp.asn, "route_reflectors": [str(a) for a in topology.bgp.route_reflectors]}
        if topology.bgp.password_file is not None:
            data["bgp"]["password_file"] = str(topology.bgp.password_file)
        if topology.bgp.accept:
            data["bgp"]["accept"] = [str(n) for n in topology.bgp.accept]
        for key, default in (("max_prefixlen", 30), ("max_prefixes", 1024)):
            if getattr(topology.bgp, key) != default:
                data["bgp"][key] = getattr(topology.bgp, key)
    if topology.ipsec is not None:
        data["encryption"] = str(topology.encryption)
        fields = ("psk_file", *CERTIFICATE_FIELDS)
        data["ipsec"] = {name: str(path) for name in fields if (path := getattr(topology.ipsec, name)) is not None}
    data["hosts"] = [host(h) for h in topology.hosts]
    return data


# --- generated topologies ---------------------------------------------------------------

#: How many hosts `generate` lays out: host i gets 192.168.i.0/24, so at most 254.
MAX_GENERATED_HOSTS = 254
GENERATED_UNDERLAY = IPv4Network("10.33.0.0/16")
FIRST_GENERATED_VTEP = IPv4Address("10.33.30.150")
#: Generated hosts take 192.168.i.0/24: the overlay's range holds them all, so a host that joins later
#: (a bigger generated topology) is taken by those deployed before it.
GENERATED_BGP = Bgp(asn=65000, route_reflectors=(IPv4Address("10.33.30.2"),), accept=(IPv4Network("192.168.0.0/16"),))


def generate(count: int, control: Control = Control.STATIC) -> Topology:
    """The tutorial's pattern for `count` hosts: host i has NIC ens160 with VTEP 10.33.30.150 + i - 1
    (one /16 underlay), subnet 192.168.i.0/24 with gateway .1 on br<i>, vxlan<i> with .254, and one
    namespace ns<i> at .100 on tap1/tap2.  For labs of many hosts (`ovsvx topology init --hosts N`).
    With EVPN, AS 65000, one route reflector at 10.33.30.2, and 192.168.0.0/16 as the overlay's range."""
    if not 2 <= count <= MAX_GENERATED_HOSTS:
        raise UsageError(f"--hosts {count} is not allowed: from 2 to {MAX_GENERATED_HOSTS}")
    hosts = []
    for i in range(1, count + 1):
        subnet = IPv4Network(f"192.168.{i}.0/24")
        hosts.append(
            Host(
                name=f"host{i}",
                nic="ens160",
                vtep=FIRST_GENERATED_VTEP + i - 1,
                subnet=subnet,
                gateway=subnet[1],
                bridge=f"br{i}",
                vxlan=f"vxlan{i}",
                vxlan_address=subnet[254],
                namespaces=(Namespace(f"ns{i}", subnet[100], "tap1", "tap2"),),
            )
        )
    bgp = GENERATED_BGP if control == Control.EVPN else None
    generated = Topology(100, 4789, GENERATED_UNDERLAY, 1500, tuple(hosts), Control(control), bgp)
    _check(generated)
    return generated


def to_toml(topology: Topology) -> str:
    """The topology as a file `load` reads back to the same value."""

    def value(v: Any) -> str:
        return str(v) if isinstance(v, int) else f'"{v}"'

    data = to_data(topology)
    top = ("vni", "port", "underlay", "underlay_mtu", "control", "encryption")
    lines = [f"{key} = {value(data[key])}" for key in top if key in data]
    if "bgp" in data:
        reflectors = ", ".join(value(a) for a in data["bgp"]["route_reflectors"])
        lines += ["", "[bgp]", f"asn = {data['bgp']['asn']}", f"route_reflectors = [{reflectors}]"]
        if "password_file" in data["bgp"]:
            lines.append(f"password_file = {value(data['bgp']['password_file'])}")
        if "accept" in data["bgp"]:
            lines.append(f"accept = [{', '.join(value(n) for n in data['bgp']['accept'])}]")
        lines += [f"{key} = {data['bgp'][key]}" for key in ("max_prefixlen", "max_prefixes") if key in data["bgp"]]
    if "ipsec" in data:
        lines += ["", "[ipsec]", *(f"{name} = {value(path)}" for name, path in data["ipsec"].items())]
    for host in data["hosts"]:
        lines += ["", "[[hosts]]"] + [f"{k} = {value(v)}" for k, v in host.items() if k != "namespaces"]
        for ns in host["namespaces"]:
            lines += ["", "  [[hosts.namespaces]]"] + [f"  {k} = {value(v)}" for k, v in ns.items()]
    return "\n".join(lines) + "\n"


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
