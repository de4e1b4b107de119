"""ovsdb.py against a tiny fake OVSDB (tests/fakeovsdb.py): what it writes, repairs and refuses."""

from __future__ import annotations

import pytest

from ovsvx.errors import ConflictError
from ovsvx.model import reader
from ovsvx.model.findings import DIFFERS, OK
from ovsvx.ovs import ovsdb
from ovsvx.ovs.switch import OWNER_KEY, switch_plan
from tests.fakeovsdb import FakeOvsdb

TOPO = reader.default()
HOST = TOPO.host("host1")
BRIDGES = switch_plan(TOPO, HOST, "netdev", "unix:/var/run/openvswitch/ovsvx-host1.openflow", "system")
BR1 = next(b for b in BRIDGES if b.name == HOST.bridge)


def test_a_new_bridge_is_made_in_one_transaction_as_planned_and_then_left_alone() -> None:
    db = FakeOvsdb()
    assert ovsdb.apply(db, BR1) == ["+ ovs bridge br1 (netdev)"]  # its ports come with it
    assert db.committed == 1
    row = db.find("Bridge", "br1")
    assert (row.external_ids, row.fail_mode, [c.target for c in row.controller]) == (
        {OWNER_KEY: "true"},
        ["secure"],
        ["unix:/var/run/openvswitch/ovsvx-host1.openflow"],
    )
    assert [c.max_backoff for c in row.controller] == [ovsdb.CONTROLLER_MAX_BACKOFF_MS]
    # security round 3, 4: packet-ins to the controller are rate-limited by OVS
    assert [(c.controller_rate_limit, c.controller_burst_limit) for c in row.controller] == [(100, 25)]
    vxlan, planned = db.find("Interface", "vxlan1"), next(p for p in BR1.ports if p.name == "vxlan1")
    assert (vxlan.type, vxlan.options["remote_ip"], vxlan.ofport_request) == ("vxlan", "10.33.30.151", planned.ofport)
    assert all(f.state == OK for f in ovsdb.inspect(db, BR1))
    assert ovsdb.apply(db, BR1) == [] and db.committed == 1  # nothing differs: no transaction


def test_what_differs_is_put_right_and_a_port_not_in_the_plan_removed() -> None:
    db = FakeOvsdb()
    ovsdb.apply(db, BR1)
    db.find("Interface", "vxlan1").options["remote_ip"] = "10.9.9.9"
    db.add_port("br1", "stray").execute()
    changes = ovsdb.apply(db, BR1)
    assert any(c.startswith("ovs port vxlan1 on br1 (vxlan): options") for c in changes), changes
    assert "ovs port stray on br1: not in the plan: remove" in changes
    assert db.find("Interface", "vxlan1").options["remote_ip"] == "10.33.30.151"
    assert db.find("Port", "stray") is None


def test_a_reopened_device_is_taken_out_and_added_back_as_new() -> None:
    db = FakeOvsdb()
    ovsdb.apply(db, BR1)
    before = db.find("Interface", "tap2").uuid
    ovsdb.apply(db, BR1, reopen={"tap2"})
    assert db.find("Interface", "tap2").uuid != before  # a new row, so OVS opens the device anew
    assert db.committed == 3  # the removal, then the change


def test_a_bridge_someone_else_made_is_refused_and_never_deleted() -> None:
    db = FakeOvsdb()
    db.add_br("br1", datapath_type="netdev").execute()
    with pytest.raises(ConflictError, match="ovs bridge br1 exists and was not made by ovsvx"):
        ovsdb.apply(db, BR1)
    assert ovsdb.remove(db, ["br1"]) == [] and db.find("Bridge", "br1") is not None


def test_a_controller_whose_rate_limit_was_lifted_is_seen_and_set_again() -> None:
    db = FakeOvsdb()
    ovsdb.apply(db, BR1)
    db.find("Bridge", "br1").controller[0].controller_rate_limit = []
    bridge = next(f for f in ovsdb.inspect(db, BR1) if f.what.startswith("ovs bridge"))
    assert bridge.state == DIFFERS and "controller controller_rate_limit None" in bridge.detail
    ovsdb.apply(db, BR1)
    assert db.find("Bridge", "br1").controller[0].controller_rate_limit == 100
