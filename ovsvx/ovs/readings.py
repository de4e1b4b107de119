"""What an ovs-mode host shows without being changed: its daemons and their memory, what status says of
its datapath and controller, its tunnels' and flows' counters, the peers it heard from, and where its
frames can be captured."""

from __future__ import annotations

from functools import cached_property

from ovsvx.host import processes
from ovsvx.host.record import Deployment
from ovsvx.model.findings import MISSING, OK, Finding
from ovsvx.model.path import Watched
from ovsvx.model.site import Site
from ovsvx.model.topology import kernel_tunnel_device
from ovsvx.model.traffic import Traffic
from ovsvx.ovs import daemons, ofctl, ovsdb, switch
from ovsvx.ovs.openflow import is_learned, learned_cookie, purpose_label
from ovsvx.ovs.settings import AUTO, Datapath, OvsSettings
from ovsvx.ovs.switch import OvsBridge

DAEMONS = ("ovsdb-server", "ovs-vswitchd")


class OvsReadings:
    """One ovs-mode host, read."""

    def __init__(self, deployment: Deployment, site: Site, settings: OvsSettings, bridges: tuple[OvsBridge, ...]):
        self.deployment = deployment
        self.site = site
        self.settings = settings
        self.bridges = bridges
        self.home = daemons.ovs_home(deployment, site)

    def reachable(self) -> bool:
        """Its OVSDB answers (a lab host's own ovsdb-server runs, and its socket is there)."""
        if self.home.own and processes.running_pid(self.home.pidfile("ovsdb-server"), "ovsdb-server") is None:
            return False
        return (self.home.rundir / "db.sock").exists()

    def daemon_findings(self) -> list[Finding]:
        """A lab host's own OVS daemons, running or not (a real host's are the system's service)."""
        findings = []
        for program in DAEMONS if self.home.own else ():
            pid = processes.running_pid(self.home.pidfile(program), program)
            findings.append(Finding(program, OK if pid else MISSING, f"pid {pid}" if pid else "not running"))
        return findings

    def details(self) -> dict[str, str]:
        """What status shows beyond findings: datapath, processes, logs."""
        settings = self.settings
        info = {
            "datapath": f"{settings.datapath} ({settings.why})",
            "port type": f"{settings.port_type} ({settings.port_type_why})",
            "tunnel checksum": self._csum_text(),
        }
        if settings.ovs_config:
            info["ovs other_config"] = ", ".join(f"{k}={v}" for k, v in sorted(settings.ovs_config.items()))
        for program in DAEMONS if self.home.own else ():
            pid = processes.running_pid(self.home.pidfile(program), program)
            info[program] = f"pid {pid}, log {self.home.log(program)}" if pid else "not running"
        memory = self.memory_mib()
        if memory:
            info["memory"] = ", ".join(f"{name} {size:.0f} MiB" for name, size in memory.items()) + " (resident)"
        info["ovs rundir"] = str(self.home.rundir)
        info["ovsdb"] = f"{self.home.db} (any TCP remote shows under listening)"
        if settings.userspace:
            info["tunnel"] = (
                f"udp {self.deployment.topology.port} read from {self.site.host.nic} by ovs-vswitchd "
                "(userspace datapath: no socket, nothing for nftables to see)"
            )
            if self.deployment.firewall:
                info["firewall"] = (
                    "nftables sees no tunnel traffic on the userspace datapath; "
                    "OVS's remote_ip check admits only the peers"
                )
        if settings.from_controller:
            pid = daemons.controller_pid(self.deployment, self.site)
            log = daemons.controller_files(self.deployment, self.site)[1]
            socket = daemons.controller_socket(self.deployment, self.site)
            info["controller"] = f"pid {pid}, listening on unix:{socket}, log {log}" if pid else "not running"
            info["packet-ins"] = self._packet_ins_text()
        else:
            info["flows"] = f"from {settings.flows_file} (no controller)"
        return info

    def _packet_ins_text(self) -> str:
        """What the flows copied to the controller, and what OVS's limit dropped of it."""
        counted = None
        if self.reachable():
            with ovsdb.connect(self.home.db) as api:
                counted = ovsdb.packet_ins(api, self.site.host.bridge)
        if counted is None:
            return "not counted: OVS has no rate limit on the controller"
        sent, dropped = counted
        limit = f"{ovsdb.PACKET_IN_RATE}/s, burst {ovsdb.PACKET_IN_BURST}"
        return f"{sent} sent to the controller, {dropped} dropped by OVS's limit ({limit})"

    def _csum_text(self) -> str:
        asked = self.settings.tunnel_csum_asked
        on = switch.tunnel_csum(self.settings.datapath, asked)
        where = "the kernel" if on else "the userspace"
        return f"{'on' if on else 'off'} ({f'--tunnel-csum {asked}' if asked != AUTO else f'auto: {where} datapath'})"

    def memory_mib(self) -> dict[str, float]:
        """Resident memory, in MiB, of this host's OVS daemons (a lab host's own) and its controller."""
        own = DAEMONS[::-1] if self.home.own else ()
        pids = {program: processes.running_pid(self.home.pidfile(program), program) for program in own}
        if self.settings.from_controller:
            pids["controller"] = daemons.controller_pid(self.deployment, self.site)
        sizes = {name: processes.rss_mib(pid) for name, pid in pids.items() if pid is not None}
        return {name: size for name, size in sizes.items() if size is not None}

    def tunnel_traffic(self) -> dict[str, Traffic]:
        """Each vxlan port's counters, as OVS last read them; nothing without OVS."""
        if not self.reachable():
            return {}
        tunnels = [p.name for b in self.bridges for p in b.ports if p.type == "vxlan"]
        with ovsdb.connect(self.home.db) as api:
            return ovsdb.traffic(api, tunnels)

    @cached_property
    def _installed(self) -> list[ofctl.InstalledFlow]:
        """The installed flows, dumped once for the readings of one scrape (answering, flow_traffic):
        deploy and status dump them afresh."""
        return ofctl.dump_flows(self.home, self.site.host.bridge)

    def answering(self) -> dict[str, bool]:
        """Each peer, by name: whether the switch holds the router MAC it learned from the peer's ARP reply
        (kept 5 min; the controller's peer watch asks again when traffic goes unanswered).  Under EVPN the
        MACs come with the routes: nothing is said."""
        topology = self.deployment.topology
        if topology.evpn or not self.reachable():
            return {}
        learned = {f.cookie for f in self._installed if is_learned(f.cookie)}
        return {peer.name: learned_cookie(i) in learned for i, peer in enumerate(topology.peers(self.site.host))}

    def flow_traffic(self) -> dict[str, Traffic]:
        """What the bridge's flows matched, summed by purpose (the cookie's top bits), learned ones too."""
        if not self.reachable():
            return {}
        summed: dict[str, Traffic] = {}
        for flow in self._installed:
            purpose = purpose_label(flow.cookie)
            summed[purpose] = summed.get(purpose, Traffic()) + Traffic(flow.n_packets, flow.n_bytes)
        return summed

    def watched(self, namespace: str | None) -> Watched:
        """The namespace's switch port, the bridge's internal port, OVS's kernel tunnel device on the kernel
        datapath, and the NIC.  Ports read with AF_XDP take frames before tcpdump's hook, so there the wire
        is watched from its other end: the namespace's own veth, and in a lab the underlay switch's port."""
        host, xdp = self.site.host, self.settings.af_xdp
        devices = [] if xdp else [n.peer for n in host.namespaces if n.name == namespace]
        devices.append(host.bridge)
        if self.settings.datapath == Datapath.SYSTEM:
            devices.append(kernel_tunnel_device(self.deployment.topology.port))
        return Watched(devices, nic=not xdp)

    def settings_figures(self) -> dict[str, str]:
        """What the bench records of a lab it measured: the datapath, port type and OVS tuning it ran with."""
        tuning = " ".join(f"{k}={v}" for k, v in sorted(self.settings.ovs_config.items()))
        return {"datapath": self.settings.datapath, "port_type": self.settings.port_type, "ovs_config": tuning}
