"""Ovs mode: an Open vSwitch bridge with a vxlan port, and flows that route as the tutorial's kernel does.

One host's deployment, in order: its OVS (a lab host's own daemons, or the
system's), the namespaces and veths (`plan.ovs_plan`, first half), the
bridges (`switch.switch_plan`, one OVSDB transaction each), the addresses and
routes on the bridge's internal port (second half), then the flows: from the
os-ken controller this backend starts alongside OVS, or, with
`--no-controller`, from the host's checked-in file under flows/.  Deploy ends
only when the bridge holds exactly the generated flows.

The datapath is picked by what the machine has: the kernel's (`system`)
where the openvswitch module loads, else the userspace one (`netdev`), and
the record keeps which and why, for `status`.
"""

from __future__ import annotations

import dataclasses
import shutil
from functools import cached_property
from pathlib import Path
from socket import AF_INET

from ovsvx import waits
from ovsvx.errors import ApplyError, OvsvxError, UsageError
from ovsvx.host import netstack, preflight
from ovsvx.host.netlink import Reconciler, remove_stale_taps
from ovsvx.host.plan import RTPROT_OVSVX, MovedAddress, Resource, Veth, ovs_plan, render
from ovsvx.kernel import frr
from ovsvx.model.findings import DIFFERS, MISSING, OK, Finding
from ovsvx.model.options import DeployOptions
from ovsvx.model.record import Deployment
from ovsvx.model.settings import OvsSettings
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Mode, Topology
from ovsvx.model.traffic import Traffic
from ovsvx.ovs import daemons, ofctl, ovsdb, switch
from ovsvx.ovs.controller import logged_errors
from ovsvx.ovs.flows import Flow, host_flows, is_learned, learned_cookie, peers_of, purpose_label, render_file
from ovsvx.ovs.switch import PORT_TYPES, OvsBridge, switch_plan

CONTROLLER_START_S = 5.0  # os-ken imports and binds its port; ~1 s here, 15 s in an emulated guest
FLOWS_WAIT_S = 20.0  # OVS connects and the controller installs every flow
TUNNEL_DEVICE_GONE_S = 5.0  # OVS deletes its kernel tunnel device soon after the last vxlan port on its UDP port
DATAPATHS = ("auto", "system", "netdev")
AUTO_PORT_TYPE = "afxdp-nonpmd"
NETDEV_DATAPATH_DEVICE = "ovs-netdev"  # the userspace datapath's own tap, one per OVS
AFXDP_MAX_MTU = 1500  # measured to work at 1500 and to stall TCP at 9000; between is untested
# OVS gives each AF_XDP port a 64 MiB buffer (16384 frames of 4 KiB, fixed when OVS is built): it is
# 148 of ovs-vswitchd's 166 MiB per lab host (18 MiB with packet sockets).  Past this many hosts on one
# machine, auto takes packet sockets: a 32-host lab would hold 4.6 GiB in those buffers alone.
AFXDP_MAX_HOSTS_HERE = 8
AFXDP_MIB_PER_HOST = 128  # two AF_XDP ports a host: the underlay NIC and the namespace's veth


def choose_datapath(wanted: str = "auto", load_module: bool = True) -> tuple[str, str]:
    """The datapath to use and why: the kernel's where the openvswitch module is there, else userspace.

    `load_module` False only looks (for `plan`, which changes nothing).
    """
    if wanted in ("system", "netdev"):
        return wanted, f"asked for (--datapath {wanted})"
    if preflight.module_loaded("openvswitch"):
        return "system", "the openvswitch kernel module is loaded"
    if load_module and preflight.modprobe("openvswitch", dry_run=False):
        return "system", "loaded the openvswitch kernel module"
    return "netdev", "no openvswitch kernel module on this machine, so the userspace datapath"


