"""The agent's unit as text, and the sd_notify datagram: pure, no systemd needed."""

from __future__ import annotations

import os
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from ovsvx.errors import UsageError
from ovsvx.host import systemd
from ovsvx.model.topology import Mode

OVS_FIRST = ("openvswitch-switch.service",)  # what ovs mode's host is ordered after
UNIT = systemd.AgentUnit.host("host1", Path("/etc/ovsvx/host1.toml"), Mode.KERNEL, (), "/opt/x/.venv/bin/python")


def lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))


def test_the_unit_runs_this_installation_isolated_with_the_stored_topology() -> None:
    unit = lines(UNIT.text())
    assert unit["ExecStart"] == (
        "/opt/x/.venv/bin/python -I -m ovsvx agent --host host1 -t /etc/ovsvx/host1.toml --mode kernel"
    )
    assert unit["Type"] == "notify" and unit["Restart"] == "always" and unit["WorkingDirectory"] == "/"
    assert unit["After"] == "network-online.target"  # kernel mode: no Open vSwitch to wait for
    ovs = systemd.AgentUnit.host("host1", Path("/etc/ovsvx/host1.toml"), None, OVS_FIRST, "/usr/bin/python3")
    assert lines(ovs.text())["After"] == "network-online.target openvswitch-switch.service"
    assert unit["NoNewPrivileges"] == "yes" and "CAP_NET_ADMIN" in unit["CapabilityBoundingSet"]
    assert "CAP_SYS_ADMIN" in unit["CapabilityBoundingSet"] and "CAP_SYS_PTRACE" not in unit["CapabilityBoundingSet"]
    # what the agent starts (controller, FRR) becomes a service of its own, so it outlives the agent
    assert "Environment=OVSVX_DAEMON_UNITS=1" in UNIT.text().splitlines()
    # a private mount namespace would hide the workload namespaces' bind mounts from the rest of the machine
    assert not {"ProtectSystem", "PrivateTmp", "ProtectHome", "ProtectKernelTunables"} & set(unit)


def test_without_a_mode_the_unit_leaves_it_to_the_topology() -> None:
    unit = systemd.AgentUnit.host("host2", Path("/etc/ovsvx/host2.toml"), None, OVS_FIRST, "/usr/bin/python3")
    assert "--mode" not in lines(unit.text())["ExecStart"]
    assert systemd.unit_path(unit.unit).name == "ovsvx@host2.service"


def test_metrics_and_probes_are_passed_to_the_agent() -> None:
    path = Path("/etc/ovsvx/host1.toml")
    unit = systemd.AgentUnit.host("host1", path, None, (), "/usr/bin/python3", (), ("9477", True))
    assert unit.argv()[-4:] == [str(path), "--metrics", "9477", "--probes"]
    assert systemd.AgentUnit.host("host1", path, None, (), "/usr/bin/python3").argv()[-1] == str(path)


def test_a_reflector_is_a_unit_of_its_own_as_hardened_as_a_hosts() -> None:
    rr = systemd.AgentUnit.reflector("10.33.30.2", Path("/etc/ovsvx/reflector-10.33.30.2.toml"), "/usr/bin/python3")
    text = rr.text()
    assert rr.unit == "ovsvx-reflector@10.33.30.2.service"
    assert text.startswith("# Written by `ovsvx enable --reflector 10.33.30.2`")
    unit = lines(text)
    assert unit["ExecStart"] == (
        "/usr/bin/python3 -I -m ovsvx reflector --address 10.33.30.2 -t /etc/ovsvx/reflector-10.33.30.2.toml"
    )
    assert unit["After"] == "network-online.target" and unit["Type"] == "notify"
    assert unit["ExecReload"] == "/usr/bin/python3 -I -m ovsvx reload --reflector 10.33.30.2"
    own = ("ExecStart", "ExecReload", "Description")
    hardening = {k: v for k, v in lines(UNIT.text()).items() if k not in own}
    assert {k: v for k, v in unit.items() if k not in own} == hardening


def test_notify_sends_one_datagram_of_key_value_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    systemd.notify_socket.cache_clear()
    assert not systemd.notify(READY="1")  # not under systemd: nothing to tell
    path = tmp_path / "notify"
    systemd.notify_socket.cache_clear()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify(READY="1", STATUS="host1 converged")
        assert "NOTIFY_SOCKET" not in os.environ  # the processes the agent starts do not inherit it
        assert systemd.notify(STATUS="host1 converged, last repair 10:00:00")
        assert server.recv(4096) == b"READY=1\nSTATUS=host1 converged"
        assert server.recv(4096) == b"STATUS=host1 converged, last repair 10:00:00"
    systemd.notify_socket.cache_clear()


