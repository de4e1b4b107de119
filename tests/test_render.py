"""What people read shows the data exactly: MACs with rich's emoji codes (:ab:, :cd:) and text in square
brackets ([x], [/x]) come out verbatim from every command's human output (no root, fixture data)."""

from __future__ import annotations

import io
from ipaddress import IPv4Address

from rich.console import RenderableType

from ovsvx.cli import render
from ovsvx.deploy.status import HostStatus
from ovsvx.model import reader, topology
from ovsvx.model.findings import Finding
from ovsvx.model.path import Hop
from ovsvx.observe.capture import Frame
from ovsvx.observe.doctor import Diagnosis
from ovsvx.observe.figures import Figures, Summary
from ovsvx.observe.verify import Probe, Result
from ovsvx.ovs import flows
from ovsvx.ovs.ofctl import InstalledFlow
from tests.conftest import run_ovsvx

MAC = "d2:58:02:ab:21:4f"  # ":ab:" is the emoji code for the AB button
MAC2 = "02:00:0a:cd:01:64"
TAGGED = "name [x] and [/x] and [bold]"


def shown(renderable: RenderableType) -> str:
    """What the CLI's own console prints for `renderable`, wide enough that nothing wraps."""
    console = render.console()
    console.file = io.StringIO()
    console.width = 1000
    console.print(renderable, soft_wrap=True)
    return console.file.getvalue()


def assert_verbatim(text: str, *data: str) -> None:
    for item in data:
        assert item in text, f"{item!r} not shown as it is in:\n{text}"
    assert "🆎" not in text and "\N{SQUARED CL}" not in text


def test_status_shows_details_and_findings_verbatim() -> None:
    hosts = {
        "host1": HostStatus(
            "ovs",
            [Finding(f"veth tap2 <-> ns1:tap1 {MAC}", "differs", f"mac {MAC2} {TAGGED}")],
            {"ovs rundir": f"/run/{TAGGED}", "listening": f"udp 0.0.0.0:4789 {TAGGED}"},
        )
    }
    text = shown(render.status(hosts, "lab '[/x]'"))
    assert_verbatim(text, MAC, f"mac {MAC2} {TAGGED}", f"/run/{TAGGED}", "lab '[/x]'", "1 not as wanted")


def test_verify_trace_and_capture_show_addresses_verbatim() -> None:
    probe = Probe("ping", "ns1", "ns2", IPv4Address("10.171.0.205"), 62)
    text = shown(render.verify([Result(probe, False, 61, f"from {MAC} {TAGGED}")]))
    assert_verbatim(text, "10.171.0.205", f"from {MAC} {TAGGED}", "FAIL", "0/1 checks passed")

    hop = Hop(f"host1 {TAGGED}", f"sends to {MAC}", [f"neighbour: lladdr {MAC} [/x]"], [f"Ether {MAC} > {MAC2}"])
    assert_verbatim(
        shown(render.trace([hop])), f"1. host1 {TAGGED}: sends to {MAC}", f"lladdr {MAC} [/x]", f"Ether {MAC} > {MAC2}"
    )

    ether = {"layer": "ethernet", "src": MAC, "dst": MAC2}
    arp = {"layer": "arp", "op": "request", "target_ip": "10.171.0.1", "sender_ip": "10.171.0.2", "sender_mac": MAC}
    text = shown(render.capture([Frame(1.0, f"host1:{TAGGED}", (ether, arp))], "ns1", "[/x]"))
    assert_verbatim(text, f"Ether {MAC} > {MAC2}", f"({MAC})", f"host1:{TAGGED}", "one ping ns1 -> [/x]")


def test_doctor_flows_and_bench_show_text_verbatim() -> None:
    found = {
        "machine": [Diagnosis("ok", f"ovsvx at {TAGGED}")],
        "host1": [Diagnosis("fail", f"ens160 {MAC} [/x]", "ip link set ens160 mtu 1500")],
    }
    text = shown(render.doctor(found, "lab '[x]'", undeployed=True))
    assert_verbatim(
        text,
        f"ok   ovsvx at {TAGGED}",
        f"FAIL ens160 {MAC} [/x]; fix: ip link set ens160 mtu 1500",
        "machine (lab '[x]')",
    )

    rule = f"priority=1,dl_src={MAC} actions=load:0x{MAC2}->[]"
    text = shown(
        render.installed_flows(
            f"host1: br1 {TAGGED}",
            [InstalledFlow(0x99, 0, 3, 180, rule)],
            {f.cookie: f for f in flows.host_flows(reader.default(), reader.default().hosts[0])},
        )
    )
    assert_verbatim(text, rule, "not generated", f"host1: br1 {TAGGED}")

    tagged = {"datapath": "system", "port_type": "[x]"}
    summaries = {
        "underlay": Summary((Figures(tcp_1stream_gbps=2.0), Figures(tcp_1stream_gbps=2.0))),
        "kernel": Summary((Figures(tcp_1stream_gbps=1.0), Figures(tcp_1stream_gbps=1.0))),
        "ovs:system": Summary((Figures(tcp_1stream_gbps=0.8, extra=tagged), Figures(tcp_1stream_gbps=1.2))),
    }
    assert_verbatim(
        shown(render.bench(summaries, 4)),
        "ovs:system",
        "1 [0.8-1.2] (0.50x underlay, 1.00x kernel)",
        "ovs:system datapath: system, port type: [x]",
        "median [min-max] of 2 interleaved rounds",
        "cannot tell the two apart",
    )


def test_topology_show_keeps_each_hosts_mode_tag() -> None:
    topo = reader.default()
    tagged = topology.Topology(
        **{
            **vars(topo),
            "hosts": tuple(
                topology.Host(**{**vars(h), "mode": m}) for h, m in zip(topo.hosts, ("kernel", "ovs"), strict=True)
            ),
        }
    )
    assert_verbatim(shown(render.topology(tagged)), "host1 [kernel]", "host2 [ovs]")


def test_an_error_naming_a_path_with_brackets_and_codes_is_one_verbatim_line() -> None:
    path = "/nonexistent/[x]/lab:ab:cd:[/x].toml"
    done = run_ovsvx("topology", "show", "-t", path, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("ovsvx: error: ") and path in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