def choose_port_type(
    wanted: str, datapath: str, datapath_why: str, underlay_mtu: int, hosts_here: int = 1
) -> tuple[str, str]:
    """How the userspace datapath reads the devices, and why (docs/performance.md has the measurements).

    auto: AF_XDP polled by the main thread: the fastest setting measured that
    leaves the CPU idle when the overlay is (a PMD thread is faster still but
    spins a core per host).  AF_XDP frames are one page, so a jumbo underlay
    keeps packet sockets (measured: TCP stalls at 9000 bytes); and a lab of many
    hosts (`hosts_here` on this machine) keeps them too, for memory.
    """
    if wanted not in ("auto", *PORT_TYPES):
        raise UsageError(f"--port-type {wanted!r} is not allowed: one of auto, {', '.join(PORT_TYPES)}")
    xdp_fits = underlay_mtu <= AFXDP_MAX_MTU
    if wanted == "auto":
        if datapath != "netdev":
            return "system", "the kernel datapath reads the devices itself"
        if not xdp_fits:
            return "system", f"AF_XDP is for an underlay MTU up to {AFXDP_MAX_MTU}; this one is {underlay_mtu}"
        if hosts_here > AFXDP_MAX_HOSTS_HERE:
            return "system", (
                f"{hosts_here} lab hosts on this machine: AF_XDP's fixed buffers would hold "
                f"{hosts_here * AFXDP_MIB_PER_HOST / 1024:.1f} GiB (more than {AFXDP_MAX_HOSTS_HERE} "
                "hosts: packet sockets)"
            )
        return AUTO_PORT_TYPE, "fastest measured without spinning a core (docs/performance.md)"
    if wanted != "system" and datapath != "netdev":
        raise UsageError(
            f"--port-type {wanted} is for the userspace datapath; this host uses {datapath} ({datapath_why})"
        )
    if wanted != "system" and not xdp_fits:
        raise UsageError(
            f"--port-type {wanted} needs underlay_mtu up to {AFXDP_MAX_MTU} (AF_XDP frames are one "
            f"page; at 9000 TCP stalls); this topology has {underlay_mtu}: use --port-type system"
        )
    return wanted, f"asked for (--port-type {wanted})"


def flows_file(folder: Path, host: str) -> Path:
    return folder / f"{host}.flows"


def generated_flows(deployment: Deployment, site: Site) -> tuple[Flow, ...]:
    """The flows a host's bridge should hold: from the topology, and under EVPN from the routes its
    controller's speaker holds now.  `deploy`, `status`, `flows` and `trace` all compare with these."""
    topology = deployment.topology
    peers = peers_of(daemons.evpn_state(deployment, site)) if topology.evpn else ()
    return host_flows(topology, site.host, peers)


