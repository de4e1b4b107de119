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
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ovsvx import waits
from ovsvx.deploy import agent as agent_module
from ovsvx.deploy.backends import vtep_carriers
from ovsvx.errors import PreconditionError
from ovsvx.host import firewall, netstack, nftables, preflight
from ovsvx.model import reader, topology, writer
from tests.conftest import REPO, TEST_PREFIX, need_lab
from tests.lab.intruders import open_up

MACHINES = {"host1": f"{TEST_PREFIX}rh-a", "host2": f"{TEST_PREFIX}rh-b"}
VTEPS = {"host1": "10.33.30.150", "host2": "10.33.30.151"}


def ovsvx_on(machine: str, state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ovsvx inside `machine` as root would on that server."""
    env = {**os.environ, "OVSVX_STATE_DIR": str(state), "OVSVX_HOST_RECORD_DIR": str(state / "var-lib")}
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


def cable() -> None:
    """The machines' NICs, ens160 each, joined by one cable, up and addressed as their own network
    configuration would have them."""
    with netstack.stack(MACHINES["host1"]) as a:
        a.link("add", ifname="ens160", kind="veth", peer={"ifname": "ens160", "net_ns_fd": MACHINES["host2"]})
    for host, machine in MACHINES.items():
        with netstack.stack(machine) as ipr:
            for name in ("lo", "ens160"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
            ipr.addr("add", index=ipr.link_lookup(ifname="ens160")[0], address=VTEPS[host], prefixlen=24)


def vxlan_lower(machine: str) -> int | None:
    """The ifindex of the NIC under the machine's vxlan1, or None while there is no vxlan1."""
    with netstack.stack(machine) as ipr:
        found = ipr.get_links(ifname="vxlan1")
    if not found:
        return None
    data = found[0].get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
    return int(data.get_attr("IFLA_VXLAN_LINK"))


def ifindex(machine: str, name: str) -> int:
    with netstack.stack(machine) as ipr:
        return int(ipr.link_lookup(ifname=name)[0])


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[dict[str, Any]]:
    need_lab()
    for name in MACHINES.values():
        netstack.create_netns(name)  # cleanup below is registered by the try before anything else
    states = {host: tmp_path / host for host in MACHINES}
    topo_file = tmp_path / "topology.toml"
    topo_file.write_text(
        reader.default_text().replace('"ns1"', f'"{TEST_PREFIX}rh-ns1"').replace('"ns2"', f'"{TEST_PREFIX}rh-ns2"')
    )
    try:
        cable()
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


def test_a_vtep_that_ovs_mode_moved_onto_br_phy_is_still_this_machines(machines: dict[str, Any]) -> None:
    """On the userspace datapath ovs mode moves the VTEP from the NIC onto its bridge for it (br-phy), so
    every later deploy, the agent's every pass, finds it there: that is this machine, not another.  Seen
    with scripts/pass-cost: the agent's second pass was refused ("VTEP address ... is not on ens160")."""
    machine, vtep = MACHINES["host1"], VTEPS["host1"]
    run_on(machine, "ip", "addr", "del", f"{vtep}/24", "dev", "ens160")
    run_on(machine, "ip", "link", "add", "br-phy", "type", "veth", "peer", "name", "br-phy-end")
    run_on(machine, "ip", "addr", "add", f"{vtep}/24", "dev", "br-phy")
    topo = reader.load(Path(machines["topology"]))
    host1 = topo.hosts[0]
    carriers = vtep_carriers(host1)  # what deploy and enable hand the check
    assert netstack.call_in(machine, lambda: preflight.check_real_host(topo, host1, carriers)) == []
    run_on(machine, "ip", "addr", "del", f"{vtep}/24", "dev", "br-phy")
    with pytest.raises(PreconditionError, match=f"VTEP address {vtep} is not on ens160"):
        netstack.call_in(machine, lambda: preflight.check_real_host(topo, host1, carriers))


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


# --- the agent: converge, repair, stop; a host known again after a reboot -----------------------------

REPAIR_S = 5.0  # the agent repairs drift that announces itself within this (scaled)
NS1, NS2 = f"{TEST_PREFIX}rh-ns1", f"{TEST_PREFIX}rh-ns2"
SCRAPE = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"


class AgentProcess:
    """`ovsvx agent` running inside a machine, its lines collected as they come."""

    def __init__(self, machine: str, state: Path, *args: str):
        env = {**os.environ, "OVSVX_STATE_DIR": str(state), "OVSVX_HOST_RECORD_DIR": str(state / "var-lib")}
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-m", "ovsvx", "agent", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd="/",
            preexec_fn=lambda: netstack.enter(machine),
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def said(self, text: str, seconds: float) -> bool:
        return waits.until(lambda: any(text in line for line in self.lines), seconds)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=waits.scaled(30))
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def answers(src_ns: str, address: str) -> bool:
    return run_on(src_ns, "ping", "-c", "1", "-W", "1", address).returncode == 0


