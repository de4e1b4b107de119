"""Kernel mode: the tutorial's Linux bridge, veth, vxlan device and onlink route, through netlink.

Everything this mode needs is in its plan (`kernel/plan.py`); the netlink
reconciler does the comparing and applying.  Under EVPN the host also runs
FRR (`frr.py`), which adds the peers' routes as their BGP routes arrive.
"""

from __future__ import annotations

from ovsvx.host import frr, frrconf, netstack, routes, secretfile
from ovsvx.host.defaults import BackendDefaults
from ovsvx.host.netlink import Reconciler
from ovsvx.host.record import Deployment
from ovsvx.kernel.layout import KernelLayout
from ovsvx.kernel.plan import kernel_plan
from ovsvx.kernel.trace import KernelForwarding
from ovsvx.model.bgp import BgpView
from ovsvx.model.findings import MISSING, OK, Finding
from ovsvx.model.path import Watched
from ovsvx.model.site import Site
from ovsvx.model.topology import routed_vni_bridge
from ovsvx.model.traffic import Traffic


class KernelBackend(KernelLayout, BackendDefaults):
    """Deploys one host of the topology in kernel mode at a site."""

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.topology = deployment.topology
        self.plan = kernel_plan(deployment.topology, site.host)
        self.netlink = Reconciler(site, deployment)
        self.frr = frr.home(deployment, site) if deployment.topology.evpn else None
        self.deployment = deployment

    def inspect(self) -> list[Finding]:
        findings = self.netlink.inspect(self.plan)
        if self.frr is not None:
            for daemon, pid in frr.running(self.frr).items():
                what = f"frr {daemon} ({self.frr.rundir})"
                findings.append(Finding(what, OK if pid else MISSING, f"pid {pid}" if pid else "not running"))
        return findings

    def apply(self) -> list[str]:
        changes = self.netlink.detach_recorded_xdp() + self.netlink.apply(self.plan)
        if self.frr is not None:
            foreign = routes.foreign_in(self.site.netns)
            configs = frrconf.host_config(
                self.topology, self.site.host, secretfile.bgp_password(self.topology), foreign
            )
            changes += [f"{self.site.host.name}: {line}" for line in frr.start(self.frr, configs)]
        return changes

    def destroy(self) -> list[str]:
        host = self.site.host
        removed = [f"{host.name}: {line}" for line in frr.stop(self.frr)] if self.frr is not None else []
        links = [host.vxlan, host.bridge, *(ns.peer for ns in host.namespaces)]
        if self.topology.evpn:
            links.append(routed_vni_bridge(self.topology))
        return removed + self.netlink.detach_recorded_xdp() + self.netlink.remove(links)

    def daemons(self) -> dict[str, int]:
        """FRR's zebra and bgpd under EVPN, by pid (kernel mode runs nothing else)."""
        return frr.live(self.frr, self.site.host.name) if self.frr is not None else {}

    def tunnel_traffic(self) -> dict[str, Traffic]:
        """The vxlan device's counters (one device for every peer)."""
        counted = netstack.link_traffic(self.site.netns, self.site.host.vxlan)
        return {self.site.host.vxlan: counted} if counted is not None else {}

    def answering(self) -> dict[str, bool]:
        """Each peer, by name: whether the kernel holds a live neighbour entry for its vxlan address (it
        answered the ARP the host sent through the tunnel).  Under EVPN FRR writes those entries from the
        routes: they say nothing of the peer, so nothing is said."""
        if self.topology.evpn:
            return {}
        answered = netstack.answered_neighbours(self.site.netns, self.site.host.vxlan)
        return {peer.name: str(peer.vxlan_address) in answered for peer in self.topology.peers(self.site.host)}

    def bgp(self) -> BgpView:
        return frr.summary(frr.home(self.deployment, self.site), self.topology, self.site.host)

    def forwarding(self) -> KernelForwarding:
        return KernelForwarding(self.site, self.deployment)

    def watched(self, namespace: str | None) -> Watched:
        """The namespace's bridge port, the bridge, the vxlan device (frames before encapsulation and after
        decapsulation) and the NIC."""
        host = self.site.host
        return Watched([*(n.peer for n in host.namespaces if n.name == namespace), host.bridge, host.vxlan])
