"""The os-ken app against a fake switch connection: what it sends, without OVS or a lab.

The fake datapath records every message; os-ken's own OpenFlow 1.3 parser
builds them, as it does for a real switch.  The lab tests check the same
behaviour on OVS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

os.environ.setdefault("OSKEN_HUB_TYPE", "native")

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from ovsvx.model import reader
from ovsvx.ovs import ofapp
from ovsvx.ovs.flows import host_flows
from ovsvx.ovs.openflow import learned_cookie
from ovsvx.ovs.peerwatch import peer_probes

TOPO = reader.default()
HOST = TOPO.host("host1")
FLOWS = host_flows(TOPO, HOST)
PORTS = {"br1": ofp.OFPP_LOCAL, "tap2": 2, "vxlan1": 1}


@dataclass
class FakeDatapath:
    id: int = 7
    ofproto: Any = ofp
    ofproto_parser: Any = parser
    xid: int = 0
    sent: list[Any] = field(default_factory=list)

    def set_xid(self, msg: Any) -> int:
        self.xid += 1
        msg.set_xid(self.xid)
        return self.xid

    def send_msg(self, msg: Any) -> None:
        if msg.xid is None:
            self.set_xid(msg)
        self.sent.append(msg)

    def of_kind(self, kind: type) -> list[Any]:
        return [m for m in self.sent if isinstance(m, kind)]


@dataclass
class Stat:
    cookie: int
    packet_count: int


@dataclass
class Reply:
    xid: int
    body: list[Stat]
    flags: int = 0


@pytest.fixture
def app() -> ofapp.FlowInstaller:
    ofapp.FlowInstaller.serving = ofapp.Served({HOST.bridge: FLOWS}, {HOST.bridge: peer_probes(TOPO, HOST, FLOWS)})
    return ofapp.FlowInstaller()


def synced(app: ofapp.FlowInstaller, present: set[int]) -> FakeDatapath:
    datapath = FakeDatapath()
    app.ports[datapath.id] = dict(PORTS)
    app.cookies[datapath.id] = set(present)
    app._sync(datapath)
    return datapath


def test_sync_adds_the_missing_deletes_the_foreign_and_keeps_what_the_switch_learned(app: ofapp.FlowInstaller) -> None:
    kept = FLOWS[0].cookie
    datapath = synced(app, {kept, 0xDEAD, learned_cookie(0)})
    mods = datapath.of_kind(parser.OFPFlowMod)
    deleted = [m.cookie for m in mods if m.command == ofp.OFPFC_DELETE]
    added = {m.cookie for m in mods if m.command == ofp.OFPFC_ADD}
    assert deleted == [0xDEAD]  # the learned flow stays
    assert added == {f.cookie for f in FLOWS} - {kept}
    assert len(datapath.of_kind(parser.OFPBarrierRequest)) == 1
    probes = datapath.of_kind(parser.OFPPacketOut)
    assert [p.actions[0].port for p in probes] == [PORTS["vxlan1"]]  # asks the peer for its MAC at once


def test_a_bridge_without_its_tunnel_port_gets_no_flows_until_it_has_it(app: ofapp.FlowInstaller) -> None:
    datapath = FakeDatapath()
    app.ports[datapath.id] = {"br1": ofp.OFPP_LOCAL, "tap2": 2}
    app.cookies[datapath.id] = set()
    app._sync(datapath)
    assert datapath.sent == [] and datapath.id not in app.synced


def read(app: ofapp.FlowInstaller, datapath: FakeDatapath, sent: int, heard: int) -> list[Any]:
    """One reading of the peers' counters through the app; the ARP probes it sent because of it."""
    before = len(datapath.sent)
    app._watch(None)
    requests = datapath.sent[before:]
    assert [type(r) for r in requests] == [parser.OFPFlowStatsRequest] * 2
    probe = app.serving.probes[HOST.bridge][0]
    app._read(datapath, Reply(requests[0].xid, [Stat(probe.sent_cookie, sent)]))
    app._read(datapath, Reply(requests[1].xid, [Stat(c, heard) for c in probe.heard_cookies]))
    return [m for m in datapath.sent[before + 2 :] if isinstance(m, parser.OFPPacketOut)]


def test_a_peer_sent_to_and_silent_a_period_after_is_asked_again_once_a_second(app: ofapp.FlowInstaller) -> None:
    datapath = synced(app, set())
    assert read(app, datapath, sent=10, heard=10) == []  # the first readings only set the baseline
    assert read(app, datapath, sent=20, heard=30) == []  # answered
    assert read(app, datapath, sent=20, heard=30) == []  # idle
    assert read(app, datapath, sent=25, heard=30) == []  # sent to just now: its answer may still come
    asked = read(app, datapath, sent=25, heard=30)  # a whole period later, still nothing back
    assert [p.actions[0].port for p in asked] == [PORTS["vxlan1"]]
    assert read(app, datapath, sent=30, heard=30) == []  # sent again, not yet a period old
    assert read(app, datapath, sent=30, heard=30) == []  # still silent, but asked less than a second ago
