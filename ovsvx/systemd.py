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
deploy must write the sysctls it sets.  The README gives the unit's
`systemd-analyze security` score.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from ovsvx import netstack
from ovsvx.errors import ApplyError, PreconditionError
from ovsvx.topology import Mode

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


def unit_name(host: str) -> str:
    return f"ovsvx@{host}.service"


def unit_path(host: str) -> Path:
    """A unit file of the instance's own name: systemd takes it over any template of that name."""
    return UNIT_DIR / unit_name(host)


@dataclass(frozen=True)
class AgentUnit:
    """What one host's unit says: who runs, from which topology file, in which mode."""

    host: str
    topology_file: Path
    mode: Mode | None  # None: the host's mode in the topology (else the default)
    python: str  # this installation's interpreter, so the unit runs the ovsvx that wrote it
    environment: tuple[tuple[str, str], ...] = ()  # ovsvx's settings the enabling command ran with

    def argv(self) -> list[str]:
        """The agent's command line: isolated (-I), so nothing from a working directory or PYTHON*
        variable is imported as root."""
        argv = [self.python, "-I", "-m", "ovsvx", "agent", "--host", self.host, "-t", str(self.topology_file)]
        return argv + (["--mode", str(self.mode)] if self.mode else [])

    def text(self, ovs: bool) -> str:
        """The unit file.  `ovs`: the host runs in ovs mode, so the system's Open vSwitch comes first."""
        after = "network-online.target" + (" openvswitch-switch.service" if ovs else "")
        return "\n".join(
            [
                f"# Written by `ovsvx enable --host {self.host}`; `ovsvx disable --host {self.host}` removes it.",
                "[Unit]",
                f"Description=ovsvx agent for {self.host}: keeps this machine at its VXLAN overlay",
                f"Wants={after}",
                f"After={after}",
                "StartLimitIntervalSec=0",
                "",
                "[Service]",
                "Type=notify",
                "NotifyAccess=main",
                "ExecStart=" + " ".join(self.argv()),
                "WorkingDirectory=/",
                "Restart=always",
                "RestartSec=1",
                "TimeoutStartSec=infinity",
                "KillMode=mixed",
                "Environment=PYTHONUNBUFFERED=1",
                *(f"Environment={key}={value}" for key, value in self.environment),
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
#: keeps its state where, the command that enabled it does.
CARRIED = ("OVSVX_WAIT_SCALE", "OVSVX_STATE_DIR", "OVSVX_HOST_RECORD_DIR")


def carried_environment() -> tuple[tuple[str, str], ...]:
    return tuple((key, os.environ[key]) for key in CARRIED if os.environ.get(key))


def notify(**fields: str) -> bool:
    """Tell systemd about the service (READY="1", STATUS="..."); False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
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

    def describe(self) -> str:
        said = f"; {self.status}" if self.status else ""
        return f"{self.active} ({self.sub}), {self.enabled or 'not installed'}, pid {self.pid or '-'}{said}"


def unit_state(host: str) -> UnitState | None:
    """The host's agent unit as systemd sees it; None where there is no systemd or no such unit."""
    if shutil.which("systemctl") is None or not unit_path(host).exists():
        return None
    fields = dict(
        line.partition("=")[::2]
        for line in systemctl(
            "show", unit_name(host), "-p", "ActiveState,SubState,UnitFileState,StatusText,MainPID", check=False
        ).splitlines()
    )
    return UnitState(
        fields.get("ActiveState", ""),
        fields.get("SubState", ""),
        fields.get("UnitFileState", ""),
        fields.get("StatusText", ""),
        int(fields.get("MainPID", "0") or 0),
    )
