"""Ovs mode: an Open vSwitch bridge with a vxlan port, and flows that route as the tutorial's kernel does.

One host's deployment, in order: its OVS (a lab host's own daemons, or the
system's), the namespaces and veths (`ovs/plan.py`, first half), the bridges
(`switch.switch_plan`, one OVSDB transaction each), the addresses and routes on
the bridge's internal port (second half), then the flows: from the os-ken
controller this backend starts alongside OVS, or, with `--no-controller`, from
the host's checked-in file under flows/.  Deploy ends only when the bridge
holds exactly the generated flows.  What it decides once per deploy is
`choices.py`'s; what it shows, `readings.py`'s; what it is, `layout.py`'s.
"""

from __future__ import annotations

import dataclasses
import shutil

from ovsvx.errors import OvsvxError
from ovsvx.host import processes, secretfile
from ovsvx.host.netlink import Reconciler, remove_stale_taps
from ovsvx.host.plan import MovedAddress, Veth
from ovsvx.host.record import Deployment
from ovsvx.model.bgp import BgpView
from ovsvx.model.findings import MISSING, Finding
from ovsvx.model.path import Watched
from ovsvx.model.site import Site
from ovsvx.model.traffic import Traffic
from ovsvx.ovs import daemons, ofctl, ovsdb
from ovsvx.ovs.flowwatch import FlowWatch
from ovsvx.ovs.layout import OvsLayout
from ovsvx.ovs.plan import ovs_plan
from ovsvx.ovs.readings import OvsReadings
from ovsvx.ovs.settings import Datapath, OvsSettings
from ovsvx.ovs.switch import switch_plan
from ovsvx.ovs.trace import OvsForwarding

NETDEV_DATAPATH_DEVICE = "ovs-netdev"  # the userspace datapath's own tap, one per OVS


