"""The `ovsvx` command line: a thin layer over topology, deploy, verify and the lab.

Each command parses its options, calls one library function and presents the
result (rich tables for people, --json for machines).  This is the only place
that turns an `OvsvxError` into a one-line message and an exit status.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from functools import wraps
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import click

from ovsvx.cli import render
from ovsvx.deploy import agent, lab, reflector, service
from ovsvx.deploy import deploy as deployment_ops
from ovsvx.deploy.backends import BACKENDS, DEFAULT_MODE, check_mode
from ovsvx.errors import OvsvxError, UsageError, unexpected
from ovsvx.host import netstack, plan, preflight, record
from ovsvx.host.record import Kind
from ovsvx.model import path, topology
from ovsvx.model.options import DeployOptions
from ovsvx.observe import bench, capture, doctor, figures, graph, metrics, pictures, trace, verify
from ovsvx.ovs import choices, controller, daemons, flows, ofctl
from ovsvx.ovs.flowwatch import generated_by_cookie
from ovsvx.ovs.switch import TUNNEL_CSUM

out = render.console()
err_console = render.console(stderr=True)

topology_option = click.option(
    "-t",
    "--topology",
    "topology_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Topology TOML file (default: the tutorial's two hosts).",
)
ovs_config_option = click.option(
    "--ovs-config",
    "ovs_config",
    multiple=True,
    metavar="[HOST:]KEY=VALUE",
    help="ovs mode: set OVS's other_config KEY (e.g. pmd-maxsleep=50, host2:pmd-cpu-mask=0x2); repeatable.",
)
tunnel_csum_option = click.option(
    "--tunnel-csum",
    "tunnel_csum",
    default=None,
    type=click.Choice(TUNNEL_CSUM),
    help="ovs mode: the vxlan ports' outer UDP checksum; auto (the default) sends it on the kernel datapath "
    "only (a receiving NIC that checks it spares the kernel checking the inner one).",
)
prefix_option = click.option(
    "--prefix",
    default=None,
    metavar="P",
    help="Lab name prefix for every namespace, so several labs never collide (default: none).",
)
host_option = click.option(
    "--host",
    default=None,
    metavar="HOST",
    help="Act on this machine as that topology host (a real host).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def renamed(old: str, new: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An old spelling kept as a hidden option whose only effect is a one-line hint to the new one.

    Put it above `@reported`: the hint is refused through the same one-line error path.
    """
    key = "old_" + old.strip("-").replace("-", "_")

    def refuse() -> None:
        raise UsageError(f"{old} is now {new}: --host means this machine as a topology host on every command")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs.pop(key) is not None:
                return reported(refuse)()
            return fn(*args, **kwargs)

        return click.option(old, key, hidden=True, default=None)(wrapper)

    return decorate


def _unraisable(event: Any) -> None:
    """A Ctrl-C that lands in a finalizer (a pyroute2 event loop being collected) is lost to Python
    anyway: the command goes on to its end, so say nothing of it; anything else is reported as usual."""
    if not isinstance(event.exc_value, KeyboardInterrupt):
        sys.__unraisablehook__(event)


