"""`ovsvx enable` and `ovsvx disable`: a real host kept at its topology by a systemd unit, or no longer.

enable checks everything first (root, systemd, the topology file, the host in
it, this machine's NIC and VTEP) and changes nothing when a check fails.  It
then keeps the topology under /etc/ovsvx (root's, 0600), writes the unit
`ovsvx@HOST.service` for this installation's interpreter, and starts it, and
returns once the agent says the host is ready.  Enabled again with another
mode, the agent restarts and switches the host in place; with another
topology that applies in place (hosts or namespaces added), the running agent
reloads it (`reload`, which is also the unit's ExecReload, so `systemctl
reload ovsvx@H` does the same) and deploys the difference; a topology that
does not is refused, unless `--rebuild`: the host is then destroyed first
and deployed anew.

disable stops and removes the unit, destroys the deployment and removes the
stored topology: afterwards the machine is as it was before enable.

`enable --reflector ADDR` and `disable --reflector ADDR` do the same for a
route reflector of an EVPN topology (`reflector.py`): its own unit,
`ovsvx-reflector@ADDR.service`, and its topology under /etc/ovsvx too.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from pathlib import Path

from ovsvx import waits
from ovsvx.deploy import agent, agentreport, reflector
from ovsvx.deploy.backends import BACKENDS, vtep_carriers
from ovsvx.deploy.deploy import Scope, destroy, resolve_modes
from ovsvx.errors import ApplyError, ConflictError, PreconditionError
from ovsvx.files import replace_file
from ovsvx.host import frr, preflight, record, systemd
from ovsvx.host.record import Kind
from ovsvx.model import changes, reader
from ovsvx.model.topology import Mode

CONFIG_DIR = Path(os.environ.get("OVSVX_CONFIG_DIR", "/etc/ovsvx"))
READY_S = 120.0  # the agent's first pass: a deploy (OVS's and the controller's start in ovs mode)


def topology_path(host: str) -> Path:
    return CONFIG_DIR / f"{host}.toml"


def reflector_topology_path(address: IPv4Address) -> Path:
    return CONFIG_DIR / f"reflector-{address}.toml"


@dataclass(frozen=True)
class Enabled:
    unit: str
    changes: list[str]  # what enable did, in order
    warnings: list[str]
    status: systemd.UnitState | None


def enable(
    host: str,
    topology_file: Path | None,
    mode: Mode | None,
    metrics: str | None = None,
    probes: bool = False,
    rebuild: bool = False,
) -> Enabled:
    """Make this machine `host` of the topology for good: stored, unit installed and started, ready.

    On an enabled host, another topology that applies in place (`changes.refusal`) is stored and the
    running agent reloads it (or, when the unit changes too, a new agent starts with it): either way a
    deploy of the difference, nothing that stays is touched.  One that does not apply in place is refused,
    unless `rebuild`: then the host is destroyed first and built anew."""
    preflight.require_root()
    if topology_file is None and topology_path(host).exists():
        topology_file = topology_path(host)  # enabled already: another --mode keeps its topology
        preflight.require_roots_alone(topology_file, "the stored topology")
    wanted = reader.load(topology_file)
    wanted.host(host)  # the user's values first: an unknown host is refused before anything else
    systemd.require_systemd()
    preflight.require_trusted_code()
    this = wanted.host(host)
    warnings = preflight.check_real_host(wanted, this, vtep_carriers(this))
    deployed = record.load(Kind.HOST, "")
    if deployed is not None and host not in deployed.modes:
        raise ConflictError(
            f"this machine is deployed as {', '.join(deployed.modes)}, not {host}: "
            f"`ovsvx disable --host {next(iter(deployed.modes))}` (or `ovsvx destroy`) first"
        )
    chosen = resolve_modes(wanted, {host: str(mode)} if mode else {}, deployed.modes if deployed else None)[host]
    python, env = sys.executable, systemd.carried_environment()
    after = BACKENDS[chosen].system_services
    unit = systemd.AgentUnit.host(host, topology_path(host), mode, after, python, env, (metrics, probes))
    unit = replace(unit, timing=unit_timing())
    unit.text()  # a word no unit can hold is refused here, before anything changes
    done: list[str] = []
    why = changes.refusal(deployed.topology, wanted) if deployed is not None else None
    if why is not None and not rebuild:
        raise ConflictError(
            f"{host} is deployed from another topology, and {why}: only hosts and namespaces added apply in "
            f"place; `ovsvx enable --rebuild` destroys {host} and builds it anew (its workloads are cut off meanwhile)"
        )
    if why is not None:
        done += _stop(unit.unit)  # deploy takes no such topology over a deployed one: destroy first
        done += destroy(Scope.real(host))
    done += _write(topology_path(host), _text(topology_file))
    if done and why is None and _reloadable(unit):
        done += reload(host)
        return Enabled(unit.unit, done, warnings, systemd.unit_state(unit.unit))
    done, superseded = _install(unit, done)
    return Enabled(unit.unit, done, warnings, _await_ready(unit.unit, host, superseded))


def unit_timing() -> systemd.UnitTiming:
    """The unit's clocks for this machine: the start bounded as the agent's own start is, scaled as its
    waits are (the unit carries OVSVX_WAIT_SCALE to it), with room for a crash loop's longest wait; the
    watchdog's period as it is (the thread that kicks it does nothing slow)."""
    start = agent.START_BOUND_S + agentreport.RESTART_DELAY_MAX_S + 30
    return systemd.UnitTiming(start_s=waits.scaled(start), watchdog_s=agent.WATCHDOG_S)


