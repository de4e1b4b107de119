"""The modes ovsvx can deploy a host in, by name.

Each backend deploys one host of the topology at a `Site` and offers the same
verbs: `commands` (the deployment as the commands a person would type),
`configure` (decide, once per deploy, what the mode needs recorded),
`inspect()` (findings, no change), `apply()` (changes made), `destroy()`
(what it removed) and `details()` (what status shows beyond findings).  The
CLI's `--mode` choices come from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ovsvx.errors import UsageError
from ovsvx.findings import Finding
from ovsvx.kernel import KernelBackend
from ovsvx.ovs import OvsBackend
from ovsvx.record import Deployment
from ovsvx.site import Site
from ovsvx.topology import Host, Topology


@dataclass(frozen=True)
class DeployOptions:
    """Command-line choices that shape a deployment beyond the topology.

    A choice left out keeps what the deployment has (a plain `ovsvx deploy` repairs, it does not
    reset), so only what the user says changes anything.
    """

    controller: bool = True  # ovs mode: flows from the os-ken controller, else from flows_dir
    flows_dir: Path = Path("flows")
    # None, for each of these: what the host is deployed with now, else the default
    datapath: str | None = None  # ovs mode: auto, system or netdev
    port_type: str | None = None  # ovs mode, userspace datapath: auto, system, afxdp or afxdp-nonpmd
    firewall: bool | None = None  # the VXLAN port admits only the peer VTEPs (nftables table inet ovsvx)
    ovs_config: tuple[str, ...] | None = None  # ovs mode: [HOST:]KEY=VALUE for OVS's other_config


class Backend(Protocol):
    name: str

    def __init__(self, site: Site, deployment: Deployment) -> None: ...
    @staticmethod
    def commands(topology: Topology, host: Host, datapath: str) -> list[str]: ...
    @staticmethod
    def configure(deployment: Deployment, host: str, options: DeployOptions) -> None: ...
    def inspect(self) -> list[Finding]: ...
    def apply(self) -> list[str]: ...
    def destroy(self) -> list[str]: ...
    def details(self) -> dict[str, str]: ...


BACKENDS: dict[str, type[Backend]] = {
    OvsBackend.name: OvsBackend,
    KernelBackend.name: KernelBackend,
}
DEFAULT_MODE = OvsBackend.name


def check_mode(mode: str) -> str:
    if mode not in BACKENDS:
        raise UsageError(f"mode {mode!r} is not allowed: one of {', '.join(BACKENDS)}")
    return mode


def backend(mode: str, site: Site, deployment: Deployment) -> Backend:
    return BACKENDS[check_mode(mode)](site, deployment)