def reported(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn errors into one line on stderr and their exit status: ovsvx's own as they say, any other as
    `unexpected` puts it (OVSVX_DEBUG=1 lets it through with its traceback)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        sys.unraisablehook = _unraisable
        try:
            return fn(*args, **kwargs)
        except OvsvxError as err:
            err_console.print(render.error(str(err)), soft_wrap=True)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            netstack.quiet_after_interrupt()
            err_console.print("ovsvx: interrupted")
            sys.exit(130)
        except BrokenPipeError:  # the reader went away (`ovsvx plan | head`): nothing to say to anyone
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except Exception as err:  # not foreseen: still one line, with where it came from
            if os.environ.get("OVSVX_DEBUG"):
                raise
            failure = unexpected(err)
            err_console.print(render.error(str(failure)), soft_wrap=True)
            sys.exit(failure.exit_code)
        finally:  # the outcome is decided: a Ctrl-C while Python shuts down would only print noise
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    return wrapper


def _deployment(prefix: str | None) -> record.Deployment:
    """The deployment a command on nodes means: the lab of --prefix, else the default lab or this host's."""
    scope = deployment_ops.find_scope(None, prefix)
    return record.require(scope.kind, scope.prefix)


def parse_modes(text: str | None) -> dict[str, str]:
    """`--mode kernel` (every host) or `--mode host1=kernel,host2=ovs`."""
    if not text:
        return {}
    if "=" not in text:
        return {"*": text}
    modes = {}
    for part in text.split(","):
        name, sep, mode = part.partition("=")
        if not sep or not name or not mode:
            raise UsageError(f"--mode {topology.shown(text)} is not allowed: MODE or HOST=MODE,HOST=MODE")
        if name.strip() in modes:
            raise UsageError(f"--mode names {name.strip()!r} twice: one mode per host")
        modes[name.strip()] = mode.strip()
    return modes


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Stand up, explain and measure a point-to-point VXLAN overlay between Linux hosts.

    With no --host, commands act on a lab: every host of the topology simulated
    in network namespaces on this machine.
    """


# --- topology ----------------------------------------------------------------


@main.group("topology")
def topology_group() -> None:
    """Show or start a topology file."""


@topology_group.command("show")
@topology_option
@json_option
@reported
def topology_show(topology_file: Path | None, as_json: bool) -> None:
    """Print the resolved topology."""
    topo = topology.load(topology_file)
    if as_json:
        click.echo(json.dumps(topology.to_data(topo), indent=2))
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
    path.write_text(topology.default_text() if count is None else topology.to_toml(topology.generate(count, chosen)))
    out.print(f"wrote {path}: edit it, then `ovsvx deploy -t {path}`")


# --- plan / deploy / destroy ---------------------------------------------------------


#: `plan` and `graph` show a topology as deploy would make it, in these modes and on this datapath.
planned_mode_option = click.option("--mode", "mode_text", default=None, metavar="MODE", help="As for deploy.")
planned_datapath_option = click.option(
    "--datapath",
    default="auto",
    show_default=True,
    type=click.Choice(list(choices.DATAPATHS)),
    help="ovs mode: which datapath to show (auto: what this machine has, without loading anything).",
)


@main.command("plan")
@topology_option
@host_option
@planned_mode_option
@planned_datapath_option
@reported
def plan_cmd(topology_file: Path | None, host: str | None, mode_text: str | None, datapath: str) -> None:
    """Print, without changing anything, the commands equivalent to a deployment (kernel mode: the tutorial's)."""
    topo = topology.load(topology_file)
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


@main.command("graph")
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
        drawn = pictures.sketched(topology.load(topology_file), parse_modes(mode_text), asked)
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


@main.command("deploy")
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
    topo = topology.load(topology_file)
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


@main.command("destroy")
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


# --- a real host as a service -----------------------------------------------------------------

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


def metrics_option(default: str | None, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("--metrics", "metrics_text", default=default, metavar="[ADDR:]PORT", help=help_text)


AGENT_METRICS_HELP = "Serve the host's metrics and the agent's at http://ADDR:PORT/metrics (ADDR: 127.0.0.1)."
probes_option = click.option(
    "--probes", is_flag=True, help="Each scrape also runs verify's pings (they send traffic) as gauges."
)


@main.command("agent")
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
    return here.topology if here is not None else topology.default()


reflector_option = click.option(
    "--reflector",
    "reflector_text",
    default=None,
    metavar="ADDR",
    help="This machine as the topology's route reflector at ADDR (EVPN), instead of a host.",
)


@main.command("reflector")
@click.option("--address", "address_text", required=True, metavar="ADDR", help="One of bgp.route_reflectors.")
@topology_option
@full_check_option
@reported
def reflector_cmd(address_text: str, topology_file: Path | None, full_check_s: float) -> None:
    """Keep a BGP EVPN route reflector (FRR's bgpd) running at ADDR, until SIGTERM.

    What `ovsvx enable --reflector ADDR` runs under systemd; one line per change on stdout."""
    topo = agent.stored_topology(topology_file) if topology_file is not None else topology.default()
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


@main.command("enable")
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


@main.command("reload")
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


@main.command("disable")
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


# --- status / verify / exec ------------------------------------------------------------


@main.command("status")
@host_option
@prefix_option
@json_option
@reported
def status_cmd(host: str | None, prefix: str | None, as_json: bool) -> None:
    """What is deployed, per host, and whether each piece is as wanted (exit 1 if not)."""
    scope = deployment_ops.find_scope(host, prefix)
    deployment, hosts = deployment_ops.status(scope)
    reflectors = deployment_ops.reflector_status(deployment)
    ok = all(h.ok for h in (*hosts.values(), *reflectors.values()))
    if as_json:
        click.echo(json.dumps(deployment_ops.status_json(deployment, hosts, reflectors), indent=2))
    else:
        out.print(render.status({**hosts, **reflectors}, scope.describe()))
    if not ok:
        sys.exit(1)


@main.command("doctor")
@topology_option
@host_option
@prefix_option
@json_option
@reported
def doctor_cmd(topology_file: Path | None, host: str | None, prefix: str | None, as_json: bool) -> None:
    """Check every precondition, changing nothing: one line per finding, with its fix (exit 1 on a failure)."""
    checked = doctor.examine(host, prefix, topology_file)
    if as_json:
        click.echo(json.dumps(checked.to_json(), indent=2))
    else:
        out.print(render.doctor(checked.found, checked.scope, undeployed=checked.undeployed_lab), soft_wrap=True)
    if checked.failed:
        sys.exit(1)


@main.command("verify")
@host_option
@prefix_option
@json_option
@reported
def verify_cmd(host: str | None, prefix: str | None, as_json: bool) -> None:
    """Ping every pair of overlay nodes, check the TTLs, a DF full-size ping and TCP."""
    scope = deployment_ops.find_scope(host, prefix)
    results = verify.check(scope.kind, scope.prefix)
    ok = all(r.ok for r in results)
    if as_json:
        click.echo(json.dumps(verify.to_json(results), indent=2))
    else:
        out.print(render.verify(results))
    if not ok:
        sys.exit(1)


@main.command("exec", context_settings={"ignore_unknown_options": True})
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


# --- explaining the path -----------------------------------------------------------------


def _default_pair(deployment: record.Deployment, src: str | None, dst: str | None) -> tuple[str, str]:
    """SRC and DST default to the first namespace of the first two hosts: the tutorial's ns1 -> ns2."""
    hosts = deployment.topology.hosts
    return src or hosts[0].namespaces[0].name, dst or hosts[1].namespaces[0].name


@main.command("trace")
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


@main.command("capture")
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


# --- measuring ---------------------------------------------------------------------------


@main.command("bench")
@topology_option
@click.option(
    "--modes",
    "modes_text",
    default="kernel,ovs",
    show_default=True,
    help="Which modes to measure: kernel, ovs, ovs on a datapath (ovs:system, ovs:netdev), or ipsec (kernel mode "
    "encrypted), each its own column.",
)
@click.option(
    "--duration", default=5.0, show_default=True, type=click.FloatRange(0.5, 300), help="Seconds per iperf3 run."
)
@click.option(
    "--repeat",
    default=bench.REPEAT,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Rounds: each column is measured this many times, interleaved, and reported as median [min-max].",
)
@click.option(
    "--json", "json_spec", is_flag=False, flag_value="-", default=None, metavar="", help="Print JSON for machines."
)
@click.option(
    "-o",
    "--json-file",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the figures as JSON to this file.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also draw them as a PNG bar chart (matplotlib).",
)
@click.option(
    "--prefix",
    default="bench-",
    show_default=True,
    metavar="P",
    help="Prefix of the bench's own labs (the mode's initial is added).",
)
@click.option(
    "--port-type",
    default="auto",
    show_default=True,
    type=click.Choice(list(choices.PORT_TYPES)),
    help="As for deploy: how the ovs lab's userspace datapath reads its devices.",
)
@ovs_config_option
@tunnel_csum_option
@reported
def bench_cmd(
    topology_file: Path | None,
    modes_text: str,
    duration: float,
    repeat: int,
    json_spec: str | None,
    json_path: Path | None,
    plot_path: Path | None,
    prefix: str,
    port_type: str,
    ovs_config: tuple[str, ...],
    tunnel_csum: str | None,
) -> None:
    """Measure the raw underlay, kernel vxlan and OVS side by side on this machine, each in a lab of
    its own that the bench builds and destroys (also on Ctrl-C), round after round, interleaved."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if json_spec not in (None, "-"):  # `--json FILE`, the old spelling
        raise UsageError(
            f"--json is a flag that prints the figures; to write them to {json_spec}: --json-file {json_spec}"
        )
    as_json = json_spec is not None

    topo = topology.load(topology_file)
    modes = bench.parse_modes(modes_text)
    if plot_path is not None:
        bench.require_matplotlib()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console, transient=True
    ) as progress:
        task = progress.add_task("starting", total=None)
        samples = bench.run(
            topo,
            modes,
            duration,
            prefix,
            lambda what: progress.update(task, description=what),
            DeployOptions(port_type=port_type, ovs_config=ovs_config, tunnel_csum=tunnel_csum),
            repeat,
        )
    summaries = figures.summarize(samples)
    data = bench.to_json(summaries, duration)
    if json_path is not None:
        json_path.write_text(json.dumps(data, indent=2) + "\n")
    if plot_path is not None:
        bench.plot(summaries, str(plot_path))
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        out.print(render.bench(summaries, duration))


# --- ovs mode: controller and flows ----------------------------------------------------


@main.command("metrics")
@host_option
@prefix_option
@metrics_option(str(metrics.DEFAULT_PORT), "Serve at http://ADDR:PORT/metrics (ADDR: 127.0.0.1).")
@click.option("--once", is_flag=True, help="Print one scrape and exit, instead of serving.")
@probes_option
@reported
def metrics_cmd(host: str | None, prefix: str | None, metrics_text: str, once: bool, probes: bool) -> None:
    """The overlay's metrics for Prometheus: a lab's (an enabled host's agent serves its own: --metrics)."""
    preflight.require_root()
    scope = deployment_ops.find_scope(host, prefix)
    record.require(scope.kind, scope.prefix)  # nothing deployed: said now, not as an empty scrape
    registry = metrics.registry_for(scope, probes=probes)
    if once:
        click.echo(metrics.scrape(registry), nl=False)
        return
    address = metrics.parse_address(metrics_text)
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # for sigwait, here and in the server's thread
    exposed = metrics.serve(registry, address)
    err_console.print(f"serving {scope.describe()}'s metrics on http://{address[0]}:{address[1]}/metrics")
    if exposed:
        err_console.print(f"warning: {exposed}")
    signal.sigwait(stop)


@main.command("controller")
@topology_option
@click.option("--serve", "host_name", default=None, metavar="HOST", help="The topology host this controller serves.")
@renamed("--host", "--serve HOST")
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


@main.command("flows")
@topology_option
@click.option(
    "--only", "host", default=None, metavar="HOST", help="Only this host's bridge (or, with --render, its file)."
)
@renamed("--host", "--only HOST")
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
        for path in flows.write_files(topology.load(topology_file), out_dir, host):
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
