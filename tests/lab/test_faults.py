"""Faults lose nothing: each fault strikes while ns1 pings ns2, then `ovsvx deploy` (or nothing, where
the design heals itself) brings the lab back: verify passes, the pings flow again, none is answered
twice, and the lab holds exactly what it held before (a census of links, addresses, routes, OVS ports
and flows: nothing missing, nothing doubled).

Each fault is its own test, run in both modes where it applies, on one lab per mode; the deploys
interrupted by a signal get a lab of their own, since they must strike a deploy with work to do.
`ovsvx destroy` after any of them leaves no namespace and no process behind (checked at the end of
each lab).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ovsvx.host import netstack, plan, record
from ovsvx.host.record import Kind
from ovsvx.model import reader
from ovsvx.ovs import openflow
from tests.conftest import STATE_DIR, TEST_PREFIX, leftover_netns, need_lab, run_ovsvx, start_ovsvx
from tests.lab.helpers import failed, in_host, pid_of, processes_of, verify

TOPO = reader.default()
HOST1 = TOPO.host("host1")


# --- what a lab holds, and what still runs ---------------------------------------------------


def census(prefix: str) -> dict[str, Any]:
    """Everything ovsvx made in the lab, as sorted lists, so a duplicate or a gap shows as a difference."""
    held: dict[str, Any] = {}
    modes = status_modes(prefix)
    for host in TOPO.hosts:
        for where in (host.name, *(ns.name for ns in host.namespaces)):
            with netstack.stack(prefix + where) as ipr:
                links = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
                held[f"{where} links"] = sorted(
                    link.get_attr("IFLA_IFNAME")
                    for link in ipr.get_links()
                    if link.get_attr("IFLA_IFALIAS") == plan.LINK_ALIAS
                )
                held[f"{where} addresses"] = sorted(
                    f"{links.get(a['index'])} {a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}"
                    for a in ipr.get_addr(family=2)
                )
                held[f"{where} routes"] = sorted(
                    f"{r.get_attr('RTA_DST')}/{r['dst_len']} via {r.get_attr('RTA_GATEWAY')}"
                    for r in ipr.get_routes(family=2, table=254)
                    if r["proto"] == plan.RTPROT_OVSVX
                )
        if modes[host.name] == "ovs":
            held[f"{host.name} ports"] = sorted(
                in_host(prefix, host.name, "ovs-vsctl", "list-ports", host.bridge).split()
            )
            dump = in_host(prefix, host.name, "ovs-ofctl", "-O", "OpenFlow13", "dump-flows", host.bridge)
            cookies = [int(c, 16) for c in re.findall(r"^\s*cookie=(0x[0-9a-f]+)", dump, re.MULTILINE)]
            held[f"{host.name} flows"] = sorted(c for c in cookies if not openflow.is_learned(c))
    return held


def status_modes(prefix: str) -> dict[str, str]:
    return record.require(Kind.LAB, prefix).modes


def destroy_leaves_nothing(prefix: str) -> None:
    run_ovsvx("destroy", "--prefix", prefix)
    assert not [n for n in leftover_netns() if n.startswith(prefix)], "destroy left namespaces"
    assert not processes_of(prefix), f"destroy left processes: {processes_of(prefix)}"
    assert not (STATE_DIR / f"lab-{prefix}").exists()


# --- a ping that runs across the fault -------------------------------------------------------


class Ping:
    """ns1 pings ns2 every 50 ms from before the fault until after the repair."""

    def __init__(self, prefix: str):
        pinging = ("ping", "-n", "-i", "0.05", "-W", "1", "192.168.2.100")
        self.process = start_ovsvx("exec", "--prefix", prefix, "ns1", "--", *pinging, stderr=subprocess.STDOUT)
        time.sleep(0.5)

    def stop(self) -> tuple[list[int], int, str]:
        """(answered sequence numbers, how many sent, the whole output) once stopped."""
        time.sleep(1.0)  # pings after the repair
        self.process.send_signal(signal.SIGINT)
        text, _ = self.process.communicate(timeout=15)
        sent = int(re.search(r"(\d+) packets transmitted", text).group(1))
        return [int(s) for s in re.findall(r"icmp_seq=(\d+) ttl", text)], sent, text


def assert_recovered(prefix: str, ping: Ping, before: dict[str, Any]) -> None:
    answered, sent, text = ping.stop()
    assert "(DUP!)" not in text, "a ping was answered twice"
    assert len(answered) == len(set(answered))
    tail = set(range(sent - 8, sent - 2))  # the last pings before the stop (the very last may be in flight)
    assert tail <= set(answered), f"pings after the repair went unanswered:\n{text[-800:]}"
    report = verify(run_ovsvx, prefix)
    assert report["ok"], failed(report)
    assert census(prefix) == before


# --- the labs ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["kernel", "ovs"])
def lab(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    """(prefix, census) of a lab in the given mode, destroyed (and checked empty) at the end."""
    need_lab()
    prefix = f"{TEST_PREFIX}f{request.param[0]}-"
    run_ovsvx("deploy", "--mode", request.param, "--prefix", prefix)
    try:
        yield prefix, census(prefix)
    finally:
        destroy_leaves_nothing(prefix)


ovs_only = pytest.mark.parametrize("lab", ["ovs"], indirect=True)  # the module's ovs lab, not a new one


def strike(prefix: str, before: dict[str, Any], fault: Callable[[], None], redeploy: bool = True) -> str:
    """Run `fault` under a ping, repair with deploy (when asked), check recovery; the deploy's output."""
    ping = Ping(prefix)
    try:
        fault()
        said = run_ovsvx("deploy", "--prefix", prefix).stdout if redeploy else ""
    except BaseException:
        ping.process.kill()
        raise
    assert_recovered(prefix, ping, before)
    return said


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)


