"""A real host's ovsvx as a long-running process: converge at start, then keep the host at its topology.

The agent does nothing that `ovsvx deploy --host H` does not: each pass *is*
that deploy, with its repair semantics (compare every piece with the machine,
fix only what differs, adopt what the on-disk record says ovsvx made before a
reboot).  What the agent adds is *when* a pass runs:

- at start, and again with a growing pause while it fails (a NIC not up yet,
  Open vSwitch still starting).  The first pass that succeeds tells systemd
  the host is ready; after START_TRIES failed passes in a row (or
  START_BOUND_S), the agent says it is up all the same, with why it is not
  converged in its status line, so a renamed NIC never keeps the boot from
  reaching multi-user;
- soon after anything of ovsvx's that may have drifted (`watches.py`): a
  netlink event of its devices, routes or addresses; a change in OVSDB's
  interfaces of its bridge (an ovs-vswitchd restarted ends the monitor, which
  counts too); a change to one of its nftables tables (`nft monitor`: a rule
  rewritten, `systemctl restart nftables`'s `flush ruleset`); the exit of a
  daemon it started (the controller, zebra, bgpd, charon), which the pass
  starts again;
- on SIGHUP (`systemctl reload`, through `ovsvx reload`): the stored topology
  is read again and, when it changes only what applies in place
  (`model/changes.py`: hosts or namespaces added), applied as a difference;
  otherwise refused, and the agent keeps the topology it has;
- every FULL_CHECK_S in any case, the backstop for what sends no event (a
  sysctl, a flow, a workload namespace's own stack).

Events come in bursts (our own pass makes some, a flapping NIC makes many): a
pass waits SETTLE_S after the first event and starts no sooner than EVENT_GAP_S
after the last one ended, so a burst of any length costs a pass a EVENT_GAP_S
or so; a pass that changes nothing makes no events, so the agent comes to rest.

Under systemd's watchdog (WatchdogSec=) a thread of the agent's says it is
alive only while the netlink watch lives and no pass has run longer than
PASS_BOUND_S: otherwise systemd kills the agent and starts it again.  An agent
that keeps crashing waits longer before each new start (`agentreport.py`).
After every pass it rewrites its report (last pass, reloads, crashes), which
`status` shows.  Under ovsvx's unit each daemon the pass starts is a service of
its own (`systemd.start_service`), so it outlives the agent.  SIGTERM ends the
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
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from ovsvx import waits
from ovsvx.deploy import agentreport, watches
from ovsvx.deploy.backends import backend
from ovsvx.deploy.deploy import Scope, daemon_pids, deploy, own_devices
from ovsvx.errors import ConflictError, OvsvxError, UsageError, unexpected
from ovsvx.host import nftables, preflight, record, systemd
from ovsvx.host.record import Kind
from ovsvx.model import changes, reader
from ovsvx.model.options import DeployOptions
from ovsvx.model.topology import Mode, Topology

FULL_CHECK_S = 30.0  # a pass this often even when nothing announced a change
SETTLE_S = 0.3  # after an event, for the rest of its burst
EVENT_GAP_S = 1.0  # at least this long between the end of a pass and the start of one an event asked for
RETRY_FIRST_S = 1.0  # after a failed pass, doubling up to RETRY_MAX_S
RETRY_MAX_S = 30.0
START_BOUND_S = 90.0  # the longest the agent keeps systemd (and the boot) waiting for a first converged pass
START_TRIES = 4  # or this many failed passes in a row (0, 1, 3, 7 s): a renamed NIC is not coming back by itself
PASS_BOUND_S = 300.0  # a pass running longer is stuck: the watchdog is no longer told the agent is alive
WATCHDOG_S = 30.0  # the unit's WatchdogSec (not scaled: a thread that only kicks); kicked three times as often


@dataclass
class Passes:
    """What an agent's passes did, as it goes: the metrics of the agent that keeps the host."""

    converged: int = 0
    failed: int = 0
    repairs: Counter[str] = field(default_factory=Counter)
    last_seconds: float = 0.0
    last_ok: bool = False
    last_at: float = 0.0  # when the last pass ended, wall clock
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ok: bool, seconds: float, changes: Sequence[str], repairing: bool) -> None:
        """One pass; its changes count as repairs once the host was ready (the first pass is the deploy)."""
        with self.lock:
            self.converged += ok
            self.failed += not ok
            self.last_seconds, self.last_ok, self.last_at = seconds, ok, time.time()
            if repairing:
                self.repairs.update(repair_kind(change) for change in changes)


