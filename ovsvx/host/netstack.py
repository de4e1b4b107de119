"""Handles to a network stack: this machine's own, or a named network namespace.

The code that deploys a host on a real machine is the code that deploys it
into a lab namespace; only the handle differs.  A handle is `None` for the
machine's own stack or a namespace name.  Netlink goes through pyroute2
(`IPRoute` or `NetNS`); what netlink does not cover (sysctls, running a
program) is done from a thread or child that has entered the namespace with
setns(2).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar, cast

from pyroute2 import IPRoute, NetNS, netns

from ovsvx import waits
from ovsvx.errors import ApplyError, NotDeployedError, PreconditionError, UsageError
from ovsvx.model.traffic import Traffic

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
T = TypeVar("T")

#: The C library, given to pyroute2 too: left to find it, pyroute2 runs `ldconfig -p` in every process that
#: enters a namespace (ctypes.util.find_library), two programs a pass for nothing.
_libc = ctypes.CDLL(None, use_errno=True)


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def list_netns() -> list[str]:
    return sorted(netns.listnetns())


@contextmanager
def _forking() -> Iterator[None]:
    """Hold Ctrl-C while pyroute2 forks to reach a namespace (NetNS, netns.create/remove).

    The interpreter runs logging's fork hooks around every fork; a SIGINT that
    lands in the one after it is swallowed there ("Exception ignored") and
    leaves logging's lock held, so every later fork in the process hangs: the
    fault matrix's interrupted deploy did, with all its threads waiting.  Held
    this way, the signal arrives once the fork is done and interrupts as usual.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def create_netns(name: str) -> None:
    with _forking():
        netns.create(name, libc=_libc)


def remove_netns(name: str) -> None:
    """Remove a named namespace; one that is already gone is fine."""
    if netns_exists(name):
        with _forking():
            netns.remove(name, libc=_libc)


