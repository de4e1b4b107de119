"""Large topologies in the tutorial's pattern (host i: 192.168.i.0/24, VTEPs from 10.33.30.150), for
`topology init --hosts N`, the scale labs and the tests."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ovsvx.errors import UsageError
from ovsvx.model import checks
from ovsvx.model.topology import Bgp, Control, Host, Namespace, Topology

#: How many hosts `generate` lays out: host i gets 192.168.i.0/24, so at most 254.
MAX_GENERATED_HOSTS = 254
GENERATED_UNDERLAY = IPv4Network("10.33.0.0/16")
FIRST_GENERATED_VTEP = IPv4Address("10.33.30.150")
#: Generated hosts take 192.168.i.0/24: the overlay's range holds them all, so a host that joins later
#: (a bigger generated topology) is taken by those deployed before it.
GENERATED_BGP = Bgp(asn=65000, route_reflectors=(IPv4Address("10.33.30.2"),), accept=(IPv4Network("192.168.0.0/16"),))


def generate(count: int, control: Control = Control.STATIC) -> Topology:
    """The tutorial's pattern for `count` hosts: host i has NIC ens160 with VTEP 10.33.30.150 + i - 1
    (one /16 underlay), subnet 192.168.i.0/24 with gateway .1 on br<i>, vxlan<i> with .254, and one
    namespace ns<i> at .100 on tap1/tap2.  For labs of many hosts (`ovsvx topology init --hosts N`).
    With EVPN, AS 65000, one route reflector at 10.33.30.2, and 192.168.0.0/16 as the overlay's range."""
    if not 2 <= count <= MAX_GENERATED_HOSTS:
        raise UsageError(f"--hosts {count} is not allowed: from 2 to {MAX_GENERATED_HOSTS}")
    hosts = []
    for i in range(1, count + 1):
        subnet = IPv4Network(f"192.168.{i}.0/24")
        hosts.append(
            Host(
                name=f"host{i}",
                nic="ens160",
                vtep=FIRST_GENERATED_VTEP + i - 1,
                subnet=subnet,
                gateway=subnet[1],
                bridge=f"br{i}",
                vxlan=f"vxlan{i}",
                vxlan_address=subnet[254],
                namespaces=(Namespace(f"ns{i}", subnet[100], "tap1", "tap2"),),
            )
        )
    bgp = GENERATED_BGP if control == Control.EVPN else None
    generated = Topology(100, 4789, GENERATED_UNDERLAY, 1500, tuple(hosts), Control(control), bgp)
    checks.check(generated)
    return generated
