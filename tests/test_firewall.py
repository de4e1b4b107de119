"""The firewall's rules as values: what each host admits, from the topology alone (no root)."""

from __future__ import annotations

from ovsvx.host import firewall
from ovsvx.model import topology
from tests.topologies import three_hosts

TOPO = topology.default()

THREE_HOSTS = topology.parse({**three_hosts(), "port": 4790})


OVERLAY = ("192.168.1.0/24", "192.168.2.0/24")


def test_each_host_admits_exactly_its_peers_on_the_topologys_port() -> None:
    assert firewall.rules(TOPO, TOPO.host("host1")) == firewall.Rules(
        4789, ("10.33.30.151",), OVERLAY, ("br1", "vxlan1")
    )
    assert firewall.rules(TOPO, TOPO.host("host2")) == firewall.Rules(
        4789, ("10.33.30.150",), OVERLAY, ("br2", "vxlan2")
    )
    assert firewall.rules(THREE_HOSTS, THREE_HOSTS.host("host2")) == firewall.Rules(
        4790, ("10.33.30.150", "10.33.30.152"), (*OVERLAY, "192.168.3.0/24"), ("br2", "vxlan2")
    )


def test_the_overlay_is_forwarded_to_only_from_its_own_doors() -> None:
    script = firewall.rules(TOPO, TOPO.host("host1")).script().splitlines()
    assert "        elements = { 192.168.1.0/24, 192.168.2.0/24 }" in script
    assert "        type filter hook forward priority -10; policy accept;" in script
    assert [line.strip() for line in script if "@overlay" in line] == [
        'ip daddr @overlay iifname != { "br1", "vxlan1" } counter drop'
    ]


def test_the_script_replaces_only_ovsvxs_table_and_drops_everyone_else() -> None:
    script = firewall.rules(THREE_HOSTS, THREE_HOSTS.host("host1")).script().splitlines()
    assert script[:3] == ["table inet ovsvx {}", "delete table inet ovsvx", "table inet ovsvx {"]
    assert "        elements = { 10.33.30.151, 10.33.30.152 }" in script
    rules = [line.strip() for line in script if "dport" in line]
    assert rules == [
        'udp dport 4790 ip saddr @peers counter accept comment "from a peer VTEP"',
        'udp dport 4790 counter drop comment "from anyone else"',
    ]
    assert not [line for line in script if "flush" in line or "policy drop" in line]  # never anyone else's


def test_plan_shows_the_table_as_a_here_document() -> None:
    lines = firewall.commands(TOPO, TOPO.host("host1"))
    assert lines[0] == "nft -f - <<'EOF'" and lines[-1] == "EOF"
