"""Deploy, destroy and inspect a whole deployment: a lab on this machine, or this machine as one host.

A `Scope` says which: ``Scope.lab(prefix)`` simulates every host of the
topology in namespaces; ``Scope.real(host)`` deploys the named host on this
machine.  Both write the deployment record before the first change and hold
its lock for the whole operation, then hand each host's `Site` to the backend
of its mode.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NoReturn

from ovsvx import waits
from ovsvx.deploy import lab
from ovsvx.deploy.backends import BACKENDS, DEFAULT_MODE, Backend, backend, check_mode, decided, vtep_carriers
from ovsvx.errors import ApplyError, ConflictError, OvsvxError, UsageError, quiet_after_interrupt, unexpected
from ovsvx.host import charon, credentials, ipsec, netstack, preflight, record, swanctl
from ovsvx.host.firewall import Firewall
from ovsvx.host.firewall import commands as firewall_commands
from ovsvx.host.plan import Bridge, Resource, Veth, Vxlan
from ovsvx.host.record import Deployment, Kind
from ovsvx.model import changes
from ovsvx.model import topology as topo
from ovsvx.model.bgp import BgpView
from ovsvx.model.options import DeployOptions
from ovsvx.model.site import Site
from ovsvx.model.topology import Mode, Topology

# Hosts deployed at once.  Hosts do not depend on each other, and most of a
# host's time is spent waiting for its daemons, so a 32-host lab goes several
# times faster; more would only queue on the CPUs.
PARALLEL_HOSTS = 8


@dataclass(frozen=True)
class Scope:
    kind: Kind
    prefix: str = ""
    host: str | None = None

    @classmethod
    def lab(cls, prefix: str) -> Scope:
        return cls(Kind.LAB, record.check_prefix(prefix))

    @classmethod
    def real(cls, host: str) -> Scope:
        return cls(Kind.HOST, "", host)

    def describe(self) -> str:
        if self.kind == Kind.HOST:
            return f"host {self.host}"
        return f"lab {self.prefix!r}" if self.prefix else "lab"


@dataclass(frozen=True)
class Report:
    deployment: Deployment
    changes: list[str]
    warnings: list[str]


def resolve_modes(
    topology: Topology,
    requested: Mapping[str, str],
    deployed: Mapping[str, Mode] | None = None,
    default: Mode = DEFAULT_MODE,
) -> dict[str, Mode]:
    """The mode of each host: the command line wins, then the mode it is deployed in (so a plain
    `ovsvx deploy` repairs rather than switches), then the topology's `mode`, then the default."""
    names = {h.name for h in topology.hosts}
    for name in requested:
        if name not in names and name != "*":
            raise UsageError(f"--mode names unknown host {name!r}: the topology has {', '.join(sorted(names))}")
    fallback = requested.get("*")
    deployed = deployed or {}
    return {
        h.name: check_mode(requested.get(h.name) or fallback or deployed.get(h.name) or h.mode or default)
        for h in topology.hosts
    }


def _open(scope: Scope, topology: Topology) -> Deployment:
    """The deployment's record, or a new one; a record of another topology is refused unless the change
    applies in place (`changes.refusal`: hosts or namespaces added; the caller retires hosts that left)."""
    existing = record.load(scope.kind, scope.prefix)
    if existing is None:
        return Deployment(scope.kind, scope.prefix, topology)
    if (why := changes.refusal(existing.topology, topology)) is not None:
        raise ConflictError(
            f"the {scope.describe()} was deployed from another topology, and {why}: only hosts and namespaces "
            "added apply in place; run `ovsvx destroy` first"
        )
    if scope.kind == Kind.HOST and scope.host not in existing.modes:
        raise ConflictError(
            f"this machine is deployed as {', '.join(existing.modes)}, not {scope.host}; run `ovsvx destroy` first"
        )
    return existing


