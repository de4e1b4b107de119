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

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ovsvx import waits
from ovsvx.errors import ApplyError, PreconditionError, UsageError
from ovsvx.host import netstack, record, systemd
from ovsvx.host.processes import running_pid, serving, site_dir, stop_pid
from ovsvx.host.record import Deployment
from ovsvx.model.bgp import BgpView, EvpnRoute, Refused, Session
from ovsvx.model.site import Site
from ovsvx.model.topology import Mode, kernel_tunnel_device

SYSTEM_RUNDIR = Path("/var/run/openvswitch")
SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
CONTROLLER_START_S = 5.0  # os-ken imports and binds its port; ~1 s here, 15 s in an emulated guest
TUNNEL_DEVICE_GONE_S = 5.0  # OVS deletes its kernel tunnel device soon after the last vxlan port on its UDP port
START_WAIT_S = 15.0  # ovsdb-server's socket appears within a second; scaled on a slow machine
#: The controller's module, as ovsvx starts it (`python -m ovsvx.ovs.controller`): what a pid file's process
#: must be running for the pid to be the controller's, not a reused one.
CONTROLLER_MODULE = "ovsvx.ovs.controller"
CONTROLLER_PIDS = (CONTROLLER_MODULE,)


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


def ovs_home(deployment: Deployment, site: Site) -> OvsHome:
    if site.is_lab:
        return OvsHome(site_dir(deployment, site) / "ovs", site.netns, own=True)
    return OvsHome(SYSTEM_RUNDIR, None, own=False)


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


def served_topology(deployment: Deployment, site: Site) -> str:
    """A digest of what the host's controller computes its flows from, read from the record when it
    starts: the whole topology when static (every peer has flows), under EVPN only the host itself and
    the range its speaker takes routes in (peers come by BGP).  A controller that serves another digest
    is restarted (`ensure_controller`); OVS keeps forwarding by the flows it has meanwhile."""
    topology = deployment.topology
    view = (replace(topology, hosts=(site.host,)), topology.overlay_range) if topology.evpn else topology
    return hashlib.sha256(repr(view).encode()).hexdigest()[:16]


def _served_file(deployment: Deployment, site: Site) -> Path:
    return site_dir(deployment, site) / "controller.serves"


def evpn_state_file(deployment: Deployment, site: Site) -> Path:
    """Where an ovs host's controller writes what its EVPN speaker knows (sessions, routes)."""
    return site_dir(deployment, site) / "evpn.json"


def evpn_state(deployment: Deployment, site: Site) -> BgpView:
    """What an ovs host's EVPN speaker last wrote (sessions, routes, refused ones); not answering when
    there is nothing to read, or no controller runs."""
    try:
        data = json.loads(evpn_state_file(deployment, site).read_text())
    except (OSError, ValueError):
        return BgpView(answering=False)
    sessions = [
        Session(s["peer"], s["state"], _uptime(time.time() - s["since"]), s["received"]) for s in data["sessions"]
    ]
    routes = [EvpnRoute(**r) for r in data["routes"]]
    refused = [Refused(r["prefix"], r["vtep"], r["why"]) for r in data["refused"]]
    answering = controller_pid(deployment, site) is not None
    return BgpView(answering, sessions, routes, refused, int(data.get("unlisted", 0)))


def _uptime(seconds: float) -> str:
    """How long in its state, as FRR shows it: 00:01:02."""
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def controller_pid(deployment: Deployment, site: Site) -> int | None:
    return running_pid(controller_files(deployment, site)[0], CONTROLLER_PIDS)


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
    argv = [sys.executable, "-I", "-m", CONTROLLER_MODULE, "--listen", f"unix:{listen}"]
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


def ensure_controller(deployment: Deployment, site: Site) -> str | None:
    """Start the controller unless it runs, or restart it when it serves another topology than the
    record's; then wait until it listens: OVS then connects at once when the bridge names it, instead of
    backing off.  What it did ("started", "restarted"), or None."""
    served = _served_file(deployment, site)
    wanted = served_topology(deployment, site)
    restarting = controller_pid(deployment, site) is not None and _read(served) != wanted
    if restarting:
        stop_controller(deployment, site)
    started = start_controller(deployment, site)
    if started:
        served.write_text(wanted + "\n")
    wait_serving(site.netns, controller_socket(deployment, site), CONTROLLER_START_S)
    return "restarted" if restarting else "started" if started else None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def wait_serving(netns: str | None, path: Path, seconds: float) -> None:
    """Until the controller listens on its socket (os-ken takes a moment to import and bind)."""
    if not waits.until(lambda: netstack.UNIX_LISTENING in netstack.unix_states(netns, path), seconds):
        raise ApplyError(f"the controller does not serve {path} after {waits.scaled(seconds):g} s")


def stop_controller(deployment: Deployment, site: Site) -> bool:
    """Stop the host's controller, and remove its socket (os-ken leaves it behind)."""
    stopped = stop_pid(controller_files(deployment, site)[0], CONTROLLER_PIDS)
    if stopped:
        controller_socket(deployment, site).unlink(missing_ok=True)
    return stopped


def await_tunnel_device_gone(netns: str | None, port: int) -> None:
    """On the kernel datapath OVS's tunnel device (vxlan_sys_PORT) holds the UDP port until OVS deletes
    it, a moment after the last vxlan port on that port is gone; kernel mode's vxlan device cannot come
    up before (EADDRINUSE), so a switch to kernel mode waits for it.  Another vxlan port of the
    system's OVS on the same UDP port keeps the device: then kernel mode says so when it tries."""
    device = kernel_tunnel_device(port)

    def gone() -> bool:
        with netstack.stack(netns) as ipr:
            return not ipr.link_lookup(ifname=device)

    waits.until(gone, TUNNEL_DEVICE_GONE_S, interval=0.1)


def ovs_homes(deployment: Deployment, sites: list[Site], only: str | None = None) -> list[tuple[Site, OvsHome]]:
    """The hosts of the deployment in ovs mode here (or only `only`), each with the OVS it runs."""
    if only is not None:
        deployment.topology.host(only)  # an unknown name is an error, not an empty listing
    found = [
        (site, ovs_home(deployment, site))
        for site in sites
        if deployment.modes[site.host.name] == Mode.OVS and only in (None, site.host.name)
    ]
    if not found:
        raise UsageError("no host of this deployment runs in ovs mode" + (f" among {only}" if only else ""))
    return found
