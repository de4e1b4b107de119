"""Doctor's parts that need no lab: how a finding reads, and that without root it stops at once."""

from __future__ import annotations

import os

import pytest

from ovsvx import doctor, topology
from ovsvx.site import Site

TOPO = topology.default()


def test_a_finding_reads_as_one_line_with_its_fix() -> None:
    assert doctor.Diagnosis(doctor.FAIL, "x is wrong", "do y").text == "x is wrong; fix: do y"
    assert doctor.Diagnosis(doctor.OK, "x is fine").text == "x is fine"


def test_without_root_the_first_line_says_so_and_no_stack_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    found = doctor.diagnose(TOPO, [(Site(TOPO.host("host1"), "no-such-namespace"), None)])
    assert list(found) == ["machine"]
    assert found["machine"] == [doctor.Diagnosis(
        doctor.FAIL, "not running as root: ovsvx changes the network and reads other namespaces",
        "run it as root (sudo ovsvx doctor)")]
