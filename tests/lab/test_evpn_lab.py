"""control = "evpn" in a lab: hosts join and leave through BGP without the others being touched, and the
overlay rides out a route reflector's restart and a host's lost session.  Kernel mode (FRR)."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from ovsvx import waits
from ovsvx.deploy import lab
from ovsvx.host import frr, frrconf, gtsm, netstack, record
from ovsvx.host.firewall import Firewall
from ovsvx.host.record import Kind
from ovsvx.model import generated, topology, writer
from ovsvx.model.site import Site
from ovsvx.model.topology import Bgp, Control
from ovsvx.ovs.evpnspeaker import CONNECT_RETRY_S
from tests.conftest import STATE_DIR, Runner, leftover_netns
from tests.lab.helpers import in_host, ping_result, processes_of, start_ping, status, verify
from tests.lab.intruders import INTRUDER_ADDRESS, Listener, inject, open_up

REACH_S = 10.0  # the bound: a new host reaches every namespace within this of its deploy
FORGET_S = frrconf.HOLD_S + 3.0  # a host that went silent is forgotten within the hold time (plus a poll's slack)


def evpn_file(tmp_path: Path, count: int, reflectors: tuple[str, ...] = ("10.33.30.2",)) -> Path:
    topo = generated.generate(count, Control.EVPN)
    assert topo.bgp is not None  # the generated one, with its overlay range (192.168.0.0/16)
    topo = replace(topo, bgp=replace(topo.bgp, route_reflectors=tuple(IPv4Address(a) for a in reflectors)))
    path = tmp_path / f"evpn-{count}-{len(reflectors)}.toml"
    path.write_text(writer.to_toml(topo))
    return path


def until_verified(ovsvx: Runner, prefix: str, seconds: float) -> tuple[dict[str, Any], float]:
    """Verify until it passes or `seconds` (scaled) are up; the last report and when it passed."""
    start = time.monotonic()
    report: dict[str, Any] = {}

    def passes() -> bool:
        nonlocal report
        report = verify(ovsvx, prefix)
        return bool(report["ok"])

    waits.until(passes, seconds, interval=0.2)
    return report, time.monotonic() - start


def routes_of(prefix: str, host: str) -> str:
    return in_host(prefix, host, "ip", "route")


def speakers_said(prefix: str) -> dict[str, list[str]]:
    """What each host's os-ken speaker logged about its sessions: the story of a session that did not come back."""
    logs = sorted((STATE_DIR / f"lab-{prefix}").glob("host*/controller.log"))
    said = {log.parent.name: log.read_text(errors="replace").splitlines() for log in logs}
    return {host: [line for line in lines if "BGP" in line or "connect" in line][-12:] for host, lines in said.items()}


def changed_hosts(output: str) -> set[str]:
    return {line.split(":", 1)[0] for line in output.splitlines() if line.startswith("host")}


def test_evpn_without_a_controller_is_refused_with_one_line_and_nothing_made(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path
):
    argv = ("deploy", "--prefix", fresh_prefix, "-t", str(evpn_file(tmp_path, 2)), "--mode", "ovs", "--no-controller")
    done = ovsvx(*argv, check=False)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0
    assert 'not allowed with control = "evpn": the controller speaks BGP' in done.stderr
    assert not [n for n in leftover_netns() if n.startswith(fresh_prefix)]


# (modes of host1 and host2, mode of host3): FRR only, os-ken only, and both speakers in one overlay
MODES = {"kernel": ("kernel", "kernel"), "ovs": ("ovs", "ovs"), "mixed": ("host1=ovs,host2=kernel", "ovs")}


