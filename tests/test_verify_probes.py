"""The probe list and the TTL each probe must show (pure, no root)."""

from __future__ import annotations

from ovsvx.model import reader
from ovsvx.observe import verify


def by_pair(probes: list[verify.Probe], kind: str = "ping") -> dict[tuple[str, str], int | None]:
    return {(p.src, p.dst): p.expected_ttl for p in probes if p.kind == kind}


def test_ttls_follow_the_tutorials_routing() -> None:
    ttl = by_pair(verify.probes(reader.default()))
    assert ttl[("ns1", "ns2")] == 62 and ttl[("ns2", "ns1")] == 62  # host1 and host2 both route
    assert ttl[("ns1", "host1")] == 64  # the gateway answers itself
    assert ttl[("ns1", "host2")] == 63 and ttl[("host1", "ns2")] == 63  # one host routes
    assert ttl[("host1", "host2")] == 64  # straight through the tunnel
    assert ttl[("host1", "ns1")] == 64  # on the bridge
    assert len(ttl) == 12  # every ordered pair of the four nodes


def test_full_size_df_ping_and_tcp_between_namespaces() -> None:
    probes = verify.probes(reader.default())
    df = [(p.src, p.dst, p.size) for p in probes if p.kind == "ping-df"]
    assert df == [("ns1", "ns2", 1422), ("ns2", "ns1", 1422)]  # 1450 overlay MTU - 28
    assert [(p.src, p.dst) for p in probes if p.kind == "tcp"] == [("ns1", "ns2")]
    assert by_pair(probes, "underlay") == {("host1", "host2"): 64, ("host2", "host1"): 64}


def test_a_real_host_probes_from_itself_only() -> None:
    probes = verify.probes(reader.default(), sources={"host1"})
    assert {p.src for p in probes} == {"host1", "ns1"}
    assert not [p for p in probes if p.kind == "tcp"]