def planned(
    topology: Topology, requested: Mapping[str, str], options: DeployOptions, host: str | None = None
) -> list[tuple[str, list[str]]]:
    """What `ovsvx plan` prints, changing nothing: per host (or only `host`), a heading naming its mode
    (and what the mode would decide, as deploy would without changing anything) and the commands."""
    modes = resolve_modes(topology, requested)
    sections = []
    for h in [topology.host(host)] if host else topology.hosts:
        chosen = BACKENDS[modes[h.name]]
        decided = chosen.foresee(options)
        what, why = chosen.label(decided)
        commands = [*firewall_commands(topology, h), *swanctl.commands(topology, h)]
        commands += chosen.commands(topology, h, decided)
        sections.append((f"on {h.name} ({modes[h.name]} mode{f', {what}: {why}' if what else ''})", commands))
    return sections


def deploy(
    scope: Scope, topology: Topology, requested: dict[str, str], options: DeployOptions = DeployOptions()
) -> Report:
    """Build or repair the deployment; a second run reports no changes.

    `requested` is the command line's --mode: {"*": MODE} for every host, or per host name; a host it
    leaves out keeps the mode it is deployed in (`resolve_modes`), read under the lock, so a concurrent
    switch is never undone.  A host deployed in another mode before is switched: the old mode's pieces
    are removed, then the new mode's built.
    """
    preflight.require_root()
    warnings: list[str] = []
    if scope.kind == Kind.HOST:
        this = topology.host(scope.host or "")
        warnings += preflight.check_real_host(topology, this, vtep_carriers(this))
    with record.locked(scope.kind, scope.prefix):
        deployment = _open(scope, topology)
        retired = _retire(deployment, topology)
        modes = resolve_modes(topology, requested, deployment.modes)
        if scope.kind == Kind.HOST:
            modes = {scope.host or "": modes[scope.host or ""]}
        fresh = not deployment.path.exists()
        leaving = _leaving(deployment, modes)
        deployment.modes = modes
        deployment.leaving = {name: [b.name for b in old] for name, old in leaving.items()}
        if options.firewall is not None:
            deployment.firewall = options.firewall
        if deployment.firewall:
            preflight.require_tools("nft")
        elif topology.encrypted:
            raise UsageError(
                '--no-firewall is not allowed with encryption = "ipsec": the firewall keeps VXLAN from going in '
                "clear when charon is gone"
            )
        else:
            warnings.append(NO_FIREWALL_WARNING.format(port=topology.port, vni=topology.vni))
        if topology.encrypted:
            charon.require_installed()
            for name in modes:  # a file that cannot serve is refused before anything changes
                credentials.read_credentials(topology, topology.host(name))
        for name, mode in modes.items():
            BACKENDS[mode].configure(deployment, name, options)
        deployment.save()  # the record exists before the first change

        def build(site: Site) -> list[str]:
            changes = []
            name = site.host.name
            for old in leaving.get(name, []):
                changes.append(f"{name}: switching from {old.name} to {modes[name]} mode")
                changes += old.destroy()
            if name in leaving:
                deployment.note_leaving(name, [])
            changes += _firewall(site, deployment)
            changes += ipsec.HostIpsec(site, deployment).apply()
            return changes + backend(modes[site.host.name], site, deployment).apply()

        try:
            changes = retired + (lab.build(deployment) if deployment.is_lab else [])
            changes += each_site(deployment.sites(), build)
        except (Exception, KeyboardInterrupt) as caught:
            _failed(caught, deployment, fresh)
        if deployment.is_lab and topology.evpn:
            warnings += _await_convergence(deployment)
        return Report(deployment, changes, warnings)


def _retire(deployment: Deployment, topology: Topology) -> list[str]:
    """Take down the hosts that left the topology (EVPN: their peers forget them by BGP), then adopt the
    new topology.  Nothing to do when the topology is the record's."""
    if deployment.topology == topology:
        return []
    names = {h.name for h in topology.hosts}
    gone = [site for site in deployment.sites() if site.host.name not in names]
    removed = each_site(gone, lambda site: _take_down(deployment, site)) if gone else []
    for site in gone:
        if deployment.is_lab:
            removed += lab.retire_host(deployment, site.host.name)
        deployment.forget_host(site.host.name)
    deployment.topology = topology
    deployment.save()
    return removed


#: How long a lab deploy under EVPN waits for every host to hold every other host's route; BGP takes
#: seconds (os-ken redials every 10 s), so this only bounds a lab that does not converge.
CONVERGE_S = 30.0


