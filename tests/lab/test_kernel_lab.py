"""Kernel mode in a real lab: deploy, the tutorial's facts, idempotence, repair, conflicts, destroy.

Each test gets its own lab prefix; the fixture destroys it and fails the test
if anything is left.  The objects are read back with the tutorial's own tools
(`ip -d link`, `bridge fdb`, `ip route`), as a user would check them.
"""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Runner, leftover_netns
from tests.lab.helpers import failed, verify


def exec_json(ovsvx: Runner, prefix: str, node: str, *argv: str) -> Any:
    return json.loads(ovsvx("exec", "--prefix", prefix, node, "--", *argv).stdout)


def test_deploy_matches_the_tutorial_and_verifies(ovsvx: Runner, fresh_prefix: str) -> None:
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)

    report = verify(ovsvx, fresh_prefix)
    assert report["ok"], failed(report)
    ns1_ns2 = [c for c in report["checks"] if (c["src"], c["dst"], c["kind"]) == ("ns1", "ns2", "ping")]
    assert ns1_ns2[0]["ttl"] == 62
    tcp = [c for c in report["checks"] if c["kind"] == "tcp"]
    assert tcp and tcp[0]["ok"] and tcp[0]["gbps"] > 0

    (vxlan,) = exec_json(ovsvx, fresh_prefix, "host1", "ip", "-d", "-j", "link", "show", "vxlan1")
    info = vxlan["linkinfo"]["info_data"]
    assert (info["id"], info["port"], info["remote"], info["local"]) == (100, 4789, "10.33.30.151", "10.33.30.150")
    assert info["link"] == "ens160" and vxlan["mtu"] == 1450 and vxlan["ifalias"] == "ovsvx"

    fdb = exec_json(ovsvx, fresh_prefix, "host1", "bridge", "-j", "fdb", "show", "dev", "vxlan1")
    assert {"mac": "00:00:00:00:00:00", "dst": "10.33.30.151", "permanent": True} in [
        {"mac": e["mac"], "dst": e.get("dst"), "permanent": e.get("state") == "permanent"} for e in fdb
    ]

    routes = exec_json(ovsvx, fresh_prefix, "host1", "ip", "-j", "route", "show", "192.168.2.0/24")
    assert routes == [
        {"dst": "192.168.2.0/24", "gateway": "192.168.2.254", "dev": "vxlan1", "protocol": "211", "flags": ["onlink"]}
    ]
    addrs = exec_json(ovsvx, fresh_prefix, "host1", "ip", "-j", "-4", "addr", "show", "vxlan1")
    assert [(a["local"], a["prefixlen"]) for a in addrs[0]["addr_info"]] == [("192.168.1.254", 32)]
    (default,) = exec_json(ovsvx, fresh_prefix, "ns1", "ip", "-j", "route", "show", "default")
    assert default["gateway"] == "192.168.1.1"
    (tap2,) = exec_json(ovsvx, fresh_prefix, "host1", "ip", "-j", "link", "show", "tap2")
    assert tap2["master"] == "br1"
    forwarding = ovsvx("exec", "--prefix", fresh_prefix, "host2", "--", "cat", "/proc/sys/net/ipv4/ip_forward")
    assert forwarding.stdout.strip() == "1"

    again = ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    assert "nothing changed" in again.stdout

    status = json.loads(ovsvx("status", "--prefix", fresh_prefix, "--json").stdout)
    assert status["ok"] and status["hosts"]["host1"]["mode"] == "kernel"
    assert status["hosts"]["host1"]["details"]["listening"] == "udp 0.0.0.0:4789 kernel, the tunnel"
    firewall = [r for r in status["hosts"]["host1"]["resources"] if r["what"].startswith("nftables table inet ovsvx")]
    assert firewall and firewall[0]["state"] == "ok"

    gone = ovsvx("destroy", "--prefix", fresh_prefix)
    assert "destroyed" in gone.stdout
    assert not [n for n in leftover_netns() if n.startswith(fresh_prefix)]
    twice = ovsvx("destroy", "--prefix", fresh_prefix)
    assert twice.returncode == 0 and "nothing deployed" in twice.stdout


