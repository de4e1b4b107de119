"""The overlay as a picture: what the tutorial draws by hand, from the topology alone or with live state.

`picture` is a pure function of the topology and each host's pieces (the values
its backend deploys, `Backend.pieces`), so the names and addresses drawn are the
ones deploy makes: each host with its NIC and VTEP, its bridge (Linux or OVS),
its vxlan device or ports, its namespaces on their veths, the underlay, the
tunnels between VTEPs and, under EVPN, the route reflectors and the BGP
sessions to them.  `with_live` lays what `status` found over it (each piece
ok, missing or differing), the tunnels' packet counters and the BGP sessions'
states; nothing is measured here.  `to_dot` (through the `graphviz` package,
which quotes for us) and `to_mermaid` render it; `render` turns dot into SVG or
PNG with Graphviz's `dot`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from ipaddress import IPv4Address

import graphviz

from ovsvx.errors import ApplyError, PreconditionError, UsageError
from ovsvx.host.plan import Address, Bridge, MovedAddress, Netns, Resource, Route, Veth, Vxlan
from ovsvx.model.findings import DIFFERS, FOREIGN, MISSING, OK
from ovsvx.model.topology import Host, Mode, Topology
from ovsvx.model.traffic import Traffic
from ovsvx.ovs.switch import OvsBridge, Port, tunnel_remotes

FORMATS = ("svg", "png", "dot", "mermaid")
UNDERLAY = "underlay"
MESH = "mesh"
#: Up to this many hosts, a line for each tunnel; beyond, the lines of a full mesh would hide the hosts (and
#: Graphviz cannot rank hundreds of lines between boxes), so one node stands for all of them.
MESH_LINES = 4
#: What a state looks like: Graphviz colour names (Mermaid takes the same).
COLOURS: dict[str, str] = {OK: "forestgreen", MISSING: "red", DIFFERS: "darkorange", FOREIGN: "purple"}
WORST_FIRST = (MISSING, FOREIGN, DIFFERS, OK)


class Kind(StrEnum):
    NIC = "nic"
    BRIDGE = "bridge"
    TUNNEL = "tunnel"
    NETNS = "netns"
    UNDERLAY = "underlay"
    REFLECTOR = "reflector"


class Line(StrEnum):
    WIRE = "wire"  # a NIC (or a reflector) on the underlay
    VETH = "veth"  # a namespace's veth pair to its bridge
    PORT = "port"  # a device in a bridge, or a tunnel over the device that carries the VTEP
    TUNNEL = "tunnel"  # VXLAN between two VTEPs
    BGP = "bgp"  # an iBGP session to a route reflector


SHAPES = {
    Kind.NIC: "box",
    Kind.BRIDGE: "box",
    Kind.TUNNEL: "hexagon",
    Kind.NETNS: "component",
    Kind.UNDERLAY: "ellipse",
    Kind.REFLECTOR: "diamond",
}
STYLES = {Line.WIRE: "bold", Line.VETH: "solid", Line.PORT: "solid", Line.TUNNEL: "dashed", Line.BGP: "dotted"}


@dataclass(frozen=True)
class Node:
    key: str  # "host1/br1", "host1/netns ns1", "underlay", "rr 10.33.30.2"
    kind: Kind
    label: tuple[str, ...]  # its lines
    host: str | None = None  # the host it belongs to (drawn inside its box)
    peer: str = ""  # a tunnel's remote VTEP, where it names one
    state: str | None = None  # with live state: ok | missing | differs | foreign


@dataclass(frozen=True)
class Edge:
    a: str
    b: str
    kind: Line
    label: str = ""
    key: str = ""  # what live state colours it by ("host1/tap2" for a veth)
    state: str | None = None


@dataclass(frozen=True)
class Picture:
    title: str
    hosts: tuple[tuple[str, str], ...]  # (host, its box's label)
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    host_states: tuple[tuple[str, str], ...] = ()  # with live state: the worst of each host's findings


@dataclass(frozen=True)
class Live:
    """What a deployment says of its pieces, keyed like the picture's nodes and edges ("host1/br1")."""

    states: Mapping[str, str] = field(default_factory=dict)  # piece -> worst state found
    host_states: Mapping[str, str] = field(default_factory=dict)  # host -> worst state of all its findings
    traffic: Mapping[str, Traffic] = field(default_factory=dict)  # tunnel piece -> its counters
    sessions: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (host, reflector) -> "Established"


def key(host: str, piece: str) -> str:
    return f"{host}/{piece}"


# --- the picture from the topology ---------------------------------------------------------------


