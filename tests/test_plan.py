"""The kernel-mode plan: pure, and rendered as the tutorial's own commands (no root needed)."""

from __future__ import annotations

from ovsvx.deploy.deploy import planned, resolve_modes
from ovsvx.host import plan
from ovsvx.kernel.plan import kernel_plan
from ovsvx.model import reader, topology
from ovsvx.model.options import DeployOptions
from ovsvx.ovs.plan import ovs_plan
from ovsvx.ovs.settings import Datapath
from ovsvx.ovs.switch import ovs_config
from tests.topologies import three_hosts

TUTORIAL_HOST1 = """\
ip link add vxlan1 type vxlan id 100 dstport 4789 remote 10.33.30.151 local 10.33.30.150 dev ens160
ip link set dev vxlan1 address 02:00:c0:a8:01:fe up
ip addr add 192.168.1.254/32 dev vxlan1
ip link add br1 type bridge
ip link set dev br1 up
ip addr add 192.168.1.1/24 dev br1
ip netns add ns1
ip link add tap1 type veth peer name tap2
ip link set dev tap2 up
ip link set tap1 netns ns1
ip netns exec ns1 ip link set dev tap1 address 02:00:c0:a8:01:64 up
ip link set dev tap2 master br1
ip netns exec ns1 ip addr add 192.168.1.100/24 dev tap1
sysctl -w net.ipv4.conf.all.rp_filter=0
sysctl -w net.ipv4.conf.br1.rp_filter=0
sysctl -w net.ipv4.ip_forward=1
ip netns exec ns1 ip route add default via 192.168.1.1 dev tap1
ip route add 192.168.2.0/24 via 192.168.2.254 dev vxlan1 onlink"""


def rendered(topo: topology.Topology, host: str) -> str:
    return "\n".join(line for r in kernel_plan(topo, topo.host(host)) for line in plan.render(r))


def test_host1_renders_as_the_tutorial() -> None:
    assert rendered(reader.default(), "host1") == TUTORIAL_HOST1


def test_ovs_mode_keeps_the_layout_on_the_switchs_internal_port() -> None:
    topo = reader.default()
    before, after = ovs_plan(topo, topo.hosts[0], Datapath.NETDEV)
    text = "\n".join(line for r in before + after for line in plan.render(r))
    assert "ip netns exec ns1 ip link set dev tap1 address 02:00:c0:a8:01:64 mtu 1450 up" in text
    assert "ip netns exec ns1 ethtool -K tap1 tx off" in text
    assert "master" not in text and "vxlan" not in text.replace("192.168.1.254", "")
    assert "ip addr del 10.33.30.150/24 dev ens160\nip addr add 10.33.30.150/24 dev br-phy" in text
    assert text.endswith(
        "ip addr add 192.168.1.1/24 dev br1\nip addr add 192.168.1.254/32 dev br1\n"
        "sysctl -w net.ipv4.conf.br1.rp_filter=0\n"
        "ip netns exec ns1 ip route add default via 192.168.1.1 dev tap1\n"
        "ip route add 192.168.2.0/24 via 192.168.2.254 dev br1 onlink"
    )
    _, system_after = ovs_plan(topo, topo.hosts[0], Datapath.SYSTEM)
    assert not [r for r in system_after if isinstance(r, plan.MovedAddress)]  # the kernel routes the tunnel


def test_the_kernel_datapath_keeps_offloads_and_leaves_the_ip_stack_alone() -> None:
    """Only the userspace datapath needs TX checksums in software and the host's stack kept off its ports."""
    topo = reader.default()
    before, after = ovs_plan(topo, topo.hosts[0], Datapath.SYSTEM)
    text = "\n".join(line for r in before + after for line in plan.render(r))
    assert "ethtool" not in text and "arp_ignore" not in text and "br-phy" not in text
    assert "ip netns exec ns1 ip link set dev tap1 address 02:00:c0:a8:01:64 mtu 1450 up" in text  # no ICMP "too big"
    userspace, _ = ovs_plan(topo, topo.hosts[0], Datapath.NETDEV)
    assert plan.Sysctl("net.ipv4.conf.tap2.arp_ignore", "8") in userspace


