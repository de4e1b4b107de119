"""What `ovsvx graph` draws: a topology as deploy would make it, or a deployment with its live state.

The drawing itself is `graph` (pure); this module gathers its inputs: each
host's mode, datapath and pieces (from its backend), and, for a deployment,
what `status` finds, the tunnels' counters and the BGP sessions.  No traffic
is sent and nothing is changed.
"""

from __future__ import annotations

from collections.abc import Mapping

from ovsvx.deploy.backends import BACKENDS, Decided, backend, decided
from ovsvx.deploy.deploy import Scope, find_scope, resolve_modes
from ovsvx.deploy.status import HostStatus, status
from ovsvx.host import record
from ovsvx.host.record import Deployment
from ovsvx.model.findings import OK
from ovsvx.model.options import DeployOptions
from ovsvx.model.topology import Mode, Topology
from ovsvx.observe import graph
from ovsvx.observe.graph import Live, Picture


def sketched(topology: Topology, requested: Mapping[str, str], options: DeployOptions) -> Picture:
    """The topology alone, each host as deploy would make it (what its mode decides, as `plan` would
    foresee it, without changing anything)."""
    modes = resolve_modes(topology, requested)
    return _drawn(topology, modes, {h: BACKENDS[mode].foresee(options) for h, mode in modes.items()}, lab=False)


def deployed_here() -> Scope | None:
    """The deployment `status` would show without --host or --prefix, if there is one."""
    scope = find_scope(None, None)
    return scope if record.load(scope.kind, scope.prefix) is not None else None


def observed(scope: Scope) -> Picture:
    """A deployment, coloured by what `status` finds, with its tunnels' packets and BGP sessions.  A real
    host knows only its own state: its peers are drawn as the topology has them, uncoloured."""
    deployment, hosts = status(scope)
    topology = deployment.topology
    modes = resolve_modes(topology, {}, deployment.modes)
    drawn = _drawn(topology, modes, {h: decided(deployment, h) for h in modes}, lab=deployment.is_lab)
    return graph.with_live(drawn, _live(deployment, hosts))


def _drawn(topology: Topology, modes: Mapping[str, Mode], decisions: Mapping[str, Decided], lab: bool) -> Picture:
    """Each host's pieces, and its box named with its mode and what the mode decided (a datapath)."""
    pieces = {h.name: BACKENDS[modes[h.name]].pieces(topology, h, decisions[h.name]) for h in topology.hosts}
    labels = {h: BACKENDS[mode].label(decisions[h])[0] for h, mode in modes.items()}
    return graph.picture(topology, modes, pieces, labels, lab)


def _live(deployment: Deployment, hosts: Mapping[str, HostStatus]) -> Live:
    states: dict[str, str] = {}
    for name, found in hosts.items():
        for finding in found.findings:
            if finding.piece:
                piece = graph.key(name, finding.piece)
                states[piece] = graph.worst([states.get(piece, OK), finding.state])
    traffic = {
        graph.key(site.host.name, tunnel): counted
        for site in deployment.sites()
        for tunnel, counted in backend(deployment.modes[site.host.name], site, deployment).tunnel_traffic().items()
    }
    sessions = {
        (name, session.peer): session.state
        for name, found in hosts.items()
        for session in (found.bgp.sessions if found.bgp else [])
    }
    host_states = {name: graph.worst(f.state for f in found.findings) for name, found in hosts.items()}
    return Live(states, host_states, traffic, sessions)
