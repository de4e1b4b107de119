"""What a kernel-mode host is made of and needs, from the topology alone: its plan's values (what `graph`
draws), the tutorial's commands (`plan`), what doctor checks of it, the bench's columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ovsvx.host import frr, frrconf
from ovsvx.host.plan import Resource, render
from ovsvx.host.record import Deployment
from ovsvx.kernel.plan import kernel_plan
from ovsvx.model.findings import Diagnosis, Verdict
from ovsvx.model.options import DeployOptions, Variant
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Mode, Topology


class KernelLayout:
    """Kernel mode as a whole, before any host is deployed.  Each host's `KernelBackend` is one too."""

    name = Mode.KERNEL
    xdp_reader: str | None = None  # nothing of kernel mode's reads through XDP: a program there is a leftover
    system_services: tuple[str, ...] = ()  # the kernel is there already
    needs_loose_rp_filter = True  # the tutorial's layout: all.rp_filter=0, which a strict filter undoes

    @staticmethod
    def commands(topology: Topology, host: Host, decided: Mapping[str, Any]) -> list[str]:
        """The deployment of `host` as the tutorial's commands, in its order (then FRR's, under EVPN)."""
        lines = [line for r in kernel_plan(topology, host) for line in render(r)]
        if topology.evpn:
            hidden = frrconf.HIDDEN if topology.bgp and topology.bgp.password_file else None
            lines += frrconf.render("/etc/frr", frrconf.host_config(topology, host, hidden))
        return lines

    @staticmethod
    def pieces(topology: Topology, host: Host, decided: Mapping[str, Any]) -> tuple[Resource, ...]:
        """What `host` is made of in kernel mode (what `graph` draws): the plan's values."""
        return kernel_plan(topology, host)

    @staticmethod
    def foresee(options: DeployOptions) -> dict[str, Any]:
        """Kernel mode has nothing to decide beyond the topology."""
        return {}

    @staticmethod
    def label(decided: Mapping[str, Any]) -> tuple[str, str]:
        return "", ""

    @staticmethod
    def configure(deployment: Deployment, host: str, options: DeployOptions) -> None:
        """Nothing to decide.  (Ovs mode's settings stay until its destroy has used them: a switch cut short
        still knows how to take ovs mode down.)"""

    @staticmethod
    def raw_frames(decided: Mapping[str, Any]) -> bool:
        """The kernel's stack reads the NIC: checksum offload is completed on the way."""
        return False

    @staticmethod
    def variants() -> tuple[Variant, ...]:
        """Kernel mode, the bench's baseline; and encrypted, beside it: what ESP costs."""
        return Variant(Mode.KERNEL, Mode.KERNEL), Variant("ipsec", Mode.KERNEL, encrypted=True)

    @staticmethod
    def preconditions(topology: Topology, site: Site, deployed: Mode | None) -> list[Diagnosis]:
        """Under EVPN a host in kernel mode (or not yet deployed) runs FRR: it must be installed."""
        if not topology.evpn or deployed not in (None, Mode.KERNEL):
            return []
        if frr.installed():
            return [Diagnosis(Verdict.OK, "FRR installed: kernel mode speaks BGP EVPN with zebra and bgpd")]
        return [
            Diagnosis(
                Verdict.FAIL,
                f"FRR is not installed (no zebra or bgpd in {frrconf.FRR_BIN}): kernel mode under EVPN runs them",
                "apt-get install frr (scripts/setup does)",
            )
        ]

    @staticmethod
    def vtep_carriers(host: Host) -> set[str]:
        return set()

    @staticmethod
    def unaliased_links(host: Host) -> set[str]:
        return set()
