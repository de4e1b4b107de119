"""The EVPN control plane's daemons, kernel hosts' and reflectors': FRR's zebra and bgpd, run by ovsvx,
and what they know (sessions, routes, the routes the policy refused).

ovsvx runs these daemons itself, like a lab host's OVS, each host's with its
own configuration, sockets, pid and log files under ovsvx's folder for that
host, as the frr user, like Debian's service; the tools reach them with `vtysh --vty_socket`.
What they are given is `frrconf`'s."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import stat
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from ovsvx import waits
from ovsvx.errors import ApplyError, PreconditionError
from ovsvx.host import netstack, record, systemd
from ovsvx.host import routes as host_routes
from ovsvx.host.frrconf import FRR_BIN, bgp_of
from ovsvx.host.processes import running_pid, site_dir, stop_pid
from ovsvx.model import routepolicy
from ovsvx.model.bgp import BgpView, EvpnRoute, Refused, Session
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Topology

FRR_USER = "frr"  # Debian's package makes it; the daemons run as it, as the frr service's do
START_WAIT_S = 15.0  # a daemon's vty socket appears within a second; scaled on a slow machine
HOST_DAEMONS = ("zebra", "bgpd")
REFLECTOR_DAEMONS = ("bgpd",)  # a reflector installs nothing: bgpd runs without zebra (-Z)


@dataclass(frozen=True)
class FrrHome:
    """Where one FRR instance keeps its configuration (root's folder), and its sockets, pids and logs
    (the daemons' folder inside it, the frr user's)."""

    name: str  # the host's name, or rr-ADDRESS: on a real host, part of each daemon's service name
    rundir: Path
    netns: str | None
    daemons: tuple[str, ...] = HOST_DAEMONS
    listen: str | None = None  # a reflector's address, the only one its bgpd listens on; a host's listens on none

    @property
    def workdir(self) -> Path:
        """The daemons' own folder: what they write (pids, vty sockets, logs, zebra's API socket)."""
        return self.rundir / "run"

    def conf(self, daemon: str) -> Path:
        return self.rundir / f"{daemon}.conf"

    def pidfile(self, daemon: str) -> Path:
        return self.workdir / f"{daemon}.pid"

    def log(self, daemon: str) -> Path:
        return self.workdir / f"{daemon}.log"

    def vty(self, daemon: str) -> Path:
        return self.workdir / f"{daemon}.vty"

    def marker(self, daemon: str) -> str:
        """What the daemon's command line holds: its own pid file, which no other process names."""
        return str(self.pidfile(daemon))


# --- the daemons -------------------------------------------------------------------------


def installed() -> bool:
    return all((FRR_BIN / daemon).exists() for daemon in HOST_DAEMONS)


def require_installed() -> None:
    if not installed():
        raise PreconditionError(f"FRR is not installed (no {FRR_BIN}/bgpd): `apt-get install frr` (scripts/setup does)")


def start(home: FrrHome, configs: dict[str, str]) -> list[str]:
    """Run `home`'s daemons on `configs`: start what is not running, restart what runs an older
    configuration, and every daemon after one (re)started (bgpd keeps no routes across a new zebra: it
    installs nothing more, measured on FRR 8.4); returns what it did (nothing when all is as wanted)."""
    require_installed()
    if home.netns is None and "zebra" in home.daemons:
        _require_no_frr_service()
    _prepare(home)
    done: list[str] = []
    for daemon in home.daemons:  # in order: zebra first, whose clients (bgpd) must start after it
        text = configs[daemon]
        current = home.conf(daemon).read_text() if home.conf(daemon).exists() else None
        running = running_pid(home.pidfile(daemon), home.marker(daemon)) is not None
        if running and current == text and not done:  # a new zebra: bgpd must register with it again
            continue
        if running:
            stop_pid(home.pidfile(daemon), home.marker(daemon))
        _write_conf(home.conf(daemon), text)
        _launch(home, daemon)
        done.append(f"{'~' if running else '+'} {daemon} ({home.conf(daemon)})")
    return done


SERVICE_ZEBRA_PID = Path("/run/frr/zebra.pid")  # Debian's frr service


def _require_no_frr_service() -> None:
    """Two zebras on one machine would fight over its routes and neighbour entries."""
    pid = running_pid(SERVICE_ZEBRA_PID, "zebra")
    if pid is not None:
        raise PreconditionError(
            f"the frr service runs a zebra of its own (pid {pid}); ovsvx runs FRR itself under EVPN:"
            " `systemctl disable --now frr` first"
        )


