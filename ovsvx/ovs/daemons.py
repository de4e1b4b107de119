"""The processes behind ovs mode: a host's OVS daemons and its OpenFlow controller.

On a real host, OVS is the system's (Debian's openvswitch-switch service);
ovsvx only checks that it runs.  A lab host runs its own ovsdb-server and
ovs-vswitchd inside its namespace, with their own database, sockets, pid and
log files in the lab's folder, so `ovs-vsctl`, `ovs-ofctl` and `ovs-appctl`
reach them through nothing but OVS_RUNDIR (which `ovsvx exec` sets).

The controller runs alongside OVS, in the host's namespace, listening on a
Unix socket in OVS's run folder (`controller_socket`); in both cases deploy starts it in the background (on a real host
with systemd, as a service of its own) and destroy stops it (`ovsvx
controller` runs it in the foreground instead).

Processes are only ever touched by the pid in their own pidfile, and only
when /proc confirms the pid is still the program that wrote it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovsvx import waits
from ovsvx.errors import ApplyError, PreconditionError
from ovsvx.host import netstack, systemd
from ovsvx.model import record
from ovsvx.model.record import Deployment
from ovsvx.model.site import Site

SYSTEM_RUNDIR = Path("/var/run/openvswitch")
SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
START_WAIT_S = 15.0  # ovsdb-server's socket appears within a second; scaled on a slow machine
STOP_WAIT_S = 5.0  # after SIGTERM, before SIGKILL
# How a controller's command line reads: as ovsvx starts one (`python -m ovsvx.ovs.controller`), and as a
# user or systemd does (`ovsvx controller`).  A pid file of ovsvx's own is checked against the first.
CONTROLLER_MARKERS = ("ovsvx.ovs.controller", "ovsvx controller")
CONTROLLER_MARKER = CONTROLLER_MARKERS[0]


@dataclass(frozen=True)
class OvsHome:
    """Where one host's OVS keeps its database, sockets, pids and logs."""

    rundir: Path
    netns: str | None
    own: bool  # True: ovsvx runs these daemons (a lab host); False: the system's service

    @property
    def db(self) -> str:
        return f"unix:{self.rundir}/db.sock"

    def env(self) -> dict[str, str]:
        """The environment under which OVS's own tools find this OVS with no flags."""
        where = str(self.rundir)
        return {**os.environ, "OVS_RUNDIR": where, "OVS_DBDIR": where, "OVS_LOGDIR": where, "OVS_SYSCONFDIR": where}

    def pidfile(self, program: str) -> Path:
        return self.rundir / f"{program}.pid"

    def log(self, program: str) -> Path:
        return self.rundir / f"{program}.log"


def site_dir(deployment: Deployment, site: Site) -> Path:
    """ovsvx's own folder for one host of a deployment (controller pid and log, a lab host's OVS)."""
    return deployment.folder / site.host.name


def ovs_home(deployment: Deployment, site: Site) -> OvsHome:
    if site.is_lab:
        return OvsHome(site_dir(deployment, site) / "ovs", site.netns, own=True)
    return OvsHome(SYSTEM_RUNDIR, None, own=False)


# --- processes by pidfile ---------------------------------------------------------------