def picture(
    topology: Topology,
    modes: Mapping[str, Mode],
    pieces: Mapping[str, Sequence[Resource | OvsBridge]],
    labels: Mapping[str, str],
    lab: bool,
) -> Picture:
    """The overlay's picture: every host's pieces, the underlay, the tunnels and the reflectors."""
    nodes: list[Node] = [_underlay(topology, lab)]
    edges: list[Edge] = []
    boxes = []
    for host in topology.hosts:
        host_nodes, host_edges = _host(topology, host, pieces[host.name])
        nodes += host_nodes
        edges += host_edges
        label = f", {labels[host.name]}" if labels[host.name] else ""
        boxes.append((host.name, f"{host.name} · {modes[host.name]} mode{label}"))
    if len(topology.hosts) <= MESH_LINES:
        edges += _tunnels(topology, {n.key: n for n in nodes})
    else:
        nodes.append(_mesh(topology))
        edges += [Edge(n.key, MESH, Line.TUNNEL) for n in nodes if n.kind == Kind.TUNNEL]
    if topology.bgp is not None:
        for rr in topology.bgp.route_reflectors:
            nodes.append(Node(f"rr {rr}", Kind.REFLECTOR, ("route reflector", str(rr), f"AS {topology.bgp.asn}")))
            edges.append(Edge(f"rr {rr}", UNDERLAY, Line.WIRE))
            edges += [Edge(key(h.name, h.nic), f"rr {rr}", Line.BGP, "iBGP l2vpn evpn") for h in topology.hosts]
    title = f"VXLAN overlay: VNI {topology.vni}, UDP {topology.port}, {topology.control} control"
    return Picture(title, tuple(boxes), tuple(nodes), tuple(edges))


def _underlay(topology: Topology, lab: bool) -> Node:
    where = "the lab's switch" if lab else "the hosts' network"
    return Node(UNDERLAY, Kind.UNDERLAY, ("underlay", str(topology.underlay), where, f"MTU {topology.underlay_mtu}"))


class _HostDrawing:
    """One host's nodes and edges, from its pieces: devices become nodes, veths and ports lines, and
    addresses lines of the label of the device (or namespace) they sit on."""

    def __init__(self, topology: Topology, host: Host, peers: Mapping[str, str]):
        self.host = host
        self.labels: dict[str, list[str]] = {host.nic: [host.nic, f"{host.vtep}/{topology.underlay.prefixlen} · VTEP"]}
        self.kinds = {host.nic: Kind.NIC}
        self.peers = peers  # a tunnel -> the VTEP it names (switch.tunnel_remotes)
        self.edges = [Edge(key(host.name, host.nic), UNDERLAY, Line.WIRE)]
        self.vtep_on = host.nic  # what carries the VTEP address: the NIC, or br-phy on the userspace datapath
        self.in_bridge: dict[str, str] = {}  # an OVS port's name -> its bridge
        self.routed: dict[str, list[str]] = {}  # a device the host routes peers' subnets to -> those subnets

    def add(self, piece: str, kind: Kind, label: list[str]) -> None:
        self.labels[piece], self.kinds[piece] = label, kind

    def link(self, a: str, b: str, kind: Line, label: str = "", piece: str = "") -> None:
        """A line from `a` down to `b` (the picture's ranks run from the namespaces to the underlay)."""
        name = self.host.name
        self.edges.append(Edge(key(name, a), key(name, b), kind, label, key(name, piece) if piece else ""))

    def device(self, piece: Resource | OvsBridge) -> None:
        match piece:
            case Netns(netns):
                self.add(f"netns {netns}", Kind.NETNS, [f"namespace {netns}"])
            case Bridge(bridge):
                self.add(bridge, Kind.BRIDGE, [bridge, "Linux bridge"])
            case Vxlan():
                self.add(piece.name, Kind.TUNNEL, _vxlan_label(piece))
                if piece.master:  # EVPN's routed VNI: its bridge is what the host routes the peers' subnets to
                    self.link(piece.master, piece.name, Line.PORT, piece=piece.name)
                    self.routed.setdefault(piece.master, []).append("the peers' subnets, from BGP EVPN")
            case OvsBridge():
                self.add(piece.name, Kind.BRIDGE, [piece.name, f"OVS bridge, {piece.datapath_type} datapath"])
                for port in piece.ports:
                    self.port(piece.name, port)
            case MovedAddress():
                self.labels[self.host.nic][1] = f"(VTEP moved to {piece.dev})"
                self.labels[piece.dev].append(f"{piece.cidr} · VTEP")
                self.vtep_on = piece.dev
            case Address(dev, _, _, None):
                self.labels[dev].append(piece.cidr)
            case Route(dst, _, dev, _, None) if dst is not None and dev != self.host.bridge:
                self.routed.setdefault(dev, []).append(str(dst))

    def port(self, bridge: str, port: Port) -> None:
        self.in_bridge[port.name] = bridge
        if port.type == "vxlan":
            self.add(port.name, Kind.TUNNEL, _port_label(port))
            self.link(bridge, port.name, Line.PORT, piece=port.name)
        elif port.name == self.host.nic:
            self.link(bridge, port.name, Line.PORT, piece=port.name)

    def veth(self, veth: Veth, address: str) -> None:
        self.labels[f"netns {veth.netns}"].append(f"{veth.peer} {address}")
        bridge = veth.master or self.in_bridge.get(veth.name, "")
        self.link(f"netns {veth.netns}", bridge, Line.VETH, f"{veth.peer} ⇄ {veth.name}", veth.name)

    def drawn(self) -> tuple[list[Node], list[Edge]]:
        for dev, subnets in self.routed.items():  # kernel mode: the host routes from the bridge to the tunnel
            self.link(self.host.bridge, dev, Line.PORT, f"routes {', '.join(subnets)}")
        for tunnel in [piece for piece, kind in self.kinds.items() if kind == Kind.TUNNEL]:
            self.link(tunnel, self.vtep_on, Line.PORT, "encapsulated")
        name = self.host.name
        nodes = [
            Node(key(name, p), self.kinds[p], tuple(self.labels[p]), name, self.peers.get(p, "")) for p in self.labels
        ]
        return nodes, self.edges