class OvsBackend:
    """Deploys one host of the topology in ovs mode at a site."""

    name = Mode.OVS

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.deployment = deployment
        self.settings = deployment.settings.get(site.host.name, OvsSettings())
        self.datapath = self.settings.datapath
        self.flows_from = self.settings.flows  # "controller" or a flows file
        self.port_type = self.settings.port_type
        self.tuning = self.settings.ovs_config
        topology, host = deployment.topology, site.host
        self.home = daemons.ovs_home(deployment, site)
        self.socket = daemons.controller_socket(deployment, site)
        controller = f"unix:{self.socket}" if self.flows_from == "controller" else None
        self.before, self.after = ovs_plan(topology, host, self.datapath)
        csum = self.settings.tunnel_csum_asked
        self.bridges = switch_plan(topology, host, self.datapath, controller, self.port_type, csum)
        self.topology = topology
        self.netlink = Reconciler(site, deployment)

    @staticmethod
    def pieces(topology: Topology, host: Host, datapath: str) -> tuple[Resource | OvsBridge, ...]:
        """What `host` is made of in ovs mode (what `graph` draws): the netlink plan's values and the
        switch's bridges."""
        before, after = ovs_plan(topology, host, datapath)
        return (*before, *switch_plan(topology, host, datapath, None), *after)

    @staticmethod
    def commands(topology: Topology, host: Host, datapath: str) -> list[str]:
        """The deployment of `host` as the commands a person would type, in order."""
        before, after = ovs_plan(topology, host, datapath)
        controller = f"unix:{daemons.controller_socket_in(daemons.SYSTEM_RUNDIR, host.name)}"  # a real host's
        port_type, _ = choose_port_type("auto", datapath, "", topology.underlay_mtu)
        lines = [line for r in before for line in render(r)]
        lines += [
            line for b in switch_plan(topology, host, datapath, controller, port_type) for line in switch.render(b)
        ]
        lines += [line for r in after for line in render(r)]
        if topology.evpn:
            reflectors = ", ".join(str(rr) for rr in topology.bgp.route_reflectors) if topology.bgp else ""
            lines.append(
                f"ovsvx controller --serve {host.name} &   # also its BGP EVPN speaker, peering with {reflectors}"
            )
        else:
            lines.append(
                f"ovsvx controller --serve {host.name} &   # or, with no controller: "
                f"ovs-ofctl -O OpenFlow13 replace-flows {host.bridge} flows/{host.name}.flows"
            )
        return lines

    @staticmethod
    def configure(deployment: Deployment, host: str, options: DeployOptions) -> None:
        """Decide, once per deploy, the datapath and where the flows come from; kept in the record."""
        preflight.require_tools("ovs-vsctl", "ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "ethtool")
        previous = deployment.settings.get(host, OvsSettings())
        wanted = options.datapath or previous.datapath_asked
        if wanted not in DATAPATHS:
            raise UsageError(f"--datapath {wanted!r} is not allowed: one of {', '.join(DATAPATHS)}")
        chosen, why = choose_datapath(wanted)
        if deployment.topology.encrypted and chosen != "system":
            raise UsageError(
                f'encryption = "ipsec" is not allowed on OVS\'s userspace datapath ({host}: {why}): it sends its '
                "tunnel packets past the kernel's IPsec; use the kernel datapath (--datapath system, with the "
                "openvswitch module) or kernel mode (--mode kernel)"
            )
        port_type, port_why = choose_port_type(
            options.port_type or previous.port_type_asked,
            chosen,
            why,
            deployment.topology.underlay_mtu,
            len(deployment.topology.hosts) if deployment.is_lab else 1,
        )
        flows = "controller"
        if not options.controller and deployment.topology.evpn:
            raise UsageError('--no-controller is not allowed with control = "evpn": the controller speaks BGP')
        if not options.controller:
            path = flows_file(options.flows_dir, host).resolve()
            want = render_file(deployment.topology, deployment.topology.host(host))
            try:
                text = path.read_text()
            except OSError as err:
                raise UsageError(
                    f"--no-controller needs {path}: {err.strerror} (write it with `ovsvx flows --render`)"
                ) from None
            if text != want:
                raise UsageError(
                    f"{path} does not match the topology: regenerate it with `ovsvx flows --render` (with the same -t)"
                )
            flows = str(path)
        csum = options.tunnel_csum or previous.tunnel_csum_asked
        if csum not in switch.TUNNEL_CSUM:
            raise UsageError(f"--tunnel-csum {csum!r} is not allowed: one of {', '.join(switch.TUNNEL_CSUM)}")
        if options.ovs_config is None:
            tuning = previous.ovs_config
        else:
            tuning = switch.ovs_config(options.ovs_config, host, [h.name for h in deployment.topology.hosts])
        deployment.settings[host] = OvsSettings(
            datapath=chosen,
            why=why,
            datapath_asked=wanted,
            flows=flows,
            port_type=port_type,
            port_type_why=port_why,
            port_type_asked=options.port_type or previous.port_type_asked,
            ovs_config=tuning,
            ovs_config_before=previous.ovs_config_before,
            tunnel_csum_asked=csum,
        )

    # --- the verbs -------------------------------------------------------------

    def inspect(self) -> list[Finding]:
        findings = self._daemon_findings()
        findings += self.netlink.inspect(self.before)
        if self._ovs_reachable():
            with ovsdb.connect(self.home.db) as api:
                findings += ovsdb.inspect_config(api, self.tuning)
                for bridge in self.bridges:
                    findings += ovsdb.inspect(api, bridge)
        else:
            findings.append(Finding("ovsdb", MISSING, f"no OVSDB at {self.home.db}"))
        findings += self.netlink.inspect(self.after)
        findings.append(self._flows_finding())
        return findings

    def apply(self) -> list[str]:
        self.netlink.refuse_foreign(self.netlink.inspect(self.before + self.after))
        frr.password(self.topology)  # the speaker reads it: a file that will not do is refused here, in one line
        host = self.site.host.name
        if self.port_type.startswith("afxdp"):
            self.deployment.note_xdp(host, self._xdp_devices())
        changes = [f"{host}: started {program}" for program in daemons.start_ovs(self.home)]
        if self.flows_from == "controller":
            if daemons.start_controller(self.deployment, self.site):
                changes.append(f"{host}: started controller on unix:{self.socket}")
            # listening before the bridge names it, so OVS connects at once instead of backing off
            daemons.wait_serving(self.site.netns, self.socket, CONTROLLER_START_S)
        remade = self._devices_to_make()
        changes += self.netlink.apply(self.before)
        with ovsdb.connect(self.home.db) as api:
            changes += [f"{host}: {line}" for line in self._sync_config(api)]
            for bridge in self.bridges:
                changes += [f"{host}: {line}" for line in ovsdb.apply(api, bridge, reopen=remade)]
        changes += self.netlink.apply(self.after)
        if self.flows_from == "controller":
            self._wait_for_controller()
        elif self._flow_difference() != (0, 0):
            ofctl.tool(self.home, "ovs-ofctl", "replace-flows", self.site.host.bridge, self.flows_from)
            changes.append(f"{host}: loaded {self.flows_from}")
        self._wait_for_flows()
        return changes

    def destroy(self) -> list[str]:
        host = self.site.host
        removed = []
        if daemons.stop_controller(self.deployment, self.site):
            removed.append(f"{host.name}: - controller")
        moved = tuple(r for r in self.after if isinstance(r, MovedAddress))
        removed += self.netlink.remove([ns.peer for ns in host.namespaces], moved)
        if self._ovs_reachable():
            try:
                with ovsdb.connect(self.home.db) as api:
                    removed += [f"{host.name}: {line}" for line in ovsdb.remove(api, [b.name for b in self.bridges])]
                    before = self.settings.ovs_config_before
                    removed += [f"{host.name}: {line}" for line in ovsdb.restore_config(api, before)]
            except OvsvxError:
                pass  # a lab's OVS that is going away anyway; a real host's is checked by deploy
        if self.datapath == "system":
            self._await_tunnel_device_gone()
        removed += [f"{host.name}: {line}" for line in daemons.stop_ovs(self.home)]
        # stopped cleanly, OVS takes its XDP programs and its bridges' tap devices away; killed, it does not
        removed += self.netlink.detach_recorded_xdp()
        if self.datapath == "netdev":
            taps = [b.name for b in self.bridges] + ([NETDEV_DATAPATH_DEVICE] if self.home.own else [])
            removed += remove_stale_taps(self.site.netns, taps, host.name)
        if self.home.own:
            shutil.rmtree(daemons.site_dir(self.deployment, self.site), ignore_errors=True)
        self.deployment.set_settings(host.name, None)  # what this mode decided goes with it
        return removed

    def _await_tunnel_device_gone(self) -> None:
        """On the kernel datapath OVS's tunnel device (vxlan_sys_PORT) holds the UDP port until OVS deletes
        it, a moment after the last vxlan port on that port is gone; kernel mode's vxlan device cannot come
        up before (EADDRINUSE), so a switch to kernel mode waits for it.  Another vxlan port of the
        system's OVS on the same UDP port keeps the device: then kernel mode says so when it tries."""
        device = switch.kernel_tunnel_device(self.topology.port)

        def gone() -> bool:
            with netstack.stack(self.site.netns) as ipr:
                return not ipr.link_lookup(ifname=device)

        waits.until(gone, TUNNEL_DEVICE_GONE_S, interval=0.1)

    def tunnel_traffic(self) -> dict[str, Traffic]:
        """Each vxlan port's counters, as OVS last read them; nothing without OVS."""
        if not self._ovs_reachable():
            return {}
        tunnels = [p.name for b in self.bridges for p in b.ports if p.type == "vxlan"]
        with ovsdb.connect(self.home.db) as api:
            return ovsdb.traffic(api, tunnels)

    @cached_property
    def _read_flows(self) -> list[ofctl.InstalledFlow]:
        """The installed flows, dumped once for the readings of one scrape (answering, flow_traffic):
        deploy and status dump them afresh."""
        return ofctl.dump_flows(self.home, self.site.host.bridge)

    def answering(self) -> dict[str, bool]:
        """Each peer, by name: whether the switch holds the router MAC it learned from the peer's ARP reply
        (kept 5 min; the controller's peer watch asks again when traffic goes unanswered).  Under EVPN the
        MACs come with the routes: nothing is said."""
        if self.topology.evpn or not self._ovs_reachable():
            return {}
        learned = {f.cookie for f in self._read_flows if is_learned(f.cookie)}
        peers = self.topology.peers(self.site.host)
        return {peer.name: learned_cookie(index) in learned for index, peer in enumerate(peers)}

    def flow_traffic(self) -> dict[str, Traffic]:
        """What the bridge's flows matched, summed by purpose (the cookie's top bits), learned ones too."""
        if not self._ovs_reachable():
            return {}
        summed: dict[str, Traffic] = {}
        for flow in self._read_flows:
            purpose = purpose_label(flow.cookie)
            summed[purpose] = summed.get(purpose, Traffic()) + Traffic(flow.n_packets, flow.n_bytes)
        return summed

    def _csum_text(self) -> str:
        asked = self.settings.tunnel_csum_asked
        on = switch.tunnel_csum(self.datapath, asked)
        why = (
            f"--tunnel-csum {asked}" if asked != "auto" else f"auto: {'the kernel' if on else 'the userspace'} datapath"
        )
        return f"{'on' if on else 'off'} ({why})"

    def details(self) -> dict[str, str]:
        """What status shows beyond findings: datapath, processes, logs."""
        info = {
            "datapath": f"{self.datapath} ({self.settings.why})",
            "port type": f"{self.port_type} ({self.settings.port_type_why})",
            "tunnel checksum": self._csum_text(),
        }
        if self.tuning:
            info["ovs other_config"] = ", ".join(f"{k}={v}" for k, v in sorted(self.tuning.items()))
        if self.home.own:
            for program in ("ovsdb-server", "ovs-vswitchd"):
                pid = daemons.running_pid(self.home.pidfile(program), program)
                info[program] = f"pid {pid}, log {self.home.log(program)}" if pid else "not running"
        memory = self.memory_mib()
        if memory:
            info["memory"] = ", ".join(f"{name} {size:.0f} MiB" for name, size in memory.items()) + " (resident)"
        info["ovs rundir"] = str(self.home.rundir)
        info["ovsdb"] = f"{self.home.db} (any TCP remote shows under listening)"
        if self.datapath == "netdev":
            info["tunnel"] = (
                f"udp {self.deployment.topology.port} read from {self.site.host.nic} by ovs-vswitchd "
                "(userspace datapath: no socket, nothing for nftables to see)"
            )
        if self.flows_from == "controller":
            pid = daemons.controller_pid(self.deployment, self.site)
            log = daemons.controller_files(self.deployment, self.site)[1]
            info["controller"] = f"pid {pid}, listening on unix:{self.socket}, log {log}" if pid else "not running"
        else:
            info["flows"] = f"from {self.flows_from} (no controller)"
        return info

    # --- helpers ---------------------------------------------------------------

    def _sync_config(self, api: object) -> list[str]:
        """Set the wanted other_config keys, and put back those a previous deploy set but this one does not
        want.  What each key held before ovsvx first set it is kept in the record, for destroy too (a real
        host's OVS outlives the deployment)."""
        before = dict(self.settings.ovs_config_before)
        have = ovsdb.other_config(api)
        before.update({k: have.get(k) for k in self.tuning if k not in before})
        changes = ovsdb.restore_config(api, {k: v for k, v in before.items() if k not in self.tuning})
        kept = {k: v for k, v in before.items() if k in self.tuning}
        self.settings = dataclasses.replace(self.settings, ovs_config_before=kept)
        self.deployment.set_settings(self.site.host.name, self.settings)
        return changes + ovsdb.apply_config(api, self.tuning)

    def _xdp_devices(self) -> list[str]:
        """The devices OVS reads through AF_XDP here: the underlay NIC and the namespaces' veth ends."""
        return [self.site.host.nic, *(ns.peer for ns in self.site.host.namespaces)]

    def _devices_to_make(self) -> set[str]:
        """The host ends of veths about to be (re)made: if OVS had them as ports, it must open them anew."""
        return {
            f.resource.name
            for f in self.netlink.inspect(self.before)
            if f.state == MISSING and isinstance(f.resource, Veth)
        }

    def memory_mib(self) -> dict[str, float]:
        """Resident memory, in MiB, of this host's OVS daemons (a lab host's own) and its controller."""
        pids = {
            program: daemons.running_pid(self.home.pidfile(program), program)
            for program in ("ovs-vswitchd", "ovsdb-server")
            if self.home.own
        }
        if self.flows_from == "controller":
            pids["controller"] = daemons.controller_pid(self.deployment, self.site)
        sizes = {name: daemons.rss_mib(pid) for name, pid in pids.items() if pid is not None}
        return {name: size for name, size in sizes.items() if size is not None}

    def _ovs_reachable(self) -> bool:
        if self.home.own and daemons.running_pid(self.home.pidfile("ovsdb-server"), "ovsdb-server") is None:
            return False
        return (self.home.rundir / "db.sock").exists()

    def _daemon_findings(self) -> list[Finding]:
        findings = []
        if self.home.own:
            for program in ("ovsdb-server", "ovs-vswitchd"):
                pid = daemons.running_pid(self.home.pidfile(program), program)
                findings.append(Finding(program, OK if pid else MISSING, f"pid {pid}" if pid else "not running"))
        if self.flows_from == "controller":
            findings.append(self._controller_finding())
        return findings

    def _controller_finding(self) -> Finding:
        what = f"controller on unix:{self.socket}"
        pid = daemons.controller_pid(self.deployment, self.site)
        if pid is None:
            return Finding(what, MISSING, "not running", piece=self.site.host.bridge)
        runner = f"pid {pid}"
        if not (self._ovs_reachable() and self._controller_connected()):
            return Finding(what, DIFFERS, f"{runner}, OVS not connected", piece=self.site.host.bridge)
        return Finding(what, OK, f"{runner}, connected", piece=self.site.host.bridge)

    def _controller_connected(self) -> bool:
        """OVS holds a connection to the controller's socket (read from the socket table, at once; OVSDB's
        is_connected column is refreshed only every few seconds)."""
        return netstack.UNIX_CONNECTED in netstack.unix_states(self.site.netns, self.socket)

    def _flow_difference(self) -> tuple[int, int]:
        """(generated flows missing from the bridge, installed flows not generated)."""
        installed = {f.cookie for f in ofctl.dump_flows(self.home, self.site.host.bridge) if not is_learned(f.cookie)}
        wanted = {f.cookie for f in self.generated()}
        return len(wanted - installed), len(installed - wanted)

    def generated(self) -> tuple[Flow, ...]:
        return generated_flows(self.deployment, self.site)

    def _flows_finding(self) -> Finding:
        what = f"flows on {self.site.host.bridge} ({len(self.generated())} generated)"
        try:
            missing, stale = self._flow_difference()
        except OvsvxError as err:
            return Finding(what, MISSING, str(err), piece=self.site.host.bridge)
        if (missing, stale) == (0, 0):
            return Finding(what, OK, piece=self.site.host.bridge)
        return Finding(what, DIFFERS, f"{missing} missing, {stale} not generated", piece=self.site.host.bridge)

    def _controller_said(self) -> str:
        """The controller log's last error, quoted, so the reason survives a deploy that is rolled back."""
        if self.flows_from != "controller":
            return ""
        log = daemons.controller_files(self.deployment, self.site)[1]
        try:
            errors = logged_errors(log.read_text())
        except OSError:
            return ""
        return f"; the controller said: {errors[-1]}" if errors else f"; see {log}"

    def _wait_for_controller(self) -> None:
        if not waits.until(self._controller_connected, FLOWS_WAIT_S):
            raise ApplyError(
                f"{self.site.host.name}: OVS did not connect to the controller within "
                f"{waits.scaled(FLOWS_WAIT_S):g} s{self._controller_said()}"
            )

    def _wait_for_flows(self) -> None:
        """Until the bridge holds its flows and, under EVPN, the host its routes to the peers the
        controller knows so far (both follow the routes, and deploy should end with them in place)."""
        if not waits.until(lambda: self._flow_difference() == (0, 0), FLOWS_WAIT_S, interval=0.2):
            missing, stale = self._flow_difference()
            raise ApplyError(
                f"{self.site.host.name}: {self.site.host.bridge} still lacks {missing} flow(s) "
                f"and has {stale} stale after {waits.scaled(FLOWS_WAIT_S):g} s{self._controller_said()}"
            )
        if self.topology.evpn and not waits.until(lambda: not self._routes_missing(), FLOWS_WAIT_S, interval=0.2):
            raise ApplyError(
                f"{self.site.host.name}: no route yet to {', '.join(self._routes_missing())} after "
                f"{waits.scaled(FLOWS_WAIT_S):g} s{self._controller_said()}"
            )

    def _routes_missing(self) -> list[str]:
        """The peers' subnets the controller knows and has not routed in the host yet."""
        peers = peers_of(daemons.evpn_state(self.deployment, self.site))
        with netstack.stack(self.site.netns) as ipr:
            routed = {
                f"{r.get_attr('RTA_DST')}/{r['dst_len']}" for r in ipr.get_routes(family=AF_INET, proto=RTPROT_OVSVX)
            }
        return [str(p.subnet) for p in peers if str(p.subnet) not in routed]
