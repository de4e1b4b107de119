"""Flow generation for ovs mode: the table layout, cookies, the checked-in files, and what the
flows do to packets (run through a simulated pipeline, no switch needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovsvx.model import generated, reader, topology
from ovsvx.ovs import flows, openflow, switch, tables
from ovsvx.ovs.tables import ETH_ARP, ETH_IP, LOCAL, Purpose
from tests import fakeswitch
from tests.topologies import three_hosts

REPO = Path(__file__).resolve().parent.parent
TOPO = reader.default()
HOST1 = TOPO.host("host1")
FLOWS1 = flows.host_flows(TOPO, HOST1)


def test_checked_in_files_are_the_generators_output() -> None:
    for host in TOPO.hosts:
        assert (REPO / "flows" / f"{host.name}.flows").read_text() == flows.render_file(TOPO, host), (
            "flows/ is stale: run `ovsvx flows --render`"
        )


def test_cookies_name_the_purpose_and_tell_flows_apart() -> None:
    cookies = [f.cookie for f in FLOWS1]
    assert len(set(cookies)) == len(cookies)
    assert all(f.cookie >> 32 == f.purpose.value for f in FLOWS1)
    assert all(f.line.startswith(f"cookie={f.cookie:#x},table={f.table},") for f in FLOWS1)


def test_every_table_is_declared_and_ends_in_a_counted_drop() -> None:
    assert {f.table for f in FLOWS1} == set(tables.TABLES)
    for table in tables.TABLES:
        last = [f for f in FLOWS1 if f.table == table][-1]
        assert (last.priority, last.match, last.actions, last.purpose) == (0, (), (), Purpose.DROP)


def test_check_refuses_an_undeclared_table_or_jump() -> None:
    with pytest.raises(ValueError, match="undeclared table 99"):
        openflow.check([openflow.Flow(99, 0, (), (), Purpose.DROP)])
    with pytest.raises(ValueError, match="may not go to table 40"):
        openflow.check([openflow.Flow(tables.ARP, 1, (), (openflow.Goto(40),), Purpose.CLASSIFY)])


def test_three_hosts_get_a_tunnel_port_per_peer() -> None:
    topo = reader.parse(three_hosts())
    ports = switch.tunnel_ports(topo, topo.hosts[0])
    assert [(p.name, p.ofport, dict(p.options)["remote_ip"]) for p in ports.values()] == [
        ("vxlan1-1", 100, "10.33.30.151"),
        ("vxlan1-2", 101, "10.33.30.152"),
    ]
    generated = flows.host_flows(topo, topo.hosts[0])
    to_peer = {f.match[1][1]: f.actions[1] for f in generated if f.purpose == Purpose.TO_PEER and f.table == 50}
    assert to_peer == {"192.168.2.0/24": openflow.Output("vxlan1-1"), "192.168.3.0/24": openflow.Output("vxlan1-2")}


# --- behaviour, through the simulated pipeline -------------------------------------------

NS1_MAC, GW1_MAC, VX1_MAC, VX2_MAC = "02:00:c0:a8:01:64", "02:00:c0:a8:01:01", "02:00:c0:a8:01:fe", "02:00:c0:a8:02:fe"


def ip_packet(in_port: str, src: str, dst: str, ttl: int = 64, eth_dst: str = GW1_MAC) -> dict:
    return {
        "in_port": in_port,
        "eth_type": ETH_IP,
        "eth_src": NS1_MAC,
        "eth_dst": eth_dst,
        "ipv4_src": src,
        "ipv4_dst": dst,
        "ttl": ttl,
    }


def arp_request(in_port: str, sender: str, sender_mac: str, target: str) -> dict:
    return {
        "in_port": in_port,
        "eth_type": ETH_ARP,
        "eth_src": sender_mac,
        "eth_dst": "ff:ff:ff:ff:ff:ff",
        "arp_op": 1,
        "arp_spa": sender,
        "arp_sha": sender_mac,
        "arp_tpa": target,
        "arp_tha": "00:00:00:00:00:00",
    }


def test_ns1_to_ns2_is_routed_into_the_tunnel_as_the_kernel_does() -> None:
    result = fakeswitch.run(FLOWS1, ip_packet("tap2", "192.168.1.100", "192.168.2.100"))
    ((port, out),) = result.outputs
    assert port == "vxlan1"
    assert (out["ttl"], out["eth_src"], out["eth_dst"]) == (63, VX1_MAC, VX2_MAC)  # inner MACs: vxlan1 -> vxlan2
    assert [f.purpose for f in result.path] == [Purpose.CLASSIFY, Purpose.ROUTE_OUT, Purpose.TO_PEER]


def test_from_the_tunnel_to_ns1_is_routed_again() -> None:
    packet = ip_packet("vxlan1", "192.168.2.100", "192.168.1.100", ttl=63, eth_dst=VX1_MAC)
    ((port, out),) = fakeswitch.run(FLOWS1, packet).outputs
    assert (port, out["ttl"], out["eth_src"], out["eth_dst"]) == ("tap2", 62, GW1_MAC, NS1_MAC)  # TTL 62 at ns1


def test_the_hosts_own_traffic_keeps_its_ttl() -> None:
    ((port, out),) = fakeswitch.run(FLOWS1, ip_packet(LOCAL, "192.168.1.1", "192.168.2.100")).outputs
    assert (port, out["ttl"], out["eth_dst"]) == ("vxlan1", 64, VX2_MAC)
    ((port, out),) = fakeswitch.run(FLOWS1, ip_packet(LOCAL, "192.168.1.1", "192.168.1.100")).outputs
    assert (port, out["ttl"]) == ("tap2", 64)


@pytest.mark.parametrize("dst", ["192.168.1.1", "192.168.1.254"])
def test_the_hosts_addresses_are_delivered_to_it(dst: str) -> None:
    for in_port, ttl in (("tap2", 64), ("vxlan1", 63)):
        ((port, out),) = fakeswitch.run(FLOWS1, ip_packet(in_port, "192.168.1.100", dst, ttl=ttl)).outputs
        assert (port, out["ttl"], out["eth_dst"]) == (LOCAL, ttl, GW1_MAC)


@pytest.mark.parametrize(
    ("in_port", "target", "mac"),
    [
        ("tap2", "192.168.1.1", GW1_MAC),  # ns1 asks for its gateway
        (LOCAL, "192.168.1.100", NS1_MAC),  # the host asks for ns1
        (LOCAL, "192.168.2.254", VX2_MAC),  # the host's onlink next hop
        ("vxlan1", "192.168.1.254", VX1_MAC),  # a kernel-mode peer asks through the tunnel
    ],
)
def test_arp_is_answered_in_the_datapath(in_port: str, target: str, mac: str) -> None:
    asker = "02:00:00:00:00:99"
    sender = "192.168.2.254" if in_port == "vxlan1" else "192.168.1.50"  # through the tunnel: the peer's router
    result = fakeswitch.run(FLOWS1, arp_request(in_port, sender, asker, target))
    ((port, reply),) = result.outputs
    assert port == in_port
    assert (reply["arp_op"], reply["arp_sha"], reply["arp_spa"]) == (2, mac, target)
    assert (reply["arp_tha"], reply["arp_tpa"], reply["eth_dst"], reply["eth_src"]) == (asker, sender, asker, mac)


@pytest.mark.parametrize("arp_op", [1, 2])
def test_a_hand_built_peers_random_mac_is_learned_from_its_arp(arp_op: int) -> None:
    """The tutorial's own commands give vxlan2 a random MAC; its ARP through the tunnel teaches it."""
    random_mac = "fa:16:3e:12:34:56"
    arp = arp_request("vxlan1", "192.168.2.254", random_mac, "192.168.1.254")
    arp["arp_op"] = arp_op  # its request for our vxlan address, or its answer to the controller's
    result = fakeswitch.run(FLOWS1, arp)
    assert len(result.outputs) == (1 if arp_op == 1 else 0)  # a request is also answered
    before = fakeswitch.run(FLOWS1, ip_packet("tap2", "192.168.1.100", "192.168.2.100"))
    assert before.packet_ins  # not learned yet: the controller hears of it and asks the peer
    after = fakeswitch.run(FLOWS1 + tuple(result.learned), ip_packet("tap2", "192.168.1.100", "192.168.2.100"))
    ((port, out),) = after.outputs
    assert (port, out["eth_dst"], out["ttl"], after.packet_ins) == ("vxlan1", random_mac, 63, [])


