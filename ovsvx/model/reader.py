"""A topology read from TOML, strictly: unknown keys, types, ranges, addressing and interface-name
limits are refused, each in one line naming the field as a path (``hosts[1].vtep``).  What the fields
say together is `checks`'.

The built-in default is the tutorial's two-host layout; it is kept as a commented TOML file
(``default.toml``) so that ``ovsvx topology init`` writes exactly what the default parses from.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from ovsvx.errors import TopologyError
from ovsvx.model import checks
from ovsvx.model.topology import (
    ASN_RANGE,
    CERTIFICATE_FIELDS,
    IFNAMSIZ,
    MAX_NAMESPACES,
    MAX_PREFIXES_RANGE,
    PORT_RANGE,
    RESERVED_PORTS,
    Bgp,
    Control,
    Encryption,
    Host,
    Ipsec,
    Mode,
    Namespace,
    Topology,
    shown,
)

# matched whole (fullmatch: a trailing newline is not a name); an interface name never starts with "-",
# which tools it is handed to (ovs-ofctl, ethtool, ovs-appctl) would read as an option
_IFNAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
_NODE_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


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
    checks.check(topology)
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
    checks.check_host(host, t.path)
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
