"""Commands that show a topology before (or beside) a deployment and change nothing: `topology show|init`,
`plan` and `graph`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ovsvx.cli import render
from ovsvx.cli.edge import (
    err_console,
    host_option,
    json_option,
    out,
    parse_modes,
    prefix_option,
    reported,
    topology_option,
)
from ovsvx.deploy import deploy as deployment_ops
from ovsvx.errors import UsageError
from ovsvx.host import plan
from ovsvx.model import generated, reader, topology, writer
from ovsvx.model.options import DeployOptions
from ovsvx.observe import graph, pictures
from ovsvx.ovs import choices


@click.group("topology")
def topology_group() -> None:
    """Show or start a topology file."""


@topology_group.command("show")
@topology_option
@json_option
@reported
def topology_show(topology_file: Path | None, as_json: bool) -> None:
    """Print the resolved topology."""
    topo = reader.load(topology_file)
    if as_json:
        click.echo(json.dumps(writer.to_data(topo), indent=2))
        return
    out.print(render.topology(topo))


@topology_group.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default="ovsvx.toml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option(
    "--hosts",
    "count",
    type=int,
    default=None,
    metavar="N",
    help="Instead, N hosts in the tutorial's pattern (host i: 192.168.i.0/24), for large labs.",
)
@click.option(
    "--control",
    type=click.Choice([str(c) for c in topology.Control]),
    default=None,
    help="With --hosts: how hosts learn each other (evpn: AS 65000, a route reflector at 10.33.30.2).",
)
@reported
def topology_init(path: Path, force: bool, count: int | None, control: str | None) -> None:
    """Write the tutorial's topology as a commented file to start from (default: ./ovsvx.toml)."""
    if path.exists() and not force:
        raise UsageError(f"{path} exists: pass --force to overwrite it")
    if control is not None and count is None:
        raise UsageError("--control is only read with --hosts N")
    chosen = topology.Control(control or topology.Control.STATIC)
    path.write_text(reader.default_text() if count is None else writer.to_toml(generated.generate(count, chosen)))
    out.print(f"wrote {path}: edit it, then `ovsvx deploy -t {path}`")


#: `plan` and `graph` show a topology as deploy would make it, in these modes and on this datapath.
planned_mode_option = click.option("--mode", "mode_text", default=None, metavar="MODE", help="As for deploy.")
planned_datapath_option = click.option(
    "--datapath",
    default="auto",
    show_default=True,
    type=click.Choice(list(choices.DATAPATHS)),
    help="ovs mode: which datapath to show (auto: what this machine has, without loading anything).",
)


@click.command("plan")
@topology_option
@host_option
@planned_mode_option
@planned_datapath_option
@reported
def plan_cmd(topology_file: Path | None, host: str | None, mode_text: str | None, datapath: str) -> None:
    """Print, without changing anything, the commands equivalent to a deployment (kernel mode: the tutorial's)."""
    topo = reader.load(topology_file)
    click.echo(
        f"# ovsvx tags each link it makes with alias '{plan.LINK_ALIAS}' and each route with "
        f"proto {plan.RTPROT_OVSVX}, so destroy removes only its own."
    )
    for heading, lines in deployment_ops.planned(topo, parse_modes(mode_text), DeployOptions(datapath=datapath), host):
        click.echo(f"\n# --- {heading} ---")
        click.echo("# first the firewall: the VXLAN port only from the peers (deploy --no-firewall skips it)")
        click.echo("\n".join(lines))


#: What `graph -o FILE` writes when --format is not given, by the file's suffix.
GRAPH_SUFFIXES = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot", ".mmd": "mermaid"}


@click.command("graph")
@topology_option
@host_option
@prefix_option
@planned_mode_option
@planned_datapath_option
@click.option(
    "--format", "fmt", type=click.Choice(graph.FORMATS), default=None, help="Default: by -o's suffix, else dot."
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write here.")
@reported
def graph_cmd(
    topology_file: Path | None,
    host: str | None,
    prefix: str | None,
    mode_text: str | None,
    datapath: str,
    fmt: str | None,
    output: Path | None,
) -> None:
    """Draw the overlay: a deployment with its live state (--host/--prefix, else the one status would
    show, as root), or a topology alone (-t/--mode/--datapath, or nothing deployed)."""
    fmt = fmt or _graph_format(output)
    if fmt == "png" and output is None and sys.stdout.isatty():
        raise UsageError("--format png is binary: give -o FILE.png")
    alone = topology_file is not None or mode_text is not None or datapath != "auto"
    if host is not None or prefix is not None:
        if alone:
            raise UsageError("-t, --mode and --datapath draw a topology alone: --host/--prefix draw what is deployed")
        drawn = pictures.observed(deployment_ops.find_scope(host, prefix))
    elif not alone and os.geteuid() == 0 and (scope := pictures.deployed_here()) is not None:
        drawn = pictures.observed(scope)  # as status: the default lab, else this host's deployment
    else:
        asked = DeployOptions(datapath=datapath)
        drawn = pictures.sketched(reader.load(topology_file), parse_modes(mode_text), asked)
    picture = graph.rendered(drawn, fmt)
    if output is None:
        sys.stdout.buffer.write(picture)
        return
    output.write_bytes(picture)
    err_console.print(f"wrote {output} ({fmt}, {len(picture)} bytes)")


def _graph_format(output: Path | None) -> str:
    if output is None:
        return "dot"
    if output.suffix not in GRAPH_SUFFIXES:
        allowed = ", ".join(GRAPH_SUFFIXES)
        raise UsageError(f"-o {output}: no format for suffix {output.suffix!r}: one of {allowed}, or --format")
    return GRAPH_SUFFIXES[output.suffix]
