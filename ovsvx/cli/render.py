"""What a person reads: each command's result as rich renderables, built from data and nothing else.

Data is never markup.  The consoles parse neither markup nor emoji codes, so a
MAC such as 02:00:0a:ab:01:64 (rich's emoji code :ab:) or a name such as
"[lab]" or "[/x]" prints exactly as it is; only styling is added, always as a
`Text` span around data, never by formatting data into a markup string.  The
CLI gathers the data (one library call per command) and prints what these
functions return; the rendering test feeds them hostile fixture data.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ovsvx.model.findings import State, Verdict
from ovsvx.observe.figures import Summary, described, grid, settings, untrusted
from ovsvx.ovs import openflow, tables

if TYPE_CHECKING:
    from ovsvx.deploy.status import HostStatus
    from ovsvx.model.findings import Diagnosis
    from ovsvx.model.path import Hop
    from ovsvx.model.topology import Topology
    from ovsvx.observe.capture import Frame
    from ovsvx.observe.verify import Result
    from ovsvx.ovs.ofctl import InstalledFlow

#: How each of doctor's states is marked: the word, padded to one width, and its colour.
DOCTOR_MARKS = {Verdict.OK: ("ok  ", "green"), Verdict.WARN: ("warn", "yellow"), Verdict.FAIL: ("FAIL", "red")}


def console(stderr: bool = False) -> Console:
    """A console that prints data verbatim: no markup, no emoji codes, no highlighting of numbers."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, markup=False, emoji=False, width=None if stream.isatty() else 160)


def error(message: str) -> Text:
    return Text(f"ovsvx: error: {message}")


def topology(topo: Topology) -> Group:
    header = Text(
        f"VNI {topo.vni}, UDP port {topo.port}, underlay {topo.underlay} "
        f"(MTU {topo.underlay_mtu}, overlay MTU {topo.overlay_mtu})"
    )
    table = Table("host", "NIC / VTEP", "subnet", "gateway (bridge)", "vxlan (address)", "namespaces")
    for h in topo.hosts:
        spaces = "\n".join(f"{n.name} {n.address} ({n.veth}<->{n.peer})" for n in h.namespaces)
        table.add_row(
            h.name + (f" [{h.mode}]" if h.mode else ""),
            f"{h.nic} {h.vtep}",
            str(h.subnet),
            f"{h.gateway} ({h.bridge})",
            f"{h.vxlan} ({h.vxlan_address}/32)",
            spaces,
        )
    return Group(header, table)


def status(hosts: dict[str, HostStatus], where: str) -> Group:
    parts: list[RenderableType] = []
    for name, h in hosts.items():
        bad = sum(f.state != State.OK for f in h.findings)
        state = Text("ok", style="green") if not bad else Text(f"{bad} not as wanted", style="red")
        parts.append(Text.assemble((name, "bold"), f" ({h.title}, {where}): ", state))
        parts += [Text(f"  {key}: {value}") for key, value in h.details.items()]
        table = Table("resource", "state", show_header=False, box=None, padding=(0, 2))
        for f in h.findings:
            table.add_row(
                f.what, Text.assemble((f.state, "green" if f.state == State.OK else "red"), f" {f.detail}".rstrip())
            )
        parts.append(table)
    return Group(*parts)


def doctor(found: dict[str, list[Diagnosis]], where: str, undeployed: bool) -> Group:
    parts: list[RenderableType] = []
    for name, diagnoses in found.items():
        parts.append(Text.assemble((name, "bold"), f" ({where})" if name == "machine" else ""))
        parts += [Text.assemble("  ", DOCTOR_MARKS[d.state], " ", d.text) for d in diagnoses]
    if undeployed:
        parts.append(Text(f"(the {where} is not deployed: deploy makes its hosts, so only this machine was checked)"))
    return Group(*parts)


def verify(results: list[Result]) -> Group:
    table = Table("check", "src", "dst", "address", "TTL (want)", "result", "detail")
    for r in results:
        p = r.probe
        want = f"{r.ttl if r.ttl is not None else '-'} ({p.expected_ttl if p.expected_ttl else '-'})"
        extra = f"{r.gbps} Gbit/s, " if r.gbps is not None else (f"{r.rtt_ms} ms, " if r.rtt_ms else "")
        table.add_row(
            p.kind + (f" {p.size}B" if p.size else ""),
            p.src,
            p.dst,
            str(p.address),
            want,
            Text("PASS", style="green") if r.ok else Text("FAIL", style="red"),
            extra + r.detail,
        )
    return Group(table, Text(f"{sum(r.ok for r in results)}/{len(results)} checks passed"))


def trace(hops: list[Hop]) -> Group:
    lines: list[RenderableType] = []
    for number, hop in enumerate(hops, 1):
        lines.append(Text.assemble((f"{number}. {hop.where}", "bold"), f": {hop.what}"))
        lines += [Text(f"     why  {line}") for line in hop.why]
        lines.append(Text(f"     out  {' / '.join(hop.headers)}"))
    return Group(*lines)


def capture(frames: list[Frame], src: str, dst: str) -> Table:
    start = frames[0].time if frames else 0.0
    table = Table(
        "ms", "where", "frame (outer / VXLAN / inner)", title=f"one ping {src} -> {dst}", title_justify="left"
    )
    for f in frames:
        table.add_row(f"{(f.time - start) * 1000:7.3f}", f.point, f.summary)
    return table


def installed_flows(title: str, installed: Iterable[InstalledFlow], generated: dict[int, openflow.Flow]) -> Table:
    """A bridge's flows by purpose: what ovsvx generated, what the switch learned, and anything else."""
    table = Table("purpose", "table", "why", "rule", "packets", "bytes", title=title, title_justify="left")
    for flow in sorted(installed, key=lambda f: (f.cookie >> 32, f.table)):
        name = tables.TABLES[flow.table].name if flow.table in tables.TABLES else "?"
        known = openflow.explain(flow.cookie, generated)
        purpose: Text | str = known[0] if known else Text("not generated", style="red")
        why = known[1] if known else ""
        table.add_row(purpose, f"{flow.table} {name}", why, flow.rule, str(flow.n_packets), str(flow.n_bytes))
    return table


def bench(summaries: dict[str, Summary], duration: float) -> Group:
    """Each figure per column: the median of the rounds with their [min-max], its ratio to the underlay
    and to kernel mode; then what the runs cannot be trusted for."""
    title = f"ovsvx bench ({described(summaries, duration)})"
    table = Table("figure", *summaries, title=title, title_justify="left")
    for label, cells in grid(summaries):
        table.add_row(label, *cells)
    notes = [Text(line) for line in settings(summaries)]
    notes += [Text(line, style="yellow") for line in untrusted(summaries)]
    return Group(table, *notes)