def repair_kind(change: str) -> str:
    """What a change line made, removed or set right: "host1: + link vxlan1 ..." -> "link"."""
    found = re.match(r"^(?:\S+: )?[+~-] (\w+)", change)
    return found[1] if found else "other"


@dataclass(frozen=True)
class Pass:
    """What one pass did."""

    ok: bool
    changes: list[str]
    error: str = ""


@dataclass(frozen=True)
class Converged:
    """What a pass's work returns: the changes it made, what to warn about, the daemons it keeps running
    (what -> pid: their exit wakes the agent) and the devices that are ovsvx's (None: not known)."""

    changes: list[str]
    warnings: list[str]
    daemons: dict[str, int] = field(default_factory=dict)
    devices: frozenset[str] | None = None


class Work:
    """What an agent keeps: its pass (`__call__`) and what SIGHUP does (`reload`: a line saying what it
    took, or an OvsvxError saying why it took nothing)."""

    def __call__(self) -> Converged:
        raise NotImplementedError

    def reload(self) -> str:
        raise UsageError("this agent has nothing to read again")


def stored_topology(path: Path) -> Topology:
    """A topology the agent reads as root at every start and reload: refused while others may write it."""
    preflight.require_roots_alone(path, "-t")
    return reader.load(path)


def reloadable_topology(path: Path, host: str) -> Topology:
    """The stored topology a reload would take for `host`: it loads, names the host, and applies in place
    over what is deployed here (`changes.refusal`); else refused in one line, and nothing is taken."""
    new = stored_topology(path)
    new.host(host)
    deployed = record.load(Kind.HOST, "")
    if deployed is not None and (why := changes.refusal(deployed.topology, new)) is not None:
        raise ConflictError(
            f"{path}: {why}, which does not apply in place (only hosts and namespaces added do): nothing "
            f"reloaded; `ovsvx enable --rebuild -t FILE` rebuilds {host}"
        )
    return new


class HostWork(Work):
    """A host agent's pass, `ovsvx deploy --host HOST` with its repair semantics, of the topology it was
    started with or last reloaded from its file."""

    def __init__(self, host: str, topology: Topology, mode: Mode | None, topology_file: Path | None = None):
        self.host, self.topology, self.topology_file = host, topology, topology_file
        self.requested = {host: str(mode)} if mode else {}

    def __call__(self) -> Converged:
        scope = Scope.real(self.host)
        report = deploy(scope, self.topology, self.requested, DeployOptions())
        deployment = report.deployment
        return Converged(report.changes, report.warnings, daemon_pids(deployment), own_devices(deployment))

    def reload(self) -> str:
        """The stored topology again: taken when it is the same, or applies in place over what is deployed."""
        if self.topology_file is None:
            raise UsageError("the agent was started without -t: there is no file to read again")
        new = reloadable_topology(self.topology_file, self.host)
        same = new == self.topology
        self.topology = new
        return f"read {self.topology_file} again: " + ("no change" if same else "applying the difference")


