"""Commands that measure: `bench` (the underlay, kernel vxlan and OVS side by side) and `metrics` (a
lab's figures for Prometheus)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ovsvx.cli import render
from ovsvx.cli.edge import (
    err_console,
    host_option,
    json_option,
    metrics_option,
    out,
    ovs_config_option,
    prefix_option,
    probes_option,
    reported,
    topology_option,
    tunnel_csum_option,
)
from ovsvx.deploy import deploy as deployment_ops
from ovsvx.errors import UsageError
from ovsvx.host import preflight, record
from ovsvx.model import reader
from ovsvx.model.options import DeployOptions
from ovsvx.observe import bench, figures, levers, metrics
from ovsvx.ovs import choices
from ovsvx.ovs.settings import AUTO


@click.command("bench")
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
@json_option
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
    default=AUTO,
    show_default=True,
    type=click.Choice(list(choices.PORT_TYPES)),
    help="As for deploy: how the ovs lab's userspace datapath reads its devices.",
)
@ovs_config_option
@tunnel_csum_option
@click.option(
    "--lever",
    "lever_name",
    default=None,
    type=click.Choice(list(levers.LEVERS)),
    help="Build the ovs lab as this lever of ovs mode's speed says (its port type, OVS tuning, tunnel checksum "
    "or underlay MTU), instead of --port-type, --ovs-config and --tunnel-csum.",
)
@reported
def bench_cmd(
    topology_file: Path | None,
    modes_text: str,
    duration: float,
    repeat: int,
    as_json: bool,
    json_path: Path | None,
    plot_path: Path | None,
    prefix: str,
    port_type: str,
    ovs_config: tuple[str, ...],
    tunnel_csum: str | None,
    lever_name: str | None,
) -> None:
    """Measure the raw underlay, kernel vxlan and OVS side by side on this machine, each in a lab of
    its own that the bench builds and destroys (also on Ctrl-C), round after round, interleaved."""
    topo = reader.load(topology_file)
    options = DeployOptions(port_type=port_type, ovs_config=ovs_config, tunnel_csum=tunnel_csum)
    if lever_name is not None:
        if port_type != AUTO or ovs_config or tunnel_csum is not None:
            raise UsageError(
                f"--lever {lever_name} sets the ovs lab's choices: give it, or --port-type, --ovs-config and "
                "--tunnel-csum"
            )
        lever = levers.LEVERS[lever_name]
        topo, options = lever.topology(topo), lever.options()
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
            options,
            repeat,
        )
    summaries = figures.summarize(samples)
    data = bench.to_json(summaries, duration) | ({"lever": lever_name} if lever_name else {})
    if json_path is not None:
        json_path.write_text(json.dumps(data, indent=2) + "\n")
    if plot_path is not None:
        bench.plot(summaries, str(plot_path))
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        out.print(render.bench(summaries, duration))


@click.command("metrics")
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