def _prepare(home: FrrHome) -> None:
    """The folders, so that the frr user can replace nothing root writes or changes.

    The configuration folder is root's (0755): the daemons read their files
    there and write nothing.  Their own folder inside it is made by root and
    handed to the frr user, never followed through a link; each of ovsvx's
    folders above is made traversable (not readable) for them, whatever umask
    made it (the agent's unit runs with 0077)."""
    home.rundir.mkdir(parents=True, exist_ok=True)
    for folder in (home.rundir, *home.rundir.parents):
        if folder != record.STATE_DIR and record.STATE_DIR not in folder.parents:
            break
        mode = stat.S_IMODE(os.stat(folder).st_mode)
        if mode & 0o111 != 0o111:  # changed only where it must be: the agent calls this on every pass
            os.chmod(folder, mode | 0o111)
    if stat.S_IMODE(os.stat(home.rundir).st_mode) != 0o755:
        os.chmod(home.rundir, 0o755)
    with contextlib.suppress(FileExistsError):
        os.mkdir(home.workdir, 0o750)
    found = os.lstat(home.workdir)
    if not stat.S_ISDIR(found.st_mode):
        raise ApplyError(f"{home.workdir} is not a folder (a link or a file took its place): remove it")
    user = pwd.getpwnam(FRR_USER)
    os.chown(home.workdir, user.pw_uid, user.pw_gid, follow_symlinks=False)
    os.chmod(home.workdir, 0o750)


def _write_conf(path: Path, text: str) -> None:
    """A configuration file, root's, readable by the frr group alone (it may hold the sessions'
    password), never written through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w") as out:
        os.fchown(fd, 0, pwd.getpwnam(FRR_USER).pw_gid)
        os.fchmod(fd, 0o640)
        out.write(text)


def _launch(home: FrrHome, daemon: str) -> None:
    """Start one daemon: on a real host under ovsvx's unit, as a service of its own in the
    foreground (`systemd.start_service`), else daemonized (-d) in the host's namespace."""
    home.vty(daemon).unlink(missing_ok=True)
    argv = [str(FRR_BIN / daemon), "-u", FRR_USER, "-g", FRR_USER, "-P", "0", "-f", str(home.conf(daemon))]
    argv += ["-i", str(home.pidfile(daemon)), "--vty_socket", str(home.workdir), "--log", f"file:{home.log(daemon)}"]
    argv += ["-Z"] if "zebra" not in home.daemons else ["-z", str(home.workdir / "zserv.api")]
    if daemon == "bgpd":  # a host only dials its reflectors; a reflector listens on its own address only
        argv += ["-p", "0"] if home.listen is None else ["-l", home.listen]
    if systemd.daemons_are_units(home.netns):
        systemd.start_service(f"ovsvx-{home.name}-{daemon}", argv, f"FRR {daemon} of ovsvx's {home.name}")
    else:
        done = netstack.run(home.netns, [argv[0], "-d", *argv[1:]], timeout=30)
        if done.returncode != 0:
            raise ApplyError(f"{daemon} did not start: {(done.stderr or done.stdout).strip()}; see {home.log(daemon)}")
    if not waits.until(home.vty(daemon).exists, START_WAIT_S):
        raise ApplyError(f"{daemon} did not start (no {home.vty(daemon)}); see {home.log(daemon)}")


def stop(home: FrrHome) -> list[str]:
    """Stop `home`'s daemons, bgpd first: it says goodbye to its peers (a Cease), so they forget this
    host at once instead of after the hold time; then zebra takes its routes away."""
    return [f"- {d}" for d in reversed(home.daemons) if stop_pid(home.pidfile(d), home.marker(d))]


def running(home: FrrHome) -> dict[str, int | None]:
    return {d: running_pid(home.pidfile(d), home.marker(d)) for d in home.daemons}


def live(home: FrrHome, owner: str) -> dict[str, int]:
    """The daemons of `home` that run, as the agent watches them: "OWNER's bgpd" -> pid."""
    return {f"{owner}'s {daemon}": pid for daemon, pid in running(home).items() if pid}


# --- what bgpd knows ---------------------------------------------------------------------


def show(home: FrrHome, command: str, daemon: str = "bgpd") -> Any:
    """A daemon's JSON answer to a `show ... json` command; None when it does not answer."""
    argv = ["vtysh", "--vty_socket", str(home.workdir), "-d", daemon, "-c", command]
    done = netstack.run(home.netns, argv, timeout=10)
    if done.returncode != 0:
        return None
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        return None