@pytest.mark.parametrize("modes", list(MODES))
def test_evpn_hosts_join_and_leave_without_touching_the_others(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path, modes: str
):
    prefix = fresh_prefix
    first, third = MODES[modes]
    ovsvx("deploy", "--prefix", prefix, "-t", str(evpn_file(tmp_path, 2)), "--mode", first)
    report, _ = until_verified(ovsvx, prefix, REACH_S)
    assert report["ok"], report

    start = time.monotonic()
    grown = ovsvx("deploy", "--prefix", prefix, "-t", str(evpn_file(tmp_path, 3)), "--mode", f"host3={third}").stdout
    assert changed_hosts(grown) == {"host3"}, grown  # host1 and host2: nothing changed
    report, _ = until_verified(ovsvx, prefix, REACH_S)
    took = time.monotonic() - start
    assert report["ok"], report
    assert len(report["checks"]) == 43
    assert took < waits.scaled(REACH_S)
    print(f"{modes}: host3 verified by every namespace {took:.1f} s after its deploy started")

    seen = status(prefix)["hosts"]["host1"]["bgp"]
    assert [(s["peer"], s["state"]) for s in seen["sessions"]] == [("10.33.30.2", "Established")]
    assert {(r["prefix"], r["vtep"], r["origin"]) for r in seen["routes"] if r["origin"] != "local"} == {
        ("192.168.2.0/24", "10.33.30.151", "10.33.30.151"),
        ("192.168.3.0/24", "10.33.30.152", "10.33.30.152"),
    }
    trace = ovsvx("trace", "--prefix", prefix, "ns1", "ns3").stdout
    if first == "kernel":  # FRR's route, as bgpd holds it; in ovs mode, the flow made from the route
        assert "from the type-5 route of 192.168.3.0/24 (router MAC 02:00:c0:a8:03:fe), sent by 10.33.30.152" in trace
    else:
        assert "the router MAC and VTEP of the type-5 route of 192.168.3.0/24" in trace
        assert "set_field:10.33.30.152->tun_dst" in trace

    shrunk = ovsvx("deploy", "--prefix", prefix, "-t", str(evpn_file(tmp_path, 2))).stdout
    assert changed_hosts(shrunk) == {"host3"}, shrunk
    assert f"host3: - {'bgpd' if third == 'kernel' else 'controller'}" in shrunk  # its speaker says goodbye
    start = time.monotonic()
    assert waits.until(lambda: "192.168.3.0/24" not in routes_of(prefix, "host1"), FORGET_S)
    print(f"{modes}: host3 gone from host1's routes {time.monotonic() - start:.2f} s after its removal returned")
    assert "192.168.3.0/24" not in routes_of(prefix, "host2")
    assert not [p for p in processes_of(prefix) if "/host3/" in p]
    assert f"{prefix}host3" not in netstack.list_netns()
    assert verify(ovsvx, prefix)["ok"]

    ovsvx("destroy", "--prefix", prefix)
    assert not processes_of(prefix)


def test_evpn_comes_back_after_a_reflector_restart_and_forgets_a_silent_host(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path
):
    """What holds with FRR 8.4 (README): a reflector's death takes the routes it gave away (FRR keeps no
    EVPN route through a peer's graceful restart), and its restart brings every session and route back.
    host3 runs ovs mode: os-ken's speaker is the one that goes silent and comes back."""
    prefix = fresh_prefix
    three = str(evpn_file(tmp_path, 3))
    ovsvx("deploy", "--prefix", prefix, "-t", three, "--mode", "host1=kernel,host2=kernel,host3=ovs")
    report, _ = until_verified(ovsvx, prefix, REACH_S)
    assert report["ok"], report

    pidfile = STATE_DIR / f"lab-{prefix}" / "rr-10.33.30.2" / "run" / "bgpd.pid"
    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
    assert waits.until(lambda: "192.168.2.0/24" not in routes_of(prefix, "host1"), FORGET_S)
    start = time.monotonic()
    again = ovsvx("deploy", "--prefix", prefix, "-t", three).stdout
    assert changed_hosts(again) == set(), again
    assert "route reflector" in again and "+ bgpd" in again
    report, _ = until_verified(ovsvx, prefix, REACH_S + CONNECT_RETRY_S)  # os-ken dials every 10 s
    assert report["ok"], report
    print(f"every namespace verified again {time.monotonic() - start:.1f} s after the reflector's restart began")
    sessions = [s for h in status(prefix)["hosts"].values() for s in h["bgp"]["sessions"]]
    assert [s["state"] for s in sessions] == ["Established"] * 3

    # host3's NIC goes down, and its speaker's session with it: the others forget it within the hold
    # time, and learn it again once it is back.
    in_host(prefix, "host3", "ip", "link", "set", "ens160", "down")
    start = time.monotonic()
    assert waits.until(lambda: "192.168.3.0/24" not in routes_of(prefix, "host1"), FORGET_S)
    print(f"silent host3 forgotten by host1 after {time.monotonic() - start:.1f} s")
    in_host(prefix, "host3", "ip", "link", "set", "ens160", "up")
    assert waits.until(lambda: "192.168.3.0/24" in routes_of(prefix, "host1"), REACH_S + CONNECT_RETRY_S)
    report, _ = until_verified(ovsvx, prefix, REACH_S)
    assert report["ok"], report