def _host(topology: Topology, host: Host, pieces: Sequence[Resource | OvsBridge]) -> tuple[list[Node], list[Edge]]:
    drawing = _HostDrawing(topology, host, tunnel_remotes(pieces))
    for piece in pieces:
        drawing.device(piece)
    for piece in pieces:  # the namespaces' side, once every bridge is known
        if isinstance(piece, Veth):
            drawing.veth(piece, _address_in(pieces, piece))
    return drawing.drawn()


def _vxlan_label(vxlan: Vxlan) -> list[str]:
    remote = f"remote {vxlan.remote}" if vxlan.remote else "peers from the forwarding table"
    return [vxlan.name, f"vxlan device · VNI {vxlan.vni} · UDP {vxlan.port}", remote]


def _port_label(port: Port) -> list[str]:
    options = dict(port.options)
    return [
        port.name,
        f"vxlan port · key={options.get('key')} · dst_port={options.get('dst_port')}",
        f"remote_ip={options.get('remote_ip')}" + (" · csum" if options.get("csum") == "true" else ""),
    ]


def _address_in(pieces: Iterable[Resource | OvsBridge], veth: Veth) -> str:
    return next((p.cidr for p in pieces if isinstance(p, Address) and p.netns == veth.netns and p.dev == veth.peer), "")


def _mesh(topology: Topology) -> Node:
    """More hosts than MESH_LINES: one node stands for the tunnels between every two of them."""
    count = len(topology.hosts)
    lines = ("VXLAN full mesh", f"{count * (count - 1) // 2} tunnels between {count} hosts")
    return Node(MESH, Kind.UNDERLAY, (*lines, f"VNI {topology.vni} · UDP {topology.port}"))


def _tunnels(topology: Topology, nodes: Mapping[str, Node]) -> list[Edge]:
    """A dashed line between the tunnel ends of every pair of hosts."""
    label = f"VXLAN · VNI {topology.vni} · UDP {topology.port}"
    edges = []
    for i, a in enumerate(topology.hosts):
        for b in topology.hosts[i + 1 :]:  # every host is every other's peer
            edges.append(Edge(_tunnel_end(nodes, a, b.vtep), _tunnel_end(nodes, b, a.vtep), Line.TUNNEL, label))
    return edges


def _tunnel_end(nodes: Mapping[str, Node], host: Host, peer_vtep: IPv4Address) -> str:
    """The host's tunnel towards a peer: the port or device naming the peer, else its only one."""
    ends = [n for n in nodes.values() if n.host == host.name and n.kind == Kind.TUNNEL]
    return next((n for n in ends if n.peer == str(peer_vtep)), ends[0]).key


# --- live state ----------------------------------------------------------------------------------


def worst(states: Iterable[str]) -> str:
    found = set(states)
    return next((s for s in WORST_FIRST if s in found), OK)