@pytest.mark.parametrize(
    ("word", "command", "written"),
    [
        ("/etc/ovsvx/host1.toml", True, "/etc/ovsvx/host1.toml"),
        ("/srv/my venv/bin/python", True, '"/srv/my venv/bin/python"'),  # one argument, not two
        ("/srv/100%/python", True, '"/srv/100%%/python"'),  # no specifier expanded
        ("/srv/$HOME/python", True, '"/srv/$$HOME/python"'),  # no variable expanded
        ('/srv/a"b\\c', True, '"/srv/a\\"b\\\\c"'),
        ("OVSVX_STATE_DIR=/run/a b$", False, '"OVSVX_STATE_DIR=/run/a b$"'),  # Environment= expands no $
    ],
)
def test_a_units_words_are_quoted_as_systemd_reads_them(word: str, command: bool, written: str) -> None:
    """Security round 3, 7: ExecStart= and Environment= were written unquoted (a space split a path)."""
    assert systemd.quoted(word, command) == written


def test_a_control_character_in_a_units_word_is_refused_in_one_line() -> None:
    with pytest.raises(UsageError, match=r"^'/srv/a\\nb' is not allowed in a systemd unit: printable characters"):
        systemd.AgentUnit.host("host1", Path("/srv/a\nb"), None, (), "/usr/bin/python3").text()


def test_code_anyone_but_root_may_change_is_found_and_named(tmp_path: Path) -> None:
    """Security round 3, 6: what enable would make root run at every boot, checked as sshd's StrictModes."""
    from ovsvx.host import preflight

    code = tmp_path / "venv" / "lib"
    code.mkdir(parents=True)
    (code / "module.py").write_text("")
    for folder in (tmp_path, tmp_path / "venv", code):
        folder.chmod(0o755)
    if os.geteuid() != 0:
        pytest.skip("the files must be root's: run as root")
    assert preflight.untrusted_code([tmp_path / "venv"]) is None
    (code / "module.py").chmod(0o666)
    assert preflight.untrusted_code([tmp_path / "venv"]) == (
        code / "module.py",
        "group or others may write it (mode 0666)",
    )
    (code / "module.py").chmod(0o644)
    os.chown(code, 1000, 1000)
    assert preflight.untrusted_code([tmp_path / "venv"]) == (code, "it is owned by uid 1000, not root")
    os.chown(code, 0, 0)
    (tmp_path).chmod(0o777)  # a folder above that others may write: they could swap the venv
    assert preflight.untrusted_code([tmp_path / "venv"]) == (tmp_path, "group or others may write it (mode 0777)")
    (tmp_path).chmod(0o1777)  # sticky, as /tmp: root's entries stay root's
    assert preflight.untrusted_code([tmp_path / "venv"]) is None


def test_the_stored_topology_is_read_only_when_it_is_roots_alone(tmp_path: Path) -> None:
    from ovsvx.errors import PreconditionError
    from ovsvx.host import preflight

    stored = tmp_path / "host1.toml"
    stored.write_text("")
    stored.chmod(0o600)
    if os.geteuid() != 0:
        pytest.skip("the file must be root's: run as root")
    preflight.require_roots_alone(stored, "-t")
    stored.chmod(0o620)
    with pytest.raises(PreconditionError, match=r"^-t .*host1.toml: group or others may write it \(mode 0620\)"):
        preflight.require_roots_alone(stored, "-t")
    link = tmp_path / "link.toml"
    link.symlink_to(stored)
    with pytest.raises(PreconditionError, match=r"^-t .*link.toml: it is a link"):
        preflight.require_roots_alone(link, "-t")


def test_the_unit_reloads_through_ovsvx_bounds_its_start_and_has_a_watchdog() -> None:
    """Issue 34: `systemctl reload` runs `ovsvx reload`, which waits for the agent's pass; a start is
    bounded (a boot waits for no host); the watchdog restarts an agent whose event thread died."""
    timed = replace(UNIT, timing=systemd.UnitTiming(start_s=180, watchdog_s=30))
    unit = lines(timed.text())
    assert unit["ExecReload"] == "/opt/x/.venv/bin/python -I -m ovsvx reload --host host1"
    assert (unit["TimeoutStartSec"], unit["WatchdogSec"], unit["RestartSec"]) == ("180", "30", "1")
    assert "WatchdogSec" not in lines(UNIT.text())  # none unless enable asks for one
    assert "infinity" not in UNIT.text()


def test_the_watchdog_period_is_read_once_and_only_when_meant_for_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    systemd.watchdog_period.cache_clear()
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_period() == 30.0
    assert "WATCHDOG_USEC" not in os.environ  # the processes the agent starts do not inherit it
    systemd.watchdog_period.cache_clear()
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert systemd.watchdog_period() is None
    systemd.watchdog_period.cache_clear()