def test_ovs_hosts_keep_forwarding_through_a_reflector_restart(ovsvx: Runner, fresh_prefix: str, tmp_path: Path):
    """os-ken's speaker keeps the routes of a reflector that went away (as a graceful-restart helper would):
    the flows stay, and a ping between two ovs hosts loses nothing while the reflector dies and comes back."""
    prefix = fresh_prefix
    three = str(evpn_file(tmp_path, 3))
    ovsvx("deploy", "--prefix", prefix, "-t", three, "--mode", "ovs")
    report, _ = until_verified(ovsvx, prefix, REACH_S)
    assert report["ok"], report

    ping = start_ping(prefix, count=150)  # 15 s: the reflector's death, its restart, the speakers' redial
    assert ping.stdout is not None
    while "bytes from" not in ping.stdout.readline():  # under way: the kill lands mid-stream
        assert ping.poll() is None, "ping ended before its first reply"
    pidfile = STATE_DIR / f"lab-{prefix}" / "rr-10.33.30.2" / "run" / "bgpd.pid"
    os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)

    found: list[str] = []

    def sessions(state: str) -> bool:
        found[:] = [s["state"] for h in status(prefix)["hosts"].values() for s in h["bgp"]["sessions"]]
        return found == [state] * 3

    assert waits.until(lambda: sessions("Down"), FORGET_S, interval=0.5), found
    assert "192.168.2.0/24" in routes_of(prefix, "host1")  # kept
    ovsvx("deploy", "--prefix", prefix, "-t", three)
    # a speaker redials CONNECT_RETRY_S (and os-ken's 1 s) after a failed dial; one that dialled while the
    # restarted bgpd was still starting fails once more before it gets in
    came_back = waits.until(lambda: sessions("Established"), REACH_S + 2 * (CONNECT_RETRY_S + 1), interval=0.5)
    assert came_back, (found, speakers_said(prefix))
    sent, received, _ = ping_result(ping)
    assert received == sent, f"{sent - received} of {sent} pings lost while the reflector was away"
    assert verify(ovsvx, prefix)["ok"]


def test_evpn_hosts_switch_modes_and_verify_as_soon_as_deploy_returns(ovsvx: Runner, fresh_prefix: str, tmp_path: Path):
    """A lab deploy under EVPN returns once BGP has converged: verify passes at once, whichever speaker
    (FRR, then os-ken, then FRR again) each host has."""
    two = str(evpn_file(tmp_path, 2))
    for mode in ("kernel", "ovs", "host1=kernel,host2=ovs", "kernel"):
        done = ovsvx("deploy", "--prefix", fresh_prefix, "-t", two, "--mode", mode)
        assert "not converged" not in done.stdout + done.stderr
        report = verify(ovsvx, fresh_prefix)
        assert report["ok"], (mode, [c for c in report["checks"] if not c["ok"]])
    assert not [p for p in processes_of(fresh_prefix) if "ovsvx.ovs.controller" in p]  # ovs mode is gone


STRANGER = INTRUDER_ADDRESS  # a machine of the underlay, inside the reflector's listen range
ROGUE_MAC = "02:66:66:66:66:01"


def stranger_on_the_underlay(prefix: str) -> str:
    """A stranger's machine cabled to the lab's underlay (its namespace)."""
    netns = f"{prefix}stranger"
    if not netstack.netns_exists(netns):
        netstack.create_netns(netns)
        lab.plug(record.require(Kind.LAB, prefix), "pstr", netns, "eth0")
        with netstack.stack(netns) as ns:
            index = ns.link_lookup(ifname="eth0")[0]
            ns.link("set", index=index, state="up")
            ns.addr("add", index=index, address=STRANGER, prefixlen=16)
    return netns


