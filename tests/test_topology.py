"""The topology model: the default, loading, and every kind of bad input (no root needed)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from ovsvx.errors import TopologyError, UsageError
from ovsvx.model import generated, reader, writer
from tests.topologies import default_data, three_hosts


def test_default_is_the_tutorial_layout() -> None:
    topo = reader.default()
    assert (topo.vni, topo.port, topo.overlay_mtu) == (100, 4789, 1450)
    h1, h2 = topo.hosts
    assert (h1.name, h1.nic, h1.vtep, h1.bridge, h1.vxlan) == (
        "host1",
        "ens160",
        IPv4Address("10.33.30.150"),
        "br1",
        "vxlan1",
    )
    assert (h1.subnet, h1.gateway, h1.vxlan_address) == (
        IPv4Network("192.168.1.0/24"),
        IPv4Address("192.168.1.1"),
        IPv4Address("192.168.1.254"),
    )
    assert [(n.name, str(n.address), n.veth, n.peer) for n in h1.namespaces] == [
        ("ns1", "192.168.1.100", "tap1", "tap2")
    ]
    assert (h2.vtep, h2.vxlan, h2.namespaces[0].name) == (IPv4Address("10.33.30.151"), "vxlan2", "ns2")
    assert topo.peers(h1) == (h2,)


def test_init_text_parses_to_the_default(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(reader.default_text())
    assert reader.load(path) == reader.default()


def test_round_trip_through_plain_data() -> None:
    assert reader.parse(default_data()) == reader.default()


def test_more_than_two_hosts() -> None:
    topo = reader.parse(three_hosts())
    assert [p.name for p in topo.peers(topo.hosts[0])] == ["host2", "host3"]


def test_unknown_host_names_the_choices() -> None:
    with pytest.raises(UsageError, match="unknown host 'host9'.*host1, host2"):
        reader.default().host("host9")


def mutate(path: str, value: object) -> dict:
    """The default topology with the value at a dotted path (hosts.0.vtep) replaced; None deletes it."""
    data = default_data()
    *parents, last = path.split(".")
    node: object = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    if value is None:
        del node[last]  # type: ignore[index]
    else:
        node[last] = value  # type: ignore[index]
    return data


BAD = [
    ("vni", 0, r"^vni: 0 is not allowed: an integer in 1\.\.16777215$"),
    ("vni", 2**24, r"^vni: 16777216 is not allowed"),
    ("vni", "100", r"^vni: '100' is not allowed: an integer"),
    ("vni", True, r"^vni: True is not allowed"),
    ("port", 0, r"^port: 0 is not allowed: an integer in 1024\.\.65535$"),
    ("port", 53, r"^port: 53 is not allowed: an integer in 1024\.\.65535$"),  # DNS: dropped host-wide otherwise
    ("port", 6653, r"^port: 6653 is not allowed: it is OpenFlow's; not one of 6633 \(OpenFlow\), 6640 \(OVSDB\)"),
    ("port", 70000, r"^port: 70000 is not allowed"),
    ("underlay_mtu", 100, r"^underlay_mtu: 100 is not allowed"),
    ("underlay", "10.33.30.1/24", r"^underlay: '10.33.30.1/24' is not allowed: an IPv4 network"),
    ("hosts.0.vtep", "10.33.31.5", r"^hosts\[0\]\.vtep: 10\.33\.31\.5 is not allowed: a host address inside underlay"),
    ("hosts.1.vtep", "10.33.30.150", r"^hosts\[1\]\.vtep: 10\.33\.30\.150 is already used by hosts\[0\]\.vtep$"),
    ("hosts.0.vtep", "fe80::1", r"^hosts\[0\]\.vtep: 'fe80::1' is not allowed: an IPv4 address$"),
    (
        "hosts.0.gateway",
        "192.168.2.1",
        r"^hosts\[0\]\.gateway: 192\.168\.2\.1 is not allowed: a host address inside subnet 192\.168\.1\.0/24$",
    ),
    ("hosts.0.gateway", "192.168.1.255", r"^hosts\[0\]\.gateway: 192\.168\.1\.255 is not allowed"),
    (
        "hosts.0.namespaces.0.address",
        "192.168.9.9",
        r"^hosts\[0\]\.namespaces\[0\]\.address: 192\.168\.9\.9 is not allowed",
    ),
    ("hosts.0.namespaces.0.address", "192.168.1.1", r"is already used by hosts\[0\]\.gateway$"),
    (
        "hosts.0.vxlan",
        "vxlan-device-too-long",
        r"^hosts\[0\]\.vxlan: 'vxlan-device-too-long' is not allowed: an interface name of 1\.\.15",
    ),
    ("hosts.0.bridge", "br 1", r"^hosts\[0\]\.bridge: 'br 1' is not allowed"),
    ("hosts.0.bridge", "ens160", r"^hosts\[0\]\.bridge: interface 'ens160' is already used by hosts\[0\]\.nic$"),
    ("hosts.1.name", "host1", r"^hosts\[1\]\.name: name 'host1' is already used by hosts\[0\]\.name$"),
    ("hosts.1.namespaces.0.name", "ns1", r"^hosts\[1\]\.namespaces\[0\]\.name: name 'ns1' is already used"),
    ("hosts.0.name", "host/1", r"^hosts\[0\]\.name: 'host/1' is not allowed"),
    ("hosts.0.name", "host1\n", r"^hosts\[0\]\.name: 'host1\\n' is not allowed"),  # would split plan's lines
    ("hosts.0.bridge", "-h", r"^hosts\[0\]\.bridge: '-h' is not allowed: .*, not starting with -$"),  # an option
    ("hosts.0.vxlan", "vx1\n", r"^hosts\[0\]\.vxlan: 'vx1\\n' is not allowed"),
    ("hosts.0.name", "x" * 1_000_000, r"^hosts\[0\]\.name: 'x{59}\.\.\. \(1000002 characters\) is not allowed"),
    (
        "hosts.0.namespaces",
        [{"name": "ns1", "address": "192.168.1.100", "veth": "tap1", "peer": "tap2"}] * 100,
        r"^hosts\[0\]\.namespaces: 100 \[\[namespaces\]\] tables; at most 99 are allowed$",  # ofport 100: the tunnel
    ),
    ("hosts.0.mode", "vpp", r"^hosts\[0\]\.mode: 'vpp' is not allowed: one of kernel, ovs$"),
    ("hosts.0.vtep", None, r"^hosts\[0\]\.vtep: missing$"),
    ("hosts.0.colour", "blue", r"^hosts\[0\]\.colour: unknown key; allowed here: "),
    (
        "vnid",
        100,
        r"^vnid: unknown key; allowed here: bgp, control, encryption, hosts, ipsec, port, underlay, underlay_mtu, vni$",
    ),
    ("control", "ospf", r"^control: 'ospf' is not allowed: one of static, evpn$"),
    ("control", "evpn", r'^bgp: missing: control = "evpn" needs a \[bgp\] table with asn and route_reflectors$'),
    ("bgp", {"asn": 65000, "route_reflectors": ["10.33.30.2"]}, r'^bgp: only read with control = "evpn"'),
    ("hosts.0.namespaces", [], r"^hosts\[0\]\.namespaces: expected at least 1 \[\[namespaces\]\] table"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD, ids=[f"{p}={v!r}" for p, v, _ in BAD])
def test_bad_values_name_the_field_and_what_is_allowed(path: str, value: object, message: str) -> None:
    with pytest.raises(TopologyError, match=message) as caught:
        reader.parse(mutate(path, value))
    assert "\n" not in str(caught.value)


def test_overlapping_subnets() -> None:
    data = default_data()
    data["hosts"][1].update(subnet="192.168.1.128/25", gateway="192.168.1.129", vxlan_address="192.168.1.254")
    data["hosts"][0]["vxlan_address"] = "192.168.1.126"
    data["hosts"][1]["namespaces"][0]["address"] = "192.168.1.200"
    with pytest.raises(TopologyError, match=r"^hosts\[1\]\.subnet: 192\.168\.1\.128/25 overlaps hosts\[0\]\.subnet"):
        reader.parse(data)


def test_subnet_overlapping_the_underlay() -> None:
    data = default_data()
    data.update(underlay="192.168.0.0/16")
    data["hosts"][0]["vtep"], data["hosts"][1]["vtep"] = "192.168.100.1", "192.168.100.2"
    with pytest.raises(TopologyError, match=r"^hosts\[0\]\.subnet: 192\.168\.1\.0/24 overlaps underlay"):
        reader.parse(data)


def test_an_evpn_underlay_wider_than_a_16_is_refused() -> None:
    """The hosts' firewall admits the whole underlay to the VXLAN port under EVPN: it stays bounded."""
    data = default_data()
    data.update(control="evpn", underlay="10.0.0.0/8", bgp={"asn": 65000, "route_reflectors": ["10.33.30.2"]})
    with pytest.raises(TopologyError, match=r"^underlay: 10\.0\.0\.0/8 is too wide under EVPN: at most a /16 "):
        reader.parse(data)
    data.update(underlay="10.33.0.0/16")
    assert reader.parse(data).underlay.prefixlen == 16


