"""ovsvx as a systemd service: the agent's unit (pure text), and the few calls that manage it.

`ovsvx enable --host H` writes the unit `ovsvx@H.service` for this
installation's interpreter and starts it; the agent inside it tells systemd
when the host is ready through the sd_notify protocol (a datagram to
$NOTIFY_SOCKET, as libsystemd's `sd_notify` sends it: a few lines, so no
library is pulled in for it).

**Hardening, and its one limit.**  The unit bounds the agent's capabilities to
what ovsvx uses (netlink, namespaces, the openvswitch module, FRR's
privilege drop), forbids new privileges, and filters system calls and socket
families.  It does *not* use the options that give a service a mount
namespace of its own (ProtectSystem, ProtectHome, PrivateTmp,
ProtectKernelTunables, ...): a workload namespace is a bind mount under
/run/netns, and made inside a private mount namespace it would be invisible
to everyone else on the machine (`ip netns exec ns1` would not find it), and
deploy must write the sysctls it sets.  docs/guide/real-hosts.md gives the unit's
`systemd-analyze security` score.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ovsvx.errors import ApplyError, PreconditionError, UsageError
from ovsvx.host import netstack
from ovsvx.model.topology import Mode

UNIT_DIR = Path(os.environ.get("OVSVX_UNIT_DIR", "/etc/systemd/system"))

#: What ovsvx does as root, and the capability each needs: netlink, nftables, ethtool and sysctls
#: (NET_ADMIN); packet sockets and ping (NET_RAW); entering and mounting network namespaces (SYS_ADMIN);
#: the openvswitch module (SYS_MODULE); files of other users, FRR's (DAC_OVERRIDE, CHOWN, FOWNER); FRR's
#: daemons dropping to the frr user (SETUID, SETGID) and binding BGP's port (NET_BIND_SERVICE); stopping
#: the daemons it started (KILL).
CAPABILITIES = (
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_DAC_OVERRIDE",
    "CAP_CHOWN",
    "CAP_FOWNER",
    "CAP_SETUID",
    "CAP_SETGID",
    "CAP_NET_BIND_SERVICE",
    "CAP_KILL",
)


Env = tuple[tuple[str, str], ...]


def unit_name(host: str) -> str:
    return f"ovsvx@{host}.service"


def served_metrics(unit: str) -> str | None:
    """Where the agent of `unit` serves its metrics (`--metrics` on its command line), from its unit
    file; None when it serves none or there is no unit."""
    try:
        text = unit_path(unit).read_text()
    except OSError:
        return None
    found = re.search(r"^ExecStart=.* --metrics (\S+)", text, re.MULTILINE)
    return found[1] if found else None


def reflector_unit_name(address: str) -> str:
    return f"ovsvx-reflector@{address}.service"


def unit_path(unit: str) -> Path:
    """A unit file of the instance's own name: systemd takes it over any template of that name."""
    return UNIT_DIR / unit


_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def quoted(word: str, command: bool = True) -> str:
    """`word` as one argument of a unit's command line (`command`) or one Environment= assignment, whatever
    it holds: in double quotes, with backslash and quote escaped and `%` doubled, so that systemd expands no
    specifier in it; on a command line `$` is doubled too (Environment= expands no variable).  A control
    character has no place in a path or setting: refused in one line."""
    if not word.isprintable():
        raise UsageError(f"{word!r} is not allowed in a systemd unit: printable characters only")
    if _PLAIN_WORD.fullmatch(word):
        return word  # nothing systemd reads specially: written as it is, as a person would
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped.replace("$", "$$") if command else escaped}"'


@dataclass(frozen=True)
class UnitTiming:
    """The unit's clocks, in seconds, as `enable` scales them for this machine: the longest start (the
    agent says it is ready by then, converged or not: a boot waits for no host) and the watchdog's period
    (0: none)."""

    start_s: float = 180.0
    watchdog_s: float = 0.0
    restart_s: float = 1.0