def stranger_home(prefix: str) -> frr.FrrHome:
    return frr.FrrHome("stranger", STATE_DIR / f"lab-{prefix}" / "stranger", f"{prefix}stranger", ("bgpd",))


def stranger_bgpd(prefix: str, secret: str | None, announces: tuple[str, ...] = ()) -> frr.FrrHome:
    """An iBGP speaker of a stranger's on the underlay, dialling the reflector (with `secret`, the password),
    announcing a type-5 route of each prefix in `announces`, with itself as the VTEP, as a host's would
    look (the overlay's route target, a router MAC)."""
    stranger_on_the_underlay(prefix)
    home = stranger_home(prefix)
    frr.stop(home)
    lines = ["frr defaults datacenter", "router bgp 65000", f" bgp router-id {STRANGER}"]
    lines += [" no bgp default ipv4-unicast", " neighbor 10.33.30.2 remote-as 65000"]
    lines += [" neighbor 10.33.30.2 timers connect 2"]
    lines += [f" neighbor 10.33.30.2 password {secret}"] if secret else []
    lines += [" address-family l2vpn evpn", "  neighbor 10.33.30.2 activate"]
    lines += ["  neighbor 10.33.30.2 route-map as-a-host out"]
    for index, network in enumerate(announces, start=1):
        lines.append(
            f"  network {network} rd {STRANGER}:{index} ethtag 0 label 100 esi 00:00:00:00:00:00:00:00:00:00"
            f" gwip 0.0.0.0 routermac {ROGUE_MAC}"
        )
    lines += [" exit-address-family", "exit", "route-map as-a-host permit 10", " set extcommunity rt 65000:100"]
    frr.start(home, {"bgpd": "\n".join(lines) + "\n"})
    return home


def remove_stranger(prefix: str) -> None:
    frr.stop(stranger_home(prefix))
    if netstack.netns_exists(f"{prefix}stranger"):
        netstack.remove_netns(f"{prefix}stranger")


def test_with_a_password_only_who_knows_it_gets_a_session(ovsvx: Runner, fresh_prefix: str, tmp_path: Path):
    """bgp.password_file: the hosts (FRR and os-ken's speaker) and the reflector use it (TCP MD5); a
    stranger's bgpd on the underlay without it gets no session, and with it gets one (so the test can
    tell).  The password shows in no plan and no status."""
    secret = tmp_path / "bgp.secret"
    secret.write_text("only-the-overlay-knows\n")
    secret.chmod(0o600)
    topo = generated.generate(2, topology.Control.EVPN)
    topo = replace(topo, bgp=Bgp(65000, (IPv4Address("10.33.30.2"),), secret))
    path = tmp_path / "evpn-secret.toml"
    path.write_text(writer.to_toml(topo))
    prefix = fresh_prefix
    ovsvx("deploy", "--prefix", prefix, "-t", str(path), "--mode", "host1=ovs,host2=kernel")
    try:
        report, _ = until_verified(ovsvx, prefix, REACH_S)
        assert report["ok"], report
        shown = ovsvx("plan", "-t", str(path), "--mode", "kernel").stdout + ovsvx("status", "--prefix", prefix).stdout
        assert "only-the-overlay-knows" not in shown

        def established(home: frr.FrrHome) -> bool:
            return [s.state for s in frr.sessions(home) or []] == ["Established"]

        stranger = stranger_bgpd(prefix, None)
        time.sleep(waits.scaled(3 * frrconf.CONNECT_RETRY_S + 1))  # three dials refused by TCP MD5
        assert not established(stranger), frr.sessions(stranger)
        stranger = stranger_bgpd(prefix, "only-the-overlay-knows")
        assert waits.until(lambda: established(stranger), REACH_S, interval=0.5), frr.sessions(stranger)
    finally:
        remove_stranger(prefix)


