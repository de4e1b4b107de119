"""What root writes for FRR stays root's: the frr user can make ovsvx overwrite or chown nothing else."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovsvx import frr, record
from ovsvx.errors import ApplyError
from tests.conftest import need_lab


@pytest.fixture
def home() -> Iterator[frr.FrrHome]:
    need_lab()
    folder = record.STATE_DIR / "test-frr-files"
    yield frr.host_home(folder / "host1", None)
    shutil.rmtree(folder, ignore_errors=True)


def test_configuration_is_roots_and_only_the_daemons_folder_is_frrs(home: frr.FrrHome) -> None:
    frr._prepare(home)
    frr._write_conf(home.conf("bgpd"), "hostname host1\n")
    conf, rundir, workdir = (os.stat(p) for p in (home.conf("bgpd"), home.rundir, home.workdir))
    assert (conf.st_uid, stat.S_IMODE(conf.st_mode)) == (0, 0o644)
    assert (rundir.st_uid, stat.S_IMODE(rundir.st_mode)) == (0, 0o755)
    assert (workdir.st_uid, stat.S_IMODE(workdir.st_mode)) == (pwd.getpwnam("frr").pw_uid, 0o750)
    assert home.pidfile("bgpd").parent == home.vty("bgpd").parent == home.log("bgpd").parent == home.workdir
    for folder in home.rundir.parents:  # traversable by the frr user up to ovsvx's state folder
        assert os.stat(folder).st_mode & 0o001
        if folder == record.STATE_DIR:
            break


def test_a_link_in_place_of_the_daemons_folder_is_refused_and_its_target_untouched(
    home: frr.FrrHome, tmp_path: Path
) -> None:
    frr._prepare(home)
    victim = tmp_path / "victim"
    victim.mkdir()
    home.workdir.rmdir()
    home.workdir.symlink_to(victim)
    with pytest.raises(ApplyError, match="is not a folder"):
        frr._prepare(home)
    assert os.stat(victim).st_uid == 0


def test_a_configuration_is_never_written_through_a_link(home: frr.FrrHome, tmp_path: Path) -> None:
    frr._prepare(home)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    home.conf("bgpd").symlink_to(victim)
    with pytest.raises(OSError):
        frr._write_conf(home.conf("bgpd"), "hostname host1\n")
    assert victim.read_text() == "precious\n"