def sessions(home: FrrHome) -> list[Session] | None:
    """The EVPN sessions, or None when bgpd does not answer."""
    data = show(home, "show bgp l2vpn evpn summary json")
    if data is None:
        return None
    peers = data.get("peers", {}) if isinstance(data, dict) else {}
    return [
        Session(
            peer,
            str(p.get("state", "?")),
            str(p.get("peerUptime", "")),
            int(p.get("pfxRcd", p.get("prefixReceivedCount", 0)) or 0),
        )
        for peer, p in sorted(peers.items())
    ]


def routes(home: FrrHome) -> list[EvpnRoute] | None:
    """The best EVPN routes bgpd holds, local and received, or None when bgpd does not answer."""
    data = show(home, "show bgp l2vpn evpn route json")
    return None if data is None else parse_routes(data)


def parse_routes(data: Any) -> list[EvpnRoute]:
    """The best paths of `show bgp l2vpn evpn route json`: {rd: {"[5]:[0]:[24]:[...]": {"paths": [[...]]}}}."""
    found = []
    for rd, table in (data or {}).items():
        if not isinstance(table, dict):
            continue
        for entry in table.values():
            if not isinstance(entry, dict):
                continue
            for group in entry.get("paths", []):
                found += [_route(rd, p) for p in group if isinstance(p, dict) and _best(p)]
    return sorted(found, key=lambda r: (r.type, r.prefix))


def _best(path: dict[str, Any]) -> bool:
    best = path.get("bestpath")
    return best is True or (isinstance(best, dict) and bool(best.get("overall")))


def _route(rd: str, path: dict[str, Any]) -> EvpnRoute:
    """One path; its originator is the address of its route distinguisher (FRR's RD is router-id:n)."""
    kind = int(path.get("routeType", 0))
    prefix = f"{path.get('ip')}/{path.get('ipLen')}" if kind == 5 else str(path.get("ip", ""))
    hops = path.get("nexthops") or [{}]
    communities = str(path.get("extendedCommunity", {}).get("string", "")).split()
    rmac = next((word.split(":", 1)[1] for word in communities if word.startswith("Rmac:")), "")
    origin = "local" if path.get("peerId") == "(unspec)" else rd.rsplit(":", 1)[0]
    return EvpnRoute(kind, prefix, str(hops[0].get("ip", "")), rmac, origin)


def refused_routes(home: FrrHome, topology: Topology, host: Host) -> tuple[list[Refused], int]:
    """The routes from BGP that zebra holds inactive because `routepolicy`'s route-map denied them, each
    with why (FRR counts none itself), at most bgp.max_prefixes of them, and how many more there are;
    empty when zebra does not answer."""
    data = show(home, "show ip route bgp json", "zebra")
    foreign = routepolicy.in_range(topology, host_routes.foreign_in(home.netns))
    refused: list[Refused] = []
    unlisted = 0
    for prefix, entries in (data if isinstance(data, dict) else {}).items():
        for entry in entries if isinstance(entries, list) else []:
            if entry.get("internalNextHopActiveNum") != 0:
                continue  # a route zebra took
            if len(refused) >= bgp_of(topology).max_prefixes:
                unlisted += 1  # a flood is counted, not listed
                continue
            hop = str((entry.get("nexthops") or [{}])[0].get("ip", ""))
            vtep = routepolicy.vtep_of(hop)
            why = (  # none: inactive for a reason of FRR's own (its next hop unreachable, say)
                routepolicy.refusal(topology, host, IPv4Network(prefix), vtep, foreign)
                if vtep is not None
                else f"its next hop {hop} is not an IPv4 address"
            )
            if why is not None:
                refused.append(Refused(prefix, str(vtep or hop), why))
    return refused, unlisted


def summary(home: FrrHome, topology: Topology, host: Host) -> BgpView:
    """What a host's bgpd knows: its sessions, the EVPN routes it holds (received ones and its own) and
    those zebra refused; empty when bgpd does not answer."""
    found = sessions(home)
    if found is None:
        return BgpView(answering=False)
    return BgpView(True, found, routes(home) or [], *refused_routes(home, topology, host))


def host_home(site_folder: Path, netns: str | None) -> FrrHome:
    """A host's FRR, in ovsvx's folder for the host (named for it)."""
    return FrrHome(site_folder.name, site_folder / "frr", netns)


def home(deployment: record.Deployment, site: Site) -> FrrHome:
    """Where a deployed host's FRR lives: ovsvx's folder for the host (a lab host's, or this machine's)."""
    return host_home(site_dir(deployment, site), site.netns)


def reflector_home(folder: Path, address: str, netns: str | None) -> FrrHome:
    """A route reflector's bgpd, in a folder of `folder` (a lab's, or this machine's) named for its address."""
    return FrrHome(f"rr-{address}", folder / f"rr-{address}", netns, REFLECTOR_DAEMONS, listen=address)