def test_a_rogue_speaker_gets_no_default_route_and_an_unannounced_vtep_no_frames(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path
) -> None:
    """Issue 21's attacks on a mixed lab (host1 ovs on the userspace datapath, host2 kernel mode with FRR):

    - a stranger of the underlay sends VXLAN frames (an echo to ns1) to host1 before BGP names it: OVS's
      flow-based tunnel port drops them (it took any VTEP's before);
    - the stranger then speaks iBGP (the reflector admits the underlay) and announces the default route,
      the underlay and 192.168.77.0/24: both hosts take only the last (FRR installed the default route
      before), count the other two in status with why, and now take its frames (so the test can tell)."""
    prefix = fresh_prefix
    ovsvx("deploy", "--prefix", prefix, "-t", str(evpn_file(tmp_path, 2)), "--mode", "host1=ovs,host2=kernel")
    try:
        report, _ = until_verified(ovsvx, prefix, REACH_S)
        assert report["ok"], report
        host1 = generated.generate(2, Control.EVPN).hosts[0]

        def frames_seen_in_ns1() -> list[str]:
            listener = Listener(prefix, host1.namespaces[0])
            try:
                inject(stranger_on_the_underlay(prefix), host1)
            finally:
                seen = listener.seen()
            return [line for line in seen if f"> {host1.namespaces[0].address}: ICMP echo request" in line]

        assert frames_seen_in_ns1() == [], "an unannounced VTEP's frames reached ns1"

        stranger_bgpd(prefix, None, ("0.0.0.0/0", "10.33.0.0/16", "192.168.77.0/24"))
        hosts = ("host1", "host2")
        taken = waits.until(lambda: all("192.168.77.0/24" in routes_of(prefix, h) for h in hosts), REACH_S * 3)
        assert taken, {h: routes_of(prefix, h) for h in hosts}
        shown = status(prefix)["hosts"]
        for host in hosts:
            table = routes_of(prefix, host)
            assert "default" not in table and "10.33.0.0/16 via" not in table, (host, table)
            refused = {r["prefix"]: r["why"] for r in shown[host]["bgp"]["refused"]}
            assert refused == {
                "0.0.0.0/0": "the default route is never an overlay route",
                "10.33.0.0/16": "10.33.0.0/16 lies inside the underlay 10.33.0.0/16",
            }, (host, refused)
        assert frames_seen_in_ns1(), "an announced VTEP's frames should reach ns1"
    finally:
        remove_stranger(prefix)


ONE_ROUTER_AWAY = """table ip one-router-away {
    chain out {
        type filter hook output priority 0; policy accept;
        tcp dport 179 ip ttl set 254
    }
}
"""


def test_bgp_from_beyond_one_hop_gets_no_session(ovsvx: Runner, fresh_prefix: str, tmp_path: Path) -> None:
    """GTSM: every BGP packet of the overlay leaves with TTL 255 and the reflector takes no other.  A
    stranger's bgpd one router away (its packets leave with TTL 254, as a router would pass them on) never
    gets a session, and the reflector's table counts its packets; on the link it gets one (no password
    here), so the test can tell.  Both hosts' sessions, FRR's and os-ken's, are up through it."""
    prefix = fresh_prefix
    ovsvx("deploy", "--prefix", prefix, "-t", str(evpn_file(tmp_path, 2)), "--mode", "host1=ovs,host2=kernel")
    try:
        report, _ = until_verified(ovsvx, prefix, REACH_S)
        assert report["ok"], report
        reflector = IPv4Address("10.33.30.2")
        rr_netns = lab.reflector_netns(record.require(Kind.LAB, prefix), reflector)
        before = gtsm.dropped(rr_netns, reflector)
        assert before is not None, "no GTSM table on the reflector"
        hosts = status(prefix)["hosts"]
        assert all(hosts[h]["bgp"]["sessions"][0]["state"] == "Established" for h in ("host1", "host2")), hosts

        def established(home: frr.FrrHome) -> bool:
            return [s.state for s in frr.sessions(home) or []] == ["Established"]

        lowered = netstack.run(stranger_on_the_underlay(prefix), ["nft", "-f", "-"], stdin=ONE_ROUTER_AWAY)
        assert lowered.returncode == 0, lowered.stderr
        stranger = stranger_bgpd(prefix, None)
        time.sleep(waits.scaled(3 * frrconf.CONNECT_RETRY_S + 1))  # three dials, each dropped by the reflector
        assert not established(stranger), frr.sessions(stranger)
        assert (gtsm.dropped(rr_netns, reflector) or 0) >= before + 3
        netstack.run(f"{prefix}stranger", ["nft", "delete", "table", "ip", "one-router-away"])
        assert waits.until(lambda: established(stranger), REACH_S, interval=0.5), frr.sessions(stranger)
    finally:
        remove_stranger(prefix)


