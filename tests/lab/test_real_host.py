"""`ovsvx deploy --host`, the real-host path, run inside namespaces that play two whole machines.

Each "machine" is a namespace holding its underlay NIC (ens160) with its VTEP
address, as a real server would, and ovsvx runs inside it with a state
directory of its own, exactly as on a real host (its stack is "this
machine's"; no lab code is involved).  The workload namespaces get test
names through a topology file, since namespace names are global.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ovsvx import netstack, topology
from tests.conftest import REPO, TEST_PREFIX, need_lab

MACHINES = {"host1": f"{TEST_PREFIX}rh-a", "host2": f"{TEST_PREFIX}rh-b"}
VTEPS = {"host1": "10.33.30.150", "host2": "10.33.30.151"}


def ovsvx_on(machine: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ovsvx inside `machine` as root would on that server."""
    env = {**os.environ, "OVSVX_STATE_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "ovsvx", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        preexec_fn=lambda: netstack.enter(machine),
    )


def run_on(machine: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return netstack.run(machine, argv, timeout=30)


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[dict[str, Any]]:
    need_lab()
    for name in MACHINES.values():
        netstack.create_netns(name)  # cleanup below is registered by the try before anything else
    states = {host: tmp_path / host for host in MACHINES}
    topo_file = tmp_path / "topology.toml"
    topo_file.write_text(
        topology.default_text().replace('"ns1"', f'"{TEST_PREFIX}rh-ns1"').replace('"ns2"', f'"{TEST_PREFIX}rh-ns2"')
    )
    try:
        with netstack.stack(MACHINES["host1"]) as a:
            a.link("add", ifname="ens160", kind="veth", peer={"ifname": "ens160", "net_ns_fd": MACHINES["host2"]})
        for host, machine in MACHINES.items():
            with netstack.stack(machine) as ipr:
                for name in ("lo", "ens160"):
                    ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
                ipr.addr("add", index=ipr.link_lookup(ifname="ens160")[0], address=VTEPS[host], prefixlen=24)
        yield {"states": states, "topology": str(topo_file)}
    finally:
        for host, machine in MACHINES.items():
            if netstack.netns_exists(machine):
                ovsvx_on(machine, states[host], "destroy")
        for name in (*MACHINES.values(), f"{TEST_PREFIX}rh-ns1", f"{TEST_PREFIX}rh-ns2"):
            netstack.remove_netns(name)


def test_two_real_hosts_in_kernel_mode(machines: dict[str, Any]) -> None:
    states, topo = machines["states"], machines["topology"]
    for host, machine in MACHINES.items():
        done = ovsvx_on(machine, states[host], "deploy", "--host", host, "--mode", "kernel", "-t", topo)
        assert done.returncode == 0, done.stderr
        assert f"deployed host {host}" in done.stdout

    report = json.loads(ovsvx_on(MACHINES["host1"], states["host1"], "verify", "--json").stdout)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    assert {c["src"] for c in report["checks"]} == {"host1", f"{TEST_PREFIX}rh-ns1"}  # from this machine only
    ns1_ns2 = [
        c
        for c in report["checks"]
        if c["kind"] == "ping" and c["dst"] == f"{TEST_PREFIX}rh-ns2" and c["src"] == f"{TEST_PREFIX}rh-ns1"
    ]
    assert ns1_ns2[0]["ttl"] == 62

    status = json.loads(ovsvx_on(MACHINES["host1"], states["host1"], "status", "--json").stdout)
    assert status["scope"] == "host" and list(status["hosts"]) == ["host1"] and status["ok"]
    assert run_on(MACHINES["host1"], "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"

    gone = ovsvx_on(MACHINES["host1"], states["host1"], "destroy")
    assert "host1: sysctl net.ipv4.ip_forward=0 (restored)" in gone.stdout
    assert run_on(MACHINES["host1"], "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    assert run_on(MACHINES["host1"], "ip", "-br", "link", "show", "vxlan1").returncode != 0
    assert not netstack.netns_exists(f"{TEST_PREFIX}rh-ns1")
    left = run_on(MACHINES["host1"], "ip", "-br", "-4", "addr", "show", "ens160").stdout
    assert "10.33.30.150/24" in left  # the machine's own address is untouched


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("host2", "host2: VTEP address 10.33.30.151 is not on ens160 (it has 10.33.30.150)"),
    ],
)
def test_the_wrong_machine_is_refused_before_any_change(machines: dict[str, Any], host: str, message: str) -> None:
    done = ovsvx_on(
        MACHINES["host1"], machines["states"]["host1"], "deploy", "--host", host, "-t", machines["topology"]
    )
    assert done.returncode == 3 and message in done.stderr
    assert run_on(MACHINES["host1"], "ip", "-br", "link").stdout.count("\n") == 2  # lo and ens160, nothing new


def test_a_machine_without_the_nic_is_told_so(machines: dict[str, Any]) -> None:
    run_on(MACHINES["host1"], "ip", "link", "set", "ens160", "name", "eth9")
    done = ovsvx_on(
        MACHINES["host1"], machines["states"]["host1"], "deploy", "--host", "host1", "-t", machines["topology"]
    )
    assert done.returncode == 3
    assert "host1: underlay NIC ens160 does not exist here; is this machine host1?" in done.stderr


def test_a_dropping_firewall_gets_the_exact_rule_and_that_rule_is_enough(machines: dict[str, Any]) -> None:
    states, topo = machines["states"], machines["topology"]
    a = MACHINES["host1"]
    assert run_on(a, "nft", "add", "table", "inet", "guard").returncode == 0
    assert (
        run_on(
            a,
            "nft",
            *[
                "add",
                "chain",
                "inet",
                "guard",
                "in",
                "{",
                "type",
                "filter",
                "hook",
                "input",
                "priority",
                "0",
                ";",
                "policy",
                "drop",
                ";",
                "}",
            ],
        ).returncode
        == 0
    )
    assert (
        run_on(
            a, "nft", "add", "rule", "inet", "guard", "in", "ct", "state", "established,related", "accept"
        ).returncode
        == 0
    )

    deployed = ovsvx_on(a, states["host1"], "deploy", "--host", "host1", "--mode", "kernel", "-t", topo)
    assert deployed.returncode == 0, deployed.stderr
    rule = "nft insert rule inet guard in ip saddr { 10.33.30.151 } udp dport 4789 accept"
    assert f"allow the peers with: {rule}" in deployed.stderr
    assert run_on(a, "nft", "list", "chain", "inet", "guard", "in").stdout.count("accept") == 1  # untouched
    ovsvx_on(MACHINES["host2"], states["host2"], "deploy", "--host", "host2", "--mode", "kernel", "-t", topo)

    ping = ["ping", "-c", "2", "-W", "1", "192.168.1.100"]
    assert run_on(f"{TEST_PREFIX}rh-ns2", *ping).returncode != 0  # the firewall drops the tunnel
    assert run_on(a, *rule.split()).returncode == 0
    assert run_on(f"{TEST_PREFIX}rh-ns2", *ping).returncode == 0  # and the printed rule lets it in
    again = ovsvx_on(a, states["host1"], "deploy", "--host", "host1", "--mode", "kernel", "-t", topo)
    assert "drops input" not in again.stderr
