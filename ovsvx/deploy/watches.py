"""What wakes the agent: this stack's netlink events, change feeds, and the exit of a daemon it started.

Each watch sets the agent's `wake` event when something of ovsvx's may have
drifted, and nothing else: the agent then waits for the rest of the burst
and runs a pass (`agent.py`).  What is ovsvx's is a set of device names the
agent refreshes after each pass (`Own`): a link of those names, an address on
one, a route through one or of ovsvx's protocol.  The rest of the machine
(a container's veth, a Wi-Fi address, the routes FRR installs from BGP) wakes
nobody; a route FRR installs on every host as a peer joins is exactly what
must not wake every host.  Before the first pass, or for a keeper that names
no devices (the route reflector), every event counts.

The netlink watch is a thread of the agent's whose death would leave only the
full check's clock: it survives what it can (ENOBUFS, when events come faster
than it reads, costs one pass instead of the events it lost), and the agent's
watchdog (`healthy`) stops telling systemd it is alive when it has ended.
"""

from __future__ import annotations

import errno
import os
import select
import subprocess
import threading
from collections.abc import Callable, Collection
from typing import Any

from ovsvx import waits
from ovsvx.host import netstack
from ovsvx.host.plan import RTPROT_OVSVX

FEED_RETRY_S = 1.0  # how soon the mode's change feed is started again after it ended (OVS restarting)
NETLINK_POLL_S = 1.0  # how often the netlink thread looks up from its socket (to stop, or for the test hook)
REOPEN_S = 1.0  # after the netlink socket failed, before it is opened again
#: Set in a unit's environment (`ovsvx enable` carries it), SIGUSR2 ends the agent's netlink thread, as a
#: bug would: what a test needs to see the watchdog restart the agent.  Nothing else reads it.
TEST_HOOKS = "OVSVX_TEST_HOOKS"
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR = 20, 21
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
#: Route protocols whose routes are the kernel's or a person's (`ip route`'s default, boot, static), the
#: ones a pass may have to put right; a routing daemon's (bgp 186, zebra 11) are not ovsvx's to mend.
KERNEL_AND_ADMIN = (2, 3, 4)


class Own:
    """The device names that are ovsvx's on this stack, as the agent last computed them (None: unknown,
    every event counts), shared by the watches."""

    def __init__(self) -> None:
        self.names: frozenset[str] | None = None

    def covers(self, name: str | None) -> bool:
        return self.names is None or (name is not None and name in self.names)


def wanted(message: dict[str, Any], links: dict[int, str], own: Own) -> bool:
    """Whether one rtnetlink message is about ovsvx's: a link of its names (kept in `links`, index ->
    name, as links come and go), an address on one, a route through one or of ovsvx's protocol.  A route
    of another daemon's protocol (FRR's BGP routes) is that daemon's business."""
    kind, attrs = message.get("header", {}).get("type"), dict(message.get("attrs", []))
    if kind in (RTM_NEWLINK, RTM_DELLINK):
        name = attrs.get("IFLA_IFNAME")
        if kind == RTM_NEWLINK and name:
            links[message["index"]] = name
        else:
            links.pop(message.get("index", -1), None)
        return own.covers(name)
    if kind in (RTM_NEWADDR, RTM_DELADDR):
        return own.covers(links.get(message.get("index", -1)))
    if kind in (RTM_NEWROUTE, RTM_DELROUTE):
        if message.get("proto") == RTPROT_OVSVX:
            return True
        return own.covers(links.get(attrs.get("RTA_OIF", -1))) and message.get("proto") in KERNEL_AND_ADMIN
    return False


class NetlinkWatch:
    """A thread that sets `wake` on every rtnetlink event of ovsvx's (`wanted`), until `stopping`."""

    def __init__(self, wake: threading.Event, stopping: threading.Event, own: Own):
        self.wake, self.stopping, self.own = wake, stopping, own
        self.ending = threading.Event()  # the test hook: end as a bug would
        self.thread = threading.Thread(target=self._watch, name="ovsvx-netlink", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def _watch(self) -> None:
        while not self.stopping.is_set():
            try:
                self._read()
            except OSError as err:  # the socket failed: a pass covers what was lost, then it is opened again
                if err.errno != errno.ENOBUFS:
                    self.stopping.wait(REOPEN_S)
                self.wake.set()

    def _read(self) -> None:
        """Events from one socket, bound in this thread (pyroute2's event loop belongs to one thread)."""
        from pyroute2 import IPRoute
        from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_LINK

        with IPRoute() as ipr:
            ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE)
            links = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            while not self.stopping.is_set():
                if self.ending.is_set():
                    raise SystemExit("the netlink thread was ended by the test hook")
                readable, _, _ = select.select([ipr.fileno()], [], [], NETLINK_POLL_S)
                if readable and any(wanted(message, links, self.own) for message in ipr.get()):
                    self.wake.set()


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


def names_a_device_of(own: Own) -> Callable[[str], bool]:
    """A feed's filter: a line that names one of ovsvx's devices as a word (`ovsdb-client monitor`'s
    rows name their interface), or any line while the devices are not known yet."""

    def naming(line: str) -> bool:
        return own.names is None or any(word.strip('"') in own.names for word in line.split())

    return naming


class DaemonWatch:
    """A thread that wakes the agent the moment a daemon it started (the controller, zebra, bgpd,
    charon) exits, through a pidfd of each: the pass that follows starts it again."""

    def __init__(self, wake: threading.Event, stopping: threading.Event, say: Callable[[str], None]):
        self.wake, self.stopping, self.say = wake, stopping, say
        self.lock = threading.Lock()
        self.pids: dict[int, str] = {}  # pid -> what it is
        self.thread = threading.Thread(target=self._watch, name="ovsvx-daemons", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def watch(self, daemons: dict[str, int]) -> None:
        """Watch these daemons (what -> pid) from now on, instead of those of the pass before."""
        with self.lock:
            self.pids = {pid: what for what, pid in daemons.items()}

    def _watch(self) -> None:
        fds: dict[int, int] = {}  # pid -> pidfd
        try:
            while not self.stopping.is_set():
                with self.lock:
                    wanted_pids = dict(self.pids)
                gone = _refresh(fds, wanted_pids)
                ready = select.select(list(fds.values()), [], [], NETLINK_POLL_S)[0] if fds else []
                if not fds:
                    self.stopping.wait(NETLINK_POLL_S)
                for pid in gone + [pid for pid, fd in fds.items() if fd in ready]:
                    if pid in fds:
                        os.close(fds.pop(pid))
                    with self.lock:
                        what = self.pids.pop(pid, None)
                    if what is not None:
                        self.say(f"{what} (pid {pid}) exited: starting it again")
                        self.wake.set()
        finally:
            for fd in fds.values():
                os.close(fd)


def _refresh(fds: dict[int, int], pids: Collection[int]) -> list[int]:
    """Open a pidfd for each pid newly watched, close those no longer watched; the pids already gone."""
    for pid in [pid for pid in fds if pid not in pids]:
        os.close(fds.pop(pid))
    gone = []
    for pid in pids:
        if pid not in fds:
            try:
                fds[pid] = os.pidfd_open(pid)
            except ProcessLookupError:
                gone.append(pid)
    return gone
