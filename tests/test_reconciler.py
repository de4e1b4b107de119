"""The netlink reconciler against a fake network stack: what it changes and how often it reads.

The fake holds links by name and the main routing table, and answers the few
pyroute2 calls the reconciler makes for routes.  The lab tests run the same
code on real namespaces.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Network
from typing import Any

import pytest

from ovsvx.errors import ConflictError
from ovsvx.host import netstack
from ovsvx.host.netlink import Reconciler
from ovsvx.host.plan import RTPROT_OVSVX, Route
from ovsvx.host.record import Deployment, Kind
from ovsvx.host.routes import RTNH_F_ONLINK
from ovsvx.kernel.plan import kernel_plan
from ovsvx.model import generated
from ovsvx.model.site import Site

TOPO = generated.generate(8)
HOST = TOPO.hosts[0]
ROUTES = tuple(r for r in kernel_plan(TOPO, HOST) if isinstance(r, Route) and r.netns is None)


class FakeStack:
    """Links by name and the main table's routes, as pyroute2 reports them."""

    def __init__(self) -> None:
        self.links = {HOST.vxlan: 5, HOST.bridge: 6}
        self.routes: dict[str, dict[str, Any]] = {}
        self.dumps = 0

    def link_lookup(self, ifname: str) -> list[int]:
        return [self.links[ifname]] if ifname in self.links else []

    def get_routes(self, family: int, table: int) -> list[dict[str, Any]]:
        self.dumps += 1
        return list(self.routes.values())

    def route(self, command: str, dst: str, gateway: str, oif: int, flags: int, proto: int, table: int) -> None:
        assert command == "replace"
        net = IPv4Network(dst)
        self.routes[dst] = {
            "RTA_DST": str(net.network_address),
            "dst_len": net.prefixlen,
            "RTA_GATEWAY": gateway,
            "RTA_OIF": oif,
            "flags": flags,
            "proto": proto,
        }


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> FakeStack:
    fake = FakeStack()

    @contextmanager
    def opened(name: str | None) -> Iterator[FakeStack]:
        assert name is None
        yield fake

    monkeypatch.setattr(netstack, "stack", opened)
    return fake


def reconciler() -> Reconciler:
    return Reconciler(Site(HOST, None), Deployment(Kind.LAB, "", TOPO))


def test_routes_to_every_peer_are_added_with_one_read_of_the_table_per_pass(stack: FakeStack) -> None:
    changes = reconciler().apply(ROUTES)
    assert len(changes) == len(ROUTES) == 7 and all(" + route " in c for c in changes)
    assert stack.dumps == 2  # the check for foreign routes, then the pass that fixes: not one per peer
    peer = TOPO.hosts[1]
    assert stack.routes[str(peer.subnet)] == {
        "RTA_DST": str(peer.subnet.network_address),
        "dst_len": 24,
        "RTA_GATEWAY": str(peer.vxlan_address),
        "RTA_OIF": 5,
        "flags": RTNH_F_ONLINK,
        "proto": RTPROT_OVSVX,
    }
    assert reconciler().apply(ROUTES) == []  # a second pass changes nothing


def test_a_route_of_ours_that_differs_is_replaced_and_someone_elses_is_refused(stack: FakeStack) -> None:
    reconciler().apply(ROUTES)
    peer = TOPO.hosts[1]
    stack.routes[str(peer.subnet)]["RTA_GATEWAY"] = "10.9.9.9"
    assert reconciler().apply(ROUTES) == [
        f"{HOST.name}: ~ route {peer.subnet} via {peer.vxlan_address} dev {HOST.vxlan} onlink: replace"
    ]
    stack.routes[str(peer.subnet)]["proto"] = 3  # boot: a route someone else made
    with pytest.raises(ConflictError, match=f"route {peer.subnet} exists and was not made by ovsvx"):
        reconciler().apply(ROUTES)
