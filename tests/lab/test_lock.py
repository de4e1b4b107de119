"""One deployment, one operation at a time: a second deploy or destroy waits for the first, or refuses."""

from __future__ import annotations

import time

import pytest

from ovsvx.errors import PreconditionError
from ovsvx.host import record
from ovsvx.host.record import Kind
from tests.conftest import leftover_netns, run_ovsvx, start_ovsvx


def test_a_destroy_during_a_deploy_waits_for_it_and_then_removes_everything(fresh_prefix: str) -> None:
    deploying = start_ovsvx("deploy", "--mode", "ovs", "--prefix", fresh_prefix)
    lock = record.record_path("lab", fresh_prefix).with_suffix(".lock")
    deadline = time.monotonic() + 10
    while not lock.exists() and time.monotonic() < deadline:  # the deploy holds the lock from its start
        time.sleep(0.02)
    time.sleep(0.3)
    destroyed = run_ovsvx("destroy", "--prefix", fresh_prefix)
    out, err = deploying.communicate(timeout=60)
    assert deploying.returncode == 0, err
    assert f"deployed lab '{fresh_prefix}'" in out  # the deploy ran to its end, undisturbed...
    assert "host1: - controller" in destroyed.stdout  # ...and only then did destroy run, and undo all of it
    assert not [n for n in leftover_netns() if n.startswith(fresh_prefix)]


def test_a_second_operation_that_cannot_wait_is_refused_clearly(fresh_prefix: str) -> None:
    refused = pytest.raises(PreconditionError, match=r"another ovsvx is deploying or destroying this lab \(lock ")
    with record.locked(Kind.LAB, fresh_prefix), refused, record.locked(Kind.LAB, fresh_prefix, wait_s=0.3):
        pass