def test_host2_is_the_mirror_image() -> None:
    text = rendered(reader.default(), "host2")
    assert "ip link add vxlan2 type vxlan id 100 dstport 4789 remote 10.33.30.150 local 10.33.30.151 dev ens160" in text
    assert "ip addr add 192.168.2.254/32 dev vxlan2" in text
    assert text.endswith("ip route add 192.168.1.0/24 via 192.168.1.254 dev vxlan2 onlink")


def test_vxlan_address_is_a_host_route() -> None:
    """The tutorial's question 1: a /24 on vxlan1 would compete with br1's connected route."""
    topo = reader.default()
    addresses = [r for r in kernel_plan(topo, topo.hosts[0]) if isinstance(r, plan.Address)]
    assert [(a.dev, a.prefixlen) for a in addresses] == [("vxlan1", 32), ("br1", 24), ("tap1", 24)]


def test_three_hosts_flood_to_each_peer_and_route_each_subnet() -> None:
    topo = reader.parse(three_hosts())
    steps = kernel_plan(topo, topo.hosts[0])
    vxlan = next(r for r in steps if isinstance(r, plan.Vxlan))
    assert vxlan.remote is None
    assert [str(r.dst) for r in steps if isinstance(r, plan.FloodEntry)] == ["10.33.30.151", "10.33.30.152"]
    routes = [plan.render(r)[0] for r in steps if isinstance(r, plan.Route) and r.netns is None]
    assert routes == [
        "ip route add 192.168.2.0/24 via 192.168.2.254 dev vxlan1 onlink",
        "ip route add 192.168.3.0/24 via 192.168.3.254 dev vxlan1 onlink",
    ]


def test_every_resource_describes_itself() -> None:
    topo = reader.parse(three_hosts())
    for r in kernel_plan(topo, topo.hosts[0]):
        assert plan.describe(r) and plan.render(r)


def test_a_plain_deploy_keeps_the_deployed_mode_and_the_command_line_wins() -> None:
    topo = reader.default()
    assert resolve_modes(topo, {}) == {"host1": "ovs", "host2": "ovs"}
    assert resolve_modes(topo, {}, {"host1": "kernel", "host2": "ovs"}) == {"host1": "kernel", "host2": "ovs"}
    assert resolve_modes(topo, {"*": "ovs"}, {"host1": "kernel"}) == {"host1": "ovs", "host2": "ovs"}
    assert resolve_modes(topo, {"host2": "kernel"}, {"host2": "ovs"}) == {"host1": "ovs", "host2": "kernel"}


def test_ovs_config_specs_apply_to_every_host_or_to_the_one_named() -> None:
    specs = ("pmd-maxsleep=50", "host2:pmd-cpu-mask=0x2", "host1:pmd-cpu-mask=0x1")
    assert ovs_config(specs, "host1", ["host1", "host2"]) == {"pmd-maxsleep": "50", "pmd-cpu-mask": "0x1"}
    assert ovs_config(specs, "host2", ["host1", "host2"]) == {"pmd-maxsleep": "50", "pmd-cpu-mask": "0x2"}
    assert ovs_config((), "host1", ["host1"]) == {}


def test_plan_gives_each_host_its_mode_and_commands_firewall_first() -> None:
    sections = planned(reader.default(), {"host2": "kernel"}, DeployOptions(datapath="netdev"))
    assert [heading for heading, _ in sections] == [
        "on host1 (ovs mode, netdev datapath: asked for (--datapath netdev))",
        "on host2 (kernel mode)",
    ]
    host2 = sections[1][1]
    assert host2[0].startswith("nft -f -") and any(line.startswith("ip link add vxlan2 type vxlan") for line in host2)
    assert planned(reader.default(), {}, DeployOptions(datapath="netdev"), "host2")[0][0].startswith(
        "on host2 (ovs mode"
    )
