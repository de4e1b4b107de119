"""Doctor's parts that need no lab: how a finding reads, and that without root it stops at once."""

from __future__ import annotations

import os

import pytest

from ovsvx.model import reader
from ovsvx.model.site import Site
from ovsvx.observe import doctor

TOPO = reader.default()


def test_a_finding_reads_as_one_line_with_its_fix() -> None:
    assert doctor.Diagnosis(doctor.FAIL, "x is wrong", "do y").text == "x is wrong; fix: do y"
    assert doctor.Diagnosis(doctor.OK, "x is fine").text == "x is fine"


def test_without_root_the_first_line_says_so_and_no_stack_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    found = doctor.diagnose(TOPO, [(Site(TOPO.host("host1"), "no-such-namespace"), None)])
    assert list(found) == ["machine"]
    assert found["machine"] == [
        doctor.Diagnosis(
            doctor.FAIL,
            "not running as root: ovsvx changes the network and reads other namespaces",
            "run it as root (sudo ovsvx doctor)",
        )
    ]


def _with_xdp(mode: str | None) -> list[doctor.Diagnosis]:
    """Doctor's XDP check on host1 with a program on its NIC and none elsewhere, in `mode`."""
    context = doctor.HostContext(TOPO, Site(TOPO.host("host1"), None), mode)
    context.__dict__["stack"] = doctor.StackView({}, [], [], {"ens160": 77, "eth9": 5})  # as read_stack gives
    return doctor._xdp(context)


def test_xdp_on_an_overlay_nic_is_ovs_modes_own_or_a_leftover_that_darkens_the_tunnel() -> None:
    assert _with_xdp("ovs") == [
        doctor.Diagnosis(doctor.OK, "XDP program 77 on ens160: ovs mode's AF_XDP port reads it")
    ]
    for mode in ("kernel", None):
        assert [d.text for d in _with_xdp(mode)] == [
            "XDP program 77 on ens160 takes its frames before the kernel's stack (a killed ovs-vswitchd leaves "
            "its AF_XDP program behind); fix: ip link set dev ens160 xdp off (ovsvx deploy takes off what its own "
            "OVS left)"
        ]