def test_deleted_pieces_are_repaired_by_deploying_again(ovsvx: Runner, fresh_prefix: str) -> None:
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    ovsvx("exec", "--prefix", fresh_prefix, "host1", "--", "ip", "link", "del", "vxlan1")
    ovsvx("exec", "--prefix", fresh_prefix, "host2", "--", "ip", "link", "del", "tap2")
    ovsvx("exec", "--prefix", fresh_prefix, "ns1", "--", "ip", "route", "del", "default")

    shown = ovsvx("status", "--prefix", fresh_prefix, "--json", check=False)
    status = json.loads(shown.stdout)
    broken = {r["what"] for h in status["hosts"].values() for r in h["resources"] if r["state"] != "ok"}
    assert shown.returncode == 1 and not status["ok"]
    assert any(w.startswith("vxlan vxlan1") for w in broken) and any(w.startswith("veth tap2") for w in broken)
    assert verify(ovsvx, fresh_prefix)["ok"] is False

    repaired = ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    assert "host1: + vxlan vxlan1" in repaired.stdout and "host2: + veth tap2" in repaired.stdout
    report = verify(ovsvx, fresh_prefix)
    assert report["ok"], failed(report)


def test_a_link_not_made_by_ovsvx_is_refused_and_left_alone(ovsvx: Runner, fresh_prefix: str) -> None:
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    ovsvx("exec", "--prefix", fresh_prefix, "host1", "--", "ip", "link", "del", "br1")
    ovsvx("exec", "--prefix", fresh_prefix, "host1", "--", "ip", "link", "add", "br1", "type", "bridge")

    refused = ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix, check=False)
    assert refused.returncode == 4
    assert refused.stderr.strip() == (
        "ovsvx: error: host1: link br1 exists and was not made by ovsvx (no 'ovsvx' alias); "
        "remove it or rename it in the topology"
    )

    ovsvx("destroy", "--prefix", fresh_prefix)  # the lab namespaces go, and the hand-made br1 with them


def test_a_first_deploy_that_fails_leaves_nothing(ovsvx: Runner, fresh_prefix: str) -> None:
    from ovsvx.host import netstack

    netstack.create_netns(f"{fresh_prefix}ns1")  # in the way: not made by ovsvx
    try:
        refused = ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix, check=False)
        assert refused.returncode == 4 and "not in ovsvx's record" in refused.stderr
        assert sorted(n for n in leftover_netns() if n.startswith(fresh_prefix)) == [f"{fresh_prefix}ns1"]
        assert "nothing deployed" in ovsvx("destroy", "--prefix", fresh_prefix).stdout
    finally:
        netstack.remove_netns(f"{fresh_prefix}ns1")


def test_a_udp_port_held_by_another_tunnel_device_is_named_and_repaired_once_free(
    ovsvx: Runner, fresh_prefix: str
) -> None:
    """Open vSwitch's kernel tunnel device (vxlan_sys_4789, metadata-based) holds the UDP port while one of
    its bridges has a vxlan port on it, and the kernel then refuses vxlan1: deploy says which port and
    what holds it.  Here a device of the same kind stands in for OVS's, which this kernel cannot run."""
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    in_host1 = ("exec", "--prefix", fresh_prefix, "host1", "--", "ip", "link")
    ovsvx(*in_host1, "del", "vxlan1")
    ovsvx(*in_host1, "add", "vxlan_sys_4789", "type", "vxlan", "external", "dstport", "4789", "udp6zerocsumrx")
    ovsvx(*in_host1, "set", "vxlan_sys_4789", "up")

    refused = ovsvx("deploy", "--prefix", fresh_prefix, check=False)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "vxlan vxlan1" in refused.stderr and "UDP port 4789 is held by another tunnel device" in refused.stderr

    ovsvx(*in_host1, "del", "vxlan_sys_4789")
    assert "host1: ~ vxlan vxlan1" in ovsvx("deploy", "--prefix", fresh_prefix).stdout
    report = verify(ovsvx, fresh_prefix)
    assert report["ok"], failed(report)