def test_arp_from_the_tunnel_teaches_nothing_unless_it_is_the_peers_router() -> None:
    stranger = arp_request("vxlan1", "192.168.2.77", "fa:16:3e:00:00:01", "192.168.1.254")
    result = fakeswitch.run(FLOWS1, stranger)
    assert result.dropped and not result.learned


@pytest.mark.parametrize(
    "packet",
    [
        arp_request("vxlan1", "192.168.2.254", VX2_MAC, "192.168.1.1"),  # the tunnel asks for more than .254
        arp_request("tap2", "192.168.1.100", NS1_MAC, "192.168.1.77"),  # nobody there
        ip_packet("tap2", "192.168.1.100", "10.0.0.1"),  # no route
        {"in_port": "tap2", "eth_type": 0x86DD},  # IPv6: not part of the tutorial
        ip_packet("tap9", "192.168.1.100", "192.168.2.100"),  # an unknown port
    ],
)
def test_everything_else_is_dropped(packet: dict) -> None:
    result = fakeswitch.run(FLOWS1, packet)
    assert result.dropped and result.path[-1].purpose == Purpose.DROP


def test_every_flow_serializes_as_an_openflow_13_flow_mod() -> None:
    from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

    from ovsvx.ovs import ofapp

    class Datapath:  # what os-ken's message classes read from a datapath to serialize
        ofproto = ofproto_v1_3
        ofproto_parser = ofproto_v1_3_parser
        id = 1

    ports = {"tap2": 1, "vxlan1": 100}
    for flow in FLOWS1:
        message = ofapp.flow_mod(Datapath(), flow, ports)
        message.serialize()
        assert (message.cookie, message.table_id, message.priority) == (flow.cookie, flow.table, flow.priority)
        assert len(message.buf) > 48