class Agent:
    """Keeps this machine at what one piece of work converges it to, pass after pass."""

    def __init__(
        self,
        name: str,
        work: Work,
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
        self.reloading = threading.Event()  # SIGHUP: read the topology again
        self.ready = False  # converged once (later changes are repairs)
        self.told_ready = False  # systemd was told (converged, or START_BOUND_S passed)
        self.warned: set[str] = set()
        self.passes = Passes()  # what `--metrics` exports of the agent itself
        self.report = agentreport.starting(name, time.time())
        self.passing_since = 0.0  # monotonic start of the pass under way; 0 between passes
        self.own = watches.Own()
        self.netlink = watches.NetlinkWatch(self.wake, self.stopping, self.own)
        self.daemons = watches.DaemonWatch(self.wake, self.stopping, self.say)
        self.feeds = [watches.Feed("ovsvx-nft", lambda: list(nftables.MONITOR), nftables.touches_ours)]
        if watch_feed:  # the mode's change feed (ovs mode: OVSDB's interfaces of ovsvx's bridge)
            self.feeds.append(watches.Feed("ovsvx-feed", self._mode_feed, watches.names_a_device_of(self.own)))

    # --- one pass -------------------------------------------------------------------------------

    def converge(self) -> Pass:
        """One pass, counted in `passes` and in the agent's report."""
        started = time.monotonic()
        self.passing_since = started
        done = self._pass()
        took = time.monotonic() - started
        self.passing_since = 0.0
        self.passes.record(done.ok, took, done.changes, repairing=self.ready)
        self.report = agentreport.passed(self.report, done.ok, took, done.error, time.time())
        agentreport.save(self.report)
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
        self.own.names = report.devices
        self.daemons.watch(report.daemons)
        return Pass(True, report.changes)

    def reload(self) -> None:
        """Take the topology again (SIGHUP); the pass that follows applies it."""
        try:
            said, refused = self.work.reload(), ""
        except OvsvxError as err:
            said = refused = str(err)
        self.say(f"{self.name}: reload: {said}")
        self.report = replace(
            self.report, reloads=self.report.reloads + 1, reload_refused=refused, reloaded_after=self.report.passes
        )
        agentreport.save(self.report)

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> None:
        """Converge, then keep converging on events and on the clock, until SIGTERM (or stop())."""
        self.netlink.start()
        self.daemons.start()
        self._back_off()
        started, retry, failing, failures = time.monotonic(), RETRY_FIRST_S, "", 0
        while not self.stopping.is_set():
            self.wake.clear()
            if self.reloading.is_set():
                self.reloading.clear()
                self.reload()
            done = self.converge()
            if done.ok:
                if failing:
                    self.say(f"{self.name}: repaired after: {failing}")
                failing, retry, failures = "", RETRY_FIRST_S, 0
                self._on_converged(done)
                pause = waits.scaled(self.full_check_s)  # a slow machine's pass costs more: fewer of them
            else:
                if done.error != failing:
                    self.say(f"{self.name}: error: {done.error} (trying again)")
                failing, failures = done.error, failures + 1
                self._on_failed(done, time.monotonic() - started, failures)
                pause, retry = retry, min(retry * 2, RETRY_MAX_S)  # not scaled: a retry is not a deadline
            self._keep_feeds()
            self._rest(pause)
        self._stop_watches()
        agentreport.save(replace(self.report, stopped=True))

    def _rest(self, pause: float) -> None:
        """Until the next pass: `pause` seconds, or an event, then the rest of its burst and the gap a pass
        keeps from the one before."""
        ended = time.monotonic()
        if self.wake.wait(pause) and not self.stopping.is_set():
            self.stopping.wait(max(SETTLE_S, EVENT_GAP_S - (time.monotonic() - ended)))

    def _back_off(self) -> None:
        """In a crash loop, wait before the first pass, longer each time (`agentreport.restart_delay`)."""
        delay = agentreport.restart_delay(self.report.crashes)
        if delay:
            self.say(f"{self.name}: {self.report.crashes} crashes in a row: waiting {delay:g} s before starting")
            systemd.notify(STATUS=f"waiting {delay:g} s after {self.report.crashes} crashes in a row")
            self.stopping.wait(delay)
        agentreport.save(self.report)

    def _on_converged(self, done: Pass) -> None:
        if not self.ready:
            self.ready = True
            self.say(f"{self.name}: ready ({len(done.changes)} change(s) to get there)")
        elif done.changes:
            self.say(f"{self.name}: repaired: {len(done.changes)} change(s)")
        self.told_ready = True
        systemd.notify(READY="1", STATUS=f"{self.name} converged; {self.report.describe()}"[:400])

    def _on_failed(self, done: Pass, trying_for: float, failures: int) -> None:
        """Say why in the unit's status line; once START_TRIES passes in a row have failed, or START_BOUND_S
        have passed, without converging, tell systemd the agent is up all the same (it keeps trying): a
        boot waits for no host."""
        fields = {"STATUS": f"not converged: {done.error} (trying again)"[:400]}
        if not self.told_ready and (failures >= START_TRIES or trying_for >= waits.scaled(START_BOUND_S)):
            self.told_ready = True
            self.say(f"{self.name}: not converged after {trying_for:.0f} s: the boot goes on, the agent keeps trying")
            fields["READY"] = "1"
        systemd.notify(**fields)

    def healthy(self) -> str:
        """ "" while the agent works as it should; else why not (the watchdog then stays silent)."""
        if not self.netlink.alive():
            return "the netlink watch has ended"
        if self.passing_since and time.monotonic() - self.passing_since > waits.scaled(PASS_BOUND_S):
            return f"a pass has run for more than {waits.scaled(PASS_BOUND_S):.0f} s"
        return ""

    def watchdog(self, period: float) -> None:
        """Tell systemd's watchdog the agent lives, three times a `period`, while it is `healthy`; the first
        time it is not, say why and stop: systemd kills the agent and starts it again."""

        def kick() -> None:
            while not self.stopping.wait(period / 3):
                if why := self.healthy():
                    self.say(f"{self.name}: watchdog: {why}: no longer telling systemd the agent is alive")
                    return
                systemd.notify(WATCHDOG="1")

        threading.Thread(target=kick, name="ovsvx-watchdog", daemon=True).start()

    def stop(self, *_: object) -> None:
        self.stopping.set()
        self.wake.set()

    def install_signals(self) -> None:
        """SIGTERM and Ctrl-C stop the loop, SIGHUP reloads; with OVSVX_TEST_HOOKS=1, SIGUSR2 ends the
        netlink watch (`watches.TEST_HOOKS`).  Children forked by pyroute2 to reach a namespace inherit the
        handler, and are ended with SIGTERM: in them it must be the default, death."""
        me = os.getpid()

        def handler(signum: int, _: FrameType | None) -> None:
            if os.getpid() != me:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            if signum == signal.SIGHUP:
                self.reloading.set()
                self.wake.set()
            elif signum == signal.SIGUSR2:
                self.netlink.ending.set()
            else:
                self.say(f"{self.name}: {signal.Signals(signum).name}: stopping; the overlay keeps forwarding")
                self.stop()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, handler)
        if os.environ.get(watches.TEST_HOOKS) == "1":
            signal.signal(signal.SIGUSR2, handler)

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


def run(
    host: str,
    topology: Topology,
    mode: Mode | None,
    full_check_s: float = FULL_CHECK_S,
    exposing: Callable[[Passes], str | None] | None = None,
    topology_file: Path | None = None,
) -> None:
    """`ovsvx agent`: the agent in the foreground until SIGTERM or Ctrl-C.  `exposing`, given the agent's
    passes before they start, serves the metrics and returns a warning to log, or None.  SIGHUP reads
    `topology_file` again."""
    topology.host(host)  # an unknown host is a usage error before anything runs
    work = HostWork(host, topology, mode, topology_file)
    agent = Agent(host, work, full_check_s=check_period(full_check_s))
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
    if (period := systemd.watchdog_period()) is not None:
        agent.watchdog(period)
    agent.say(f"{agent.name}: agent started (pid {os.getpid()}); full check every {agent.full_check_s:g} s")
    agent.run()
