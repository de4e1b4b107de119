"""`ovsvx graph --prefix P` on a real lab: the live picture, coloured by what status finds.

A mixed lab (host1 in kernel mode, host2 in ovs mode), so both backends' counters and findings are
drawn: ns1 pings ns2, the tunnels' counters move; then two pieces are broken by hand and the picture
shows exactly those as broken, and the rest still as it is.
"""

from __future__ import annotations

import re

from ovsvx import waits
from tests.conftest import Runner
from tests.lab.helpers import in_host

COUNTERS_S = 10.0  # OVS reads its interfaces' counters every 5 s


def node_line(dot: str, key: str) -> str:
    (line,) = [line for line in dot.splitlines() if line.strip().startswith(f'"{key}" [')]
    return line


def packets(dot: str, key: str) -> tuple[int, int]:
    found = re.search(r"(\d+) packets sent · (\d+) received", node_line(dot, key))
    assert found, node_line(dot, key)
    return int(found[1]), int(found[2])


def test_the_live_graph_counts_the_tunnels_packets_and_shows_a_broken_piece_as_broken(
    ovsvx: Runner, fresh_prefix: str
) -> None:
    ovsvx("deploy", "--mode", "host1=kernel,host2=ovs", "--prefix", fresh_prefix)
    before = ovsvx("graph", "--prefix", fresh_prefix).stdout
    assert "color=red" not in before and "color=forestgreen" in before
    in_host(fresh_prefix, "ns1", "ping", "-c", "5", "-i", "0.2", "-W", "1", "192.168.2.100")

    def counted() -> bool:
        dot = ovsvx("graph", "--prefix", fresh_prefix).stdout
        return min(packets(dot, "host1/vxlan1")) >= 5 and min(packets(dot, "host2/vxlan2")) >= 5

    assert waits.until(counted, COUNTERS_S, interval=1), ovsvx("graph", "--prefix", fresh_prefix).stdout

    in_host(fresh_prefix, "host1", "ip", "link", "del", "vxlan1")
    in_host(fresh_prefix, "host2", "ip", "link", "del", "tap2")
    broken = ovsvx("graph", "--prefix", fresh_prefix).stdout
    assert "color=red" in node_line(broken, "host1/vxlan1")
    assert "color=forestgreen" in node_line(broken, "host1/br1")  # what is not broken stays as it was
    (veth,) = [line for line in broken.splitlines() if '"host2/netns ns2" -- "host2/br2"' in line]
    assert "color=red" in veth
    assert "host1 · kernel mode (missing)" in broken
    assert re.search(r"host2 · ovs mode, \w+ datapath \(missing\)", broken), broken
    mermaid = ovsvx("graph", "--prefix", fresh_prefix, "--format", "mermaid").stdout
    assert re.search(r"class [\w,]*host1_vxlan1[\w,]* missing", mermaid), mermaid
