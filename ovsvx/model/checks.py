"""What a topology's fields must say together: addresses inside their subnets and distinct, names
distinct on a host and apart from the ones ovsvx derives, VTEPs apart, and what EVPN, its route policy
and IPsec ask of the rest.  Run on every topology read or generated."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ovsvx.errors import TopologyError
from ovsvx.model.topology import IKE_PORTS, NEVER_ROUTED, Host, Topology, derived_names, usable


def check_host(host: Host, path: str) -> None:
    """Addresses inside their subnet and distinct; interface names distinct on the host."""
    _routable(host.subnet, f"{path}.subnet")
    own = [("gateway", host.gateway), ("vxlan_address", host.vxlan_address)]
    own += [(f"namespaces[{i}].address", ns.address) for i, ns in enumerate(host.namespaces)]
    seen: dict[IPv4Address, str] = {}
    for field, addr in own:
        if not usable(addr, host.subnet):
            raise TopologyError(f"{path}.{field}: {addr} is not allowed: a host address inside subnet {host.subnet}")
        if addr in seen:
            raise TopologyError(f"{path}.{field}: {addr} is already used by {path}.{seen[addr]}")
        seen[addr] = field
    names = [("nic", host.nic), ("bridge", host.bridge), ("vxlan", host.vxlan)]
    names += [(f"namespaces[{i}].peer", ns.peer) for i, ns in enumerate(host.namespaces)]
    taken: dict[str, str] = {}
    for field, name in names:
        if name in taken:
            raise TopologyError(f"{path}.{field}: interface {name!r} is already used by {path}.{taken[name]}")
        taken[name] = field


def check(topology: Topology) -> None:
    """Names and addresses unique across hosts; subnets apart from each other and from the underlay."""
    names: dict[str, str] = {}
    vteps: dict[IPv4Address, str] = {}
    nets: list[tuple[IPv4Network, str]] = [(topology.underlay, "underlay")]
    _routable(topology.underlay, "underlay")
    for i, host in enumerate(topology.hosts):
        path = f"hosts[{i}]"
        _check_names(topology, host, path)
        for field, name in [("name", host.name)] + [
            (f"namespaces[{j}].name", ns.name) for j, ns in enumerate(host.namespaces)
        ]:
            if name in names:
                raise TopologyError(f"{path}.{field}: name {name!r} is already used by {names[name]}")
            names[name] = f"{path}.{field}"
        if not usable(host.vtep, topology.underlay):
            raise TopologyError(
                f"{path}.vtep: {host.vtep} is not allowed: a host address inside underlay {topology.underlay}"
            )
        if host.vtep in vteps:
            raise TopologyError(f"{path}.vtep: {host.vtep} is already used by {vteps[host.vtep]}")
        vteps[host.vtep] = f"{path}.vtep"
        for other, where in nets:
            if host.subnet.overlaps(other):
                raise TopologyError(f"{path}.subnet: {host.subnet} overlaps {where} ({other})")
        nets.append((host.subnet, f"{path}.subnet"))
    _check_control(topology, vteps)
    _check_encryption(topology)


def _check_names(topology: Topology, host: Host, path: str) -> None:
    """No interface the topology names on the host is one ovsvx derives there or one every stack has; a
    namespace's own end is no `lo` (the namespace's loopback)."""
    derived = derived_names(topology, host)
    named = [("nic", host.nic), ("bridge", host.bridge), ("vxlan", host.vxlan)]
    named += [(f"namespaces[{j}].peer", ns.peer) for j, ns in enumerate(host.namespaces)]
    for field, name in named:
        if name in derived:
            raise TopologyError(f"{path}.{field}: {name!r} is not allowed: it is the name of {derived[name]}")
    for j, ns in enumerate(host.namespaces):
        if ns.veth == "lo":
            raise TopologyError(f"{path}.namespaces[{j}].veth: 'lo' is not allowed: it is the namespace's loopback")


def _routable(network: IPv4Network, field: str) -> None:
    """A network where hosts can live: none of NEVER_ROUTED's ranges."""
    for reserved, what in NEVER_ROUTED.items():
        if network.overlaps(reserved):
            raise TopologyError(f"{field}: {network} is not allowed: it overlaps {reserved}, {what}")


#: Under EVPN the hosts' firewall admits the whole underlay to the VXLAN port (peers are not listed): a
#: /16 holds 65,534 VTEPs, and anything wider would open the tunnel to a far larger part of the network.
EVPN_WIDEST_UNDERLAY = 16


def _check_control(topology: Topology, vteps: dict[IPv4Address, str]) -> None:
    """EVPN needs its [bgp] table, static has no use for one; route reflectors sit on the underlay, apart
    from the VTEPs."""
    if topology.bgp is None:
        if topology.evpn:
            raise TopologyError('bgp: missing: control = "evpn" needs a [bgp] table with asn and route_reflectors')
        return
    if not topology.evpn:
        raise TopologyError('bgp: only read with control = "evpn" (control is "static"): remove [bgp] or set control')
    if topology.underlay.prefixlen < EVPN_WIDEST_UNDERLAY:
        raise TopologyError(
            f"underlay: {topology.underlay} is too wide under EVPN: at most a /{EVPN_WIDEST_UNDERLAY} "
            "(the firewall admits the whole underlay to the VXLAN port, since peers come and go)"
        )
    for i, address in enumerate(topology.bgp.route_reflectors):
        field = f"bgp.route_reflectors[{i}]"
        if not usable(address, topology.underlay):
            raise TopologyError(
                f"{field}: {address} is not allowed: a host address inside underlay {topology.underlay}"
            )
        if address in vteps:
            raise TopologyError(f"{field}: {address} is already used by {vteps[address]}")
    _check_route_policy(topology)


def _check_route_policy(topology: Topology) -> None:
    """The overlay's range holds every host's subnet (else the hosts would refuse each other's routes),
    and is no underlay and nothing that is never routed."""
    assert topology.bgp is not None
    for i, network in enumerate(topology.bgp.accept):
        field = f"bgp.accept[{i}]"
        _routable(network, field)
        if network.overlaps(topology.underlay):
            raise TopologyError(f"{field}: {network} is not allowed: it overlaps the underlay {topology.underlay}")
    for i, host in enumerate(topology.hosts):
        if not any(host.subnet.subnet_of(network) for network in topology.overlay_range):
            ranges = ", ".join(map(str, topology.overlay_range))
            raise TopologyError(f"hosts[{i}].subnet: {host.subnet} lies outside bgp.accept ({ranges})")
        if host.subnet.prefixlen > topology.bgp.max_prefixlen:
            raise TopologyError(
                f"hosts[{i}].subnet: {host.subnet} is longer than bgp.max_prefixlen (/{topology.bgp.max_prefixlen})"
            )


def _check_encryption(topology: Topology) -> None:
    """IPsec needs its [ipsec] table, and no IPsec has no use for one."""
    if topology.ipsec is None:
        if topology.encrypted:
            raise TopologyError(
                'ipsec: missing: encryption = "ipsec" needs an [ipsec] table with psk_file, or cert, key and ca'
            )
        return
    if not topology.encrypted:
        raise TopologyError(
            'ipsec: only read with encryption = "ipsec" (encryption is "none"): remove [ipsec] or set it'
        )
    if topology.port in IKE_PORTS:
        raise TopologyError(
            f'port: {topology.port} is not allowed with encryption = "ipsec": it is IKE\'s {IKE_PORTS[topology.port]}'
        )