def _reloadable(unit: systemd.AgentUnit) -> bool:
    """Whether the running agent can take a new stored topology by a reload: it runs, from this very
    unit file (a changed unit needs a new agent)."""
    state = systemd.unit_state(unit.unit)
    path = systemd.unit_path(unit.unit)
    running = state is not None and state.active == "active"
    return running and path.exists() and path.read_text() == unit.text()


RELOAD_S = 120.0  # the agent's pass over a new topology: a deploy of the difference (a controller restart)


def reload(host: str | None = None, address: IPv4Address | None = None) -> list[str]:
    """Make the running agent of `host` (or the reflector's keeper at `address`) read its stored topology
    again, and return once the pass that applies it has ended: what `systemctl reload` runs.  A stored
    topology that does not apply in place is refused here, before the agent is told anything."""
    preflight.require_root()
    systemd.require_systemd()
    unit = systemd.unit_name(host) if host is not None else systemd.reflector_unit_name(str(address))
    name = host if host is not None else f"reflector {address}"
    state = systemd.unit_state(unit)
    if state is None or state.active not in ("active", "reloading") or not state.pid:
        said = state.describe() if state else "not installed"
        raise PreconditionError(f"{unit} is not running ({said}): `ovsvx enable` starts it")
    if host is not None:
        agent.reloadable_topology(topology_path(host), host)  # refused here, before the agent is told
    before = agentreport.load(name)
    taken = before.reloads if before is not None and before.pid == state.pid else 0
    os.kill(state.pid, signal.SIGHUP)

    def applied() -> agentreport.AgentReport | None:
        now = agentreport.load(name)
        if now is None or now.pid != state.pid or now.reloads <= taken:
            return None
        return now if now.reload_refused or now.passes > now.reloaded_after else None

    if not waits.until(lambda: applied() is not None, RELOAD_S, interval=0.1):
        within = f"{waits.scaled(RELOAD_S):.0f} s"
        raise ApplyError(f"{unit} did not take its topology within {within}: see journalctl -u {unit}")
    report = applied()
    assert report is not None
    if report.reload_refused:
        raise ConflictError(report.reload_refused)
    if not report.last_ok:
        raise ApplyError(f"{unit} took its topology, but its pass failed: {report.last_error}")
    return [f"reloaded {unit}: {report.describe()}"]


def enable_reflector(address: IPv4Address, topology_file: Path | None) -> Enabled:
    """Make this machine the topology's route reflector at `address` for good, as `enable` a host."""
    preflight.require_root()
    wanted = reader.load(topology_file)
    reflector.check(wanted, address)
    frr.require_installed()
    systemd.require_systemd()
    preflight.require_trusted_code()
    reflector.require_local(address)
    stored = reflector_topology_path(address)
    unit = systemd.AgentUnit.reflector(str(address), stored, sys.executable, systemd.carried_environment())
    unit.text()  # as for a host: refused before anything changes
    unit = replace(unit, timing=unit_timing())
    done = _write(stored, _text(topology_file))
    if done and _reloadable(unit):
        done += reload(address=address)
        return Enabled(unit.unit, done, [], systemd.unit_state(unit.unit))
    done, superseded = _install(unit, done)
    return Enabled(unit.unit, done, [], _await_ready(unit.unit, f"reflector {address}", superseded))


def _text(topology_file: Path | None) -> str:
    return topology_file.read_text() if topology_file is not None else reader.default_text()


def _install(unit: systemd.AgentUnit, changes: list[str]) -> tuple[list[str], str | None]:
    """Write, enable and (re)start `unit`; a unit already running restarts when anything it reads changed.

    Also returns the invocation that a (re)start supersedes (None when the unit was left running as it
    was): until systemd runs another, an "active" unit is still the old agent."""
    changes = changes + _write(systemd.unit_path(unit.unit), unit.text())
    if changes:
        systemd.systemctl("daemon-reload")
    systemd.systemctl("enable", "--quiet", unit.unit)
    state = systemd.unit_state(unit.unit)
    running = state is not None and state.active in ("active", "activating", "reloading")
    if running and not changes:
        return changes, None
    systemd.systemctl("restart" if running else "start", "--no-block", unit.unit)
    changes.append(f"{'restarted' if running else 'started'} {unit.unit}")
    return changes, state.invocation if state is not None else ""


