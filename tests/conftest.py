"""Shared test fixtures.

Integration tests drive the real `ovsvx` command in a subprocess, as a user
would, with a state directory of their own and lab prefixes starting with
TEST_PREFIX, so they never see or touch a user's lab.  A session-wide safety
net removes anything test-prefixed that a failed test left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

#: This run's own prefix: a concurrent test run (another checkout, CI) has another and is never touched.
TEST_PREFIX = f"ot{os.getpid() % 1000:03d}"
STATE_DIR = Path(f"/run/ovsvx-test-{os.getpid()}")
os.environ["OVSVX_STATE_DIR"] = str(STATE_DIR)  # before ovsvx is imported: records read in-process agree
os.environ["OVSVX_HOST_RECORD_DIR"] = str(STATE_DIR / "host-record")  # never this machine's /var/lib/ovsvx

from ovsvx.host import netstack  # noqa: E402
from ovsvx.ovs import daemons

REPO = Path(__file__).resolve().parent.parent

Runner = Callable[..., subprocess.CompletedProcess[str]]


def run_ovsvx(*args: str, check: bool = True, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m ovsvx ARGS` with the test state directory; fail with its output when check is set."""
    full_env = {**os.environ, "OVSVX_STATE_DIR": str(STATE_DIR), **env}
    done = subprocess.run(
        [sys.executable, "-m", "ovsvx", *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO
    )
    if check and done.returncode != 0:
        pytest.fail(f"ovsvx {' '.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}")
    return done


def start_ovsvx(*args: str, stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
    """Start `python -m ovsvx ARGS` in the background with the test state directory; output piped."""
    env = {**os.environ, "OVSVX_STATE_DIR": str(STATE_DIR)}
    return subprocess.Popen(
        [sys.executable, "-m", "ovsvx", *args], stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=REPO
    )


def leftover_netns() -> list[str]:
    return [n for n in netstack.list_netns() if n.startswith(TEST_PREFIX)]


def sweep() -> None:
    """Destroy every test lab by its record, then stop and remove anything test-made that is left."""
    if STATE_DIR.exists():
        for rec in STATE_DIR.glob("lab-*.json"):
            prefix = rec.stem.removeprefix("lab-")
            run_ovsvx("destroy", "--prefix", prefix, check=False)
    if STATE_DIR.exists():  # a destroy that failed: stop what it started, by its own pidfiles
        for pidfile in STATE_DIR.rglob("*.pid"):
            daemons.stop_pid(pidfile, daemons.CONTROLLER_PIDS if pidfile.stem == "controller" else pidfile.stem)
    for name in leftover_netns():
        netstack.remove_netns(name)
    shutil.rmtree(STATE_DIR, ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.geteuid() == 0:
        sweep()


def need_lab() -> None:
    if os.geteuid() != 0:
        pytest.skip("lab tests need root")
    for tool in ("ping", "iperf3"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/setup")


@pytest.fixture
def ovsvx() -> Runner:
    return run_ovsvx


@pytest.fixture
def fresh_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A lab prefix for one test; whatever the test deployed under it is destroyed afterwards."""
    need_lab()
    prefix = f"{TEST_PREFIX}{abs(hash(request.node.nodeid)) % 10**5:05d}-"
    yield prefix
    run_ovsvx("destroy", "--prefix", prefix, check=False)
    left = [n for n in leftover_netns() if n.startswith(prefix)]
    for name in left:
        netstack.remove_netns(name)
    assert not left, f"destroy left namespaces behind: {left}"