@dataclass(frozen=True)
class AgentUnit:
    """What one unit of ovsvx's says: which ovsvx command it keeps running, and after what."""

    unit: str  # ovsvx@host1.service, ovsvx-reflector@10.33.30.2.service
    enabled_as: str  # what `ovsvx enable` was told: --host host1, --reflector 10.33.30.2
    command: tuple[str, ...]  # ovsvx's arguments: agent --host host1 -t /etc/ovsvx/host1.toml
    description: str
    python: str  # this installation's interpreter, so the unit runs the ovsvx that wrote it
    environment: Env = ()  # ovsvx's settings the enabling command ran with
    after: tuple[str, ...] = ()  # the system's services it is ordered after (its mode's: Open vSwitch)
    reload: tuple[str, ...] = ()  # ovsvx's arguments that make the agent read its topology again, and wait
    timing: UnitTiming = field(default_factory=lambda: UnitTiming())

    @classmethod
    def host(
        cls,
        host: str,
        topology_file: Path,
        mode: Mode | None,
        after: tuple[str, ...],
        python: str,
        environment: Env = (),
        metrics: tuple[str | None, bool] = (None, False),
    ) -> AgentUnit:
        """A host's agent; without `mode`, the host's mode in the topology (else the default).  `after`: the
        system's services the host's mode needs first (ovs mode: Open vSwitch).  `metrics`: where it serves them,
        and whether with the probes."""
        command = ("agent", "--host", host, "-t", str(topology_file)) + (("--mode", str(mode)) if mode else ())
        address, probes = metrics
        command += (("--metrics", address) if address else ()) + (("--probes",) if probes else ())
        description = f"ovsvx agent for {host}: keeps this machine at its VXLAN overlay"
        reload = ("reload", "--host", host)
        return cls(unit_name(host), f"--host {host}", command, description, python, environment, after, reload)

    @classmethod
    def reflector(cls, address: str, topology_file: Path, python: str, environment: Env = ()) -> AgentUnit:
        """A route reflector's keeper (`ovsvx reflector`): bgpd for the overlay's hosts at `address`."""
        command = ("reflector", "--address", address, "-t", str(topology_file))
        description = f"ovsvx BGP EVPN route reflector at {address}"
        reload = ("reload", "--reflector", address)
        name = reflector_unit_name(address)
        return cls(name, f"--reflector {address}", command, description, python, environment, reload=reload)

    def argv(self, command: tuple[str, ...] | None = None) -> list[str]:
        """A command line of ovsvx's (the agent's, by default): isolated (-I), so nothing from a working
        directory or PYTHON* variable is imported as root."""
        return [self.python, "-I", "-m", "ovsvx", *(self.command if command is None else command)]

    def text(self) -> str:
        """The unit file."""
        after = " ".join(("network-online.target", *self.after))
        return "\n".join(
            [
                f"# Written by `ovsvx enable {self.enabled_as}`; `ovsvx disable {self.enabled_as}` removes it.",
                "[Unit]",
                f"Description={self.description}",
                f"Wants={after}",
                f"After={after}",
                "StartLimitIntervalSec=0",
                "",
                "[Service]",
                "Type=notify",
                "NotifyAccess=main",
                "ExecStart=" + " ".join(map(quoted, self.argv())),
                *(["ExecReload=" + " ".join(map(quoted, self.argv(self.reload)))] if self.reload else []),
                "WorkingDirectory=/",
                "Restart=always",
                f"RestartSec={self.timing.restart_s:g}",
                f"TimeoutStartSec={self.timing.start_s:.0f}",
                *([f"WatchdogSec={self.timing.watchdog_s:.0f}"] if self.timing.watchdog_s else []),
                "KillMode=mixed",
                "Environment=PYTHONUNBUFFERED=1",
                f"Environment={DAEMON_UNITS}=1",
                *(f"Environment={quoted(f'{key}={value}', command=False)}" for key, value in self.environment),
                "UMask=0077",
                "NoNewPrivileges=yes",
                "CapabilityBoundingSet=" + " ".join(CAPABILITIES),
                "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET",
                "RestrictNamespaces=net",
                "RestrictRealtime=yes",
                "RestrictSUIDSGID=yes",
                "LockPersonality=yes",
                "ProtectClock=yes",
                "ProtectHostname=yes",
                "SystemCallArchitectures=native",
                "SystemCallFilter=~@clock @cpu-emulation @debug @obsolete @raw-io @reboot @swap",
                "",
                "[Install]",
                "WantedBy=multi-user.target",
                "",
            ]
        )


#: The settings `enable` carries from its own environment into the unit, so the agent waits as long, and
#: keeps its state where, the command that enabled it does (and a test's hooks: `watches.TEST_HOOKS`).
CARRIED = ("OVSVX_WAIT_SCALE", "OVSVX_STATE_DIR", "OVSVX_HOST_RECORD_DIR", "OVSVX_TEST_HOOKS")


def carried_environment() -> Env:
    return tuple((key, os.environ[key]) for key in CARRIED if os.environ.get(key))


@cache
def notify_socket() -> str | None:
    """$NOTIFY_SOCKET, taken out of the environment the first time it is asked for, as `sd_notify`'s
    unset_environment does: it is the unit's main process's alone (NotifyAccess=main), and a child that
    inherits it (OVS's tools notify when they start) is refused by systemd with a warning in the journal."""
    return os.environ.pop("NOTIFY_SOCKET", None)


