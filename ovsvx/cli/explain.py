"""Commands that show how a deployment forwards: `exec` (a shell or command in a node), `trace` (the
path a packet would take, without sending it), `capture` (one ping, every frame on every hop) and
`flows` (ovs mode's installed flows by purpose)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ovsvx.cli import render
from ovsvx.cli.edge import json_option, out, prefix_option, reported, topology_option
from ovsvx.deploy import deploy as deployment_ops
from ovsvx.deploy import lab
from ovsvx.host import netstack, preflight, record
from ovsvx.model import path, reader
from ovsvx.observe import capture, trace
from ovsvx.ovs import daemons, flows, ofctl
from ovsvx.ovs.flowwatch import generated_by_cookie


def _deployment(prefix: str | None) -> record.Deployment:
    """The deployment a command on nodes means: the lab of --prefix, else the default lab or this host's."""
    scope = deployment_ops.find_scope(None, prefix)
    return record.require(scope.kind, scope.prefix)


@click.command("exec", context_settings={"ignore_unknown_options": True})
@prefix_option
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@reported
def exec_cmd(prefix: str | None, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND (default: a shell) in a lab node (host1, ns1, ...): ovsvx exec host1 -- ip -d link show vxlan1

    On a host in ovs mode, ovs-vsctl, ovs-ofctl and ovs-appctl reach that host's OVS with no flags.
    """
    preflight.require_root()
    deployment = _deployment(prefix)
    netns = lab.node_netns(deployment, node)
    argv = command or (os.environ.get("SHELL", "/bin/sh"),)
    netstack.exec_in(netns, argv, env=deployment_ops.node_env(deployment, node))


def _default_pair(deployment: record.Deployment, src: str | None, dst: str | None) -> tuple[str, str]:
    """SRC and DST default to the first namespace of the first two hosts: the tutorial's ns1 -> ns2."""
    hosts = deployment.topology.hosts
    return src or hosts[0].namespaces[0].name, dst or hosts[1].namespaces[0].name


@click.command("trace")
@prefix_option
@click.argument("src", required=False)
@click.argument("dst", required=False)
@click.option(
    "--proto",
    default="icmp",
    show_default=True,
    type=click.Choice(list(path.PROTOCOLS)),
    help="The packet traced: an ICMP echo request, a TCP or UDP segment to port 5201, or an ARP request.",
)
@json_option
@reported
def trace_cmd(prefix: str | None, src: str | None, dst: str | None, proto: str, as_json: bool) -> None:
    """Explain hop by hop, without sending traffic, how a packet SRC -> DST (default ns1 -> ns2) is
    forwarded: routes, neighbours and FDB entries in kernel mode, the matched flows in ovs mode."""
    preflight.require_root()
    deployment = _deployment(prefix)
    src, dst = _default_pair(deployment, src, dst)
    hops = trace.run(deployment, src, dst, proto)
    if as_json:
        click.echo(json.dumps(trace.to_json(src, dst, proto, hops), indent=2))
        return
    out.print(render.trace(hops))


@click.command("capture")
@prefix_option
@click.argument("src", required=False)
@click.argument("dst", required=False)
@click.option(
    "--pcap",
    "pcap_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep one pcap per interface in this folder (for Wireshark).",
)
@json_option
@reported
def capture_cmd(prefix: str | None, src: str | None, dst: str | None, pcap_dir: Path | None, as_json: bool) -> None:
    """Send one ping SRC -> DST (default ns1 -> ns2) with cold ARP caches; show every frame on every
    interface along the way, each layer decoded."""
    preflight.require_root()
    preflight.require_tools("tcpdump", "ping")
    deployment = _deployment(prefix)
    src, dst = _default_pair(deployment, src, dst)
    frames = capture.run(deployment, src, dst, pcap_dir)
    if as_json:
        click.echo(json.dumps(capture.to_json(src, dst, frames), indent=2))
        return
    out.print(render.capture(frames, src, dst))
    if pcap_dir is not None:
        out.print(f"pcaps in {pcap_dir}")


@click.command("flows")
@topology_option
@click.option(
    "--only", "host", default=None, metavar="HOST", help="Only this host's bridge (or, with --render, its file)."
)
@prefix_option
@click.option("--raw", is_flag=True, help="Print ovs-ofctl dump-flows as it is.")
@click.option("--render", "write_files", is_flag=True, help="Write the topology's flows as ovs-ofctl files instead.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("flows"),
    show_default=True,
    help="Folder for --render.",
)
@reported
def flows_cmd(
    topology_file: Path | None, host: str | None, prefix: str | None, raw: bool, write_files: bool, out_dir: Path
) -> None:
    """The installed flows of each ovs-mode host, grouped by purpose with packet counters."""
    if write_files:
        for path in flows.write_files(reader.load(topology_file), out_dir, host):
            out.print(f"wrote {path}")
        return
    preflight.require_root()
    deployment = _deployment(prefix)
    for site, home in daemons.ovs_homes(deployment, deployment.sites(), host):
        if raw:
            click.echo(ofctl.tool(home, "ovs-ofctl", "dump-flows", "--names", site.host.bridge), nl=False)
            continue
        generated = generated_by_cookie(deployment, site)
        out.print(
            render.installed_flows(
                f"{site.host.name}: {site.host.bridge}", ofctl.dump_flows(home, site.host.bridge), generated
            )
        )
