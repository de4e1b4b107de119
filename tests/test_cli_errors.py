"""Every bad input is one line on stderr naming the value and what is allowed, a non-zero exit,
and no change to the machine.  These run the real command; none needs a lab."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ovsvx.model import reader
from tests.conftest import Runner, leftover_netns


def one_line_error(done: object, code: int, *fragments: str) -> None:
    assert done.returncode == code, (done.stdout, done.stderr)  # type: ignore[attr-defined]
    lines = done.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("ovsvx: error: "), done.stderr  # type: ignore[attr-defined]
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    return tmp_path / "bad.toml"


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (("vni = 100", "vni = 0"), ["vni: 0 is not allowed", "1..16777215"]),
        (("port = 4789", "port = 99999"), ["port: 99999 is not allowed", "1024..65535"]),
        (('vxlan = "vxlan1"', 'vxlan = "a-very-long-vxlan0"'), ["hosts[0].vxlan", "1..15 characters"]),
        (('vtep = "10.33.30.151"', 'vtep = "10.33.30.150"'), ["hosts[1].vtep: 10.33.30.150 is already used"]),
        (('gateway = "192.168.1.1"', 'gateway = "192.168.7.1"'), ["hosts[0].gateway", "inside subnet 192.168.1.0/24"]),
        (("vni = 100", "vni = 100\ncolour = 'red'"), ["colour: unknown key"]),
        (("vni = 100", "vni = = 100"), ["malformed TOML"]),
        # security round 3, 7: names ovsvx derives, or every stack has; addresses no host lives at
        (('peer = "tap2"', 'peer = "br-phy"'), ["hosts[0].namespaces[0].peer", "ovs mode's bridge"]),
        (('veth = "tap1"', 'veth = "lo"'), ["hosts[0].namespaces[0].veth: 'lo' is not allowed", "loopback"]),
        (('bridge = "br1"', 'bridge = "lo"'), ["hosts[0].bridge: 'lo' is not allowed", "loopback device"]),
        (('nic = "ens160"', 'nic = "vxlan_sys_4789"'), ["hosts[0].nic", "Open vSwitch's tunnel device"]),
        (('underlay = "10.33.30.0/24"', 'underlay = "127.0.0.0/8"'), ["underlay: 127.0.0.0/8", "loopback"]),
        (('subnet = "192.168.1.0/24"', 'subnet = "224.1.1.0/24"'), ["hosts[0].subnet: 224.1.1.0/24", "multicast"]),
        (('subnet = "192.168.1.0/24"', 'subnet = "169.254.1.0/24"'), ["hosts[0].subnet", "link-local"]),
        (('underlay = "10.33.30.0/24"', 'underlay = "0.0.0.0/8"'), ["underlay: 0.0.0.0/8", "'this network'"]),
    ],
)
def test_bad_topology_file_creates_nothing(
    ovsvx: Runner, bad_file: Path, edit: tuple[str, str], fragments: list[str]
) -> None:
    before = leftover_netns()
    bad_file.write_text(reader.default_text().replace(edit[0], edit[1], 1))
    for command in (["deploy", "--prefix", "ovtbad-"], ["topology", "show"], ["plan"]):
        one_line_error(ovsvx(*command, "-t", str(bad_file), check=False), 2, str(bad_file), *fragments)
    assert leftover_netns() == before


@pytest.mark.parametrize(
    ("argv", "code", "fragments"),
    [
        (["deploy", "--host", "host9"], 2, ["unknown host 'host9'", "host1, host2"]),
        (["plan", "--host", "host9"], 2, ["unknown host 'host9'"]),
        (["deploy", "--mode", "vpp", "--prefix", "ovtbad-"], 2, ["mode 'vpp' is not allowed", "kernel"]),
        (["deploy", "--mode", "host9=kernel", "--prefix", "ovtbad-"], 2, ["--mode names unknown host 'host9'"]),
        (["deploy", "--mode", "host1=", "--prefix", "ovtbad-"], 2, ["--mode 'host1=' is not allowed"]),
        (["deploy", "--prefix", "Bad_Prefix"], 2, ["--prefix 'Bad_Prefix' is not allowed", "a-z 0-9 -"]),
        (
            ["deploy", "--prefix", "ovtbad-", "--datapath", "system", "--port-type", "afxdp"],
            2,
            ["--port-type afxdp is for the userspace datapath; this host uses system"],
        ),
        (
            ["deploy", "--prefix", "ovtbad-", "--ovs-config", "pmd maxsleep"],
            2,
            ["--ovs-config 'pmd maxsleep' is not allowed", "[HOST:]KEY=VALUE"],
        ),
        (
            ["deploy", "--prefix", "ovtbad-", "--ovs-config", "host9:pmd-maxsleep=5"],
            2,
            ["names unknown host 'host9'", "host1, host2"],
        ),
        (["status", "--prefix", "ovtnone-"], 5, ["nothing is deployed", "ovsvx deploy"]),
        (["verify", "--prefix", "ovtnone-"], 5, ["nothing is deployed"]),
        (["exec", "--prefix", "ovtnone-", "ns1", "--", "true"], 5, ["nothing is deployed"]),
        (["topology", "show", "-t", "/nonexistent.toml"], 2, ["cannot read"]),
        (["agent", "--host", "host9"], 2, ["unknown host 'host9'", "host1, host2"]),
        (["deploy", "--prefix", "ovtbad-", "--mode", "host1=kernel,host1=ovs"], 2, ["--mode names 'host1' twice"]),
        (["status", "--prefix", "a\n"], 2, ["--prefix 'a\\n' is not allowed"]),
        (["agent", "--host", "host1", "--full-check", "0"], 2, ["--full-check 0 is not allowed", "0.5 to 3600"]),
        (["agent", "--host", "host1", "--mode", "fast"], 2, ["mode 'fast' is not allowed", "ovs, kernel"]),
        (["enable", "--host", "host9"], 2, ["unknown host 'host9'"]),
        (["flows", "--host", "host1"], 2, ["ovsvx: error: No such option '--host'"]),
        (["bench", "--json", "out.json"], 2, ["ovsvx: error: Got unexpected extra argument (out.json)"]),
        (["bench", "--lever", "jumbo", "--port-type", "afxdp"], 2, ["--lever jumbo sets the ovs lab's choices"]),
        (["graph", "-o", "overlay.jpg"], 2, ["-o overlay.jpg", "suffix '.jpg'", ".svg, .png"]),
        (["graph", "--format", "gif"], 2, ["'gif' is not one of", "mermaid"]),
        (["graph", "--prefix", "ovtnone-", "--mode", "kernel"], 2, ["--prefix draw what is deployed"]),
        (["graph", "--prefix", "ovtnone-"], 5, ["nothing is deployed"]),
        (["graph", "--mode", "host9=kernel"], 2, ["--mode names unknown host 'host9'"]),
        (["agent", "--host", "host1", "--probes"], 2, ["--probes are served with the metrics", "--metrics"]),
        (["agent", "--host", "host1", "--metrics", "99999"], 2, ["--metrics '99999' is not allowed", "ADDR:PORT"]),
        (["enable", "--reflector", "10.33.30.2", "--metrics", "9477"], 2, ["a route reflector has none"]),
    ],
)
def test_bad_command_line_values(ovsvx: Runner, argv: list[str], code: int, fragments: list[str]) -> None:
    if (code == 5 or {"--port-type", "--ovs-config", "enable"} & set(argv)) and os.geteuid() != 0:
        pytest.skip("reaching this check needs root")
    before = leftover_netns()
    one_line_error(ovsvx(*argv, check=False), code, *fragments)
    assert leftover_netns() == before


def test_topology_init_refuses_to_overwrite(ovsvx: Runner, tmp_path: Path) -> None:
    target = tmp_path / "mine.toml"
    ovsvx("topology", "init", str(target))
    assert reader.load(target) == reader.default()
    one_line_error(ovsvx("topology", "init", str(target), check=False), 2, "exists", "--force")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux)")
def test_not_root_is_told_so(tmp_path: Path) -> None:
    """In a user namespace with no mapping, euid is 'nobody', as for an unprivileged user."""
    if os.geteuid() != 0:
        pytest.skip("the unprivileged case is the normal one here")
    import subprocess
    import sys

    done = subprocess.run(
        ["unshare", "--user", sys.executable, "-m", "ovsvx", "deploy", "--prefix", "ovtbad-"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    one_line_error(done, 3, "must run as root")


def test_missing_tool_names_its_package(ovsvx: Runner) -> None:
    if os.geteuid() != 0:
        pytest.skip("verify checks root before tools")
    done = ovsvx("verify", "--prefix", "ovtnone-", check=False, PATH="/nonexistent")
    one_line_error(done, 3, "ping is not installed: install the Debian package iputils-ping")


def test_missing_tcpdump_names_its_package(ovsvx: Runner) -> None:
    if os.geteuid() != 0:
        pytest.skip("capture checks root before tools")
    one_line_error(
        ovsvx("capture", "--prefix", "ovtnone-", check=False, PATH="/nonexistent"),
        3,
        "tcpdump is not installed: install the Debian package tcpdump",
    )


def test_missing_open_vswitch_names_its_package(ovsvx: Runner) -> None:
    if os.geteuid() != 0:
        pytest.skip("deploy checks root before tools")
    before = leftover_netns()
    done = ovsvx("deploy", "--mode", "ovs", "--prefix", "ovtnone-", check=False, PATH="/nonexistent")
    one_line_error(done, 3, "ovs-vsctl is not installed: install the Debian package openvswitch-switch")
    assert leftover_netns() == before