class OvsBackend(OvsLayout):
    """Deploys one host of the topology in ovs mode at a site."""

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.deployment = deployment
        self.topology = deployment.topology
        self.settings = OvsSettings.of(deployment, site.host.name)
        self.home = daemons.ovs_home(deployment, site)
        self.watch = FlowWatch(deployment, site, self.settings.from_controller)
        controller = f"unix:{self.watch.socket}" if self.settings.from_controller else None
        self.before, self.after = ovs_plan(self.topology, site.host, self.settings.datapath)
        csum = self.settings.tunnel_csum_asked
        self.bridges = switch_plan(
            self.topology, site.host, self.settings.datapath, controller, self.settings.port_type, csum
        )
        self.netlink = Reconciler(site, deployment)
        self.readings = OvsReadings(deployment, site, self.settings, self.bridges)

    # --- changing the host -------------------------------------------------------------

    def inspect(self) -> list[Finding]:
        findings = self.readings.daemon_findings()
        if self.settings.from_controller:
            findings.append(self.watch.controller_finding(self.readings.reachable()))
        findings += self.netlink.inspect(self.before)
        if self.readings.reachable():
            with ovsdb.connect(self.home.db) as api:
                findings += ovsdb.inspect_config(api, self.settings.ovs_config)
                for bridge in self.bridges:
                    findings += ovsdb.inspect(api, bridge)
        else:
            findings.append(Finding("ovsdb", MISSING, f"no OVSDB at {self.home.db}"))
        findings += self.netlink.inspect(self.after)
        findings.append(self.watch.finding())
        return findings

    def apply(self) -> list[str]:
        self.netlink.refuse_foreign(self.netlink.inspect(self.before + self.after))
        secretfile.bgp_password(self.topology)  # the speaker reads it: a file that will not do is refused here
        host = self.site.host.name
        if self.settings.af_xdp:  # the devices OVS reads through AF_XDP: the NIC and the namespaces' veth ends
            self.deployment.note_xdp(host, [self.site.host.nic, *(ns.peer for ns in self.site.host.namespaces)])
        changes = [f"{host}: started {program}" for program in daemons.start_ovs(self.home)]
        if self.settings.from_controller and (done := daemons.ensure_controller(self.deployment, self.site)):
            why = " (the topology changed)" if done == "restarted" else ""
            changes.append(f"{host}: {done} controller on unix:{self.watch.socket}{why}")
        remade = self._devices_to_make()
        changes += self.netlink.apply(self.before)
        with ovsdb.connect(self.home.db) as api:
            synced, kept = ovsdb.sync_config(api, self.settings.ovs_config, self.settings.ovs_config_before)
            self.settings = dataclasses.replace(self.settings, ovs_config_before=kept)
            self.deployment.set_settings(host, self.settings.to_record())
            changes += [f"{host}: {line}" for line in synced]
            for bridge in self.bridges:
                changes += [f"{host}: {line}" for line in ovsdb.apply(api, bridge, reopen=remade)]
        changes += self.netlink.apply(self.after)
        if self.settings.from_controller:
            self.watch.wait_for_controller()
            if self.watch.resync_if_changed():
                changes.append(f"{host}: {self.site.host.bridge}'s flows differed: made it reconnect to its controller")
        elif self.watch.difference() != (0, 0):
            ofctl.tool(self.home, "ovs-ofctl", "replace-flows", self.site.host.bridge, self.settings.flows_file)
            changes.append(f"{host}: loaded {self.settings.flows_file}")
        self.watch.wait_for_flows()
        return changes

    def destroy(self) -> list[str]:
        host = self.site.host
        removed = [f"{host.name}: - controller"] if daemons.stop_controller(self.deployment, self.site) else []
        moved = tuple(r for r in self.after if isinstance(r, MovedAddress))
        removed += self.netlink.remove([ns.peer for ns in host.namespaces], moved)
        if self.readings.reachable():
            try:
                with ovsdb.connect(self.home.db) as api:
                    removed += [f"{host.name}: {line}" for line in ovsdb.remove(api, [b.name for b in self.bridges])]
                    before = self.settings.ovs_config_before
                    removed += [f"{host.name}: {line}" for line in ovsdb.restore_config(api, before)]
            except OvsvxError:
                pass  # a lab's OVS that is going away anyway; a real host's is checked by deploy
        if self.settings.datapath == Datapath.SYSTEM:
            daemons.await_tunnel_device_gone(self.site.netns, self.topology.port)
        removed += [f"{host.name}: {line}" for line in daemons.stop_ovs(self.home)]
        # stopped cleanly, OVS takes its XDP programs and its bridges' tap devices away; killed, it does not
        removed += self.netlink.detach_recorded_xdp()
        if self.settings.userspace:
            taps = [b.name for b in self.bridges] + ([NETDEV_DATAPATH_DEVICE] if self.home.own else [])
            removed += remove_stale_taps(self.site.netns, taps, host.name)
        if self.home.own:
            shutil.rmtree(processes.site_dir(self.deployment, self.site), ignore_errors=True)
        self.deployment.set_settings(host.name, None)  # what this mode decided goes with it
        return removed

    def _devices_to_make(self) -> set[str]:
        """The host ends of veths about to be (re)made: if OVS had them as ports, it must open them anew."""
        inspected = self.netlink.inspect(self.before)
        return {f.resource.name for f in inspected if f.state == MISSING and isinstance(f.resource, Veth)}

    # --- reading it (readings.py), and its control plane -------------------------------

    def details(self) -> dict[str, str]:
        return self.readings.details()

    def daemons(self) -> dict[str, int]:
        """The controller it starts, by pid (OVS's daemons are the system's, or the lab's)."""
        pid = daemons.controller_pid(self.deployment, self.site) if self.settings.from_controller else None
        return {f"{self.site.host.name}'s controller": pid} if pid else {}

    def tunnel_traffic(self) -> dict[str, Traffic]:
        return self.readings.tunnel_traffic()

    def flow_traffic(self) -> dict[str, Traffic]:
        return self.readings.flow_traffic()

    def answering(self) -> dict[str, bool]:
        return self.readings.answering()

    def watched(self, namespace: str | None) -> Watched:
        return self.readings.watched(namespace)

    def settings_figures(self) -> dict[str, str]:
        return self.readings.settings_figures()

    def bgp(self) -> BgpView:  # the controller's BGP EVPN speaker: what it last wrote
        return daemons.evpn_state(self.deployment, self.site)

    def tool_env(self) -> dict[str, str] | None:  # OVS's own tools find a lab host's OVS by OVS_RUNDIR
        return self.home.env()

    def change_feed(self) -> list[str] | None:
        """`ovsdb-client monitor` of the interfaces: each line it prints is a change, and its end
        (ovs-vswitchd or ovsdb-server restarting) is one too."""
        return ["ovsdb-client", "monitor", self.home.db, "Open_vSwitch", "Interface", "name,ofport"]

    def forwarding(self) -> OvsForwarding:
        return OvsForwarding(self.site, self.deployment)

    def stop_control(self) -> None:
        """Stop the controller and empty the bridge twice over: its OpenFlow tables, and the flows its
        datapath caches (after `del-flows` the datapath forwards with what it cached until the revalidators
        catch up)."""
        daemons.stop_controller(self.deployment, self.site)
        ofctl.tool(self.home, "ovs-ofctl", "del-flows", self.site.host.bridge)
        ofctl.tool(self.home, "ovs-appctl", "dpctl/del-flows")

    def start_control(self) -> None:
        daemons.start_controller(self.deployment, self.site)
