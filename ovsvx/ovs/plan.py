"""Ovs mode's desired netlink state of one host, as plain values: what the switch needs around it."""

from __future__ import annotations

from ovsvx.host import plan
from ovsvx.host.plan import Address, MovedAddress, Resource, Sysctl, Up
from ovsvx.model.topology import PHYS_BRIDGE, Host, Topology
from ovsvx.ovs.settings import Datapath


def ovs_plan(topology: Topology, host: Host, datapath: Datapath) -> tuple[tuple[Resource, ...], tuple[Resource, ...]]:
    """Ovs mode's netlink state: (before the switch exists, after it has its internal ports).

    The bridge's internal port carries the gateway address and the tutorial's
    vxlan address (there is no vxlan device: the tunnel is an OVS port), and
    the peers' subnets are routed onto it, so the host itself reaches every
    node as it does in kernel mode.  The userspace (netdev) datapath sends
    tunnel packets from its own stack, so the VTEP address moves from the NIC
    onto br-phy, the bridge that holds the NIC, and it reads its ports beside
    the host's IP stack, which must keep off them; the kernel datapath (system)
    takes its ports' frames before the IP stack and tunnels through the
    kernel's own vxlan device, so it needs neither.
    """
    userspace = datapath == Datapath.NETDEV
    ports = [ns.peer for ns in host.namespaces] if userspace else []
    before: tuple[Resource, ...] = (
        *plan.workloads(host, master=None, mtu=topology.overlay_mtu, tx_offload=not userspace),
        plan.RP_FILTER_ALL,
        plan.FORWARDING,
        *(s for port in ports for s in _port_sysctls(port, ipv6=False)),
    )
    underlay: tuple[Resource, ...] = ()
    if userspace:
        underlay = (
            Up(PHYS_BRIDGE),
            MovedAddress(host.vtep, topology.underlay.prefixlen, host.nic, PHYS_BRIDGE),
            *_port_sysctls(host.nic, ipv6=True),
        )
    after = (
        *underlay,
        Up(host.bridge, topology.overlay_mtu),
        Address(host.bridge, host.gateway, host.prefixlen),
        Address(host.bridge, host.vxlan_address, 32),
        plan.bridge_rp_filter(host),
        # under EVPN the controller routes each peer's subnet as its route arrives
        *(plan.default_routes(host) if topology.evpn else plan.peer_routes(topology, host, via_dev=host.bridge)),
    )
    return before, after


def _port_sysctls(port: str, ipv6: bool) -> tuple[Sysctl, ...]:
    """Keep the host's own IP stack off a device that is an OVS port on the userspace datapath.

    OVS reads such a device through a packet socket, but the kernel still
    receives every frame on it too: it would answer ARP there with the
    device's own MAC and route what arrives, a second copy of every packet.
    `ipv6` keeps IPv6 on (a real NIC may need it); a workload port needs none.
    """
    found = (Sysctl(f"net.ipv4.conf.{port}.arp_ignore", "8"), Sysctl(f"net.ipv4.conf.{port}.forwarding", "0"))
    return found if ipv6 else (*found, Sysctl(f"net.ipv6.conf.{port}.disable_ipv6", "1"))
