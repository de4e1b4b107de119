"""`ovsvx doctor` against a lab with its preconditions broken on purpose, one at a time per host."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Runner
from tests.lab.helpers import in_host


def doctor(ovsvx: Runner, prefix: str) -> tuple[int, dict[str, list[dict[str, Any]]]]:
    done = ovsvx("doctor", "--prefix", prefix, "--json", check=False)
    report = json.loads(done.stdout)
    return done.returncode, report["findings"]


def failures(findings: dict[str, list[dict[str, Any]]], host: str) -> list[str]:
    return [f"{d['what']}; fix: {d['fix']}" for d in findings[host] if d["state"] == "fail"]


def test_a_healthy_lab_passes_and_each_broken_precondition_is_named_with_its_fix(
    ovsvx: Runner, fresh_prefix: str
) -> None:
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    code, found = doctor(ovsvx, fresh_prefix)
    assert code == 0 and not failures(found, "host1") and not failures(found, "host2")
    assert [d["state"] for d in found["machine"][:5]] == ["ok"] * 5  # root, vxlan, bridge, veth, netns

    # host1: its VTEP address gone, forwarding off, strict rp_filter, an address inside ns2's subnet
    in_host(fresh_prefix, "host1", "ip", "addr", "del", "10.33.30.150/24", "dev", "ens160")
    in_host(fresh_prefix, "host1", "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv4.conf.all.rp_filter=1")
    in_host(fresh_prefix, "host1", "ip", "link", "add", "junk", "type", "bridge")
    in_host(fresh_prefix, "host1", "ip", "addr", "add", "192.168.2.7/24", "dev", "junk")
    in_host(fresh_prefix, "host1", "ip", "link", "set", "junk", "up")
    # host2: a small MTU and a firewall that drops everything
    in_host(fresh_prefix, "host2", "ip", "link", "set", "ens160", "mtu", "1400")
    in_host(
        fresh_prefix,
        "host2",
        "nft",
        "add table inet theirs; add chain inet theirs filter_in { type filter hook input priority 0; policy drop; }",
    )
    code, found = doctor(ovsvx, fresh_prefix)
    assert code == 1
    assert failures(found, "host1") == [
        "VTEP address 10.33.30.150 is on no interface; fix: ip addr add 10.33.30.150/24 dev ens160",
        "net.ipv4.ip_forward=0 on a deployed host: nothing is routed between the namespace and the tunnel; "
        "fix: ovsvx deploy (or sysctl -w net.ipv4.ip_forward=1)",
        "net.ipv4.conf.all.rp_filter=1 on a kernel-mode host, where ovsvx set 0; "
        "fix: ovsvx deploy (or sysctl -w net.ipv4.conf.all.rp_filter=0)",
        "192.168.2.7/24 on junk lies in the overlay subnet 192.168.2.0/24; "
        "fix: remove it (ip addr del 192.168.2.7/24 dev junk) or choose other subnets in the topology",
        "route 192.168.2.0/24 dev junk (not ovsvx's) overlaps the overlay; "
        "fix: ip route del 192.168.2.0/24 dev junk, or choose other subnets in the topology",
    ]
    host2 = failures(found, "host2")
    assert host2[0].startswith("ens160 MTU 1400 leaves 1350 bytes after the 50-byte encapsulation")
    assert host2[0].endswith("fix: ip link set ens160 mtu 1500, or underlay_mtu = 1400 in the topology")
    assert host2[1].startswith(
        "nftables chain inet theirs filter_in drops input by default and has no rule "
        "for udp port 4789; fix: nft insert rule inet theirs filter_in ip saddr "
        "{ 10.33.30.150 } udp dport 4789 accept"
    )
    unanswered = [d for d in found["host2"] if d["state"] == "warn"]
    assert [d["what"] for d in unanswered] == ["peer VTEP 10.33.30.150 (host1) does not answer a ping"]