def enter(name: str | None) -> None:
    """Move the calling thread (or freshly forked child) into namespace `name`."""
    if name is None:
        return
    try:
        fd = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotDeployedError(f"network namespace {name!r} does not exist") from None
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise ApplyError(f"cannot enter network namespace {name!r}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _enter_scratch() -> None:
    if _libc.unshare(CLONE_NEWNET) != 0:
        raise ApplyError(f"cannot make a scratch network namespace: {os.strerror(ctypes.get_errno())}")


def call_in(name: str | None, fn: Callable[..., T], *args: Any, scratch: bool = False) -> T:
    """Run fn(*args) with the network namespace `name` as the current one (with `scratch`, a new,
    nameless one that vanishes with the call: a place to try things that leaves nothing behind).

    setns(CLONE_NEWNET) and unshare only affect the calling thread, so a
    short-lived thread enters the namespace and does the work; /proc/sys/net
    then resolves to that namespace's settings.
    """
    if name is None and not scratch:
        return fn(*args)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            _enter_scratch() if scratch else enter(name)
            box["value"] = fn(*args)
        except BaseException as err:  # handed back to the caller's thread
            box["error"] = err

    thread = threading.Thread(target=run, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return cast(T, box["value"])


@contextmanager
def stack(name: str | None) -> Iterator[IPRoute | NetNS]:
    """A pyroute2 handle on the stack of namespace `name` (None: this machine's)."""
    if name is not None and not netns_exists(name):
        raise NotDeployedError(f"network namespace {name!r} does not exist")
    if name is None:
        handle: IPRoute | NetNS = IPRoute()
    else:
        with _forking():
            handle = NetNS(name, flags=0, libc=_libc)
    try:
        yield handle
    finally:
        handle.close()


def link_traffic(name: str | None, dev: str) -> Traffic | None:
    """What `dev` in namespace `name` has sent and received (its counters), or None if it is absent."""
    with stack(name) as ipr:
        found = ipr.link_lookup(ifname=dev)
        if not found:
            return None
        stats = ipr.get_links(found[0])[0].get_attr("IFLA_STATS64") or {}
    return Traffic.from_counters(stats)


NUD_PERMANENT = 0x80  # configured, not learned
NUD_STATES = {
    0x01: "INCOMPLETE",
    0x02: "REACHABLE",
    0x04: "STALE",
    0x08: "DELAY",
    0x10: "PROBE",
    0x20: "FAILED",
    0x40: "NOARP",
    0x80: "PERMANENT",
}
#: A neighbour that answered: learned from its reply and not since given up on (permanent ones are not learned).
ANSWERED_STATES = frozenset({"REACHABLE", "STALE", "DELAY", "PROBE"})


def answered_neighbours(name: str | None, dev: str) -> set[str]:
    """The addresses on `dev` whose ARP the kernel last saw answered (a neighbour entry it learned and has
    not failed): a neighbour that does not answer, or has not been asked lately, has none."""
    with stack(name) as ipr:
        index = ipr.link_lookup(ifname=dev)
        entries = ipr.get_neighbours(family=socket.AF_INET, ifindex=index[0]) if index else []
        return {str(e.get_attr("NDA_DST")) for e in entries if NUD_STATES.get(e["state"]) in ANSWERED_STATES}


RT_TABLE_MAIN = 254  # the main routing table, where ovsvx's routes live


def local_addresses(name: str | None) -> set[IPv4Address]:
    """The IPv4 addresses the stack of namespace `name` holds, on any link."""
    with stack(name) as ipr:
        return {IPv4Address(a.get("IFA_ADDRESS")) for a in ipr.get_addr(family=socket.AF_INET)}


# --- sysctls -------------------------------------------------------------------


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(name: str | None, key: str) -> str:
    return call_in(name, lambda: _sysctl_path(key).read_text().strip())


def write_sysctl(name: str | None, key: str, value: str) -> None:
    def write() -> None:
        try:
            _sysctl_path(key).write_text(f"{value}\n")
        except OSError as err:
            raise ApplyError(f"sysctl {key}={value}: {err.strerror}") from None

    call_in(name, write)


# --- sockets -------------------------------------------------------------------


TCP_LISTEN = "0A"  # /proc/net/tcp's state code


def tcp_states(name: str | None, port: int) -> list[str]:
    """The states of the TCP sockets bound locally to `port` in namespace `name` (/proc/net/tcp codes).

    /proc/net is the process's view (via /proc/self); the thread that entered the namespace must read
    /proc/thread-self/net to see that namespace's sockets.
    """
    table = call_in(name, lambda: Path("/proc/thread-self/net/tcp").read_text())
    needle = f":{port:04X}"
    return [fields[3] for fields in (line.split() for line in table.splitlines()[1:]) if fields[1].endswith(needle)]


UNIX_LISTENING, UNIX_CONNECTED = "listening", "connected"


def unix_states(name: str | None, path: Path) -> list[str]:
    """What the Unix sockets of namespace `name` bound to `path` are doing: the listening one, and one
    connected per accepted connection (which carries its listener's path).  From /proc/net/unix,
    read without connecting (a probe's connection would look like a switch to the controller)."""
    table = call_in(name, lambda: Path("/proc/thread-self/net/unix").read_text())
    rows = [line.split() for line in table.splitlines()[1:]]
    ours = [fields for fields in rows if len(fields) == 8 and fields[7] == str(path)]
    # Flags: __SO_ACCEPTCON (0x10000) on a listening socket; St: 03, SS_CONNECTED, on an accepted one
    return [UNIX_LISTENING if int(f[3], 16) & 0x10000 else UNIX_CONNECTED if f[5] == "03" else f[5] for f in ours]


def wait_listening(name: str | None, port: int, seconds: float) -> None:
    """Wait until something listens on TCP `port` in namespace `name` (a server takes a moment to bind)."""
    if not waits.until(lambda: TCP_LISTEN in tcp_states(name, port), seconds):
        raise ApplyError(
            f"nothing listens on TCP port {port} in {name or 'this namespace'} after {waits.scaled(seconds):g} s"
        )


# --- programs ----------------------------------------------------------------
#
# A program for a namespace is started by a thread that has entered it (`call_in`): the child inherits
# the namespace at fork.  Never with preexec_fn, which Python forbids in a process with threads: deploy
# runs hosts in threads, and two of them forking with preexec_fn at once deadlocked in the fork hooks
# (a Ctrl-C'd deploy hung with both threads in subprocess's fork).


COMMAND_TIMEOUT_S = 30.0  # any external command that is not given its own limit


def run(
    name: str | None,
    argv: Sequence[str],
    timeout: float = COMMAND_TIMEOUT_S,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a program inside namespace `name`, feed it `stdin`, and capture its output.

    Every command has a time limit: `timeout` is for a normal machine, and a
    slow one stretches it (`waits.scaled`).  A command that overruns it is an
    ApplyError, one that is not installed a PreconditionError, both naming it.
    """
    limit = waits.scaled(timeout)

    def spawn() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=limit, env=env, check=False
        )

    try:
        return call_in(name, spawn)
    except subprocess.TimeoutExpired:
        raise ApplyError(f"{' '.join(argv[:3])} did not finish within {limit:.0f} s") from None
    except FileNotFoundError:
        raise PreconditionError(f"{argv[0]} is not installed (scripts/setup installs what ovsvx uses)") from None


def popen(
    name: str | None, argv: Sequence[str], env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.Popen[str]:
    """Start a program inside namespace `name`; the caller owns the process."""
    return call_in(name, lambda: subprocess.Popen(list(argv), text=True, env=env, **kwargs))


def exec_in(name: str | None, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Replace this process with `argv` running inside namespace `name` (for `ovsvx exec`)."""
    enter(name)
    try:
        if env is None:
            os.execvp(argv[0], list(argv))
        os.execvpe(argv[0], list(argv), env)
    except FileNotFoundError:
        raise UsageError(f"{argv[0]}: command not found") from None
