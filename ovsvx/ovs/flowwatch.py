"""Whether a host's switch holds its flows: the controller connected, the bridge at exactly the generated
flows, and (under EVPN) the host routed to the peers the controller knows.  Deploy waits on these,
status reports them."""

from __future__ import annotations

from ovsvx import waits
from ovsvx.errors import ApplyError, OvsvxError
from ovsvx.host import netstack
from ovsvx.host.record import Deployment
from ovsvx.model.findings import DIFFERS, MISSING, OK, Finding
from ovsvx.model.site import Site
from ovsvx.ovs import daemons, ofctl
from ovsvx.ovs.controller import logged_errors
from ovsvx.ovs.evpnroutes import routes_missing
from ovsvx.ovs.flows import host_flows, peers_of
from ovsvx.ovs.openflow import Flow, is_learned

FLOWS_WAIT_S = 20.0  # OVS connects and the controller installs every flow
FLOWS_SETTLE_S = 2.0  # a connected controller has sent the flows it syncs (or EVPN's routes change) by then


def generated_flows(deployment: Deployment, site: Site) -> tuple[Flow, ...]:
    """The flows a host's bridge should hold: from the topology, and under EVPN from the routes its
    controller's speaker holds now.  `deploy`, `status`, `flows` and `trace` all compare with these."""
    topology = deployment.topology
    peers = peers_of(daemons.evpn_state(deployment, site)) if topology.evpn else ()
    return host_flows(topology, site.host, peers)


def generated_by_cookie(deployment: Deployment, site: Site) -> dict[int, Flow]:
    """The generated flows by cookie: what `flows` and `trace` name an installed flow by."""
    return {f.cookie: f for f in generated_flows(deployment, site)}


class FlowWatch:
    """One ovs-mode host's switch, watched for its flows."""

    def __init__(self, deployment: Deployment, site: Site, from_controller: bool):
        self.deployment = deployment
        self.site = site
        self.home = daemons.ovs_home(deployment, site)
        self.socket = daemons.controller_socket(deployment, site)
        self.from_controller = from_controller

    def controller_connected(self) -> bool:
        """OVS holds a connection to the controller's socket (read from the socket table, at once; OVSDB's
        is_connected column is refreshed only every few seconds)."""
        return netstack.UNIX_CONNECTED in netstack.unix_states(self.site.netns, self.socket)

    def difference(self, generated: tuple[Flow, ...] | None = None) -> tuple[int, int]:
        """(generated flows missing from the bridge, installed flows not generated); `generated` when the
        caller has them already."""
        installed = {f.cookie for f in ofctl.dump_flows(self.home, self.site.host.bridge) if not is_learned(f.cookie)}
        flows = generated_flows(self.deployment, self.site) if generated is None else generated
        wanted = {f.cookie for f in flows}
        return len(wanted - installed), len(installed - wanted)

    def finding(self) -> Finding:
        bridge, generated = self.site.host.bridge, generated_flows(self.deployment, self.site)
        what = f"flows on {bridge} ({len(generated)} generated)"
        try:
            missing, stale = self.difference(generated)
        except OvsvxError as err:
            return Finding(what, MISSING, str(err), piece=bridge)
        if (missing, stale) == (0, 0):
            return Finding(what, OK, piece=bridge)
        return Finding(what, DIFFERS, f"{missing} missing, {stale} not generated", piece=bridge)

    def controller_finding(self, ovs_reachable: bool) -> Finding:
        what, bridge = f"controller on unix:{self.socket}", self.site.host.bridge
        pid = daemons.controller_pid(self.deployment, self.site)
        if pid is None:
            return Finding(what, MISSING, "not running", piece=bridge)
        if not (ovs_reachable and self.controller_connected()):
            return Finding(what, DIFFERS, f"pid {pid}, OVS not connected", piece=bridge)
        return Finding(what, OK, f"pid {pid}, connected", piece=bridge)

    def controller_said(self) -> str:
        """The controller log's last error, quoted, so the reason survives a deploy that is rolled back."""
        if not self.from_controller:
            return ""
        log = daemons.controller_files(self.deployment, self.site)[1]
        try:
            errors = logged_errors(log.read_text())
        except OSError:
            return ""
        return f"; the controller said: {errors[-1]}" if errors else f"; see {log}"

    def wait_for_controller(self) -> None:
        if not waits.until(self.controller_connected, FLOWS_WAIT_S):
            raise ApplyError(
                f"{self.site.host.name}: OVS did not connect to the controller within "
                f"{waits.scaled(FLOWS_WAIT_S):g} s{self.controller_said()}"
            )

    def resync_if_changed(self) -> bool:
        """Make a bridge whose flows were changed behind its connected controller (a flow deleted or added
        by hand) reconnect to it: the controller compares the switch with the generated flows on every
        connection, and only then.  `fail_mode=secure` keeps the flows while it reconnects.  True when the
        bridge was made to reconnect."""
        if waits.until(lambda: self.difference() == (0, 0), FLOWS_SETTLE_S, interval=0.2):
            return False
        ofctl.tool(self.home, "ovs-appctl", "bridge/reconnect", self.site.host.bridge)
        return True

    def wait_for_flows(self) -> None:
        """Until the bridge holds its flows and, under EVPN, the host its routes to the peers the
        controller knows so far (both follow the routes, and deploy should end with them in place)."""
        host = self.site.host
        if not waits.until(lambda: self.difference() == (0, 0), FLOWS_WAIT_S, interval=0.2):
            missing, stale = self.difference()
            raise ApplyError(
                f"{host.name}: {host.bridge} still lacks {missing} flow(s) "
                f"and has {stale} stale after {waits.scaled(FLOWS_WAIT_S):g} s{self.controller_said()}"
            )
        if not self.deployment.topology.evpn:
            return
        if not waits.until(lambda: not routes_missing(self.deployment, self.site), FLOWS_WAIT_S, interval=0.2):
            raise ApplyError(
                f"{host.name}: no route yet to {', '.join(routes_missing(self.deployment, self.site))} after "
                f"{waits.scaled(FLOWS_WAIT_S):g} s{self.controller_said()}"
            )