def bgp_view(deployment: Deployment, site: Site) -> BgpView:
    """A host's BGP sessions and EVPN routes, as its mode's speaker knows them."""
    return backend(deployment.modes[site.host.name], site, deployment).bgp()


def unconverged(deployment: Deployment) -> dict[str, int]:
    """The lab's hosts that do not hold a route of every other host yet, with how many they hold."""
    expected = len(deployment.topology.hosts) - 1
    held = {site.host.name: len(bgp_view(deployment, site).received) for site in deployment.sites()}
    return {name: count for name, count in held.items() if count < expected}


def _await_convergence(deployment: Deployment) -> list[str]:
    """Wait until BGP has given every host of the lab every other host's route, so that what deploy
    returns to is a lab that verifies; a warning (not an error) when it does not happen in time."""
    if waits.until(lambda: not unconverged(deployment), CONVERGE_S, interval=0.2):
        return []
    lacking = ", ".join(f"{name} holds {count}" for name, count in sorted(unconverged(deployment).items()))
    return [
        f"BGP EVPN has not converged after {waits.scaled(CONVERGE_S):g} s ({lacking} of "
        f"{len(deployment.topology.hosts) - 1} routes): see `ovsvx status`"
    ]


UNDONE = "the deploy was undone: nothing is left"
PARTLY_CHANGED = "the deployment is partly changed: run `ovsvx deploy` again once that is fixed, or `ovsvx destroy`"


def _failed(caught: BaseException, deployment: Deployment, fresh: bool) -> NoReturn:
    """Whatever stopped a deploy, it ends as one line saying what failed and what is left: a first deploy
    undoes itself (a machine as it was), a repair or a switch says it is partly done."""
    interrupted = isinstance(caught, KeyboardInterrupt)
    if interrupted:
        quiet_after_interrupt()
    failure = caught if isinstance(caught, (OvsvxError, KeyboardInterrupt)) else unexpected(caught)
    if not fresh:
        if interrupted or not isinstance(failure, ApplyError):  # a refusal comes before its host changes
            raise caught if interrupted else failure from None
        raise ApplyError(f"{failure}; {PARTLY_CHANGED}") from None
    try:
        with _uninterrupted():
            _remove(deployment)
    except Exception as err:  # noqa: BLE001 - any failure of the undo is reported with the first one
        undo = err if isinstance(err, OvsvxError) else unexpected(err)
        raise type(failure)(f"{failure} (and undoing the deploy failed too: {undo}; run `ovsvx destroy`)") from None
    if interrupted:
        raise caught
    raise type(failure)(f"{failure}; {UNDONE}") from None


def _leaving(deployment: Deployment, modes: Mapping[str, Mode]) -> dict[str, list[Backend]]:
    """Per host, the backends of the modes a deploy must take down before building the wanted one: the
    mode deployed now, when another is wanted, and those of a switch that was cut short (the record keeps
    them until they are gone).  Made before the new mode's `configure`, so each sees its own settings."""
    found = {}
    for site in deployment.sites():
        name = site.host.name
        going = dict.fromkeys([*deployment.leaving.get(name, []), deployment.modes.get(name)])
        old = [backend(mode, site, deployment) for mode in going if mode is not None and mode != modes.get(name)]
        if old:
            found[name] = old
    return found


def each_site(chosen: list[Site], work: Callable[[Site], list[str]]) -> list[str]:
    """Run `work` for every site, up to PARALLEL_HOSTS at once; the lines come back in site order.

    Every site that started is let finish before an error goes up, so an undo
    never races a half-built host; the first failing site, in site order, is the
    one reported.  Sites not yet started when one fails are not started.
    """
    if len(chosen) <= 1:
        return [line for site in chosen for line in work(site)]
    pool = ThreadPoolExecutor(
        max_workers=min(PARALLEL_HOSTS, len(chosen)), thread_name_prefix="ovsvx-host", initializer=_main_thread_signals
    )
    futures = [pool.submit(work, site) for site in chosen]
    try:
        wait_all(futures, return_when="FIRST_EXCEPTION")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    lines: list[str] = []
    for future in futures:
        if not future.cancelled():
            lines += future.result()  # raises the site's own error
    return lines


