"""What trace says the datapath does, from OVS's own words (no switch needed: OVS's texts as they come)."""

from __future__ import annotations

from ovsvx.errors import UsageError
from ovsvx.model import reader
from ovsvx.observe.bench import _lab_prefix, parse_modes
from ovsvx.ovs.switch import tunnel_ports
from ovsvx.ovs.trace import _datapath_summary, _tunnel_peer

SYSTEM_SHOW = """system@ovs-system:
  lookups: hit:37 missed:12 lost:0
  flows: 2
  port 0: ovs-system (internal)
  port 1: br1 (internal)
  port 2: tap2
  port 3: vxlan_sys_4789 (vxlan: packet_type=ptap)
"""
NETDEV_SHOW = """netdev@ovs-netdev:
  lookups: hit:0 missed:0 lost:0
  port 0: ovs-netdev (tap)
  port 1: br-phy (tap)
  port 2: ens160 (afxdp-nonpmd: n_rxq=1, use-need-wakeup=true, xdp-mode=best-effort)
  port 3: vxlan_sys_4789 (vxlan: packet_type=ptap)
"""


def trace_ending(actions: str) -> str:
    return (
        f'bridge("br1")\n-------------\n 0. in_port=tap2, priority 100\n\nFinal flow: unchanged\n'
        f"Megaflow: recirc_id=0,eth,ip,in_port=2\nDatapath actions: {actions}\n"
    )


def test_the_kernel_datapath_tunnels_through_its_vxlan_sys_device() -> None:
    actions = (
        "set(tunnel(tun_id=0x64,dst=10.33.30.151,ttl=64,tp_dst=4789,flags(df|key))),"
        "set(eth(src=02:00:c0:a8:01:fe,dst=02:00:c0:a8:02:fe)),set(ipv4(ttl=63)),3"
    )
    assert _datapath_summary(trace_ending(actions), SYSTEM_SHOW) == [
        f"datapath system@ovs-system: {actions} (out: vxlan_sys_4789)"
    ]


def test_the_userspace_datapath_pushes_the_header_and_sends_it_out_of_br_phy() -> None:
    actions = (
        "set(ipv4(ttl=63)),tnl_push(tnl_port(3),header(size=50,type=4,eth(dst=02:00:0a:21:1e:97),"
        "ipv4(src=10.33.30.150,dst=10.33.30.151,proto=17,tos=0,ttl=64,frag=0x4000),"
        "udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x64)),out_port(1))"
    )
    assert _datapath_summary(trace_ending(actions), NETDEV_SHOW) == [
        f"datapath netdev@ovs-netdev: {actions} (out: br-phy)"
    ]


def test_delivery_to_a_local_port_and_a_drop() -> None:
    assert _datapath_summary(trace_ending("set(ipv4(ttl=63)),2"), SYSTEM_SHOW)[0].endswith("(out: tap2)")
    assert _datapath_summary(trace_ending("drop"), SYSTEM_SHOW) == ["datapath system@ovs-system: drop"]
    assert _datapath_summary("no summary here", SYSTEM_SHOW) == []


def test_bench_columns_name_a_mode_or_ovs_on_a_datapath_each_in_its_own_lab() -> None:
    assert parse_modes("kernel, ovs:system,ovs:netdev,kernel") == ["kernel", "ovs:system", "ovs:netdev"]
    assert [_lab_prefix("bench-", c) for c in ("kernel", "ovs", "ovs:system", "ovs:netdev")] == [
        "bench-k-",
        "bench-o-",
        "bench-os-",
        "bench-on-",
    ]
    for bad in ("ovs:userspace", "", "linux"):
        try:
            parse_modes(bad)
        except UsageError as err:
            assert "a comma list of kernel, ovs, ovs:system, ovs:netdev" in str(err)
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_the_tunnel_is_found_by_the_port_the_flows_output_to() -> None:
    """Native tunnelling (userspace) says "tunneling to"; the kernel datapath does not: the port decides."""
    topo = reader.default()
    tunnels = tunnel_ports(topo, topo.host("host1"))
    matched = ["table 50 (to-peer) learned: ...", "    load:0x200c0a802fe->NXM_OF_ETH_DST[]", "    output:100"]
    assert _tunnel_peer(matched, tunnels) == "host2"
    assert _tunnel_peer(["table 40 (from-tunnel) route-in: ...", "    output:1"], tunnels) is None


def test_a_drop_at_the_end_of_a_table_is_named_and_is_the_trace_s_last_word() -> None:
    """The priority-0 flow that ends each table matches on nothing: OVS prints no match before its priority
    (it was shown as an unnamed line, and the trace went on to say the packet was delivered)."""
    from ovsvx.ovs import flows
    from ovsvx.ovs.trace import _datapath_actions, _read_trace

    topo = reader.default()
    generated = {f.cookie: f for f in flows.host_flows(topo, topo.hosts[1])}
    drop = next(f for f in generated.values() if f.purpose == flows.Purpose.DROP and f.table == flows.CLASSIFY)
    text = (
        f'bridge("br2")\n-------------\n 0. priority 0, cookie {drop.cookie:#x}\n    drop\n\n'
        "Final flow: unchanged\nMegaflow: recirc_id=0,eth,ip,in_port=100\nDatapath actions: drop\n"
    )
    matched, _ = _read_trace(text, "br2", generated)
    assert (
        matched[0] == f"table 0 (classify) drop: anything else in classify [any, priority 0, cookie {drop.cookie:#x}]"
    )
    assert _datapath_actions(text) == "drop"
    assert _datapath_actions(trace_ending("3")) == "3"
