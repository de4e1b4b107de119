"""Kernel mode: the tutorial's Linux bridge, veth, vxlan device and onlink route, through netlink.

Everything this mode needs is in its plan (`plan.kernel_plan`); the netlink
reconciler does the comparing and applying.
"""

from __future__ import annotations

from ovsvx.findings import Finding
from ovsvx.netlink import Reconciler
from ovsvx.plan import kernel_plan, render
from ovsvx.record import Deployment
from ovsvx.site import Site
from ovsvx.topology import Host, Mode, Topology


class KernelBackend:
    """Deploys one host of the topology in kernel mode at a site."""

    name = Mode.KERNEL

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.plan = kernel_plan(deployment.topology, site.host)
        self.netlink = Reconciler(site, deployment)

    @staticmethod
    def commands(topology: Topology, host: Host, datapath: str) -> list[str]:
        """The deployment of `host` as the tutorial's commands, in its order."""
        return [line for r in kernel_plan(topology, host) for line in render(r)]

    @staticmethod
    def configure(deployment: Deployment, host: str, options: object) -> None:
        """Kernel mode has nothing to decide beyond the topology.  (Ovs mode's settings stay until its
        destroy has used them: a switch cut short still knows how to take ovs mode down.)"""

    def details(self) -> dict[str, str]:
        return {}

    def inspect(self) -> list[Finding]:
        return self.netlink.inspect(self.plan)

    def apply(self) -> list[str]:
        return self.netlink.detach_recorded_xdp() + self.netlink.apply(self.plan)

    def destroy(self) -> list[str]:
        host = self.site.host
        links = [host.vxlan, host.bridge, *(ns.peer for ns in host.namespaces)]
        return self.netlink.detach_recorded_xdp() + self.netlink.remove(links)