@pytest.mark.parametrize("field", ["name", "nic", "vtep", "subnet", "mode"])
def test_an_explicit_null_is_refused_like_any_wrong_type(field: str) -> None:
    """TOML has no null, but the deployment record is JSON; the fuzz test found this one."""
    data = default_data()
    data["hosts"][0][field] = None
    with pytest.raises(TopologyError, match=rf"^hosts\[0\]\.{field}: None is not allowed: a string$"):
        reader.parse(data)


def test_one_host_is_not_an_overlay() -> None:
    data = default_data()
    data["hosts"] = data["hosts"][:1]
    with pytest.raises(TopologyError, match=r"^hosts: expected at least 2"):
        reader.parse(data)


@pytest.mark.parametrize("text", ["vni = ", "[[hosts]\nname='x'", "vni = 100\nvni = 101"])
def test_malformed_toml_is_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TopologyError, match=rf"^{path}: malformed TOML: .+ \(at (line \d+|end of document)") as caught:
        reader.load(path)
    assert "\n" not in str(caught.value)


def test_deeply_nested_arrays_are_malformed_toml_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("vni = " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(TopologyError, match=r"deep\.toml: malformed TOML: arrays or tables nested too deeply$"):
        reader.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read: No such file"):
        reader.load(tmp_path / "absent.toml")


def test_generated_topologies_follow_the_tutorial_and_read_back_the_same() -> None:
    for count in (2, 3, 32, generated.MAX_GENERATED_HOSTS):
        made = generated.generate(count)
        assert reader.parse_text(writer.to_toml(made), "generated") == made
    last = generated.generate(32).hosts[-1]
    assert (last.name, str(last.vtep), str(last.subnet), last.bridge, last.vxlan, str(last.vxlan_address)) == (
        "host32",
        "10.33.30.181",
        "192.168.32.0/24",
        "br32",
        "vxlan32",
        "192.168.32.254",
    )
    assert [(ns.name, str(ns.address), ns.veth, ns.peer) for ns in last.namespaces] == [
        ("ns32", "192.168.32.100", "tap1", "tap2")
    ]
    for bad in (1, generated.MAX_GENERATED_HOSTS + 1):
        with pytest.raises(UsageError, match=f"--hosts {bad} is not allowed: from 2 to 254"):
            generated.generate(bad)