@pytest.mark.parametrize("mode", ["kernel", "ovs"])
def test_a_stranger_cannot_use_a_host_as_a_relay_into_another_hosts_workloads(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path, mode: str
) -> None:
    """Security round 3, 1: a machine of the underlay routes host2's subnet via host1's VTEP and pings ns2
    as plain IP.  host1 must not forward it into the overlay (host2 would take it: it comes through
    host2's vxlan device, from a peer); its firewall counts the drop where the kernel routes it.  The
    stranger's own route to host1's subnet is refused the same way, and the peers still talk."""
    prefix = fresh_prefix
    topo = generated.generate(2, Control.EVPN)
    ovsvx("deploy", "--prefix", prefix, "-t", str(evpn_file(tmp_path, 2)), "--mode", mode)
    try:
        report, _ = until_verified(ovsvx, prefix, REACH_S)
        assert report["ok"], report
        host1, host2 = topo.hosts
        stranger = stranger_on_the_underlay(prefix)
        for host in (host1, host2):  # both subnets, through host1
            routed = netstack.run(stranger, ["ip", "route", "add", str(host.subnet), "via", str(host1.vtep)])
            assert routed.returncode == 0, routed.stderr
        wall = Firewall(Site(host1, prefix + host1.name, prefix), topo)
        before = wall.counters()
        assert before is not None
        for host in (host2, host1):
            ns = host.namespaces[0]
            ping = ["ping", "-c", "3", "-i", "0.2", "-W", "1", str(ns.address)]
            assert netstack.run(stranger, ping).returncode != 0, f"the stranger reached {ns.name} through host1"
        after = wall.counters()
        assert after is not None
        if mode == "kernel":  # host1's kernel routes them, so its forward chain drops (and counts) them
            assert after.forward_dropped - before.forward_dropped >= 6, (before, after)
        assert status(prefix)["hosts"]["host1"]["ok"]
        assert verify(ovsvx, prefix)["ok"]
    finally:
        remove_stranger(prefix)


def test_changed_tables_of_hosts_and_reflector_are_seen_and_mended(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path
) -> None:
    """Security round 3, 2, under EVPN (host1 ovs, host2 kernel): each host's table and the reflector's
    GTSM table rewritten in place to accept fail `status`; `deploy` loads each again."""
    prefix = fresh_prefix
    ovsvx("deploy", "--prefix", prefix, "-t", str(evpn_file(tmp_path, 2)), "--mode", "host1=ovs,host2=kernel")
    reflector = IPv4Address("10.33.30.2")
    rr_netns = lab.reflector_netns(record.require(Kind.LAB, prefix), reflector)
    assert status(prefix)["ok"]
    for host in ("host1", "host2"):
        open_up(prefix + host, "inet", "ovsvx")
    open_up(rr_netns, "inet", gtsm.table(reflector))
    shown = ovsvx("status", "--prefix", prefix, "--json", check=False)
    assert shown.returncode == 1
    hosts = json.loads(shown.stdout)["hosts"]
    reflectors = json.loads(shown.stdout)["reflectors"]
    assert not hosts["host1"]["ok"] and not hosts["host2"]["ok"] and not reflectors[rr_netns]["ok"], shown.stdout
    assert gtsm.dropped(rr_netns, reflector) is None  # an opened guard counts nothing of ours
    redeployed = ovsvx(
        "deploy", "--prefix", prefix, "-t", str(evpn_file(tmp_path, 2)), "--mode", "host1=ovs,host2=kernel"
    )
    assert redeployed.stdout.count("had been changed") == 3, redeployed.stdout
    assert status(prefix)["ok"]
    assert gtsm.dropped(rr_netns, reflector) is not None


