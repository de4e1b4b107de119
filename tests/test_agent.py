"""The agent's loop, its report and what wakes it, with a piece of work of the test's own: no root, no host.

Issue 34: reload by SIGHUP, a bounded start, a crash loop that backs off, events filtered to ovsvx's own
devices and coalesced.  The agent on a machine is a lab test (tests/lab/test_real_host.py) and a
two-machine test (tests/machines)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from ovsvx import waits
from ovsvx.deploy import agent, agentreport, watches
from ovsvx.deploy.agent import Agent, Converged, Work
from ovsvx.errors import ConflictError


class Counting(Work):
    """Counts its passes; a reload takes the next topology name, or refuses when told to."""

    def __init__(self, refuse: bool = False, fail: str = ""):
        self.passes = 0
        self.topology = "first"
        self.refuse, self.fail = refuse, fail

    def __call__(self) -> Converged:
        self.passes += 1
        if self.fail:
            raise ConflictError(self.fail)
        return Converged([], [], devices=frozenset({"br1", "vxlan1", "tap2", "ens160"}))

    def reload(self) -> str:
        if self.refuse:
            raise ConflictError("host2's subnet changed")
        self.topology = "second"
        return "read it again"


def started(work: Work, name: str, **kwargs: Any) -> tuple[Agent, list[str], threading.Thread]:
    lines: list[str] = []
    keeper = Agent(name, work, say=lines.append, watch_feed=False, **kwargs)
    keeper.feeds = []  # no `nft monitor` in a unit test
    thread = threading.Thread(target=keeper.run, daemon=True)
    thread.start()
    return keeper, lines, thread


def stopped(keeper: Agent, thread: threading.Thread) -> None:
    keeper.stop()
    thread.join(waits.scaled(10))
    assert not thread.is_alive()


def test_a_reload_takes_the_topology_and_the_next_pass_applies_it() -> None:
    work = Counting()
    keeper, lines, thread = started(work, "unit-reload")
    try:
        assert waits.until(lambda: keeper.report.passes == 1, 5)
        keeper.reloading.set()
        keeper.wake.set()
        assert waits.until(lambda: (agentreport.load("unit-reload") or keeper.report).passes == 2, 5)
        report = agentreport.load("unit-reload")
        assert report is not None and (report.reloads, report.reloaded_after, report.reload_refused) == (1, 1, "")
        assert work.topology == "second" and "unit-reload: reload: read it again" in lines
    finally:
        stopped(keeper, thread)
    after = agentreport.load("unit-reload")
    assert after is not None and after.stopped  # a clean stop: the next start is no crash


def test_a_refused_reload_is_said_and_recorded_and_the_agent_keeps_its_topology() -> None:
    work = Counting(refuse=True)
    keeper, lines, thread = started(work, "unit-refused")
    try:
        assert waits.until(lambda: keeper.report.passes == 1, 5)
        keeper.reloading.set()
        keeper.wake.set()
        assert waits.until(lambda: keeper.report.reloads == 1, 5)
        assert keeper.report.reload_refused == "host2's subnet changed" and work.topology == "first"
        assert "unit-refused: reload: host2's subnet changed" in lines
    finally:
        stopped(keeper, thread)


def test_a_burst_of_events_costs_a_pass_a_gap_not_a_pass_an_event() -> None:
    """A NIC flapping ten times a second: the passes are bounded by EVENT_GAP_S, whatever the events."""
    work = Counting()
    keeper, _, thread = started(work, "unit-burst")
    try:
        assert waits.until(lambda: work.passes == 1, 5)
        began = time.monotonic()
        while time.monotonic() - began < 3:
            keeper.wake.set()
            time.sleep(0.01)
        took = time.monotonic() - began
    finally:
        stopped(keeper, thread)
    events_passes = work.passes - 1
    assert 1 <= events_passes <= took / agent.EVENT_GAP_S + 2, events_passes


def test_an_agent_that_never_converges_says_ready_after_its_bound_and_keeps_trying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    told: list[dict[str, str]] = []
    monkeypatch.setattr(agent.systemd, "notify", lambda **fields: told.append(fields) or True)
    monkeypatch.setattr(agent, "START_BOUND_S", 0.5)
    monkeypatch.setattr(agent, "RETRY_FIRST_S", 0.1)
    work = Counting(fail="no NIC ens160 on this machine")
    keeper, lines, thread = started(work, "unit-bound")
    try:
        assert waits.until(lambda: any(f.get("READY") == "1" for f in told), 5), told
        assert waits.until(lambda: work.passes >= 3, 5)
    finally:
        stopped(keeper, thread)
    ready = next(f for f in told if f.get("READY") == "1")
    assert ready["STATUS"] == "not converged: no NIC ens160 on this machine (trying again)"
    assert any("the boot goes on, the agent keeps trying" in line for line in lines)
    assert not keeper.ready  # never converged: what status and enable report


def test_runs_that_keep_crashing_wait_longer_each_time_and_a_clean_stop_or_a_long_run_starts_afresh() -> None:
    name = "unit-crashes"
    agentreport.path(name).unlink(missing_ok=True)
    now = time.time()
    crashes = []
    for _ in range(6):  # each run "crashes": its report is left as it started, not stopped
        report = agentreport.starting(name, now)
        agentreport.save(report)
        crashes.append(report.crashes)
    assert crashes == [0, 1, 2, 3, 4, 5]
    assert [agentreport.restart_delay(c) for c in crashes] == [0, 0, 0, 2, 4, 8]
    assert agentreport.restart_delay(50) == agentreport.RESTART_DELAY_MAX_S
    later = now + agentreport.CRASH_WINDOW_S + 1  # the last run lived long enough: no loop
    assert agentreport.starting(name, later).crashes == 0
    agentreport.save(agentreport.AgentReport(name, os.getpid(), now, stopped=True))
    assert agentreport.starting(name, now + 1).crashes == 0


def message(kind: int, index: int = 0, **attrs: Any) -> dict[str, Any]:
    proto = attrs.pop("proto", None)
    return {"header": {"type": kind}, "index": index, "proto": proto, "attrs": list(attrs.items())}


def test_only_events_of_ovsvxs_devices_and_routes_wake_the_agent() -> None:
    own = watches.Own()
    links: dict[int, str] = {}
    assert watches.wanted(message(watches.RTM_NEWLINK, 7, IFLA_IFNAME="docker0"), links, own)  # unknown: all
    own.names = frozenset({"vxlan1", "br1", "ens160"})
    assert watches.wanted(message(watches.RTM_NEWLINK, 3, IFLA_IFNAME="vxlan1"), links, own)
    assert not watches.wanted(message(watches.RTM_NEWLINK, 7, IFLA_IFNAME="docker0"), links, own)
    assert watches.wanted(message(watches.RTM_DELADDR, 3), links, own)  # an address of vxlan1's
    assert not watches.wanted(message(watches.RTM_NEWADDR, 7), links, own)  # docker0's
    assert watches.wanted(message(watches.RTM_DELROUTE, proto=211, RTA_OIF=7), links, own)  # ovsvx's route
    assert watches.wanted(message(watches.RTM_NEWROUTE, proto=4, RTA_OIF=3), links, own)  # a person's, on vxlan1
    assert not watches.wanted(message(watches.RTM_NEWROUTE, proto=186, RTA_OIF=3), links, own)  # FRR's BGP route
    assert not watches.wanted(message(watches.RTM_NEWROUTE, proto=4, RTA_OIF=7), links, own)
    assert watches.wanted(message(watches.RTM_DELLINK, 3, IFLA_IFNAME="vxlan1"), links, own)
    assert 3 not in links  # a deleted link's index no longer names it


def test_a_feed_line_wakes_the_agent_only_when_it_names_a_device_of_ovsvxs() -> None:
    own = watches.Own()
    naming = watches.names_a_device_of(own)
    assert naming("anything at all")
    own.names = frozenset({"tap2", "vxlan1"})
    assert naming('9a0e...  insert "tap2"    1')
    assert not naming("9a0e...  insert veth-docker 7")


def test_a_daemon_that_exits_wakes_the_agent_at_once() -> None:
    wake, stopping = threading.Event(), threading.Event()
    lines: list[str] = []
    watch = watches.DaemonWatch(wake, stopping, lines.append)
    watch.start()
    child = os.fork()
    if child == 0:
        signal.pause()
        os._exit(0)
    try:
        watch.watch({"host1's controller": child})
        time.sleep(0.2)
        assert not wake.is_set()
        os.kill(child, signal.SIGKILL)
        assert wake.wait(5)
        assert lines == [f"host1's controller (pid {child}) exited: starting it again"]
    finally:
        stopping.set()
        os.waitpid(child, 0)
