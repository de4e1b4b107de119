"""What other parts read from a finding, a firewall advice or the controller's log is a field, not prose."""

from __future__ import annotations

from ovsvx.controller import logged_errors
from ovsvx.preflight import Blocker


def test_a_firewall_blocker_keeps_what_blocks_and_how_to_allow_apart() -> None:
    blocker = Blocker("ufw is active", "ufw allow proto udp from 10.33.30.151 to any port 4789")
    assert blocker.text == (
        "ufw is active; allow the peers with: ufw allow proto udp from 10.33.30.151 to any port 4789"
    )


def test_the_controllers_errors_are_read_by_the_fields_of_its_log_format() -> None:
    log = (
        "2026-11-27 04:55:02,485 ovsvx.controller INFO serving 29 flows\n"
        "2026-11-27 04:55:03,001 ovsvx.controller ERROR bridge br1 lacks port(s) vxlan1: not installing\n"
        "2026-11-27 04:55:03,002 os_ken.ofproto INFO a message that mentions ERROR in passing\n"
        "a line of someone else's\n"
    )
    assert logged_errors(log) == ["bridge br1 lacks port(s) vxlan1: not installing"]
