"""The `ovsvx` command line: a thin layer over topology, deploy, verify and the lab.

Each command parses its options, calls one library function and presents the result (rich tables
for people, --json for machines).  The commands live by what they do, one module each: design (a
topology before it is deployed), build (deploy, destroy), check (status, doctor, verify), service (a
real host for good, and the daemons), explain (exec, trace, capture, flows) and measure (bench,
metrics); `edge` turns every error into one line and an exit status.
"""

from __future__ import annotations

import click

from ovsvx.cli import build, check, design, explain, measure, service


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Stand up, explain and measure a point-to-point VXLAN overlay between Linux hosts.

    With no --host, commands act on a lab: every host of the topology simulated
    in network namespaces on this machine.
    """


for command in (
    design.topology_group,
    design.plan_cmd,
    design.graph_cmd,
    build.deploy_cmd,
    build.destroy_cmd,
    check.status_cmd,
    check.doctor_cmd,
    check.verify_cmd,
    service.enable_cmd,
    service.reload_cmd,
    service.disable_cmd,
    service.agent_cmd,
    service.reflector_cmd,
    service.controller_cmd,
    explain.exec_cmd,
    explain.trace_cmd,
    explain.capture_cmd,
    explain.flows_cmd,
    measure.bench_cmd,
    measure.metrics_cmd,
):
    main.add_command(command)