def with_live(drawn: Picture, live: Live) -> Picture:
    """The picture coloured by what the deployment says; packets and session states in the labels."""
    nodes = []
    for node in drawn.nodes:
        label = node.label
        if node.key in live.traffic:
            counted = live.traffic[node.key]
            label = (*label, f"{counted.sent_packets} packets sent · {counted.received_packets} received")
        nodes.append(replace(node, label=label, state=live.states.get(node.key, node.state)))
    edges = []
    for edge in drawn.edges:
        if edge.kind == Line.BGP:
            host, reflector = edge.a.split("/")[0], edge.b.removeprefix("rr ")
            said = live.sessions.get((host, reflector))
            if said is not None:
                state = OK if said == "Established" else MISSING
                edges.append(replace(edge, label=f"iBGP {said}", state=state))
                continue
        edges.append(replace(edge, state=live.states.get(edge.key, edge.state)))
    return replace(drawn, nodes=tuple(nodes), edges=tuple(edges), host_states=tuple(live.host_states.items()))


# --- rendering -----------------------------------------------------------------------------------


def to_dot(drawn: Picture) -> str:
    """Graphviz's dot source: each host a box of its own, the underlay and reflectors between them."""
    dot = graphviz.Graph("ovsvx", graph_attr={"label": drawn.title, "labelloc": "t", "rankdir": "TB", "fontsize": "16"})
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    host_states = dict(drawn.host_states)
    for host, box in drawn.hosts:
        with dot.subgraph(name=f"cluster_{host}") as cluster:
            state = host_states.get(host)
            cluster.attr(label=box + (f" ({state})" if state and state != OK else ""), **_colour(state))
            for node in drawn.nodes:
                if node.host == host:
                    _dot_node(cluster, node)
    for node in drawn.nodes:
        if node.host is None:
            _dot_node(dot, node)
    for edge in drawn.edges:
        label = {"label": edge.label} if edge.label else {}
        dot.edge(edge.a, edge.b, style=STYLES[edge.kind], **label, **_colour(edge.state))
    return str(dot.source)


def _dot_node(graph: graphviz.Graph, node: Node) -> None:
    style = {"style": "rounded"} if node.kind == Kind.BRIDGE else {}
    # "\\n" is dot's own line break (centred); the graphviz package quotes, and leaves escapes to dot
    graph.node(node.key, "\\n".join(node.label), shape=SHAPES[node.kind], **style, **_colour(node.state))


def _colour(state: str | None) -> dict[str, str]:
    if state is None:
        return {}
    return {"color": COLOURS[state], "penwidth": "2" if state != OK else "1"}


def to_mermaid(drawn: Picture) -> str:
    """A Mermaid flowchart, for Markdown: the same nodes, boxes and lines as the dot source."""
    ids = {node.key: _mermaid_id(node.key) for node in drawn.nodes}
    lines = ["flowchart TB", f"  %% {drawn.title}"]
    for host, box in drawn.hosts:
        lines.append(f'  subgraph {_mermaid_id(host)}["{_mermaid_text(box)}"]')
        lines += [f"    {_mermaid_node(ids[n.key], n)}" for n in drawn.nodes if n.host == host]
        lines.append("  end")
    lines += [f"  {_mermaid_node(ids[n.key], n)}" for n in drawn.nodes if n.host is None]
    arrows = {Line.WIRE: "===", Line.VETH: "---", Line.PORT: "---", Line.TUNNEL: "-.-", Line.BGP: "-.-"}
    for edge in drawn.edges:
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"  {ids[edge.a]} {arrows[edge.kind]}{label} {ids[edge.b]}")
    for state, colour in COLOURS.items():
        marked = [ids[n.key] for n in drawn.nodes if n.state == state]
        if marked:
            lines.append(f"  classDef {state} stroke:{colour},stroke-width:2px")
            lines.append(f"  class {','.join(marked)} {state}")
    return "\n".join(lines) + "\n"


def _mermaid_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", "<br/>")


def _mermaid_node(node_id: str, node: Node) -> str:
    text = "<br/>".join(_mermaid_text(line) for line in node.label)
    opening, closing = {Kind.TUNNEL: ("{{", "}}"), Kind.UNDERLAY: ("((", "))"), Kind.REFLECTOR: ("{", "}")}.get(
        node.kind, ("[", "]")
    )
    return f'{node_id}{opening}"{text}"{closing}'


def rendered(drawn: Picture, fmt: str) -> bytes:
    """The picture in `fmt` (one of FORMATS); svg and png need Graphviz's `dot`."""
    if fmt == "mermaid":
        return to_mermaid(drawn).encode()
    source = to_dot(drawn)
    if fmt == "dot":
        return source.encode()
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not allowed: one of {', '.join(FORMATS)}")
    if shutil.which("dot") is None:
        raise PreconditionError(f"{fmt} needs Graphviz's dot: apt install graphviz (or --format dot|mermaid)")
    try:
        return bytes(graphviz.pipe("dot", fmt, source.encode(), quiet=True))
    except graphviz.CalledProcessError as err:
        said = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        raise ApplyError(f"Graphviz's dot could not draw it: {said[-1] if said else err}") from None