# --- the fault matrix ----------------------------------------------------------------------


@ovs_only
def test_controller_killed(lab: tuple[str, dict[str, Any]]) -> None:
    prefix, before = lab
    said = strike(prefix, before, lambda: kill(pid_of(prefix, "host1", "controller")))
    assert "host1: started controller" in said


@ovs_only
def test_vswitchd_killed(lab: tuple[str, dict[str, Any]]) -> None:
    prefix, before = lab
    said = strike(prefix, before, lambda: kill(pid_of(prefix, "host1", "ovs-vswitchd")))
    assert "host1: started ovs-vswitchd" in said


@ovs_only
def test_ovsdb_server_killed(lab: tuple[str, dict[str, Any]]) -> None:
    prefix, before = lab
    said = strike(prefix, before, lambda: kill(pid_of(prefix, "host1", "ovsdb-server")))
    assert "host1: started ovsdb-server" in said


def test_tunnel_deleted(lab: tuple[str, dict[str, Any]]) -> None:
    prefix, before = lab
    if status_modes(prefix)["host1"] == "kernel":
        said = strike(prefix, before, lambda: in_host(prefix, "host1", "ip", "link", "del", HOST1.vxlan))
    else:
        said = strike(
            prefix, before, lambda: in_host(prefix, "host1", "ovs-vsctl", "del-port", HOST1.bridge, HOST1.vxlan)
        )
    assert HOST1.vxlan in said


def test_workload_veth_deleted(lab: tuple[str, dict[str, Any]]) -> None:
    prefix, before = lab
    said = strike(prefix, before, lambda: in_host(prefix, "host1", "ip", "link", "del", "tap2"))
    assert "tap2" in said


@ovs_only
def test_a_workload_veth_checksumming_again_is_seen_and_mended(lab: tuple[str, dict[str, Any]]) -> None:
    """The userspace datapath needs the namespaces' veths to checksum in software (deploy turns their TX
    offload off); one turned back on is a finding of status (read through ethtool's ioctl) and deploy mends it."""
    prefix, before = lab
    if record.require(Kind.LAB, prefix).settings["host1"].get("datapath") != "netdev":
        pytest.skip("the kernel datapath leaves the veths' offloads on")
    ns1, dev = prefix + HOST1.namespaces[0].name, HOST1.namespaces[0].veth

    def offload_on() -> None:
        assert netstack.run(ns1, ["ethtool", "-K", dev, "tx", "on"]).returncode == 0
        shown = run_ovsvx("status", "--prefix", prefix, "--json", check=False).stdout
        assert "tx checksum offload on" in shown, shown

    said = strike(prefix, before, offload_on)
    assert dev in said or HOST1.namespaces[0].peer in said, said
    assert "tx-checksumming: off" in netstack.run(ns1, ["ethtool", "-k", dev]).stdout


def test_underlay_down_and_up_heals_by_itself(lab: tuple[str, dict[str, Any]]) -> None:
    prefix, before = lab

    def flap() -> None:
        in_host(prefix, "host1", "ip", "link", "set", HOST1.nic, "down")
        time.sleep(1.0)
        in_host(prefix, "host1", "ip", "link", "set", HOST1.nic, "up")

    strike(prefix, before, flap, redeploy=False)
    assert "nothing changed" in run_ovsvx("deploy", "--prefix", prefix).stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("mode", ["kernel", "ovs"])
