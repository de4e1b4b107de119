"""Deadlines: written for a normal machine, stretched by one setting, never slowing what is ready."""

from __future__ import annotations

import subprocess
import sys
import time

from ovsvx import waits


def test_a_ready_thing_is_not_waited_for() -> None:
    started = time.monotonic()
    assert waits.until(lambda: True, 60)
    assert time.monotonic() - started < 1


def test_a_thing_that_becomes_ready_is_seen_at_the_next_poll() -> None:
    calls = []
    assert waits.until(lambda: calls.append(1) or len(calls) >= 3, 60, interval=0.001)
    assert len(calls) == 3


def test_a_thing_never_ready_gives_up_at_the_deadline() -> None:
    started = time.monotonic()
    assert not waits.until(lambda: False, 0.2, interval=0.01)
    assert 0.2 <= time.monotonic() - started < 5


def scale_under(value: str) -> subprocess.CompletedProcess[str]:
    code = "from ovsvx import waits; print(waits.scaled(5))"
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"OVSVX_WAIT_SCALE": value, "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_one_setting_stretches_every_deadline() -> None:
    assert scale_under("12").stdout.strip() == "60.0"


def test_a_bad_scale_is_a_usage_error_naming_the_setting() -> None:
    for bad in ("0.5", "fast", "5000"):
        done = scale_under(bad)
        assert done.returncode != 0
        assert f"OVSVX_WAIT_SCALE={bad!r} is not allowed: a number from 1 to 1000" in done.stderr
