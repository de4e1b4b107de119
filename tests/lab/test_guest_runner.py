"""scripts/vm/guest: a command in a guest with Debian's stock kernel, its status and output passed through,
nothing left behind, and a plain refusal where no guest can run."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from ovsvx import waits
from tests.conftest import REPO, need_lab

GUEST = str(REPO / "scripts" / "vm" / "guest")
BOOT_S = 60.0  # the guest is up in ~10 s under TCG; the image may need building first (scaled below)


def run_dirs() -> set[Path]:
    return set(Path("/tmp").glob("ovsvx-guest.*"))


def running_qemus(run_dir: Path) -> list[int]:
    """Pids of the qemu processes of one run (its folder is in their command line)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if "qemu-system" in args and str(run_dir) in args:
            found.append(int(cmdline.parent.name))
    return found


@pytest.fixture
def guest_runs() -> None:
    need_lab()
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.fail("no .venv: run scripts/setup")


def test_the_commands_status_and_output_come_back(guest_runs: None) -> None:
    before = run_dirs()
    done = subprocess.run(
        [GUEST, "--", "sh", "-c", "uname -r; echo to-stderr >&2; exit 7"],
        capture_output=True,
        text=True,
        timeout=waits.scaled(BOOT_S) + 600,
    )
    assert done.returncode == 7, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout  # CMD's output and nothing else (the first run builds the image too)
    assert lines[1] == "to-stderr" and lines[0].endswith("-amd64")  # Debian's stock kernel, not this machine's
    assert "guest: Debian" in done.stderr and "under " in done.stderr
    assert not run_dirs() - before


def test_ctrl_c_leaves_no_qemu_and_no_temporary_files(guest_runs: None) -> None:
    before = run_dirs()
    runner = subprocess.Popen(
        [GUEST, "sleep", "300"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert runner.stderr is not None
        for line in runner.stderr:  # "guest: Debian ..., up in N s" once the command runs
            if line.startswith("guest: Debian"):
                break
        (run_dir,) = run_dirs() - before
        assert running_qemus(run_dir)
        os.killpg(runner.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert runner.wait(timeout=waits.scaled(30)) == 130
    finally:
        if runner.poll() is None:  # a failed assertion above: stop it the way a user would, then for sure
            os.killpg(runner.pid, signal.SIGINT)
            try:
                runner.wait(timeout=waits.scaled(30))
            except subprocess.TimeoutExpired:
                os.killpg(runner.pid, signal.SIGKILL)
    assert not running_qemus(run_dir)
    assert not run_dir.exists()


def test_a_machine_without_qemu_gets_one_line_and_77(tmp_path: Path) -> None:
    need_lab()
    for tool in ("id", "dirname", "mmdebstrap", "mkfs.ext4"):  # everything the script asks for but qemu
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True).stdout.strip()
        (tmp_path / tool).symlink_to(found)
    done = subprocess.run(
        ["/bin/bash", GUEST, "true"], capture_output=True, text=True, timeout=60, env={"PATH": str(tmp_path)}
    )
    assert done.returncode == 77
    assert done.stderr == "guest: cannot run a guest here: qemu-system-x86_64 is missing: run scripts/setup\n"
