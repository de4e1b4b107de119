"""`ovsvx capture`: the tutorial's claims about the first ping, asserted from real, decoded packets.

One lab is captured in kernel mode, then switched to ovs mode and captured
again, so the difference between the modes is shown on the wire: in kernel
mode host1 ARPs for 192.168.2.254 through the tunnel; in ovs mode the switch
answers ARP on the host and none crosses.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from ovsvx.ovs import openflow
from tests.conftest import Runner


def capture(ovsvx: Runner, prefix: str, *extra: str) -> list[dict[str, Any]]:
    return json.loads(ovsvx("capture", "--prefix", prefix, "--json", *extra).stdout)["frames"]


def layer(frame: dict[str, Any], name: str, inner: bool = False) -> dict[str, Any] | None:
    """The first (or, with `inner`, the encapsulated) layer called `name` of a frame."""
    names = [x["layer"] for x in frame["layers"]]
    start = names.index("vxlan") + 1 if inner and "vxlan" in names else 0
    if inner and "vxlan" not in names:
        return None
    return next((x for x in frame["layers"][start:] if x["layer"] == name), None)


def encapsulated(frames: list[dict[str, Any]], point: str) -> list[dict[str, Any]]:
    return [f for f in frames if f["point"] == point and layer(f, "vxlan")]


def icmp_request(frames: list[dict[str, Any]], point: str, inner: bool = False) -> dict[str, Any]:
    found = [
        f
        for f in frames
        if f["point"] == point and (icmp := layer(f, "icmp", inner)) and icmp["type"] == "echo-request"
    ]
    assert found, f"no echo request seen at {point}"
    return found[0]


def check_tunnel_frame(frame: dict[str, Any], inner_src_mac: str) -> None:
    """The tutorial's description of the encapsulated request on host1's NIC."""
    outer_ip, udp, vxlan = layer(frame, "ipv4"), layer(frame, "udp"), layer(frame, "vxlan")
    assert (outer_ip["src"], outer_ip["dst"]) == ("10.33.30.150", "10.33.30.151")
    assert udp["dport"] == 4789 and vxlan["vni"] == 100
    assert layer(frame, "ethernet", inner=True)["src"] == inner_src_mac  # vxlan1's MAC
    assert layer(frame, "ipv4", inner=True)["ttl"] == 63  # host1 routed it


def test_the_first_ping_as_the_tutorial_tells_it_then_in_ovs_mode(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path
) -> None:
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    vxlan1_mac = json.loads(
        ovsvx("exec", "--prefix", fresh_prefix, "host1", "--", "ip", "-j", "link", "show", "vxlan1").stdout
    )[0]["address"]
    frames = capture(ovsvx, fresh_prefix, "--pcap", str(tmp_path / "kernel"))

    check_tunnel_frame(icmp_request(frames, "host1:ens160", inner=True), vxlan1_mac)
    tunnel_arp = [layer(f, "arp", inner=True) for f in encapsulated(frames, "host1:ens160")]
    assert {
        "layer": "arp",
        "op": "request",
        "sender_ip": "192.168.1.254",
        "target_ip": "192.168.2.254",
        "sender_mac": vxlan1_mac,
        "target_mac": "00:00:00:00:00:00",
    } in tunnel_arp  # host1's ARP for the next hop crosses the tunnel
    assert layer(icmp_request(frames, "ns2:tap1"), "ipv4")["ttl"] == 62
    assert layer(icmp_request(frames, "host1:vxlan1"), "ethernet")["src"] == vxlan1_mac  # before encapsulation

    decoded = subprocess.run(
        ["tcpdump", "-nn", "-r", str(tmp_path / "kernel" / "host1-ens160.pcap")], capture_output=True, text=True
    ).stdout
    assert (
        "VXLAN" in decoded and "vni 100" in decoded and "192.168.1.100 > 192.168.2.100: ICMP echo request" in decoded
    )  # the kept pcap, read by an independent decoder

    # ovs mode, AF_XDP ports (the default here): the wires are watched from their other ends
    ovsvx("deploy", "--mode", "ovs", "--prefix", fresh_prefix)
    assert json.loads(ovsvx("verify", "--prefix", fresh_prefix, "--json").stdout)["ok"]  # settled
    check_ovs_capture(capture(ovsvx, fresh_prefix), vxlan1_mac, wire="underlay:p0", host_end="ns1:tap1")
    # ovs mode, packet sockets: tcpdump sees the host's own devices
    ovsvx("deploy", "--port-type", "system", "--prefix", fresh_prefix)
    assert json.loads(ovsvx("verify", "--prefix", fresh_prefix, "--json").stdout)["ok"]
    check_ovs_capture(capture(ovsvx, fresh_prefix), vxlan1_mac, wire="host1:ens160", host_end="host1:tap2")


def check_ovs_capture(frames: list[dict[str, Any]], vxlan1_mac: str, wire: str, host_end: str) -> None:
    check_tunnel_frame(icmp_request(frames, wire, inner=True), vxlan1_mac)
    assert not [f for f in encapsulated(frames, wire) if layer(f, "arp", inner=True)], (
        "in ovs mode no ARP crosses the tunnel: the flows answer it on the host"
    )
    gateway_reply = [
        layer(f, "arp")
        for f in frames
        if f["point"] == host_end and layer(f, "arp") and layer(f, "arp")["op"] == "reply"
    ]
    assert (
        gateway_reply
        and gateway_reply[0]["sender_ip"] == "192.168.1.1"
        and gateway_reply[0]["sender_mac"] == "02:00:c0:a8:01:01"
    )  # answered by the switch, on host1
    assert layer(icmp_request(frames, "ns2:tap1"), "ipv4")["ttl"] == 62


def test_capture_refuses_an_unknown_node(ovsvx: Runner, fresh_prefix: str) -> None:
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    done = ovsvx("capture", "--prefix", fresh_prefix, "ns1", "ns9", check=False)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("ovsvx: error: unknown node or address 'ns9': one of host1, ns1, host2")


def trace(ovsvx: Runner, prefix: str) -> list[dict[str, Any]]:
    return json.loads(ovsvx("trace", "--prefix", prefix, "--json").stdout)["hops"]


def test_trace_names_the_route_and_flows_a_real_packet_then_takes(ovsvx: Runner, fresh_prefix: str) -> None:
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    ovsvx("exec", "--prefix", fresh_prefix, "host1", "--", "ip", "neigh", "flush", "dev", "vxlan1")
    hops = trace(ovsvx, fresh_prefix)
    assert [h["where"] for h in hops] == ["ns1", "host1", "underlay", "host2", "ns2"]
    host1 = hops[1]
    assert "route: 192.168.2.0/24 via 192.168.2.254 dev vxlan1 onlink proto 211" in host1["why"]
    assert any(w.startswith("neighbour: none for 192.168.2.254 on vxlan1: ARP who-has") for w in host1["why"])
    assert (
        "vxlan fdb: 00:00:00:00:00:00 dev vxlan1 dst 10.33.30.151 (the all-zero default: unknown and "
        "broadcast go here)" in host1["why"]
    )
    assert "ttl 63" in host1["headers"][1] and "ttl 62" in hops[3]["headers"][1]

    vxlan1 = json.loads(
        ovsvx("exec", "--prefix", fresh_prefix, "host1", "--", "ip", "-j", "link", "show", "vxlan1").stdout
    )[0]["address"]
    arp = json.loads(ovsvx("trace", "--prefix", fresh_prefix, "--proto", "arp", "host1", "ns2", "--json").stdout)
    assert arp["hops"][0]["headers"][1] == f"ARP who-has 192.168.2.254 tell 192.168.1.254 ({vxlan1})"
    assert (
        arp["hops"][1]["what"] == "vxlan1 encapsulates the broadcast for VTEP 10.33.30.151: the ARP crosses the tunnel"
    )

    frames = capture(ovsvx, fresh_prefix)  # the real packet goes where the trace said, as it said
    at_vxlan1 = icmp_request(frames, "host1:vxlan1")
    assert layer(at_vxlan1, "ipv4")["ttl"] == 63
    assert layer(icmp_request(frames, "host2:br2"), "ipv4")["ttl"] == 62

    ovsvx("deploy", "--mode", "ovs", "--prefix", fresh_prefix)
    assert json.loads(ovsvx("verify", "--prefix", fresh_prefix, "--json").stdout)["ok"]
    hops = trace(ovsvx, fresh_prefix)
    assert [h["where"] for h in hops] == ["ns1", "host1 (br1, ovs)", "underlay", "host2 (br2, ovs)", "ns2"]
    purposes = [w.split(" [")[0] for w in hops[1]["why"] if w.startswith("table ")]
    assert purposes[:2] == [
        "table 0 (classify) classify: IPv4 from namespace ns1",
        "table 20 (from-workload) route-out: routed towards host2",
    ]
    assert any("tunneling to 10.33.30.151" in w for w in hops[1]["why"])
    assert any(w.startswith("datapath netdev@ovs-netdev: ") for w in hops[1]["why"])  # what the datapath does
    ovsvx("exec", "--prefix", fresh_prefix, "ns1", "--", "ip", "neigh", "flush", "all")
    cold = trace(ovsvx, fresh_prefix)  # ns1 has not asked for its gateway yet: traced as the switch will answer
    assert cold[0]["headers"][0] == "Ether 02:00:c0:a8:01:64 > <MAC of 192.168.1.1>"
    assert cold[1]["why"][0] == (
        "(the sender has not resolved 192.168.1.1 yet: the ARP responder will answer "
        "02:00:c0:a8:01:01, so the packet is traced with that)"
    )
    assert [h["where"] for h in cold] == [h["where"] for h in hops]
    arp = json.loads(ovsvx("trace", "--prefix", fresh_prefix, "--proto", "arp", "--json").stdout)["hops"]
    assert arp[1]["what"] == "the ARP responder answers in the datapath, back out of tap2"
    assert arp[1]["headers"] == [
        "Ether 02:00:c0:a8:01:01 > 02:00:c0:a8:01:64",
        "ARP 192.168.1.1 is-at 02:00:c0:a8:01:01",
    ]
    cookies = {
        h["where"].split()[0]: [int(c, 16) for w in h["why"] for c in re.findall(r"cookie (0x[0-9a-f]+)", w)]
        for h in hops
        if "ovs" in h["where"]
    }
    before = {host: packets(ovsvx, fresh_prefix, host) for host in cookies}
    ovsvx("exec", "--prefix", fresh_prefix, "ns1", "--", "ping", "-c", "1", "192.168.2.100")
    for host, traced in cookies.items():
        generated = [c for c in traced if not openflow.is_learned(c)]  # a learned flow is rewritten, counters too
        deadline = time.monotonic() + 5  # OVS folds datapath stats into flow counters every ~0.5 s
        while True:
            after = packets(ovsvx, fresh_prefix, host)
            counted = all(after[c] > before[host][c] for c in generated)
            if counted or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert generated and counted, (host, traced, before[host], after)


def packets(ovsvx: Runner, prefix: str, host: str) -> dict[int, int]:
    bridge = {"host1": "br1", "host2": "br2"}[host]
    dump = ovsvx("exec", "--prefix", prefix, host, "--", "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge).stdout
    return {
        int(c, 16): int(n) for c, n in re.findall(r"^\s*cookie=(0x[0-9a-f]+),.*?n_packets=(\d+)", dump, re.MULTILINE)
    }
