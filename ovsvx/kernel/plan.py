"""Kernel mode's desired netlink state of one host, as plain values: the tutorial's layout, in its order."""

from __future__ import annotations

from ovsvx.host import plan
from ovsvx.host.plan import Address, Bridge, FloodEntry, Resource, Up, Vxlan
from ovsvx.model.topology import Host, Topology, mac_for, routed_vni_bridge


def kernel_plan(topology: Topology, host: Host) -> tuple[Resource, ...]:
    """Everything `host` needs in kernel mode, in the order the tutorial builds it."""
    if topology.evpn:
        return evpn_kernel_plan(topology, host)
    peers = topology.peers(host)
    single = peers[0].vtep if len(peers) == 1 else None
    steps: list[Resource] = [
        Vxlan(host.vxlan, topology.vni, topology.port, host.vtep, single, host.nic, mac_for(host.vxlan_address)),
        *(FloodEntry(host.vxlan, p.vtep) for p in peers if single is None),
        # ESP's bytes come after the vxlan device's own MTU (its NIC's less VXLAN's): the device says less
        *([Up(host.vxlan, topology.overlay_mtu)] if topology.encrypted else []),
        Address(host.vxlan, host.vxlan_address, 32),
        *gateway_side(host),
        *plan.peer_routes(topology, host, via_dev=host.vxlan),
    ]
    return tuple(steps)


def gateway_side(host: Host) -> list[Resource]:
    """The namespaces' side of kernel mode, the same in both controls: the bridge that is their gateway,
    their veths, and the tutorial's sysctls."""
    return [
        Bridge(host.bridge),
        Address(host.bridge, host.gateway, host.prefixlen),
        *plan.workloads(host, master=host.bridge, mtu=None, tx_offload=True),
        plan.RP_FILTER_ALL,
        plan.bridge_rp_filter(host),
        plan.FORWARDING,
    ]


def evpn_kernel_plan(topology: Topology, host: Host) -> tuple[Resource, ...]:
    """Kernel mode under EVPN: the tutorial's layout, with the VNI made EVPN's routed VNI (symmetric IRB).

    The vxlan device names no peer and is the only port of a bridge of its own
    (`vni100`), which carries the tutorial's vxlan address and its MAC: that is
    the router MAC FRR advertises with this host's subnet (a type-5 route), and
    the MAC the peers' routed frames are sent to, as in static mode.  Nothing
    here depends on the other hosts: FRR adds each peer's route, router-MAC
    neighbour and forwarding entry as its route arrives, and takes them away
    when it is withdrawn.  The namespaces' side is as in static mode.
    """
    svi = routed_vni_bridge(topology)
    router_mac = mac_for(host.vxlan_address)
    steps: list[Resource] = [
        Bridge(svi, router_mac),
        Address(svi, host.vxlan_address, 32),
        Vxlan(
            host.vxlan, topology.vni, topology.port, host.vtep, None, host.nic, mac_for(host.vtep), False, master=svi
        ),
        *gateway_side(host),
        *plan.default_routes(host),
    ]
    return tuple(steps)
