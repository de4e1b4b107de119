"""The routes an ovs-mode EVPN host writes for its peers (`evpnroutes.HostRoutes`), in a scratch network
namespace that vanishes with the test: added and removed with the peers, and never in place of a route
ovsvx did not make."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ovsvx.host import netstack
from ovsvx.ovs.evpnroutes import HostRoutes
from ovsvx.ovs.flows import EvpnPeer
from tests.conftest import need_lab


def peer(subnet: str, vtep: str) -> EvpnPeer:
    return EvpnPeer(IPv4Network(subnet), IPv4Address(vtep), "02:00:c0:a8:02:fe")


def routes() -> list[str]:
    return netstack.run(None, ["ip", "route"], timeout=10).stdout.splitlines()


def test_peers_routes_come_and_go_and_a_route_of_someone_elses_is_left_alone() -> None:
    need_lab()

    def scenario() -> tuple[list[str], list[str], list[str]]:
        netstack.run(None, ["ip", "link", "add", "br1", "type", "veth", "peer", "name", "br1-peer"], timeout=10)
        for end in ("br1", "br1-peer"):
            netstack.run(None, ["ip", "link", "set", end, "up"], timeout=10)
        netstack.run(None, ["ip", "addr", "add", "10.33.30.150/16", "dev", "br1-peer"], timeout=10)  # the underlay
        netstack.run(None, ["ip", "route", "add", "172.20.0.0/24", "dev", "br1"], timeout=10)  # the admin's
        host_routes = HostRoutes("br1")
        try:
            first = host_routes.sync((peer("192.168.2.0/24", "10.33.30.151"), peer("172.20.0.0/24", "10.33.30.9")))
            again = host_routes.sync((peer("192.168.2.0/24", "10.33.30.151"), peer("172.20.0.0/24", "10.33.30.9")))
            gone = host_routes.sync(())
            return first + ["--"] + again, gone, routes()
        finally:
            host_routes.ipr.close()

    changes, removed, left = netstack.call_in(None, scenario, scratch=True)
    assert changes == ["+ route 192.168.2.0/24 via 10.33.30.151 dev br1 onlink", "--"]  # 172.20.0.0/24: not ours
    assert removed == ["- route 192.168.2.0/24"]
    assert [line.split()[:3] for line in left if not line.startswith("10.33.")] == [["172.20.0.0/24", "dev", "br1"]]