@cache
def watchdog_period() -> float | None:
    """The unit's WatchdogSec in seconds ($WATCHDOG_USEC, meant for this process: $WATCHDOG_PID), taken
    out of the environment as `sd_watchdog_enabled` does; None when systemd watches nothing."""
    usec, pid = os.environ.pop("WATCHDOG_USEC", None), os.environ.pop("WATCHDOG_PID", None)
    if not usec or not usec.isdigit() or (pid is not None and pid != str(os.getpid())):
        return None
    return int(usec) / 1e6


def notify(**fields: str) -> bool:
    """Tell systemd about the service (READY="1", STATUS="..."); False when not run by systemd."""
    address = notify_socket()
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message)
    return True


# --- managing units ------------------------------------------------------------------------------


def require_systemd() -> None:
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        raise PreconditionError("this machine does not run systemd: run `ovsvx agent --host HOST` under your own init")


def systemctl(*args: str, check: bool = True) -> str:
    done = netstack.run(None, ["systemctl", *args], timeout=60)
    if check and done.returncode != 0:
        raise ApplyError(f"systemctl {' '.join(args)}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


@dataclass(frozen=True)
class UnitState:
    active: str  # active, activating, failed, inactive, ...
    sub: str  # running, start, auto-restart, dead, ...
    enabled: str  # enabled, disabled, "" when there is no such unit
    status: str  # what the agent last told systemd (STATUS=)
    pid: int
    invocation: str = ""  # systemd's id of this run of the unit: a restart gets a new one

    def describe(self) -> str:
        said = f"; {self.status}" if self.status else ""
        return f"{self.active} ({self.sub}), {self.enabled or 'not installed'}, pid {self.pid or '-'}{said}"


def unit_state(unit: str) -> UnitState | None:
    """One of ovsvx's installed units as systemd sees it; None where there is no systemd or no such unit."""
    if shutil.which("systemctl") is None or not unit_path(unit).exists():
        return None
    fields = _show(unit, "ActiveState", "SubState", "UnitFileState", "StatusText", "MainPID", "InvocationID")
    return UnitState(
        fields.get("ActiveState", ""),
        fields.get("SubState", ""),
        fields.get("UnitFileState", ""),
        fields.get("StatusText", ""),
        int(fields.get("MainPID", "0") or 0),
        fields.get("InvocationID", ""),
    )


def _show(unit: str, *properties: str) -> dict[str, str]:
    shown = systemctl("show", unit, "-p", ",".join(properties), check=False)
    return dict(line.partition("=")[::2] for line in shown.splitlines())


# --- the daemons of a real host, each a unit of its own -------------------------------------------


#: What ovsvx's units set, so that the daemons their ovsvx starts on this machine are services of their own.
DAEMON_UNITS = "OVSVX_DAEMON_UNITS"


def daemons_are_units(netns: str | None) -> bool:
    """True in ovsvx's units (the agent, the reflector), for a daemon of this machine's own stack: not
    one in a lab host's namespace.  (Said by the unit, not sensed: comparing this stack with init's
    would need CAP_SYS_PTRACE, which the units do not have.)"""
    return netns is None and os.environ.get(DAEMON_UNITS) == "1"


def start_service(name: str, argv: list[str], description: str, env: Env = (), log: Path | None = None) -> int:
    """Run `argv` in the foreground as the transient service `name` (systemd-run) and return its pid.

    A daemon ovsvx starts on a real host (the controller, zebra, bgpd) is so
    outside the agent's unit: restarting, killing or stopping the agent leaves
    it running, and the overlay forwarding; `systemctl status NAME` and the
    journal show it.  It goes with the machine's next boot, when the agent
    starts it again.  A unit of that name left over (its pid file lost) is
    stopped first: it can only be an earlier start of the same daemon."""
    systemctl("stop", name, check=False)
    systemctl("reset-failed", name, check=False)
    run = ["systemd-run", "--quiet", "--collect", f"--unit={name}", f"--description={description}"]
    run += ["--property=Type=exec", "--working-directory=/", *(f"--setenv={key}={value}" for key, value in env)]
    run += [f"--property=StandardOutput=append:{log}"] if log is not None else []
    done = netstack.run(None, [*run, *argv], timeout=60)
    if done.returncode != 0:
        raise ApplyError(f"systemd-run {name}: {(done.stderr or done.stdout).strip()}")
    pid = int(_show(name, "MainPID").get("MainPID", "0") or 0)
    if pid == 0:
        raise ApplyError(f"{name} did not start: see journalctl -u {name}")
    return pid