def _write(path: Path, text: str) -> list[str]:
    """Write a root-only file if its content differs; the line saying so, or nothing."""
    if path.exists() and path.read_text() == text:
        return []
    changes = _config_dir() if path.parent == CONFIG_DIR else []
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    replace_file(path, text, 0o600 if path.suffix == ".toml" else 0o644)
    return [*changes, f"+ {path}"]


def _config_dir() -> list[str]:
    """/etc/ovsvx, root's alone (0700): made so, or its mode set right; refused when it is not root's
    folder (a link, a file, someone else's), since the agents read their topologies there as root."""
    CONFIG_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = os.lstat(CONFIG_DIR)
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != 0:
        raise PreconditionError(f"{CONFIG_DIR}: must be a folder of root's (it is not): move it away first")
    if stat.S_IMODE(found.st_mode) != 0o700:
        os.chmod(CONFIG_DIR, 0o700)
        return [f"~ {CONFIG_DIR} mode 0700 (was {stat.S_IMODE(found.st_mode):04o})"]
    return []


def _await_ready(unit: str, name: str, superseded: str | None) -> systemd.UnitState | None:
    """Wait until the agent has converged (the unit is active: Type=notify, and the agent's report says
    its last pass converged), or say why not.  An agent (re)started by enable counts only once systemd
    runs a new invocation, not the `superseded` one.  An agent that told systemd it is up without having
    converged (its start bound passed) and does not converge within READY_S is an error: it keeps
    trying, and the error says why it fails."""

    def active() -> systemd.UnitState | None:
        state = systemd.unit_state(unit)
        up = state is not None and state.active == "active" and state.invocation != superseded
        return state if up else None

    def converged() -> bool:
        state, report = active(), agentreport.load(name)
        return state is not None and report is not None and report.pid == state.pid and report.last_ok

    if waits.until(converged, READY_S, interval=0.3):
        return systemd.unit_state(unit)
    report = agentreport.load(name)
    if active() is not None and report is not None and report.passes and not report.last_ok:
        raise ApplyError(
            f"{unit} is up but has not converged: {report.last_error}; it keeps trying (journalctl -u {unit})"
        )
    now = systemd.unit_state(unit)
    said = now.describe() if now else "no unit"
    raise ApplyError(f"{unit} is not ready after {waits.scaled(READY_S):.0f} s: {said}; see journalctl -u {unit}")


def _stop(unit: str) -> list[str]:
    state = systemd.unit_state(unit)
    if state is None or state.active in ("inactive", "failed"):
        return []
    systemd.systemctl("stop", unit)
    return [f"stopped {unit}"]


def disable(host: str) -> list[str]:
    """Stop and remove the host's unit, destroy what ovsvx made, remove the stored topology."""
    preflight.require_root()
    removed = _uninstall(systemd.unit_name(host))
    deployed = record.load(Kind.HOST, "")
    if deployed is not None and host in deployed.modes:
        removed += destroy(Scope.real(host))
    return removed + _forget(topology_path(host))


def disable_reflector(address: IPv4Address) -> list[str]:
    """Stop and remove the reflector's unit and its bgpd, remove the stored topology."""
    preflight.require_root()
    removed = _uninstall(systemd.reflector_unit_name(str(address))) + reflector.stop(address)
    return removed + _forget(reflector_topology_path(address))


def _uninstall(unit: str) -> list[str]:
    if not systemd.unit_path(unit).exists():
        return []
    systemd.systemctl("disable", "--quiet", "--now", unit, check=False)
    systemd.unit_path(unit).unlink()
    systemd.systemctl("daemon-reload")
    systemd.systemctl("reset-failed", unit, check=False)
    return [f"- {systemd.unit_path(unit)}"]


def _forget(stored: Path) -> list[str]:
    """Remove a stored topology, and ovsvx's folders once nothing of theirs is left."""
    removed = []
    if stored.exists():
        stored.unlink()
        removed.append(f"- {stored}")
    for folder in (CONFIG_DIR, record.HOST_RECORD_DIR):
        _remove_if_empty(folder)
    return removed


def _remove_if_empty(folder: Path) -> None:
    """ovsvx's own folder goes once nothing but a lock file is left in it."""
    if not folder.is_dir():
        return
    rest = [p for p in folder.iterdir() if p.suffix != ".lock"]
    if not rest:
        for lock in folder.iterdir():
            lock.unlink()
        folder.rmdir()
