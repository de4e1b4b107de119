"""Kernel mode: the tutorial's Linux bridge, veth, vxlan device and onlink route, through netlink.

Everything this mode needs is in its plan (`plan.kernel_plan`); the netlink
reconciler does the comparing and applying.  Under EVPN the host also runs
FRR (`frr.py`), which adds the peers' routes as their BGP routes arrive.
"""

from __future__ import annotations

from ovsvx.host import netstack
from ovsvx.host.netlink import Reconciler
from ovsvx.host.plan import Resource, kernel_plan, render, routed_vni_bridge
from ovsvx.kernel import frr
from ovsvx.model.findings import MISSING, OK, Finding
from ovsvx.model.record import Deployment
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Mode, Topology
from ovsvx.model.traffic import Traffic
from ovsvx.ovs.daemons import site_dir


def frr_home(deployment: Deployment, site: Site) -> frr.FrrHome:
    """Where the host's FRR lives: ovsvx's folder for the host (a lab host's, or this machine's)."""
    return frr.host_home(site_dir(deployment, site), site.netns)


class KernelBackend:
    """Deploys one host of the topology in kernel mode at a site."""

    name = Mode.KERNEL

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.topology = deployment.topology
        self.plan = kernel_plan(deployment.topology, site.host)
        self.netlink = Reconciler(site, deployment)
        self.frr = frr_home(deployment, site) if deployment.topology.evpn else None

    @staticmethod
    def commands(topology: Topology, host: Host, datapath: str) -> list[str]:
        """The deployment of `host` as the tutorial's commands, in its order (then FRR's, under EVPN)."""
        lines = [line for r in kernel_plan(topology, host) for line in render(r)]
        if topology.evpn:
            hidden = frr.HIDDEN if topology.bgp and topology.bgp.password_file else None
            lines += frr.render("/etc/frr", frr.host_config(topology, host, hidden))
        return lines

    @staticmethod
    def pieces(topology: Topology, host: Host, datapath: str) -> tuple[Resource, ...]:
        """What `host` is made of in kernel mode (what `graph` draws): the plan's values."""
        return kernel_plan(topology, host)

    @staticmethod
    def configure(deployment: Deployment, host: str, options: object) -> None:
        """Kernel mode has nothing to decide beyond the topology.  (Ovs mode's settings stay until its
        destroy has used them: a switch cut short still knows how to take ovs mode down.)"""

    def details(self) -> dict[str, str]:
        return {}

    def tunnel_traffic(self) -> dict[str, Traffic]:
        """The vxlan device's counters (one device for every peer)."""
        counted = netstack.link_traffic(self.site.netns, self.site.host.vxlan)
        return {self.site.host.vxlan: counted} if counted is not None else {}

    def flow_traffic(self) -> dict[str, Traffic]:
        """Kernel mode has no flows."""
        return {}

    def answering(self) -> dict[str, bool]:
        """Each peer, by name: whether the kernel holds a live neighbour entry for its vxlan address (it
        answered the ARP the host sent through the tunnel).  Under EVPN FRR writes those entries from the
        routes: they say nothing of the peer, so nothing is said."""
        if self.topology.evpn:
            return {}
        answered = netstack.answered_neighbours(self.site.netns, self.site.host.vxlan)
        return {peer.name: str(peer.vxlan_address) in answered for peer in self.topology.peers(self.site.host)}

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
            configs = frr.host_config(self.topology, self.site.host, frr.password(self.topology))
            changes += [f"{self.site.host.name}: {line}" for line in frr.start(self.frr, configs)]
        return changes

    def destroy(self) -> list[str]:
        host = self.site.host
        removed = [f"{host.name}: {line}" for line in frr.stop(self.frr)] if self.frr is not None else []
        links = [host.vxlan, host.bridge, *(ns.peer for ns in host.namespaces)]
        if self.topology.evpn:
            links.append(routed_vni_bridge(self.topology))
        return removed + self.netlink.detach_recorded_xdp() + self.netlink.remove(links)
