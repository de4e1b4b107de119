"""`ovsvx status`: per host of a deployment, how each desired piece compares with the machine, with
what status shows beside (the firewall, what listens on the overlay's port, the agent, its metrics,
BGP), and the same as JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovsvx.deploy import agentreport, lab
from ovsvx.deploy.backends import backend
from ovsvx.deploy.deploy import Scope
from ovsvx.host import ipsec, preflight, record, systemd
from ovsvx.host.firewall import Firewall
from ovsvx.host.listeners import overlay_listeners
from ovsvx.host.record import Deployment
from ovsvx.model.bgp import BgpView
from ovsvx.model.findings import OK, Finding


@dataclass(frozen=True)
class HostStatus:
    mode: str
    findings: list[Finding]
    details: dict[str, str]
    bgp: BgpView | None = None  # under EVPN: its sessions and routes
    role: str = ""  # what it is when not a host of the overlay ("route reflector")

    @property
    def title(self) -> str:
        return self.role or f"{self.mode} mode"

    @property
    def ok(self) -> bool:
        return all(f.state == OK for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ok": self.ok,
            "details": self.details,
            **({"bgp": self.bgp.to_json()} if self.bgp is not None else {}),
            "resources": [{"what": f.what, "state": f.state, "detail": f.detail} for f in self.findings],
        }


def status_json(
    deployment: Deployment, hosts: dict[str, HostStatus], reflectors: dict[str, HostStatus]
) -> dict[str, Any]:
    """`status --json`: the deployment, whether every piece is as wanted, and each host's and route
    reflector's findings."""
    return {
        "scope": deployment.kind,
        "prefix": deployment.prefix,
        "ok": all(h.ok for h in (*hosts.values(), *reflectors.values())),
        "hosts": {name: h.to_json() for name, h in hosts.items()},
        "reflectors": {name: r.to_json() for name, r in reflectors.items()},
    }


def status(scope: Scope) -> tuple[Deployment, dict[str, HostStatus]]:
    """The deployment and, per host, how each desired piece compares with the machine."""
    preflight.require_root()
    deployment = record.require(scope.kind, scope.prefix)
    found = {}
    for site in deployment.sites():
        mode = deployment.modes[site.host.name]
        chosen = backend(mode, site, deployment)
        findings = chosen.inspect() + ipsec.HostIpsec(site, deployment).inspect()
        details = chosen.details()
        if deployment.firewall:
            findings.append(Firewall(site, deployment.topology).inspect())
        else:
            details["firewall"] = f"off (--no-firewall): udp {deployment.topology.port} is open to anyone"
        details["listening"] = "; ".join(overlay_listeners(site.netns, deployment.topology.port)) or "nothing"
        if not deployment.is_lab:
            details["agent"] = _agent_state(site.host.name)
            if (served := systemd.served_metrics(systemd.unit_name(site.host.name))) is not None:
                details["metrics"] = _metrics_state(served)
        bgp = chosen.bgp() if deployment.topology.evpn else None
        if bgp is not None:
            details.update(bgp.describe())
        found[site.host.name] = HostStatus(mode, findings, details, bgp)
    return deployment, found


def reflector_status(deployment: Deployment) -> dict[str, HostStatus]:
    """A lab's route reflectors, by namespace, each with its GTSM guard; none on a real machine, whose
    reflector is kept by a unit of its own (`ovsvx reflector`)."""
    if not deployment.is_lab:
        return {}
    found = lab.reflector_findings(deployment).items()
    return {name: HostStatus("", guards, {}, role="route reflector") for name, guards in found}


def _metrics_state(served: str) -> str:
    """Where the agent serves its metrics, and a word when that is not loopback."""
    address = served if ":" in served else f"127.0.0.1:{served}"
    exposed = not address.startswith("127.")
    return address + (": not loopback, unauthenticated: anyone who reaches it reads them" if exposed else "")


def _agent_state(host: str) -> str:
    unit = systemd.unit_state(systemd.unit_name(host))
    if unit is None:
        return f"none: nothing repairs this host or brings it back after a reboot (`ovsvx enable --host {host}` does)"
    report = agentreport.load(host)
    last = f"; {report.describe()}" if report is not None and report.pid == unit.pid else ""
    return f"{systemd.unit_name(host)} {unit.describe()}{last}"