def _main_thread_signals() -> None:
    """Leave Ctrl-C to the main thread, the only one where Python runs signal handlers: delivered to a
    host's thread instead, it would reach the main thread's wait only once some host finished.  (The
    daemons a host's thread starts inherit the mask; ovsvx stops them with SIGTERM, which stays open.)"""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C is held back while a failed deploy undoes itself: half an undo would leave debris."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


NO_FIREWALL_WARNING = (
    "--no-firewall: ovsvx adds no nftables rules, so any machine that reaches UDP port {port} "
    "here can inject frames into VNI {vni} (kernel mode accepts them from any source)"
)


def _firewall(site: Site, deployment: Deployment) -> list[str]:
    """Admit the VXLAN port only from the peers, before the tunnel exists; or take ovsvx's rules away."""
    wall = Firewall(site, deployment.topology)
    return wall.apply() if deployment.firewall else wall.remove()


def _take_down(deployment: Deployment, site: Site) -> list[str]:
    """Everything one host has: its modes (both, for a switch cut short) and its firewall table."""
    name = site.host.name
    here = dict.fromkeys([*deployment.leaving.get(name, []), deployment.modes[name]])
    # charon first: a backend's destroy may take the host's folder, and with it charon's pidfile
    removed = ipsec.HostIpsec(site, deployment).remove()
    removed += [line for mode in here for line in backend(mode, site, deployment).destroy()]
    if site.netns is None or netstack.netns_exists(site.netns):  # a lab host's table goes with its netns
        removed += Firewall(site, deployment.topology).remove()
    return removed


def _remove(deployment: Deployment) -> list[str]:
    removed = each_site(deployment.sites(), lambda site: _take_down(deployment, site))
    if deployment.is_lab:
        removed += lab.teardown(deployment)
    deployment.forget()
    return removed


def destroy(scope: Scope) -> list[str]:
    """Remove everything the deployment made; nothing deployed is not an error."""
    preflight.require_root()
    with record.locked(scope.kind, scope.prefix):
        deployment = record.load(scope.kind, scope.prefix)
        return [] if deployment is None else _remove(deployment)


def daemon_pids(deployment: Deployment) -> dict[str, int]:
    """The daemons the deployment's hosts keep running (the controller, FRR's, charon), what -> pid."""
    found: dict[str, int] = {}
    for site in deployment.sites():
        found |= backend(deployment.modes[site.host.name], site, deployment).daemons()
        found |= ipsec.HostIpsec(site, deployment).daemons()
    return found


def own_devices(deployment: Deployment) -> frozenset[str]:
    """The names of the devices the deployment's hosts are made of on their stacks, and what they stand on
    (the NIC, Open vSwitch's tunnel device): what the agent's watches count as ovsvx's."""
    names: set[str] = set()
    for site in deployment.sites():
        host, mode = site.host, deployment.modes[site.host.name]
        names |= {host.nic, topo.kernel_tunnel_device(deployment.topology.port)}
        names |= BACKENDS[mode].vtep_carriers(host)
        for piece in BACKENDS[mode].pieces(deployment.topology, host, decided(deployment, host.name)):
            if isinstance(piece, (Vxlan, Bridge, Veth)):
                names.add(piece.name)
            elif not isinstance(piece, Resource):  # an OVS bridge, with its ports
                names |= {piece.name, *(port.name for port in piece.ports)}
    return frozenset(names)


def node_env(deployment: Deployment, node: str) -> dict[str, str] | None:
    """The environment for a command on `node`: a host's mode may point its own tools somewhere (a lab
    host's OVS); a namespace needs nothing."""
    if node not in deployment.modes:
        return None
    return backend(deployment.modes[node], deployment.site_of(node), deployment).tool_env()


def find_scope(host: str | None, prefix: str | None) -> Scope:
    """The deployment a command means: --host, --prefix, else the default lab, else this host's."""
    if host is not None:
        return Scope.real(host)
    if prefix is not None:
        return Scope.lab(prefix)
    if record.load(Kind.LAB, "") is None:
        here = record.load(Kind.HOST, "")
        if here is not None:
            return Scope.real(next(iter(here.modes)))
    return Scope.lab("")
