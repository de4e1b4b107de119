"""Commands that keep a real host deployed for good, and the daemons they start: `enable`, `reload` and
`disable` (the systemd units), `agent` and `reflector` (what those units run), and `controller` (ovs
mode's os-ken app for one bridge)."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import click

from ovsvx.cli.edge import (
    err_console,
    host_option,
    metrics_option,
    out,
    prefix_option,
    probes_option,
    reported,
    topology_option,
)
from ovsvx.deploy import agent, reflector, service
from ovsvx.deploy import deploy as deployment_ops
from ovsvx.deploy.backends import DEFAULT_MODE, check_mode
from ovsvx.errors import UsageError
from ovsvx.host import record
from ovsvx.host.record import Kind
from ovsvx.model import reader, topology
from ovsvx.observe import metrics
from ovsvx.ovs import controller

required_host_option = click.option("--host", required=True, metavar="HOST", help="This machine as that topology host.")
single_mode_option = click.option(
    "--mode",
    "mode_text",
    default=None,
    metavar="MODE",
    help=f"The host's mode (default: as deployed, else its `mode` in the topology, else {DEFAULT_MODE}).",
)


full_check_option = click.option(
    "--full-check",
    "full_check_s",
    type=float,
    default=agent.FULL_CHECK_S,
    show_default=True,
    metavar="S",
    help="Seconds between full checks, beside the passes that changes announce.",
)


AGENT_METRICS_HELP = "Serve the host's metrics and the agent's at http://ADDR:PORT/metrics (ADDR: 127.0.0.1)."


@click.command("agent")
@required_host_option
@topology_option
@single_mode_option
@full_check_option
@metrics_option(None, AGENT_METRICS_HELP)
@probes_option
@reported
def agent_cmd(
    host: str,
    topology_file: Path | None,
    mode_text: str | None,
    full_check_s: float,
    metrics_text: str | None,
    probes: bool,
) -> None:
    """Keep this machine deployed as HOST: converge now, then repair whatever drifts, until SIGTERM.

    What `ovsvx enable` runs under systemd; one line per change on stdout."""
    metrics_at = _agent_metrics(metrics_text, probes)
    topo = _agent_topology(topology_file)

    def exposing(passes: agent.Passes) -> str | None:
        """The host's metrics and the agent's own, served at `metrics_at`."""
        assert metrics_at is not None
        return metrics.serve(metrics.registry_for(deployment_ops.Scope.real(host), passes, probes), metrics_at)

    mode = check_mode(mode_text) if mode_text else None
    agent.run(host, topo, mode, full_check_s, exposing if metrics_at is not None else None, topology_file)


def _agent_metrics(metrics_text: str | None, probes: bool) -> tuple[str, int] | None:
    """Where an agent serves its metrics (None: it does not); --probes only with --metrics."""
    if probes and not metrics_text:
        raise UsageError("--probes are served with the metrics: give --metrics [ADDR:]PORT too")
    return metrics.parse_address(metrics_text) if metrics_text else None


def _agent_topology(topology_file: Path | None) -> topology.Topology:
    """-t FILE, else the topology this machine is deployed from, else the built-in one."""
    if topology_file is not None:
        return agent.stored_topology(topology_file)  # read as root at every start
    here = record.load(Kind.HOST, "")
    return here.topology if here is not None else reader.default()


reflector_option = click.option(
    "--reflector",
    "reflector_text",
    default=None,
    metavar="ADDR",
    help="This machine as the topology's route reflector at ADDR (EVPN), instead of a host.",
)


@click.command("reflector")
@click.option("--address", "address_text", required=True, metavar="ADDR", help="One of bgp.route_reflectors.")
@topology_option
@full_check_option
@reported
def reflector_cmd(address_text: str, topology_file: Path | None, full_check_s: float) -> None:
    """Keep a BGP EVPN route reflector (FRR's bgpd) running at ADDR, until SIGTERM.

    What `ovsvx enable --reflector ADDR` runs under systemd; one line per change on stdout."""
    topo = agent.stored_topology(topology_file) if topology_file is not None else reader.default()
    reflector.run(topo, _address("--address", address_text), full_check_s, topology_file)


def _address(option: str, text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise UsageError(
            f"{option} {topology.shown(text)} is not allowed: an IPv4 address such as 10.33.30.2"
        ) from None


def _role(host: str | None, reflector_text: str | None) -> IPv4Address | None:
    """enable and disable act on a host or on a reflector: exactly one of --host and --reflector."""
    if (host is None) == (reflector_text is None):
        raise UsageError("give one of --host HOST and --reflector ADDR")
    return None if reflector_text is None else _address("--reflector", reflector_text)


@click.command("enable")
@host_option
@reflector_option
@topology_option
@single_mode_option
@metrics_option(None, "The agent serves the host's metrics there (as `ovsvx agent --metrics`).")
@probes_option
@click.option(
    "--rebuild",
    is_flag=True,
    help="On an enabled host, take a topology that does not apply in place: destroy the host, build it anew.",
)
@reported
def enable_cmd(
    host: str | None,
    reflector_text: str | None,
    topology_file: Path | None,
    mode_text: str | None,
    metrics_text: str | None,
    probes: bool,
    rebuild: bool,
) -> None:
    """Keep this machine as HOST for good: a systemd unit (ovsvx@HOST) that deploys at boot and repairs.

    On an enabled host, a topology with hosts or namespaces added is applied in place (the agent reloads
    it); any other change needs --rebuild.  With --reflector ADDR instead: the topology's route reflector
    at ADDR (ovsvx-reflector@ADDR)."""
    address = _role(host, reflector_text)
    if address is not None:
        if mode_text is not None or metrics_text is not None or probes or rebuild:
            raise UsageError("--mode, --metrics, --probes and --rebuild are for a host: a route reflector has none")
        enabled = service.enable_reflector(address, topology_file)
    else:
        assert host is not None
        _agent_metrics(metrics_text, probes)  # refused here, not by the unit at its start
        mode = check_mode(mode_text) if mode_text else None
        enabled = service.enable(host, topology_file, mode, metrics_text, probes, rebuild)
    for warning in enabled.warnings:
        err_console.print(f"ovsvx: warning: {warning}", soft_wrap=True)
    for line in enabled.changes:
        out.print(line)
    said = enabled.status.describe() if enabled.status else "?"
    out.print(f"{enabled.unit}: {said}" if enabled.changes else f"{enabled.unit} already as wanted: {said}")


@click.command("reload")
@host_option
@reflector_option
@reported
def reload_cmd(host: str | None, reflector_text: str | None) -> None:
    """Make the enabled agent read its stored topology again and apply the difference (ExecReload).

    What `systemctl reload ovsvx@HOST` runs; returns once the agent's pass over it has ended.  A stored
    topology that changes more than hosts or namespaces added is refused, and nothing changes."""
    address = _role(host, reflector_text)
    for line in service.reload(host, address) if address is None else service.reload(address=address):
        out.print(line)


@click.command("disable")
@host_option
@reflector_option
@reported
def disable_cmd(host: str | None, reflector_text: str | None) -> None:
    """Undo `enable`: stop and remove the unit, destroy the deployment, remove the stored topology."""
    address = _role(host, reflector_text)
    what = f"reflector {address}" if address is not None else str(host)
    removed = service.disable_reflector(address) if address is not None else service.disable(str(host))
    for line in removed:
        out.print(line)
    out.print(f"disabled {what}" if removed else f"{what} was not enabled or deployed here: nothing to do")


@click.command("controller")
@topology_option
@click.option("--serve", "host_name", default=None, metavar="HOST", help="The topology host this controller serves.")
@prefix_option
@click.option(
    "--listen",
    default=None,
    metavar="unix:PATH|ADDR:PORT",
    help="Where OVS connects (default: the Unix socket deploy gave the host's OVS; a TCP port only on loopback).",
)
@reported
def controller_cmd(topology_file: Path | None, host_name: str | None, prefix: str | None, listen: str | None) -> None:
    """Run the os-ken controller for one host's bridge in the foreground (alongside its OVS)."""
    controller.serve(listen, host_name, prefix, topology_file)