def running_pid(pidfile: Path, marker: str) -> int | None:
    """The pid in `pidfile` if that process is alive and its command line still contains `marker`."""
    try:
        pid = int(pidfile.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return None
    return pid if marker in cmdline else None  # a zombie's or a reused pid's command line does not match


def rss_mib(pid: int) -> float | None:
    """The resident memory of a process in MiB (VmRSS), or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return None if found is None else int(found) / 1024


def stop_pid(pidfile: Path, marker: str) -> bool:
    """SIGTERM the process of `pidfile` (SIGKILL after STOP_WAIT_S); True if there was one."""
    pid = running_pid(pidfile, marker)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    if not waits.until(lambda: running_pid(pidfile, marker) != pid, STOP_WAIT_S):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True


def _wait_for(path: Path, what: str, log: Path) -> None:
    if not waits.until(path.exists, START_WAIT_S):
        raise ApplyError(f"{what} did not start (no {path} after {waits.scaled(START_WAIT_S):g} s); see {log}")


# --- OVS --------------------------------------------------------------------------------


def start_ovs(home: OvsHome) -> list[str]:
    """Start a lab host's ovsdb-server and ovs-vswitchd if they are not running; returns what started."""
    if not home.own:
        if not (home.rundir / "db.sock").exists():
            raise PreconditionError(
                f"Open vSwitch is not running here (no {home.rundir}/db.sock): "
                "start it with `systemctl start openvswitch-switch`"
            )
        return []
    started = []
    home.rundir.mkdir(parents=True, exist_ok=True)
    env = home.env()
    database = home.rundir / "conf.db"
    if not database.exists():
        _run(["ovsdb-tool", "create", str(database), str(SCHEMA)], env, None)
    if running_pid(home.pidfile("ovsdb-server"), "ovsdb-server") is None:
        (home.rundir / "db.sock").unlink(missing_ok=True)
        _run(
            [
                "ovsdb-server",
                str(database),
                f"--remote=punix:{home.rundir}/db.sock",
                "--pidfile",
                "--detach",
                "--no-chdir",
                "--log-file",
                "-vconsole:off",
            ],
            env,
            home.netns,
        )
        _wait_for(home.rundir / "db.sock", "ovsdb-server", home.log("ovsdb-server"))
        started.append("ovsdb-server")
    # the database's root row, which a deploy killed just after starting ovsdb-server never wrote
    _run(["ovs-vsctl", "--no-wait", "init"], env, home.netns)
    if running_pid(home.pidfile("ovs-vswitchd"), "ovs-vswitchd") is None:
        _run(["ovs-vswitchd", "--pidfile", "--detach", "--no-chdir", "--log-file", "-vconsole:off"], env, home.netns)
        started.append("ovs-vswitchd")
    return started


def stop_ovs(home: OvsHome) -> list[str]:
    """Stop a lab host's OVS daemons (never the system's); returns what stopped."""
    if not home.own:
        return []
    return [f"- {program}" for program in ("ovs-vswitchd", "ovsdb-server") if stop_pid(home.pidfile(program), program)]


def _run(argv: list[str], env: dict[str, str], netns: str | None) -> None:
    done = netstack.run(netns, argv, timeout=30, env=env)
    if done.returncode != 0:
        raise ApplyError(f"{' '.join(argv[:2])} failed: {(done.stderr or done.stdout).strip()}")


# --- the controller -----------------------------------------------------------------------


def controller_files(deployment: Deployment, site: Site) -> tuple[Path, Path]:
    folder = site_dir(deployment, site)
    return folder / "controller.pid", folder / "controller.log"


def evpn_state_file(deployment: Deployment, site: Site) -> Path:
    """Where an ovs host's controller writes what its EVPN speaker knows (sessions, routes)."""
    return site_dir(deployment, site) / "evpn.json"


def evpn_state(deployment: Deployment, site: Site) -> dict[str, Any]:
    """What an ovs host's EVPN speaker last wrote (sessions, routes), in the shape of `frr.summary`;
    answering is False when there is nothing to read."""
    try:
        data = json.loads(evpn_state_file(deployment, site).read_text())
    except (OSError, ValueError):
        return {"answering": False, "sessions": [], "routes": []}
    for session in data.get("sessions", []):  # how long in its state, as FRR shows it: 00:01:02
        seconds = int(time.time() - session.pop("since", time.time()))
        session["uptime"] = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return {"answering": controller_pid(deployment, site) is not None, **data}


def controller_pid(deployment: Deployment, site: Site) -> int | None:
    return running_pid(controller_files(deployment, site)[0], CONTROLLER_MARKER)


def controller_socket(deployment: Deployment, site: Site) -> Path:
    """Where the host's controller listens and its OVS connects (`unix:PATH`): a Unix socket in OVS's own
    run folder, root's (and the only place OVS dials a Unix socket: it refuses others as a possible
    exploit), so no other user can take OVS's connection, as one can take a TCP port on loopback
    while the controller is down."""
    return controller_socket_in(ovs_home(deployment, site).rundir, site.host.name)


def controller_socket_in(rundir: Path, host: str) -> Path:
    return rundir / f"ovsvx-{host}.openflow"


def check_port_free(netns: str | None, host: str, port: int) -> None:
    """Refuse to start a controller whose listening TCP port is taken."""

    def probe() -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as err:
                raise PreconditionError(
                    f"controller port {host}:{port} is in use ({err.strerror}): stop what listens there "
                    "or choose another port with --listen"
                ) from None

    netstack.call_in(netns, probe)


def serving(path: Path) -> bool:
    """Whether something accepts connections on the Unix socket `path`."""
    with socket.socket(socket.AF_UNIX) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def claim_socket(path: Path) -> None:
    """Make way for a controller's Unix socket: a stale one (nothing accepts on it) is removed; one that
    is served is refused.  Its folder must be root's alone, or another user could serve it."""
    folder = os.stat(path.parent)
    if folder.st_uid != 0 or folder.st_mode & 0o022:
        raise PreconditionError(
            f"{path.parent} is writable by others than root: the controller's socket needs a folder of root's"
        )
    if serving(path):
        raise PreconditionError(f"a controller already serves {path}: stop it first")
    path.unlink(missing_ok=True)


def start_controller(deployment: Deployment, site: Site) -> bool:
    """Start `ovsvx controller` for the site in the background, in its namespace, on its Unix socket;
    False if one runs already.  On a real host under ovsvx's unit, it is a service of its own
    (`systemd.start_service`)."""
    if controller_pid(deployment, site) is not None:
        return False
    pidfile, log = controller_files(deployment, site)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    listen = controller_socket(deployment, site)
    claim_socket(listen)
    # isolated (-I): as root, nothing from the caller's working directory or PYTHON* variables is imported
    argv = [sys.executable, "-I", "-m", CONTROLLER_MARKER, "--listen", f"unix:{listen}"]
    argv += ["--serve", site.host.name]
    if deployment.is_lab:
        argv += ["--prefix", deployment.prefix]
    if deployment.topology.evpn:
        argv += ["--evpn-state", str(evpn_state_file(deployment, site))]
    # where state lives, and how much slower than normal this machine is (the peer watch's period)
    env = (
        ("OVSVX_STATE_DIR", str(record.STATE_DIR)),
        ("OVSVX_HOST_RECORD_DIR", str(record.HOST_RECORD_DIR)),
        ("OVSVX_WAIT_SCALE", f"{waits.scale():g}"),
    )
    if systemd.daemons_are_units(site.netns):
        name = f"ovsvx-{site.host.name}-controller"
        pid = systemd.start_service(name, argv, f"ovsvx's OpenFlow controller for {site.host.name}", env, log)
    else:
        with open(log, "a") as out:
            pid = netstack.popen(
                site.netns,
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **dict(env)},
            ).pid
    pidfile.write_text(f"{pid}\n")
    return True


def wait_serving(netns: str | None, path: Path, seconds: float) -> None:
    """Until the controller listens on its socket (os-ken takes a moment to import and bind)."""
    if not waits.until(lambda: netstack.UNIX_LISTENING in netstack.unix_states(netns, path), seconds):
        raise ApplyError(f"the controller does not serve {path} after {waits.scaled(seconds):g} s")


def stop_controller(deployment: Deployment, site: Site) -> bool:
    """Stop the host's controller, and remove its socket (os-ken leaves it behind)."""
    stopped = stop_pid(controller_files(deployment, site)[0], CONTROLLER_MARKER)
    if stopped:
        controller_socket(deployment, site).unlink(missing_ok=True)
    return stopped
