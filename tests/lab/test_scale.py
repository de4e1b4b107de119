"""scripts/scale measures a lab of N hosts in each mode; here at N = 3, the README's table at 32."""

from __future__ import annotations

import os
import subprocess
import sys

from ovsvx import waits
from tests.conftest import REPO, STATE_DIR, TEST_PREFIX, leftover_netns, need_lab


def test_scale_deploys_verifies_and_measures_each_mode_then_leaves_nothing() -> None:
    need_lab()
    prefix = f"{TEST_PREFIX}sc-"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "scale"), "3", "--prefix", prefix],
        capture_output=True,
        text=True,
        timeout=waits.scaled(300),
        env={**os.environ, "OVSVX_STATE_DIR": str(STATE_DIR)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split(" | ") for line in done.stdout.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [("| 3", "kernel"), ("| 3", "ovs")]
    for row in rows:
        assert row[4] == "43, pass"  # 30 pings, 6 underlay, 6 full-size DF pings, 1 TCP: all passed
    assert row[5].startswith("0.") and "MiB a host; ovs-vswitchd up to" in row[5]
    assert not [n for n in leftover_netns() if n.startswith(prefix)]
