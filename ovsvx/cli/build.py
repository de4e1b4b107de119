"""Commands that build and take down an overlay by hand: `deploy` and `destroy` (a lab, or this machine
as --host)."""

from __future__ import annotations

from pathlib import Path

import click

from ovsvx.cli.edge import (
    err_console,
    host_option,
    out,
    ovs_config_option,
    parse_modes,
    prefix_option,
    reported,
    topology_option,
    tunnel_csum_option,
)
from ovsvx.deploy import deploy as deployment_ops
from ovsvx.deploy.backends import BACKENDS, DEFAULT_MODE
from ovsvx.model import reader
from ovsvx.model.options import DeployOptions
from ovsvx.ovs import choices


@click.command("deploy")
@topology_option
@host_option
@prefix_option
@click.option(
    "--mode",
    "mode_text",
    default=None,
    metavar="MODE",
    help=f"{' or '.join(BACKENDS)} for every host, or HOST=MODE,... per host "
    f"(default: each host's `mode` in the topology, else {DEFAULT_MODE}).",
)
@click.option(
    "--no-controller",
    is_flag=True,
    help="ovs mode: load the flows from FLOWS/<host>.flows with ovs-ofctl instead of running os-ken.",
)
@click.option(
    "--flows",
    "flows_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("flows"),
    show_default=True,
    help="Folder of the flow files for --no-controller.",
)
@click.option(
    "--datapath",
    default=None,
    type=click.Choice(list(choices.DATAPATHS)),
    help="ovs mode: the kernel's datapath (system) or the userspace one (netdev); auto (the default) picks "
    "system where the openvswitch module loads.",
)
@click.option(
    "--port-type",
    default=None,
    type=click.Choice(list(choices.PORT_TYPES)),
    help="ovs mode, userspace datapath: read the devices through packet sockets (system) or AF_XDP "
    "(afxdp-nonpmd; afxdp adds a busy-polling PMD thread); auto (the default): afxdp-nonpmd up "
    "to a 1500-byte underlay, else system.",
)
@ovs_config_option
@tunnel_csum_option
@click.option(
    "--firewall/--no-firewall",
    default=None,
    help="Admit the VXLAN port only from the peer VTEPs (the default), or add no nftables table and "
    "leave it open to anyone who reaches it.",
)
@reported
def deploy_cmd(
    topology_file: Path | None,
    host: str | None,
    prefix: str | None,
    mode_text: str | None,
    no_controller: bool,
    flows_dir: Path,
    datapath: str | None,
    port_type: str | None,
    ovs_config: tuple[str, ...],
    tunnel_csum: str | None,
    firewall: bool | None,
) -> None:
    """Build the overlay: the whole lab, or this machine as --host HOST."""
    topo = reader.load(topology_file)
    scope = deployment_ops.Scope.real(host) if host else deployment_ops.Scope.lab(prefix or "")
    options = DeployOptions(
        controller=not no_controller,
        flows_dir=flows_dir,
        datapath=datapath,
        port_type=port_type,
        firewall=firewall,
        ovs_config=ovs_config or None,
        tunnel_csum=tunnel_csum,
    )
    report = deployment_ops.deploy(scope, topo, parse_modes(mode_text), options)
    for warning in report.warnings:
        err_console.print(f"ovsvx: warning: {warning}", soft_wrap=True)
    for change in report.changes:
        out.print(change)
    summary = ", ".join(f"{h}={m}" for h, m in report.deployment.modes.items())
    if report.changes:
        out.print(f"deployed {scope.describe()} ({summary}): {len(report.changes)} change(s)")
    else:
        out.print(f"{scope.describe()} already deployed as wanted ({summary}): nothing changed")


@click.command("destroy")
@host_option
@prefix_option
@reported
def destroy_cmd(host: str | None, prefix: str | None) -> None:
    """Remove exactly what ovsvx made (the lab, or this host's deployment)."""
    scope = deployment_ops.find_scope(host, prefix)
    removed = deployment_ops.destroy(scope)
    for line in removed:
        out.print(line)
    out.print(f"destroyed {scope.describe()}" if removed else f"nothing deployed in {scope.describe()}")
