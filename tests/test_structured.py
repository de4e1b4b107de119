"""What other parts read from a finding, a firewall advice or the controller's log is a field, not prose."""

from __future__ import annotations

import json

import pytest

from ovsvx.errors import TopologyError
from ovsvx.host.preflight import Blocker
from ovsvx.model import reader, writer
from ovsvx.model.topology import Mode
from ovsvx.ovs.controller import logged_errors
from ovsvx.ovs.settings import OvsSettings


def test_a_firewall_blocker_keeps_what_blocks_and_how_to_allow_apart() -> None:
    blocker = Blocker("ufw is active", "ufw allow proto udp from 10.33.30.151 to any port 4789")
    assert blocker.text == (
        "ufw is active; allow the peers with: ufw allow proto udp from 10.33.30.151 to any port 4789"
    )


def test_the_controllers_errors_are_read_by_the_fields_of_its_log_format() -> None:
    log = (
        "2026-11-27 04:55:02,485 ovsvx.ovs.controller INFO serving 29 flows\n"
        "2026-11-27 04:55:03,001 ovsvx.ovs.controller ERROR bridge br1 lacks port(s) vxlan1: not installing\n"
        "2026-11-27 04:55:03,002 os_ken.ofproto INFO a message that mentions ERROR in passing\n"
        "a line of someone else's\n"
    )
    assert logged_errors(log) == ["bridge br1 lacks port(s) vxlan1: not installing"]


def test_ovs_settings_round_trip_through_the_record_and_read_older_records() -> None:
    chosen = OvsSettings(
        datapath="system",
        why="loaded",
        port_type="afxdp-nonpmd",
        ovs_config={"n-handler-threads": "1"},
        ovs_config_before={"n-handler-threads": None},
    )
    assert OvsSettings.from_record(json.loads(json.dumps(chosen.to_record()))) == chosen
    older = {"datapath": "netdev", "ovs_config": '{"a": "1"}', "ovs_config_before": "{}", "gone": "x"}
    read = OvsSettings.from_record(older)
    assert (read.ovs_config, read.ovs_config_before, read.userspace, read.af_xdp) == ({"a": "1"}, {}, True, False)


def test_a_topologys_mode_is_a_mode_and_a_bad_one_is_named() -> None:
    text = writer.to_toml(reader.default()).replace(
        '[[hosts]]\nname = "host2"', '[[hosts]]\nname = "host2"\nmode = "kernel"'
    )
    assert reader.parse_text(text, "t.toml").host("host2").mode is Mode.KERNEL
    with pytest.raises(TopologyError, match=r"hosts\[1\]\.mode: 'bridge' is not allowed: one of kernel, ovs"):
        reader.parse_text(text.replace('mode = "kernel"', 'mode = "bridge"'), "t.toml")
