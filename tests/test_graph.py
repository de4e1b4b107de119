"""`ovsvx graph` from a topology alone: the pure picture, its dot and Mermaid text, and a rendered PNG.

The golden files under tests/golden are the pictures of fixed topologies, names and addresses exact;
after a deliberate change, `OVSVX_GOLDEN=write pytest tests/test_graph.py` rewrites them (then read the
diff).  The live picture of a deployment is a lab test (tests/lab/test_graph_lab.py).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from ovsvx.deploy.backends import BACKENDS
from ovsvx.model import generated, reader
from ovsvx.model.findings import MISSING, OK
from ovsvx.model.topology import Control, Mode, Topology
from ovsvx.model.traffic import Traffic
from ovsvx.observe import graph
from ovsvx.observe.graph import Kind, Line, Live, Picture
from tests.topologies import three_hosts

GOLDEN = Path(__file__).parent / "golden"
DOCS = Path(__file__).parent.parent / "docs"
NO_DOT = shutil.which("dot") is None


def drawn(top: Topology, modes: dict[str, Mode], datapath: str = "system", lab: bool = False) -> Picture:
    """As `graph` draws a topology whose ovs-mode hosts decided on `datapath`."""
    decided = {"datapath": datapath}
    pieces = {h.name: BACKENDS[modes[h.name]].pieces(top, h, decided) for h in top.hosts}
    labels = {name: BACKENDS[mode].label(decided)[0] for name, mode in modes.items()}
    return graph.picture(top, modes, pieces, labels, lab)


def every(top: Topology, mode: Mode) -> dict[str, Mode]:
    return {h.name: mode for h in top.hosts}


def matches_golden(text: str, name: str, folder: Path = GOLDEN) -> None:
    path = folder / name
    if os.environ.get("OVSVX_GOLDEN") == "write":
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; OVSVX_GOLDEN=write rewrites it"


TUTORIAL = reader.default()
MIXED = {"host1": Mode.KERNEL, "host2": Mode.OVS}
EVPN = generated.generate(3, Control.EVPN)


@pytest.mark.parametrize(
    ("name", "top", "modes", "datapath"),
    [
        ("tutorial-ovs-system", TUTORIAL, every(TUTORIAL, Mode.OVS), "system"),
        ("tutorial-kernel", TUTORIAL, every(TUTORIAL, Mode.KERNEL), "system"),
        ("tutorial-mixed-netdev", TUTORIAL, MIXED, "netdev"),
        ("three-hosts-ovs", reader.parse(three_hosts()), every(reader.parse(three_hosts()), Mode.OVS), "system"),
        ("evpn-kernel", EVPN, every(EVPN, Mode.KERNEL), "system"),
    ],
)
def test_dot_and_mermaid_of_fixed_topologies_match_their_golden_files(
    name: str, top: Topology, modes: dict[str, Mode], datapath: str
) -> None:
    picture = drawn(top, modes, datapath)
    matches_golden(graph.to_dot(picture), f"{name}.dot")
    matches_golden(graph.to_mermaid(picture), f"{name}.mmd")


def test_the_tutorials_pieces_are_all_drawn_with_their_names_and_addresses() -> None:
    picture = drawn(TUTORIAL, every(TUTORIAL, Mode.KERNEL))
    labels = {node.key: node.label for node in picture.nodes}
    assert labels["host1/vxlan1"] == (
        "vxlan1",
        "vxlan device · VNI 100 · UDP 4789",
        "remote 10.33.30.151",
        "192.168.1.254/32",
    )
    assert labels["host1/br1"] == ("br1", "Linux bridge", "192.168.1.1/24")
    assert labels["host2/netns ns2"] == ("namespace ns2", "tap1 192.168.2.100/24")
    assert labels["host2/ens160"] == ("ens160", "10.33.30.151/24 · VTEP")
    (tunnel,) = [e for e in picture.edges if e.kind == Line.TUNNEL]
    assert {tunnel.a, tunnel.b} == {"host1/vxlan1", "host2/vxlan2"} and "VNI 100" in tunnel.label
    veths = {(e.a, e.b, e.label) for e in picture.edges if e.kind == Line.VETH}
    assert veths == {("host1/netns ns1", "host1/br1", "tap1 ⇄ tap2"), ("host2/netns ns2", "host2/br2", "tap1 ⇄ tap2")}
    assert ("host1/br1", "host1/vxlan1", "routes 192.168.2.0/24") in {(e.a, e.b, e.label) for e in picture.edges}
    assert dict(picture.hosts) == {"host1": "host1 · kernel mode", "host2": "host2 · kernel mode"}


def test_ovs_mode_draws_one_port_per_peer_and_the_userspace_datapaths_br_phy() -> None:
    three = reader.parse(three_hosts())
    picture = drawn(three, every(three, Mode.OVS), "netdev")
    ports = sorted(n.key for n in picture.nodes if n.kind == Kind.TUNNEL and n.host == "host1")
    assert ports == ["host1/vxlan1-1", "host1/vxlan1-2"]
    tunnels = {frozenset((e.a, e.b)) for e in picture.edges if e.kind == Line.TUNNEL}
    assert len(tunnels) == 3 and frozenset(("host1/vxlan1-1", "host2/vxlan2-1")) in tunnels
    labels = {node.key: node.label for node in picture.nodes}
    assert labels["host1/br-phy"][-1] == "10.33.30.150/24 · VTEP"
    assert labels["host1/ens160"] == ("ens160", "(VTEP moved to br-phy)")


def test_evpn_draws_the_reflectors_and_a_session_from_every_host() -> None:
    picture = drawn(EVPN, every(EVPN, Mode.OVS))
    reflectors = [n for n in picture.nodes if n.kind == Kind.REFLECTOR]
    sessions = {r.key: [e.a for e in picture.edges if e.b == r.key and e.kind == Line.BGP] for r in reflectors}
    assert sessions and all(ends == ["host1/ens160", "host2/ens160", "host3/ens160"] for ends in sessions.values())
    assert len([e for e in picture.edges if e.kind == Line.TUNNEL]) == 3


def test_live_state_colours_the_pieces_and_labels_packets_and_sessions() -> None:
    picture = drawn(EVPN, every(EVPN, Mode.KERNEL))
    rr = next(n.key for n in picture.nodes if n.kind == Kind.REFLECTOR).removeprefix("rr ")
    host1 = EVPN.hosts[0]
    live = Live(
        states={f"host1/{host1.vxlan}": MISSING, f"host1/{host1.bridge}": OK},
        host_states={"host1": MISSING},
        traffic={f"host1/{host1.vxlan}": Traffic(12, 1200, 10, 1000)},
        sessions={("host1", rr): "Established", ("host2", rr): "Active"},
    )
    shown = graph.with_live(picture, live)
    nodes = {n.key: n for n in shown.nodes}
    assert nodes[f"host1/{host1.vxlan}"].state == MISSING
    assert nodes[f"host1/{host1.vxlan}"].label[-1] == "12 packets sent · 10 received"
    sessions = {e.a.split("/")[0]: (e.label, e.state) for e in shown.edges if e.kind == Line.BGP}
    assert sessions["host1"] == ("iBGP Established", OK) and sessions["host2"] == ("iBGP Active", MISSING)
    assert sessions["host3"] == ("iBGP l2vpn evpn", None)  # nothing said of it: left as drawn
    dot = graph.to_dot(shown)
    assert f'"host1/{host1.vxlan}" [label=' in dot and "color=red" in dot
    assert "(missing)" in dot  # host1's box says so
    assert "classDef missing" in graph.to_mermaid(shown)


def test_thirty_two_hosts_share_one_mesh_node_instead_of_496_lines() -> None:
    big = generated.generate(32)
    picture = drawn(big, every(big, Mode.KERNEL))
    tunnels = [e for e in picture.edges if e.kind == Line.TUNNEL]
    assert len(tunnels) == 32 and {e.b for e in tunnels} == {graph.MESH}
    (mesh,) = [n for n in picture.nodes if n.key == graph.MESH]
    assert mesh.label[1] == "496 tunnels between 32 hosts"
    assert graph.to_dot(picture).count("subgraph cluster_") == 32
    if not NO_DOT:  # and Graphviz can rank it (a line per tunnel between 32 boxes, it cannot)
        assert graph.rendered(picture, "svg").startswith(b"<?xml")


@pytest.mark.skipif(NO_DOT, reason="Graphviz's dot is not installed (scripts/setup installs it)")
def test_a_rendered_png_is_a_picture_of_a_sensible_size() -> None:
    png = graph.rendered(drawn(TUTORIAL, every(TUTORIAL, Mode.OVS)), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # the IHDR chunk
    assert 600 <= width <= 3000 and 400 <= height <= 2000, (width, height)
    svg = graph.rendered(drawn(TUTORIAL, every(TUTORIAL, Mode.OVS)), "svg").decode()
    assert svg.lstrip().startswith("<?xml") and "192.168.1.100/24" in svg


@pytest.mark.skipif(NO_DOT, reason="Graphviz's dot is not installed (scripts/setup installs it)")
@pytest.mark.parametrize("mode", [Mode.KERNEL, Mode.OVS])
def test_the_readmes_pictures_are_the_built_in_topologys_as_drawn_now(mode: Mode) -> None:
    """docs/overlay-MODE.svg, shown by the README and the walkthrough: `ovsvx graph --mode MODE
    --datapath system -o docs/overlay-MODE.svg`, kept current like the golden files."""
    svg = graph.rendered(drawn(TUTORIAL, every(TUTORIAL, mode)), "svg").decode()
    matches_golden(svg, f"overlay-{mode}.svg", DOCS)
