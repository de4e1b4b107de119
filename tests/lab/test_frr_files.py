"""What root writes for FRR stays root's: the frr user can make ovsvx overwrite or chown nothing else."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from ovsvx.errors import ApplyError, PreconditionError
from ovsvx.host import frr, record, secretfile
from ovsvx.model import generated, topology
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
    frr_user = pwd.getpwnam("frr")
    assert (conf.st_uid, conf.st_gid, stat.S_IMODE(conf.st_mode)) == (
        0,
        frr_user.pw_gid,
        0o640,
    )  # it may hold the password
    assert (rundir.st_uid, stat.S_IMODE(rundir.st_mode)) == (0, 0o755)
    assert (workdir.st_uid, stat.S_IMODE(workdir.st_mode)) == (frr_user.pw_uid, 0o750)
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


def test_the_bgp_password_is_taken_only_from_a_file_of_roots_alone(tmp_path: Path) -> None:
    need_lab()
    secret = tmp_path / "bgp.secret"
    secret.write_text("s3cret\n")
    topo = replace(
        generated.generate(2, topology.Control.EVPN),
        bgp=topology.Bgp(65000, (IPv4Address("10.33.30.2"),), secret),
    )
    secret.chmod(0o640)
    with pytest.raises(PreconditionError, match=r"must be a file of root's that no one else may read") as caught:
        secretfile.bgp_password(topo)
    assert "s3cret" not in str(caught.value)
    secret.chmod(0o600)
    assert secretfile.bgp_password(topo) == "s3cret"
    secret.write_text("two words\n")
    with pytest.raises(PreconditionError, match=r"1\.\.80 printable ASCII characters, no spaces") as caught:
        secretfile.bgp_password(topo)
    assert "two words" not in str(caught.value)
