"""A real host's ovsvx as a long-running process: converge at start, then keep the host at its topology.

The agent does nothing that `ovsvx deploy --host H` does not: each pass *is*
that deploy, with its repair semantics (compare every piece with the machine,
fix only what differs, adopt what the on-disk record says ovsvx made before a
reboot).  What the agent adds is *when* a pass runs:

- at start, and again with a growing pause while it fails (a NIC not up yet,
  Open vSwitch still starting): the first pass that succeeds tells systemd the
  host is ready;
- soon after anything that may have drifted: a netlink notification from this
  machine's stack (a link, an address or a route added or removed: a deleted
  vxlan device, a NIC back with a new ifindex), a change in OVSDB's
  interfaces (a deleted port, an ovs-vswitchd restarted, which also ends the
  monitor), or a change to one of ovsvx's nftables tables (`nft monitor`: a
  rule rewritten, a `flush ruleset` such as `systemctl restart nftables`
  makes);
- every FULL_CHECK_S in any case, the backstop for what sends no event (a
  sysctl, a flow, a workload namespace's own stack).

Events come in bursts (our own pass makes some), so a pass waits SETTLE_S
after the first; a pass that changes nothing makes no events, so the agent
comes to rest.  The pass starts the daemons the host needs when they are not
running, as deploy does: the os-ken controller in ovs mode, FRR's zebra and
bgpd in kernel mode under EVPN; under ovsvx's unit, each is a service of
its own (`systemd.start_service`), so they outlive the agent.  SIGTERM ends the
agent after the pass under way and leaves them all: the flows stay in OVS
(`fail_mode=secure`), the devices and BGP sessions stay, so the overlay keeps
forwarding while the agent is away.

The same loop keeps a route reflector (`ovsvx reflector`, `reflector.py`):
its pass is the reflector's bgpd started, or left as it is.

Each change is one line on stdout (systemd's journal), and so is each
failure and each recovery from one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from ovsvx import waits
from ovsvx.deploy.backends import backend
from ovsvx.deploy.deploy import Scope, deploy
from ovsvx.errors import OvsvxError, UsageError, unexpected
from ovsvx.host import netstack, nftables, record, systemd
from ovsvx.host.record import Kind
from ovsvx.model.options import DeployOptions
from ovsvx.model.topology import Mode, Topology

FULL_CHECK_S = 30.0  # a pass this often even when nothing announced a change
SETTLE_S = 0.3  # after an event, for the rest of its burst
RETRY_FIRST_S = 1.0  # after a failed pass, doubling up to RETRY_MAX_S
RETRY_MAX_S = 30.0
FEED_RETRY_S = 1.0  # how soon the mode's change feed is started again after it ended (OVS restarting)


@dataclass
class Passes:
    """What an agent's passes did, as it goes: the metrics of the agent that keeps the host."""

    converged: int = 0
    failed: int = 0
    repairs: Counter[str] = field(default_factory=Counter)
    last_seconds: float = 0.0
    last_ok: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ok: bool, seconds: float, changes: Sequence[str], repairing: bool) -> None:
        """One pass; its changes count as repairs once the host was ready (the first pass is the deploy)."""
        with self.lock:
            self.converged += ok
            self.failed += not ok
            self.last_seconds, self.last_ok = seconds, ok
            if repairing:
                self.repairs.update(repair_kind(change) for change in changes)


def repair_kind(change: str) -> str:
    """What a change line made, removed or set right: "host1: + link vxlan1 ..." -> "link"."""
    found = re.match(r"^(?:\S+: )?[+~-] (\w+)", change)
    return found[1] if found else "other"


