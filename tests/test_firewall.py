"""The firewall's rules as values: what each host admits, from the topology alone (no root)."""

from __future__ import annotations

import json

from ovsvx.host import firewall, nftables
from ovsvx.model import reader
from tests.topologies import three_hosts

TOPO = reader.default()

THREE_HOSTS = reader.parse({**three_hosts(), "port": 4790})


def test_each_host_admits_exactly_its_peers_on_the_topologys_port() -> None:
    assert firewall.rules(TOPO, TOPO.host("host1")) == firewall.Rules(4789, ("10.33.30.151",), ("br1", "vxlan1"))
    assert firewall.rules(TOPO, TOPO.host("host2")) == firewall.Rules(4789, ("10.33.30.150",), ("br2", "vxlan2"))
    assert firewall.rules(THREE_HOSTS, THREE_HOSTS.host("host2")) == firewall.Rules(
        4790, ("10.33.30.150", "10.33.30.152"), ("br2", "vxlan2")
    )


def test_nothing_is_forwarded_into_the_overlay_that_did_not_come_from_it() -> None:
    """The rule is about the way in, not about this host's subnet: a relay to another host's workloads
    (out by the vxlan device) is dropped as one to this host's own (out by the bridge)."""
    script = firewall.rules(TOPO, TOPO.host("host1")).script().splitlines()
    assert "        type filter hook forward priority -10; policy accept;" in script
    assert [line.strip() for line in script if "oifname" in line] == [
        'oifname { "br1", "vxlan1" } iifname != { "br1", "vxlan1" } counter drop'
        ' comment "into the overlay only from a workload or the tunnel"'
    ]
    assert not [line for line in script if "daddr @overlay" in line]


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


def test_a_table_is_judged_by_what_it_does_not_by_its_shape() -> None:
    """Handles and counters' values change by themselves; a verdict, a match or an element does not."""
    rule = {
        "rule": {
            "family": "inet",
            "table": "ovsvx",
            "chain": "vxlan-in",
            "handle": 4,
            "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4789}},
                {"counter": {"packets": 7, "bytes": 700}},
                {"drop": None},
            ],
        }
    }
    peers = {
        "set": {"family": "inet", "name": "peers", "table": "ovsvx", "handle": 2, "elem": ["10.0.0.2", "10.0.0.1"]}
    }
    same = json.loads(json.dumps([peers, rule]))
    same[0]["set"]["handle"], same[0]["set"]["elem"] = 9, ["10.0.0.1", "10.0.0.2"]
    same[1]["rule"]["handle"], same[1]["rule"]["expr"][1]["counter"] = 11, {"packets": 0, "bytes": 0}
    assert nftables.behaviour([peers, rule]) == nftables.behaviour(same)
    opened = json.loads(json.dumps([peers, rule]))
    opened[1]["rule"]["expr"][2] = {"accept": None}
    assert nftables.behaviour([peers, rule]) != nftables.behaviour(opened)
    widened = json.loads(json.dumps([peers, rule]))
    widened[0]["set"]["elem"].append("10.0.0.66")
    assert nftables.behaviour([peers, rule]) != nftables.behaviour(widened)
    assert nftables.counted([peers, rule]) == {"vxlan-in": [7]}


def test_only_the_monitors_lines_about_ovsvxs_tables_wake_the_agent() -> None:
    assert nftables.touches_ours("delete table inet ovsvx")
    assert nftables.touches_ours("add rule inet ovsvx vxlan-in udp dport 4789 counter packets 0 bytes 0 accept")
    assert nftables.touches_ours("delete rule inet ovsvx-gtsm-10.33.30.2 bgp-in handle 3")
    assert not nftables.touches_ours("add rule inet filter input tcp dport 22 accept")
    assert not nftables.touches_ours("# new generation 4 by process 3721 (nft)")
