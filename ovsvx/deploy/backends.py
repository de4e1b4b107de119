"""The modes ovsvx can deploy a host in, by name.

Each backend deploys one host of the topology at a `Site` and offers the same
verbs: `commands` (the deployment as the commands a person would type), `pieces`
(what the host is made of, as values: what `graph` draws),
`configure` (decide, once per deploy, what the mode needs recorded),
`inspect()` (findings, no change), `apply()` (changes made), `destroy()`
(what it removed), `details()` (what status shows beyond findings) and
`tunnel_traffic()` (each tunnel's counters, by device or port),
`flow_traffic()` (what the flows matched, by purpose; ovs mode) and
`answering()` (which peers answered lately, where the mode can tell).  The
CLI's `--mode` choices come from here.
"""

from __future__ import annotations

from typing import Protocol

from ovsvx.errors import UsageError
from ovsvx.host.plan import Resource
from ovsvx.kernel.backend import KernelBackend
from ovsvx.model.findings import Finding
from ovsvx.model.options import DeployOptions
from ovsvx.model.record import Deployment
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Mode, Topology
from ovsvx.model.traffic import Traffic
from ovsvx.ovs.backend import OvsBackend
from ovsvx.ovs.switch import OvsBridge

#: One piece of a host's desired state: a netlink value, or an OVS bridge with its ports.
Piece = Resource | OvsBridge


class Backend(Protocol):
    name: Mode

    def __init__(self, site: Site, deployment: Deployment) -> None: ...
    @staticmethod
    def commands(topology: Topology, host: Host, datapath: str) -> list[str]: ...
    @staticmethod
    def pieces(topology: Topology, host: Host, datapath: str) -> tuple[Piece, ...]: ...
    @staticmethod
    def configure(deployment: Deployment, host: str, options: DeployOptions) -> None: ...
    def inspect(self) -> list[Finding]: ...
    def apply(self) -> list[str]: ...
    def destroy(self) -> list[str]: ...
    def details(self) -> dict[str, str]: ...
    def tunnel_traffic(self) -> dict[str, Traffic]: ...
    def flow_traffic(self) -> dict[str, Traffic]: ...
    def answering(self) -> dict[str, bool]: ...


BACKENDS: dict[Mode, type[Backend]] = {
    OvsBackend.name: OvsBackend,
    KernelBackend.name: KernelBackend,
}
DEFAULT_MODE = Mode.OVS


def check_mode(mode: str) -> Mode:
    if mode not in BACKENDS:
        raise UsageError(f"mode {mode!r} is not allowed: one of {', '.join(BACKENDS)}")
    return Mode(mode)


def backend(mode: str, site: Site, deployment: Deployment) -> Backend:
    return BACKENDS[check_mode(mode)](site, deployment)