class Feed:
    """A command whose lines announce changes (OVSDB's monitor, `nft monitor`), kept running: each line
    that `wanted` takes wakes the agent, and so does the command's end (its daemon restarting), after which
    the next pass starts it again."""

    def __init__(self, name: str, argv: Callable[[], list[str] | None], wanted: Callable[[str], bool]):
        self.name = name
        self.argv = argv  # None: nothing to watch (yet)
        self.wanted = wanted
        self.process: subprocess.Popen[str] | None = None

    def keep(self, wake: threading.Event, stopping: threading.Event) -> None:
        """Start the command unless it runs; a command not installed leaves the full checks to notice."""
        if self.process is not None and self.process.poll() is None:
            return
        argv = self.argv()
        if not argv:
            return
        try:
            self.process = netstack.popen(
                None, argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
            )
        except OSError:
            return
        threading.Thread(target=self._read, args=(self.process, wake, stopping), name=self.name, daemon=True).start()

    def _read(self, process: subprocess.Popen[str], wake: threading.Event, stopping: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if self.wanted(line):
                wake.set()
        process.wait()
        if not stopping.wait(waits.scaled(FEED_RETRY_S)):
            wake.set()  # a pass starts the feed again, once its daemon is back

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()


@dataclass(frozen=True)
class Pass:
    """What one pass did."""

    ok: bool
    changes: list[str]
    error: str = ""


@dataclass(frozen=True)
class Converged:
    """What a pass's work returns: the changes it made and what to warn about."""

    changes: list[str]
    warnings: list[str]


def deploying(host: str, topology: Topology, mode: Mode | None) -> Callable[[], Converged]:
    """A host agent's pass: `ovsvx deploy --host HOST`, with its repair semantics."""
    requested = {host: str(mode)} if mode else {}

    def work() -> Converged:
        report = deploy(Scope.real(host), topology, requested, DeployOptions())
        return Converged(report.changes, report.warnings)

    return work


class Agent:
    """Keeps this machine at what one piece of work converges it to, pass after pass."""

    def __init__(
        self,
        name: str,
        work: Callable[[], Converged],
        say: Callable[[str], None] = lambda line: print(line, flush=True),
        full_check_s: float = FULL_CHECK_S,
        watch_feed: bool = True,
    ):
        self.name = name
        self.work = work
        self.full_check_s = full_check_s
        self.say = say
        self.wake = threading.Event()  # something may have drifted
        self.stopping = threading.Event()
        self.ready = False
        self.warned: set[str] = set()
        self.passes = Passes()  # what `--metrics` exports of the agent itself
        self.feeds = [Feed("ovsvx-nft", lambda: list(nftables.MONITOR), nftables.touches_ours)]
        if watch_feed:  # the mode's change feed (ovs mode: OVSDB's interfaces), every line a change
            self.feeds.append(Feed("ovsvx-feed", self._mode_feed, lambda _line: True))

    # --- one pass -------------------------------------------------------------------------------

    def converge(self) -> Pass:
        """One pass, counted in `passes`."""
        started = time.monotonic()
        done = self._pass()
        self.passes.record(done.ok, time.monotonic() - started, done.changes, repairing=self.ready)
        return done

    def _pass(self) -> Pass:
        """One pass; its changes and warnings said line by line, an error in one line."""
        try:
            report = self.work()
        except OvsvxError as err:
            return Pass(False, [], str(err))
        except Exception as err:  # noqa: BLE001 - the agent outlives an error nobody foresaw, and says it
            return Pass(False, [], str(unexpected(err)))
        for warning in report.warnings:
            if warning not in self.warned:  # said once, not on every pass
                self.say(f"{self.name}: warning: {warning}")
        self.warned = set(report.warnings)
        for line in report.changes:
            self.say(line)
        return Pass(True, report.changes)

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Converge, then keep converging on events and on the clock, until SIGTERM (or stop())."""
        watch_netlink(self.wake, self.stopping)
        retry = RETRY_FIRST_S
        failing = ""
        while not self.stopping.is_set():
            self.wake.clear()
            done = self.converge()
            if done.ok:
                if failing:
                    self.say(f"{self.name}: repaired after: {failing}")
                failing, retry = "", RETRY_FIRST_S
                self._on_converged(done)
                pause = self.full_check_s
            else:
                if done.error != failing:
                    self.say(f"{self.name}: error: {done.error} (trying again)")
                failing = done.error
                systemd.notify(STATUS=f"not converged: {done.error}"[:400])
                pause, retry = retry, min(retry * 2, RETRY_MAX_S)
            self._keep_feeds()
            if self.wake.wait(waits.scaled(pause)) and not self.stopping.is_set():
                self.stopping.wait(SETTLE_S)  # the rest of the burst
        self._stop_watches()

    def _on_converged(self, done: Pass) -> None:
        if not self.ready:
            self.ready = True
            self.say(f"{self.name}: ready ({len(done.changes)} change(s) to get there)")
            systemd.notify(READY="1", STATUS=f"{self.name} converged")
        elif done.changes:
            self.say(f"{self.name}: repaired: {len(done.changes)} change(s)")
            systemd.notify(STATUS=f"{self.name} converged, last repair {time.strftime('%H:%M:%S')}")

    def stop(self, *_: object) -> None:
        self.stopping.set()
        self.wake.set()

    def install_signals(self) -> None:
        """SIGTERM and Ctrl-C stop the loop.  Children forked by pyroute2 to reach a namespace inherit the
        handler, and are ended with SIGTERM: in them it must be the default, death."""
        me = os.getpid()

        def handler(signum: int, _: FrameType | None) -> None:
            if os.getpid() != me:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            self.say(f"{self.name}: {signal.Signals(signum).name}: stopping; the overlay keeps forwarding")
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # --- what wakes it ------------------------------------------------------------------------

    def _mode_feed(self) -> list[str] | None:
        """The mode's change feed of the host deployed here, if it has one."""
        deployment = record.load(Kind.HOST, "")
        if deployment is None or self.name not in deployment.modes:
            return None
        return backend(deployment.modes[self.name], deployment.sites()[0], deployment).change_feed()

    def _keep_feeds(self) -> None:
        for feed in self.feeds:
            feed.keep(self.wake, self.stopping)

    def _stop_watches(self) -> None:
        for feed in self.feeds:
            feed.stop()


def watch_netlink(wake: threading.Event, stopping: threading.Event) -> None:
    """A thread that sets `wake` on every link, address or route notification of this stack, until
    `stopping`.  pyroute2's socket is bound in the thread that reads it: its event loop belongs to one
    thread."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_LINK

    def watch() -> None:
        ipr = IPRoute()
        ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE)
        while not stopping.is_set():
            if ipr.get():
                wake.set()

    threading.Thread(target=watch, name="ovsvx-netlink", daemon=True).start()


def run(
    host: str,
    topology: Topology,
    mode: Mode | None,
    full_check_s: float = FULL_CHECK_S,
    exposing: Callable[[Passes], str | None] | None = None,
) -> None:
    """`ovsvx agent`: the agent in the foreground until SIGTERM or Ctrl-C.  `exposing`, given the agent's
    passes before they start, serves the metrics and returns a warning to log, or None."""
    topology.host(host)  # an unknown host is a usage error before anything runs
    agent = Agent(host, deploying(host, topology, mode), full_check_s=check_period(full_check_s))
    if exposing is not None and (warning := exposing(agent.passes)):
        agent.say(f"{host}: warning: {warning}")
    keep(agent)


def check_period(full_check_s: float) -> float:
    if not 0.5 <= full_check_s <= 3600:
        raise UsageError(f"--full-check {full_check_s:g} is not allowed: seconds from 0.5 to 3600")
    return full_check_s


def keep(agent: Agent) -> None:
    """Run `agent` in the foreground until SIGTERM or Ctrl-C."""
    systemd.notify_socket()  # kept from the processes the agent starts
    agent.install_signals()
    agent.say(f"{agent.name}: agent started (pid {os.getpid()}); full check every {agent.full_check_s:g} s")
    agent.run()
