"""scripts/walkthrough regenerates docs/walkthrough.md from a real lab; here it runs under the test
prefix into a scratch file, and the document must carry the evidence it promises.  The guest suite,
where OVS's kernel datapath exists, regenerates that section alone, for its evidence."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ovsvx import waits
from ovsvx.ovs.choices import choose_datapath
from tests.conftest import REPO, STATE_DIR, TEST_PREFIX, leftover_netns, need_lab

KERNEL_DATAPATH = "## Ovs mode on OVS's kernel datapath"


def regenerated(tmp_path: Path, *options: str) -> str:
    """scripts/walkthrough run under the test prefix into a scratch file: the document it wrote."""
    need_lab()
    prefix = f"{TEST_PREFIX}wt-"
    output = tmp_path / "walkthrough.md"
    env = {**os.environ, "OVSVX_STATE_DIR": str(STATE_DIR), "OVSVX_WALKTHROUGH_PREFIX": prefix}
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "walkthrough"), *options, str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=waits.scaled(600),
    )
    assert done.returncode == 0, done.stderr
    assert not [n for n in leftover_netns() if n.startswith(prefix)]
    return output.read_text()


def assert_kernel_datapath_section(section: str) -> None:
    """The same ping on OVS's kernel datapath, the kernel's tunnel device in the path, where the machine
    has the module; else the note that says how to regenerate it."""
    if choose_datapath()[0] == "system":
        assert (
            "host1:vxlan_sys_4789 Ether 02:00:c0:a8:01:fe > 02:00:c0:a8:02:fe / IP 192.168.1.100 > "
            "192.168.2.100 ttl 63 / ICMP echo-request" in section
        )
        assert "ttl 62 / ICMP echo-request" in section and "ARP who-has 192.168.2.254" not in section
        assert "datapath system@ovs-system: " in section and "(out: vxlan_sys_4789)" in section
    else:
        assert section.startswith("\n\nNot regenerated here: no openvswitch kernel module")


def test_the_walkthrough_is_regenerated_from_a_real_lab(tmp_path: Path) -> None:
    text = regenerated(tmp_path)
    kernel, ovs = text.split("## Ovs mode")[0], text.split("## Ovs mode")[1]
    assert (
        "VXLAN vni 100 / Ether 02:00:c0:a8:01:fe > ff:ff:ff:ff:ff:ff / ARP who-has 192.168.2.254 tell "
        "192.168.1.254" in kernel
    )  # the next hop's ARP crosses the tunnel
    assert "ARP who-has 192.168.2.254" not in ovs  # answered on the host in ovs mode
    assert "ttl 62 / ICMP echo-request" in kernel and "ttl 62 / ICMP echo-request" in ovs
    assert "vxlan fdb: " in kernel and "route-out: routed towards host2" in ovs
    assert_kernel_datapath_section(text.split(KERNEL_DATAPATH)[1].split("## The tutorial's three")[0])
    questions = text.split("## The tutorial's three questions")[1]
    q1, q2, q3 = questions.split("### ")[1:4]
    assert "192.168.1.100 dev vxlan1" in q1  # with a /24 first, the subnet's traffic goes into the tunnel
    assert q2.count("0% packet loss") == 3  # strict rp_filter changes nothing here
    assert "ARP who-has 192.168.1.254 tell 192.168.2.254" in q3 and "is-at" not in q3.split("192.168.1.254 tell")[1]


def test_the_kernel_datapath_section_alone(tmp_path: Path) -> None:
    """What the guest suite runs: the section only its kernel has, without the rest, which is the same on
    either datapath and regenerated here."""
    text = regenerated(tmp_path, "--kernel-datapath-only")
    assert "## Kernel mode" not in text and "## The tutorial's three questions" not in text
    assert_kernel_datapath_section(text.split(KERNEL_DATAPATH)[1])
