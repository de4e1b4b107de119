"""The modes ovsvx can deploy a host in, by name: the one place that knows every mode.

Each mode is a wing of its own (`ovsvx/kernel/`, `ovsvx/ovs/`) behind the
`Backend` interface below; everything else (deploy, the lab, status, trace,
capture, doctor, bench, graph, metrics) reaches a mode only through it, so a
new mode is a new wing and one line here.  The CLI's `--mode` choices come
from here too.

What a mode decided for a host at deploy time (ovs mode: its datapath) is kept
in the record in the mode's own words (`Decided`), read only by the mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ovsvx.errors import UsageError
from ovsvx.host.plan import Resource
from ovsvx.host.record import Deployment
from ovsvx.kernel.backend import KernelBackend
from ovsvx.model.bgp import BgpView
from ovsvx.model.findings import Diagnosis, Finding
from ovsvx.model.options import DeployOptions, Variant
from ovsvx.model.path import Forwarding, Watched
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Mode, Topology
from ovsvx.model.traffic import Traffic
from ovsvx.ovs.backend import OvsBackend
from ovsvx.ovs.switch import OvsBridge

#: One piece of a host's desired state: a netlink value, or an OVS bridge with its ports.
Piece = Resource | OvsBridge
#: What a mode decided for one host, in its own words (the record keeps it; only the mode reads it).
Decided = Mapping[str, Any]


class Backend(Protocol):
    """One mode, deploying one host of the topology at a `Site`.

    Class-level verbs need no deployment: `commands` (the deployment as the
    commands a person would type), `pieces` (what the host is made of, as
    values: what `graph` draws), `foresee` (what `configure` would decide,
    changing nothing), `label` (that decision in a few words, and why),
    `configure` (decide, once per deploy, what the mode needs recorded),
    `raw_frames` (whether its datapath reads the NIC's frames raw, so a lab's
    NICs must checksum in software), `variants` (the columns `bench` measures
    of it), `preconditions` (doctor's checks of the mode), `vtep_carriers` and
    `unaliased_links` (links of its own that doctor must not take for foreign).

    A backend of one host: `inspect()` (findings, no change), `apply()`
    (changes made), `destroy()` (what it removed), `details()` (what status
    shows beyond findings), `tunnel_traffic()` (each tunnel's counters, by
    device or port), `flow_traffic()` (what the flows matched, by purpose),
    `answering()` (which peers answered lately, where the mode can tell),
    `daemons()` (the daemons it started and keeps running, by pid),
    `bgp()` (its BGP sessions and EVPN routes), `tool_env()` (the environment
    its own tools need), `change_feed()` (a command whose every line is a
    change the agent should act on), `forwarding()` (how it forwards, for
    `trace`), `watched()` (where `capture` listens), `settings_figures()`
    (what `bench` records of it), `stop_control()` and `start_control()` (its
    control plane emptied and started again: `bench` times the first packet).
    """

    name: Mode
    xdp_reader: str | None  # who reads an XDP program on the overlay's devices in this mode, if anyone
    system_services: tuple[str, ...]  # the system's services a real host's agent starts after
    needs_loose_rp_filter: bool  # doctor fails a strict net.ipv4.conf.all.rp_filter on a host of this mode

    def __init__(self, site: Site, deployment: Deployment) -> None: ...
    @staticmethod
    def commands(topology: Topology, host: Host, decided: Decided) -> list[str]: ...
    @staticmethod
    def pieces(topology: Topology, host: Host, decided: Decided) -> tuple[Piece, ...]: ...
    @staticmethod
    def foresee(options: DeployOptions) -> dict[str, Any]: ...
    @staticmethod
    def label(decided: Decided) -> tuple[str, str]: ...
    @staticmethod
    def configure(deployment: Deployment, host: str, options: DeployOptions) -> None: ...
    @staticmethod
    def raw_frames(decided: Decided) -> bool: ...
    @staticmethod
    def variants() -> tuple[Variant, ...]: ...
    @staticmethod
    def preconditions(topology: Topology, site: Site, deployed: Mode | None) -> list[Diagnosis]: ...
    @staticmethod
    def vtep_carriers(host: Host) -> set[str]: ...
    @staticmethod
    def unaliased_links(host: Host) -> set[str]: ...
    def inspect(self) -> list[Finding]: ...
    def apply(self) -> list[str]: ...
    def destroy(self) -> list[str]: ...
    def details(self) -> dict[str, str]: ...
    def daemons(self) -> dict[str, int]: ...
    def tunnel_traffic(self) -> dict[str, Traffic]: ...
    def flow_traffic(self) -> dict[str, Traffic]: ...
    def answering(self) -> dict[str, bool]: ...
    def bgp(self) -> BgpView: ...
    def tool_env(self) -> dict[str, str] | None: ...
    def change_feed(self) -> list[str] | None: ...
    def forwarding(self) -> Forwarding: ...
    def watched(self, namespace: str | None) -> Watched: ...
    def settings_figures(self) -> dict[str, str]: ...
    def stop_control(self) -> None: ...
    def start_control(self) -> None: ...


BACKENDS: dict[Mode, type[Backend]] = {
    OvsBackend.name: OvsBackend,
    KernelBackend.name: KernelBackend,
}
DEFAULT_MODE = OvsBackend.name


def check_mode(mode: str) -> Mode:
    if mode not in BACKENDS:
        raise UsageError(f"mode {mode!r} is not allowed: one of {', '.join(BACKENDS)}")
    return Mode(mode)


def vtep_carriers(host: Host) -> set[str]:
    """The links any mode may have moved `host`'s VTEP address onto from its NIC (ovs mode's br-phy on the
    userspace datapath): there the address is still this machine's."""
    return set().union(*(mode.vtep_carriers(host) for mode in BACKENDS.values()))


def backend(mode: str, site: Site, deployment: Deployment) -> Backend:
    return BACKENDS[check_mode(mode)](site, deployment)


def decided(deployment: Deployment, host: str) -> Decided:
    """What `host`'s mode decided at deploy time (nothing, before it decided anything)."""
    return deployment.settings.get(host, {})


def variants() -> dict[str, Variant]:
    """Every column `bench` can measure, by name, in the order each mode lists its own."""
    return {v.column: v for b in BACKENDS.values() for v in b.variants()}