def test_the_controller_knows_which_ports_the_flows_need() -> None:
    from ovsvx.ovs.ofapp import missing_ports

    assert missing_ports(FLOWS1, {"tap2": 1, "vxlan1": 100, "br1": 0xFFFFFFFE}) == []
    assert missing_ports(FLOWS1, {"tap2": 1}) == ["vxlan1"]


def test_switch_errors_are_decoded_into_names() -> None:
    from ovsvx.ovs.ofapp import error_name

    assert error_name(2, 4) == "OFPET_BAD_ACTION/OFPBAC_BAD_OUT_PORT"
    assert error_name(5, 0) == "OFPET_FLOW_MOD_FAILED/OFPFMFC_UNKNOWN"


def test_the_flows_page_documents_every_table_and_cookie_purpose() -> None:
    page = (REPO / "docs" / "design" / "flows.md").read_text()
    for table in tables.TABLES.values():
        assert f"| {table.id} | {table.name} |" in page
    for purpose in Purpose:
        assert f"| `{purpose.value:#x}…` | {purpose.label}" in page


def test_ovs_plan_prints_the_switch_as_ovs_vsctl_commands() -> None:
    from ovsvx.ovs.backend import OvsBackend

    lines = OvsBackend.commands(TOPO, HOST1, {"datapath": "netdev"})
    assert (
        "ovs-vsctl add-port br1 vxlan1 -- set interface vxlan1 type=vxlan ofport_request=100 "
        "options:remote_ip=10.33.30.151 options:key=100 options:dst_port=4789"
    ) in lines
    # OVS dials the controller's Unix socket, in its own run folder (root's): never a TCP port
    assert "ovs-vsctl set-controller br1 unix:/var/run/openvswitch/ovsvx-host1.openflow" in lines
    assert (
        "ovs-vsctl add-br br1 -- set bridge br1 datapath_type=netdev external_ids:ovsvx=true "
        "other_config:hwaddr=02:00:c0:a8:01:01 other_config:disable-in-band=true fail_mode=secure"
    ) in lines
    assert lines.index(
        "ovs-vsctl add-br br-phy -- set bridge br-phy datapath_type=netdev external_ids:ovsvx=true"
    ) < lines.index("ip addr add 10.33.30.150/24 dev br-phy")
    assert not [line for line in OvsBackend.commands(TOPO, HOST1, {"datapath": "system"}) if "br-phy" in line]


def test_af_xdp_ports_change_only_how_devices_are_read() -> None:
    from ovsvx.ovs.switch import switch_plan

    plain = switch_plan(TOPO, HOST1, "netdev", None)
    xdp = switch_plan(TOPO, HOST1, "netdev", None, "afxdp-nonpmd")
    assert [(p.name, p.type) for b in xdp for p in b.ports] == [
        ("ens160", "afxdp-nonpmd"),
        ("tap2", "afxdp-nonpmd"),
        ("vxlan1", "vxlan"),
    ]
    assert [(p.name, p.ofport) for b in xdp for p in b.ports] == [(p.name, p.ofport) for b in plain for p in b.ports]


def test_the_kernel_datapath_tunnel_carries_an_outer_checksum_and_the_userspace_one_does_not() -> None:
    from ovsvx.ovs.backend import OvsBackend
    from ovsvx.ovs.switch import switch_plan

    def vxlan_options(datapath: str, topo: topology.Topology = TOPO, csum: str = "auto") -> dict[str, str]:
        bridges = switch_plan(topo, topo.hosts[0], datapath, None, csum=csum)
        (vxlan,) = [p for b in bridges for p in b.ports if p.type == "vxlan"]
        return dict(vxlan.options)

    assert vxlan_options("system") == {"remote_ip": "10.33.30.151", "key": "100", "dst_port": "4789", "csum": "true"}
    assert "csum" not in vxlan_options("netdev")
    assert vxlan_options("system", generated.generate(2, topology.Control.EVPN))["csum"] == "true"
    plan = OvsBackend.commands(TOPO, HOST1, {"datapath": "system"})
    assert [line for line in plan if "add-port br1 vxlan1" in line and "options:csum=true" in line]
    # --tunnel-csum says otherwise, on either datapath
    assert vxlan_options("netdev", csum="on")["csum"] == "true"
    assert "csum" not in vxlan_options("system", csum="off")


def test_an_installed_flow_is_named_by_its_cookie_for_flows_and_trace_alike() -> None:
    host = TOPO.host("host1")
    generated = {f.cookie: f for f in flows.host_flows(TOPO, host)}
    some = next(iter(generated.values()))
    assert openflow.explain(some.cookie, generated) == (some.purpose.label, some.note)
    assert openflow.explain(openflow.learned_cookie(0), generated) == ("learned", openflow.LEARNED_NOTE)
    assert openflow.explain(0x1234, generated) is None  # not ovsvx's: "not generated"