def test_a_deploy_interrupted_at_a_random_step(mode: str, sig: signal.Signals) -> None:
    """A first deploy, cut at a random moment; deploy again, verify, destroy: nothing left over.

    The moment is drawn from the time a whole deploy takes (printed on failure, with the seed)."""
    need_lab()
    prefix = f"{TEST_PREFIX}i{mode[0]}{sig.name[3]}-".lower()
    reference = time.monotonic()
    run_ovsvx("deploy", "--mode", mode, "--prefix", prefix)
    whole = time.monotonic() - reference
    wanted = census(prefix)
    destroy_leaves_nothing(prefix)

    seed = int(os.environ.get("OVSVX_FAULT_SEED", time.time_ns()))
    delay = random.Random(seed).uniform(0.1, 0.9 * whole)
    cut = start_ovsvx("deploy", "--mode", mode, "--prefix", prefix)
    time.sleep(delay)
    cut.send_signal(sig)
    out, err = cut.communicate(timeout=60)
    where = f"(seed {seed}: {sig.name} after {delay:.2f} s of a {whole:.2f} s deploy)\n{out}\n{err}"
    try:
        assert "Traceback" not in err, where
        finished = "deployed lab" in out  # the signal came as it exited
        if sig == signal.SIGINT and not finished:  # a first deploy undoes itself
            assert not [n for n in leftover_netns() if n.startswith(prefix)], where
            assert not processes_of(prefix), where
        run_ovsvx("deploy", "--mode", mode, "--prefix", prefix)
        report = verify(run_ovsvx, prefix)
        assert report["ok"], (where, failed(report))
        assert census(prefix) == wanted, where
    finally:
        destroy_leaves_nothing(prefix)


def test_a_link_made_but_not_yet_marked_is_still_ovsvxs(fresh_prefix: str) -> None:
    """The kernel gives a new link no alias: a deploy killed between creating vxlan1 and marking it
    leaves an unmarked vxlan1, which the record claims until the next deploy marks it."""
    run_ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    in_host(fresh_prefix, "host1", "ip", "link", "set", HOST1.vxlan, "alias", "")
    refused = run_ovsvx("deploy", "--prefix", fresh_prefix, check=False)
    assert refused.returncode == 4 and "vxlan1 exists and was not made by ovsvx" in refused.stderr

    path = STATE_DIR / f"lab-{fresh_prefix}.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "unfinished_links": {"host1": [HOST1.vxlan]}}))
    repaired = run_ovsvx("deploy", "--prefix", fresh_prefix).stdout
    assert re.search(rf"host1: ~ vxlan {HOST1.vxlan} .*: left unfinished by an interrupted deploy", repaired)
    assert json.loads(path.read_text())["unfinished_links"] == {"host1": []}
    assert in_host(fresh_prefix, "host1", "ip", "-j", "link", "show", HOST1.vxlan).count('"ifalias":"ovsvx"') == 1


@pytest.mark.parametrize(("old", "new"), [("ovs", "kernel"), ("kernel", "ovs")])
def test_a_mode_switch_killed_at_a_random_moment_is_finished_by_a_plain_deploy(old: str, new: str) -> None:
    """`deploy --mode NEW` on a lab in OLD, SIGKILLed at a moment drawn from a whole switch's time (seed
    printed on failure, OVSVX_FAULT_SEED replays it).  A plain deploy then finishes the switch (or, cut
    before it recorded anything, keeps OLD): verify passes, the lab holds what a clean deploy of that
    mode makes and nothing of the other mode runs; destroy leaves nothing."""
    need_lab()
    prefix = f"{TEST_PREFIX}s{old[0]}{new[0]}-"
    run_ovsvx("deploy", "--mode", old, "--prefix", prefix)
    clean = {old: (census(prefix), processes_of(prefix))}
    reference = time.monotonic()
    run_ovsvx("deploy", "--mode", new, "--prefix", prefix)
    whole = time.monotonic() - reference
    clean[new] = (census(prefix), processes_of(prefix))
    destroy_leaves_nothing(prefix)

    seed = int(os.environ.get("OVSVX_FAULT_SEED", time.time_ns()))
    delay = random.Random(seed).uniform(0.1, 0.9 * whole)
    run_ovsvx("deploy", "--mode", old, "--prefix", prefix)
    cut = start_ovsvx("deploy", "--mode", new, "--prefix", prefix)
    time.sleep(delay)
    cut.kill()
    out, err = cut.communicate(timeout=60)
    recorded = set(status_modes(prefix).values())
    where = f"(seed {seed}: SIGKILL after {delay:.2f} s of a {whole:.2f} s switch; record: {recorded})\n{out}{err}"
    try:
        plain = run_ovsvx("deploy", "--prefix", prefix, check=False)
        where += plain.stdout + plain.stderr
        assert plain.returncode == 0, where
        modes = set(status_modes(prefix).values())
        assert modes == recorded and len(modes) == 1, where  # the record decides: switched, or never began
        wanted, running = clean[modes.pop()]
        report = verify(run_ovsvx, prefix)
        assert report["ok"], (where, failed(report))
        assert census(prefix) == wanted, where
        assert len(processes_of(prefix)) == len(running), (where, processes_of(prefix))
        assert record.require(Kind.LAB, prefix).leaving == {}, where
    finally:
        destroy_leaves_nothing(prefix)