NAMED_ROGUE_ROUTES = {  # security round 3, 3: each was taken before the policy's positive form
    "169.254.169.254/32": "overlaps 169.254.0.0/16, link-local",
    "127.0.0.0/8": "overlaps 127.0.0.0/8, loopback",
    "224.0.0.0/4": "overlaps 224.0.0.0/4, multicast",
    "8.8.8.8/32": "lies outside the overlay's range 192.168.0.0/16",
    "128.0.0.0/2": "overlaps 169.254.0.0/16",  # it covers the metadata service
    "192.168.77.0/25": "lies inside 192.168.77.0/24, a route ovsvx did not make",
    "192.168.76.0/23": "lies around 192.168.77.0/24, a route ovsvx did not make",
}
FLOOD = 50_000
FLOOD_COUNTED_S = 150.0  # both hosts have refused (and counted) the whole flood; ~30 s here, two cores


def test_a_rogue_speaker_with_the_password_gets_only_overlay_routes_and_a_flood_installs_nothing(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path
) -> None:
    """Security round 3, 3, on a mixed lab (host1 ovs, host2 kernel) whose hosts each have a route of
    their own inside the overlay's range (192.168.77.0/24): a rogue speaker that knows the password
    announces the metadata service, loopback, multicast, 8.8.8.8, 128.0.0.0/2, a route more specific than
    the host's own and one that covers it: both hosts refuse each, with why, and take 192.168.50.0/24
    (so the test can tell).  Then it floods 50,000 /32s: none is installed, the refusals are counted
    (the listing bounded by bgp.max_prefixes), and the overlay still verifies."""
    secret = tmp_path / "bgp.secret"
    secret.write_text("only-the-overlay-knows\n")
    secret.chmod(0o600)
    topo = generated.generate(2, Control.EVPN)
    topo = replace(topo, bgp=replace(topo.bgp, password_file=secret))  # type: ignore[type-var]
    path = tmp_path / "evpn-rogue.toml"
    path.write_text(writer.to_toml(topo))
    prefix = fresh_prefix
    hosts = ("host1", "host2")
    mode = ("--mode", "host1=ovs,host2=kernel")
    ovsvx("deploy", "--prefix", prefix, "-t", str(path), *mode)
    try:
        for host in hosts:  # a route of the host's own (a LAN, say), before the policy is made
            added = netstack.run(prefix + host, ["ip", "route", "add", "blackhole", "192.168.77.0/24"])
            assert added.returncode == 0, added.stderr
        ovsvx("deploy", "--prefix", prefix, "-t", str(path), *mode)
        report, _ = until_verified(ovsvx, prefix, REACH_S)
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        stranger_bgpd(prefix, "only-the-overlay-knows", (*NAMED_ROGUE_ROUTES, "192.168.50.0/24"))
        taken = waits.until(lambda: all("192.168.50.0/24" in routes_of(prefix, h) for h in hosts), REACH_S * 3)
        assert taken, {h: routes_of(prefix, h) for h in hosts}
        shown = status(prefix)["hosts"]
        for host in hosts:
            table = routes_of(prefix, host)
            for route in NAMED_ROGUE_ROUTES:
                assert f"{route} " not in table and f"{route.removesuffix('/32')} " not in table, (host, table)
            refused = {r["prefix"]: r["why"] for r in shown[host]["bgp"]["refused"]}
            for route, why in NAMED_ROGUE_ROUTES.items():
                assert why in refused.get(route, ""), (host, route, refused)

        first = IPv4Address("192.168.60.0")
        flood = tuple(f"{first + i}/32" for i in range(FLOOD))
        stranger_bgpd(prefix, "only-the-overlay-knows", flood)

        def counted() -> bool:
            seen = status(prefix)["hosts"]
            return all(len(seen[h]["bgp"]["refused"]) + seen[h]["bgp"]["unlisted"] >= FLOOD for h in hosts)

        # seldom: each status has zebra list 50,000 routes as JSON, which slows what it waits for
        assert waits.until(counted, FLOOD_COUNTED_S, interval=10), {
            h: (len(b["refused"]), b["unlisted"]) for h, b in ((h, status(prefix)["hosts"][h]["bgp"]) for h in hosts)
        }
        cap = topo.bgp.max_prefixes  # type: ignore[union-attr]
        for host in hosts:
            table = routes_of(prefix, host)
            assert "/32" not in table and "192.168.6" not in table, (host, table[:400])
            assert len(status(prefix)["hosts"][host]["bgp"]["refused"]) <= cap
        assert verify(ovsvx, prefix)["ok"]
    finally:
        remove_stranger(prefix)
