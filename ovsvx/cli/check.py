"""Commands that look at a deployment and change nothing: `status`, `doctor` and `verify`, each with
an exit status a script can test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ovsvx.cli import render
from ovsvx.cli.edge import host_option, json_option, out, prefix_option, reported, topology_option
from ovsvx.deploy import deploy as deployment_ops
from ovsvx.deploy import status as host_status
from ovsvx.observe import doctor, verify


@click.command("status")
@host_option
@prefix_option
@json_option
@reported
def status_cmd(host: str | None, prefix: str | None, as_json: bool) -> None:
    """What is deployed, per host, and whether each piece is as wanted (exit 1 if not)."""
    scope = deployment_ops.find_scope(host, prefix)
    deployment, hosts = host_status.status(scope)
    reflectors = host_status.reflector_status(deployment)
    ok = all(h.ok for h in (*hosts.values(), *reflectors.values()))
    if as_json:
        click.echo(json.dumps(host_status.status_json(deployment, hosts, reflectors), indent=2))
    else:
        out.print(render.status({**hosts, **reflectors}, scope.describe()))
    if not ok:
        sys.exit(1)


@click.command("doctor")
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


@click.command("verify")
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
