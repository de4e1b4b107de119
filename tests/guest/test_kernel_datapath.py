"""Ovs mode on OVS's kernel datapath, as every stock kernel runs it (in the guest: scripts/vm/guest).

One ovs-mode lab serves the tests that look, trace, capture and kill the
controller; the mixed-mode lab and the bench build their own.  What is
asserted is what a user would check: `status`, `verify`, OVS's own tools
inside a host (`dpctl/show`, `ovs-vsctl`), the kernel's links, and what is
left after `destroy`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ovsvx import waits
from ovsvx.model import reader
from ovsvx.model.topology import kernel_tunnel_device
from tests.conftest import TEST_PREFIX, leftover_netns, need_lab, run_ovsvx
from tests.lab.helpers import failed, in_host, pid_of, ping_result, start_ping, status

pytestmark = pytest.mark.lab

TOPO = reader.default()
TUNNEL_DEVICE = kernel_tunnel_device(TOPO.port)


def verify(prefix: str) -> dict[str, Any]:
    return json.loads(run_ovsvx("verify", "--prefix", prefix, "--json", check=False).stdout)


def links(netns: str | None) -> list[dict[str, Any]]:
    """`ip -d -j link` of a namespace (this machine's own with None)."""
    return json.loads(run_command(["ip", *(["-n", netns] if netns else []), "-d", "-j", "link", "show"]))


def run_command(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=waits.scaled(30))
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_destroyed(prefix: str) -> None:
    """Nothing of the lab is left: no namespace, no OVS or controller process, no datapath or tunnel
    device in this machine's own namespace."""
    assert not [n for n in leftover_netns() if n.startswith(prefix)]
    names = [link["ifname"] for link in links(None)]
    assert "ovs-system" not in names and not [n for n in names if n.startswith("vxlan_sys_")]
    processes = run_command(["ps", "-eo", "args"])
    assert f"--prefix {prefix}" not in processes
    assert f"lab-{prefix}" not in processes


@pytest.fixture(scope="module")
def ovs_lab() -> Iterator[str]:
    need_lab()
    prefix = f"{TEST_PREFIX}kd-"
    run_ovsvx("deploy", "--mode", "ovs", "--prefix", prefix)
    try:
        yield prefix
    finally:
        run_ovsvx("destroy", "--prefix", prefix, check=False)
    assert_destroyed(prefix)


def test_status_says_the_kernel_datapath_and_why(ovs_lab: str) -> None:
    report = status(ovs_lab)
    assert report["ok"], report
    for host in TOPO.hosts:
        details = report["hosts"][host.name]["details"]
        assert details["datapath"].startswith("system (") and "openvswitch kernel module" in details["datapath"]
        assert details["port type"].startswith("system (the kernel datapath reads the devices itself)")
        assert "tunnel" not in details  # the userspace datapath's "no socket" note
        assert f"udp 0.0.0.0:{TOPO.port} kernel" in details["listening"]


def test_no_br_phy_no_xdp_and_the_vtep_stays_on_the_nic(ovs_lab: str) -> None:
    for host in TOPO.hosts:
        assert in_host(ovs_lab, host.name, "ovs-vsctl", "list-br").split() == [host.bridge]
        here = links(ovs_lab + host.name)
        assert not [link["ifname"] for link in here if "xdp" in link]
        nic = json.loads(in_host(ovs_lab, host.name, "ip", "-j", "addr", "show", host.nic))[0]
        assert f"{host.vtep}/{TOPO.underlay.prefixlen}" in [f"{a['local']}/{a['prefixlen']}" for a in nic["addr_info"]]
        shown = in_host(ovs_lab, host.name, "ovs-appctl", "dpctl/show")
        assert shown.startswith("system@ovs-system:")
        assert re.search(rf"port \d+: {TUNNEL_DEVICE} \(vxlan", shown), shown
        assert TUNNEL_DEVICE in [link["ifname"] for link in here]


def test_verify_passes_with_kernel_modes_ttls(ovs_lab: str) -> None:
    report = verify(ovs_lab)
    assert report["ok"], failed(report)
    assert len(report["checks"]) == 17
    ns_to_ns = next(c for c in report["checks"] if (c["kind"], c["src"], c["dst"]) == ("ping", "ns1", "ns2"))
    assert ns_to_ns["ttl"] == 62  # two routers, as in the tutorial


def test_the_tunnel_is_the_kernels_so_the_firewall_counts_it(ovs_lab: str) -> None:
    """On the userspace datapath nftables never sees the tunnel; here the kernel's socket takes it."""
    table = in_host(ovs_lab, "host1", "nft", "-j", "list", "table", "inet", "ovsvx")
    accepted = [
        rule
        for rule in json.loads(table)["nftables"]
        if "rule" in rule and any("accept" in e for e in rule["rule"]["expr"])
    ]
    packets = sum(e["counter"]["packets"] for r in accepted for e in r["rule"]["expr"] if "counter" in e)
    assert packets > 0, "the peer's tunnel packets never met the firewall table"


def test_trace_names_the_kernel_tunnel_device(ovs_lab: str) -> None:
    hops = json.loads(run_ovsvx("trace", "--prefix", ovs_lab, "--json").stdout)["hops"]
    into_tunnel = next(h for h in hops if h["what"].startswith("flows send it into the tunnel"))
    datapath = [line for line in into_tunnel["why"] if line.startswith("datapath system@ovs-system:")]
    assert datapath and f"out: {TUNNEL_DEVICE}" in datapath[0], into_tunnel["why"]


def test_capture_sees_the_ping_on_the_kernel_tunnel_device(ovs_lab: str) -> None:
    frames = json.loads(run_ovsvx("capture", "--prefix", ovs_lab, "--json").stdout)["frames"]
    seen = {f["point"] for f in frames}
    for host in ("host1", "host2"):
        on_tunnel = [f for f in frames if f["point"] == f"{host}:{TUNNEL_DEVICE}"]
        # inner frames only: the device shows the packet before encapsulation / after decapsulation
        assert on_tunnel and all(layer["layer"] != "vxlan" for f in on_tunnel for layer in f["layers"]), seen
    encapsulated = [
        f
        for f in frames
        if f["point"] == "host1:ens160"
        and any(layer["layer"] == "vxlan" and layer["vni"] == TOPO.vni for layer in f["layers"])
    ]
    assert encapsulated, seen


def test_traffic_goes_on_when_the_controller_is_killed(ovs_lab: str) -> None:
    ping = start_ping(ovs_lab, count=30)
    assert waits.until(lambda: pid_of(ovs_lab, "host1", "controller") > 0, 5)
    os.kill(pid_of(ovs_lab, "host1", "controller"), signal.SIGKILL)
    sent, got, dups = ping_result(ping)
    assert (got, dups) == (sent, 0)
    assert "host1: started controller" in run_ovsvx("deploy", "--prefix", ovs_lab).stdout
    assert status(ovs_lab)["ok"]


def test_mixed_mode_kernel_host_and_kernel_datapath_ovs_host(fresh_prefix: str) -> None:
    run_ovsvx("deploy", "--prefix", fresh_prefix, "--mode", "host1=kernel,host2=ovs")
    report = verify(fresh_prefix)
    assert report["ok"], failed(report)
    assert status(fresh_prefix)["hosts"]["host2"]["details"]["datapath"].startswith("system (")
    # switched the other way round in one deploy: host2's vxlan2 can come up only once OVS has let go of
    # the UDP port (its vxlan_sys_4789), and the switch waits for that instead of failing
    switched = run_ovsvx("deploy", "--prefix", fresh_prefix, "--mode", "host1=ovs,host2=kernel")
    assert "host2: switching from ovs to kernel mode" in switched.stdout
    assert TUNNEL_DEVICE not in [link["ifname"] for link in links(f"{fresh_prefix}host2")]
    report = verify(fresh_prefix)
    assert report["ok"], failed(report)
    run_ovsvx("destroy", "--prefix", fresh_prefix)
    assert_destroyed(fresh_prefix)


def test_bench_measures_the_kernel_datapath_and_ipsec_against_kernel_vxlan(tmp_path: Path) -> None:
    """The guest measures the kernel datapath's column, and the ipsec column, which needs the kernel's
    ESP; the userspace datapath's is the bench test's outside the guest, where `ovs` has no module and
    takes that datapath."""
    need_lab()
    prefix = f"{TEST_PREFIX}b-"  # the bench adds each column's initials: ot123b-os-
    report = tmp_path / "bench.json"
    done = run_ovsvx(
        "bench",
        "--duration",
        "1",
        "--repeat",
        "1",  # the rounds are the bench test's outside the guest; here, the column
        "--modes",
        "kernel,ovs:system,ipsec",
        "--prefix",
        prefix,
        "--json-file",
        str(report),
    )
    data = json.loads(report.read_text())
    assert list(data["modes"]) == ["underlay", "kernel", "ovs:system", "ipsec"]
    assert data["modes"]["ovs:system"]["datapath"] == "system"
    assert data["modes"]["ovs:system"]["tcp_1stream_gbps"] > 0
    assert data["ratios"]["ovs:system"]["tcp_1stream_vs_kernel"] > 0
    assert "ovs:system datapath: system" in done.stdout
    ipsec = data["modes"]["ipsec"]  # kernel mode encrypted: throughput, RTT and CPU against kernel mode
    assert ipsec["tcp_1stream_gbps"] > 0 and ipsec["rtt_median_ms"] > 0 and ipsec["cpu_s_per_gbit"] > 0
    assert data["ratios"]["ipsec"]["tcp_1stream_vs_kernel"] > 0
    assert not [n for n in leftover_netns() if n.startswith(prefix)]
