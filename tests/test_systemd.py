"""The agent's unit as text, and the sd_notify datagram: pure, no systemd needed."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ovsvx import systemd
from ovsvx.topology import Mode

UNIT = systemd.AgentUnit("host1", Path("/etc/ovsvx/host1.toml"), Mode.KERNEL, "/opt/x/.venv/bin/python")


def lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_the_unit_runs_this_installation_isolated_with_the_stored_topology() -> None:
    unit = lines(UNIT.text(ovs=False))
    assert unit["ExecStart"] == (
        "/opt/x/.venv/bin/python -I -m ovsvx agent --host host1 -t /etc/ovsvx/host1.toml --mode kernel"
    )
    assert unit["Type"] == "notify" and unit["Restart"] == "always" and unit["WorkingDirectory"] == "/"
    assert unit["After"] == "network-online.target"  # kernel mode: no Open vSwitch to wait for
    assert lines(UNIT.text(ovs=True))["After"] == "network-online.target openvswitch-switch.service"
    assert unit["NoNewPrivileges"] == "yes" and "CAP_NET_ADMIN" in unit["CapabilityBoundingSet"]
    assert "CAP_SYS_ADMIN" in unit["CapabilityBoundingSet"] and "CAP_SYS_PTRACE" not in unit["CapabilityBoundingSet"]
    # a private mount namespace would hide the workload namespaces' bind mounts from the rest of the machine
    assert not {"ProtectSystem", "PrivateTmp", "ProtectHome", "ProtectKernelTunables"} & set(unit)


def test_without_a_mode_the_unit_leaves_it_to_the_topology() -> None:
    unit = systemd.AgentUnit("host2", Path("/etc/ovsvx/host2.toml"), None, "/usr/bin/python3")
    assert "--mode" not in lines(unit.text(ovs=True))["ExecStart"]
    assert systemd.unit_path("host2").name == "ovsvx@host2.service"


def test_notify_sends_one_datagram_of_key_value_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not systemd.notify(READY="1")  # not under systemd: nothing to tell
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify(READY="1", STATUS="host1 converged")
        assert server.recv(4096) == b"READY=1\nSTATUS=host1 converged"