def test_the_agent_converges_repairs_what_drifts_and_leaves_the_overlay_up(machines: dict[str, Any]) -> None:
    states, topo = machines["states"], machines["topology"]
    a = MACHINES["host1"]
    ovsvx_on(MACHINES["host2"], states["host2"], "deploy", "--host", "host2", "--mode", "kernel", "-t", topo)
    agent = AgentProcess(
        a, states["host1"], "--host", "host1", "--mode", "kernel", "-t", topo, "--full-check", "2", "--metrics", "9477"
    )
    try:
        assert agent.said("host1: ready", 60), "\n".join(agent.lines)
        assert answers(NS1, "192.168.2.100")
        drifts = [  # what a person or another program might do to the host, each announced by netlink
            ("ip", "link", "del", "vxlan1"),
            ("ip", "route", "del", "192.168.2.0/24"),
            ("ip", "addr", "del", "192.168.1.1/24", "dev", "br1"),
        ]
        for drift in drifts:
            repairs = sum("repaired" in line for line in agent.lines)
            assert run_on(a, *drift).returncode == 0
            started = time.monotonic()
            assert waits.until(lambda: answers(NS1, "192.168.2.100"), REPAIR_S), (drift, agent.lines[-5:])
            print(f"\n{' '.join(drift)}: answering again after {time.monotonic() - started:.2f} s")
            assert waits.until(lambda n=repairs: sum("repaired" in line for line in agent.lines) > n, REPAIR_S)
        # the NIC gone and back with a new ifindex (a driver reloaded; the machine's own configuration puts
        # its address back): the kernel took vxlan1 with it, the agent makes it again on the new NIC
        old = ifindex(a, "ens160")
        assert run_on(a, "ip", "link", "del", "ens160").returncode == 0  # host2's end of the cable goes too
        cable()
        new = ifindex(a, "ens160")
        assert new != old
        started = time.monotonic()
        assert waits.until(lambda: vxlan_lower(a) == new, REPAIR_S), agent.lines[-5:]
        print(f"\nens160 back as ifindex {new}: vxlan1 on it again after {time.monotonic() - started:.2f} s")
        redeployed = ovsvx_on(MACHINES["host2"], states["host2"], "deploy", "--host", "host2", "-t", topo)
        assert redeployed.returncode == 0, redeployed.stderr  # host2 has no agent here: its side by hand
        assert waits.until(lambda: answers(NS1, "192.168.2.100"), REPAIR_S), agent.lines[-5:]
        # a sysctl announces nothing: the full check puts it back
        run_on(a, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        forwarding = lambda: run_on(a, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"  # noqa: E731
        assert waits.until(forwarding, REPAIR_S), agent.lines[-5:]
        assert answers(NS1, "192.168.2.100")
        # what the agent served all along, on the machine's loopback: the repairs by kind, the tunnel's counters
        scraped = run_on(a, sys.executable, "-c", SCRAPE, "http://127.0.0.1:9477/metrics")
        assert scraped.returncode == 0, scraped.stderr
        said = {
            (f.name, tuple(s.labels.items())): s.value
            for f in text_string_to_metric_families(scraped.stdout)
            for s in f.samples
        }
        for kind in ("vxlan", "route", "address", "sysctl"):
            assert said[("ovsvx_agent_repairs", (("kind", kind),))] >= 1, said
        assert said[("ovsvx_agent_last_pass_converged", ())] == 1
        tunnel = (("host", "host1"), ("peer", "host2"), ("tunnel", "vxlan1"))
        assert said[("ovsvx_tunnel_tx_packets", tunnel)] >= 1 and said[("ovsvx_tunnel_rx_packets", tunnel)] >= 1
        assert agent.stop() == 0
        assert "host1: SIGTERM: stopping; the overlay keeps forwarding" in agent.lines
        assert answers(NS1, "192.168.2.100")  # the agent is gone, the overlay is not
    finally:
        agent.stop()


def test_the_agent_hears_its_firewall_changed_or_flushed_and_mends_it(machines: dict[str, Any]) -> None:
    """Security round 3, 2: with a full check far away, only nftables' own events can wake the agent: a
    table rewritten to accept, and a `flush ruleset` (what `systemctl restart nftables` does with Debian's
    nftables.conf), are each mended within REPAIR_S.  Kernel mode: these machines have no system OVS (the
    watch is the same in either mode; the two-machine suite runs both)."""
    states, topo = machines["states"], machines["topology"]
    a = MACHINES["host1"]
    host1 = reader.load(Path(topo)).host("host1")
    script = firewall.rules(reader.load(Path(topo)), host1).script()
    agent = AgentProcess(a, states["host1"], "--host", "host1", "--mode", "kernel", "-t", topo, "--full-check", "600")

    def as_meant() -> bool:
        found = nftables.read(a, "inet", "ovsvx", script)
        return found is not None and found.as_meant

    try:
        assert agent.said("host1: ready", 60), "\n".join(agent.lines)
        assert as_meant()
        for what, tamper in (
            ("drops made accepts", lambda: open_up(a, "inet", "ovsvx")),
            ("flush ruleset", lambda: run_on(a, "nft", "flush", "ruleset")),
        ):
            tamper()
            assert not as_meant()
            started = time.monotonic()
            assert waits.until(as_meant, REPAIR_S, interval=0.05), (what, agent.lines[-5:])
            print(f"\n{what}: the table as meant again after {time.monotonic() - started:.2f} s")
    finally:
        agent.stop()


def test_a_host_deployed_before_a_reboot_is_still_known_and_the_agent_brings_it_back(
    machines: dict[str, Any],
) -> None:
    states, topo = machines["states"], machines["topology"]
    a = MACHINES["host1"]
    for host, machine in MACHINES.items():
        done = ovsvx_on(machine, states[host], "deploy", "--host", host, "--mode", "kernel", "-t", topo)
        assert done.returncode == 0, done.stderr
    # the reboot: what lives in the kernel and on /run is gone; the disk (the record) is not
    netstack.remove_netns(NS1)
    for link in ("vxlan1", "br1"):
        run_on(a, "ip", "link", "del", link)
    run_on(a, "nft", "delete", "table", "inet", "ovsvx")
    run_on(a, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    shutil.rmtree(states["host1"] / "run", ignore_errors=True)

    status = ovsvx_on(a, states["host1"], "status", "--host", "host1", "--json")
    assert status.returncode == 1, status.stderr  # deployed, and broken: not "nothing is deployed"
    missing = [r["what"] for r in json.loads(status.stdout)["hosts"]["host1"]["resources"] if r["state"] != "ok"]
    assert any("vxlan1" in what for what in missing), missing
    agent = AgentProcess(a, states["host1"], "--host", "host1", "-t", topo)
    try:
        assert agent.said("host1: ready", 60), "\n".join(agent.lines)
        assert answers(NS1, "192.168.2.100")
    finally:
        assert agent.stop() == 0
    again = ovsvx_on(a, states["host1"], "status", "--host", "host1", "--json")
    assert json.loads(again.stdout)["hosts"]["host1"]["mode"] == "kernel"  # the agent kept the mode deployed
    gone = ovsvx_on(a, states["host1"], "destroy", "--host", "host1")
    assert "destroyed host host1" in gone.stdout
    assert run_on(a, "ip", "-br", "link").stdout.count("\n") == 2  # lo and ens160, as before


# --- the agent as operators expect: reload, quiet under churn (issue 34) ---------------------------------

NS3 = f"{TEST_PREFIX}rh-ns3"
FLAP_S = 10.0  # the NIC flaps ten times a second for this long


def agent_report(state: Path) -> dict[str, Any]:
    """What the agent running with `state` last wrote of itself (agentreport.py)."""
    try:
        return dict(json.loads((state / "agent-host1.json").read_text()))
    except (OSError, ValueError):
        return {}


def reloaded(agent: AgentProcess, state: Path, count: int) -> dict[str, Any]:
    """SIGHUP the agent; its report once the reload is taken (or refused) and, when taken, applied."""
    agent.process.send_signal(signal.SIGHUP)

    def done() -> bool:
        now = agent_report(state)
        return now.get("reloads") == count and bool(now["reload_refused"] or now["passes"] > now["reloaded_after"])

    assert waits.until(done, REPAIR_S * 4), (agent_report(state), agent.lines[-5:])
    return agent_report(state)


def test_the_agent_reloads_a_namespace_added_without_a_lost_packet_and_a_flapping_nic_costs_few_passes(
    machines: dict[str, Any], tmp_path: Path
) -> None:
    """SIGHUP (what `systemctl reload` ends in) takes the stored topology again: a namespace added on
    host1 is made while ns1 pings ns2 with nothing lost, and a change that does not apply in place is
    refused and leaves the agent as it was.  Then host1's NIC flaps ten times a second for ten seconds:
    the agent's passes stay near one a second (EVENT_GAP_S), not one an event, and the overlay is back."""
    states, a = machines["states"], MACHINES["host1"]
    stored = tmp_path / "host1.toml"
    base = reader.load(Path(machines["topology"]))
    stored.write_text(writer.to_toml(base))
    stored.chmod(0o600)
    ovsvx_on(MACHINES["host2"], states["host2"], "deploy", "--host", "host2", "--mode", "kernel", "-t", str(stored))
    agent = AgentProcess(a, states["host1"], "--host", "host1", "--mode", "kernel", "-t", str(stored))
    pinger: subprocess.Popen[str] | None = None
    try:
        assert agent.said("host1: ready", 60), "\n".join(agent.lines)
        host1 = base.hosts[0]
        added = topology.Namespace(NS3, host1.subnet[101], "tap3", "tap4")
        grown = replace(base, hosts=(replace(host1, namespaces=(*host1.namespaces, added)), base.hosts[1]))
        pinger = netstack.popen(NS1, ["ping", "-n", "-i", "0.05", "-W", "1", "192.168.2.100"], stdout=subprocess.PIPE)
        stored.write_text(writer.to_toml(grown))
        report = reloaded(agent, states["host1"], 1)
        assert report["reload_refused"] == "" and report["last_ok"], report
        assert answers(NS3, "192.168.2.100")
        pinger.send_signal(signal.SIGINT)
        said = pinger.communicate(timeout=waits.scaled(10))[0]
        sent, got = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", said).groups())
        print(f"\nreload adding {NS3}: ns1 -> ns2 {got} of {sent}; {report['last_seconds']:.2f} s pass")
        assert sent >= 5 and got == sent, said

        moved = replace(grown, hosts=(replace(grown.hosts[0], vxlan_address=host1.subnet[253]), grown.hosts[1]))
        stored.write_text(writer.to_toml(moved))
        refused = reloaded(agent, states["host1"], 2)
        assert "host1's vxlan_address changed" in refused["reload_refused"], refused
        assert any("reload: " in line and "does not apply in place" in line for line in agent.lines)
        assert answers(NS3, "192.168.2.100") and agent.process.poll() is None

        before, flaps = agent_report(states["host1"])["passes"], 0
        with netstack.stack(a) as ipr:
            nic = ipr.link_lookup(ifname="ens160")[0]
            began = time.monotonic()
            while time.monotonic() - began < FLAP_S:
                ipr.link("set", index=nic, state="down")
                time.sleep(0.05)
                ipr.link("set", index=nic, state="up")
                time.sleep(0.05)
                flaps += 1
        assert waits.until(lambda: answers(NS1, "192.168.2.100"), REPAIR_S * 2), agent.lines[-5:]
        passes = agent_report(states["host1"])["passes"] - before
        print(f"{flaps} flaps of ens160 in {FLAP_S:g} s: {passes} pass(es)")
        assert 1 <= passes <= FLAP_S / agent_module.EVENT_GAP_S + 4, passes
    finally:
        if pinger is not None and pinger.poll() is None:
            pinger.kill()
            pinger.wait()
        agent.stop()
        netstack.remove_netns(NS3)
