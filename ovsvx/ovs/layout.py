"""What an ovs-mode host is made of and needs, from the topology and what was decided, changing nothing:
its pieces (what `graph` draws), its commands (`plan`), what doctor checks of it, the bench's columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ovsvx.host.plan import Resource, render
from ovsvx.host.record import Deployment
from ovsvx.model.findings import Diagnosis, Verdict
from ovsvx.model.options import DeployOptions, Variant
from ovsvx.model.site import Site
from ovsvx.model.topology import PHYS_BRIDGE, Host, Mode, Topology
from ovsvx.ovs import choices, daemons, switch
from ovsvx.ovs.choices import choose_port_type
from ovsvx.ovs.plan import ovs_plan
from ovsvx.ovs.settings import AUTO, Datapath, OvsSettings
from ovsvx.ovs.switch import OvsBridge, switch_plan


class OvsLayout:
    """Ovs mode as a whole: what it makes of a host and needs, before any host is deployed.  Each host's
    `OvsBackend` is one of these too."""

    name = Mode.OVS
    xdp_reader: str | None = "ovs mode's AF_XDP port"  # an XDP program on its devices is its own
    system_services: tuple[str, ...] = ("openvswitch-switch.service",)  # the system's Open vSwitch, on a real host
    needs_loose_rp_filter = False  # its plan sets all.rp_filter=0 too, but the switch forwards either way

    @staticmethod
    def foresee(options: DeployOptions) -> dict[str, Any]:
        return choices.foresee(options)

    @staticmethod
    def label(decided: Mapping[str, Any]) -> tuple[str, str]:
        return choices.label(OvsSettings.from_record(decided))

    @staticmethod
    def configure(deployment: Deployment, host: str, options: DeployOptions) -> None:
        """Decide, once per deploy, the datapath and where the flows come from; kept in the record."""
        deployment.settings[host] = choices.decide(deployment, host, options).to_record()

    @staticmethod
    def pieces(topology: Topology, host: Host, decided: Mapping[str, Any]) -> tuple[Resource | OvsBridge, ...]:
        """The netlink plan's values and the switch's bridges, in the order deploy makes them."""
        datapath = OvsSettings.from_record(decided).datapath
        before, after = ovs_plan(topology, host, datapath)
        return (*before, *switch_plan(topology, host, datapath, None), *after)

    @staticmethod
    def commands(topology: Topology, host: Host, decided: Mapping[str, Any]) -> list[str]:
        """The deployment of `host` as the commands a person would type, in order."""
        datapath = OvsSettings.from_record(decided).datapath
        before, after = ovs_plan(topology, host, datapath)
        controller = f"unix:{daemons.controller_socket_in(daemons.SYSTEM_RUNDIR, host.name)}"  # a real host's
        port_type, _ = choose_port_type(AUTO, datapath, "", topology.underlay_mtu)
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
    def raw_frames(decided: Mapping[str, Any]) -> bool:
        """The userspace datapath reads frames raw: it drops VXLAN whose UDP checksum was left for offload."""
        return OvsSettings.from_record(decided).userspace

    @staticmethod
    def vtep_carriers(host: Host) -> set[str]:
        """On the userspace datapath the VTEP address moves from the NIC onto br-phy."""
        return {PHYS_BRIDGE}

    @staticmethod
    def unaliased_links(host: Host) -> set[str]:
        """OVS's internal ports cannot carry ovsvx's alias; on a deployed ovs host the record vouches for them."""
        return {host.bridge, PHYS_BRIDGE}

    @staticmethod
    def preconditions(topology: Topology, site: Site, deployed: Mode | None) -> list[Diagnosis]:
        """A real host's ovs mode uses the system's OVS (a lab host runs its own, which `status` reports)."""
        if site.is_lab:
            return []
        socket_path = daemons.SYSTEM_RUNDIR / "db.sock"
        if socket_path.exists():
            return [Diagnosis(Verdict.OK, f"Open vSwitch running ({socket_path})")]
        return [
            Diagnosis(
                Verdict.FAIL if deployed == Mode.OVS else Verdict.WARN,
                "Open vSwitch is not running (ovs mode needs it)",
                "systemctl start openvswitch-switch",
            )
        ]

    @staticmethod
    def variants() -> tuple[Variant, ...]:
        """ovs mode as the machine picks its datapath, and on each datapath by name."""
        mode = Mode.OVS
        return (
            Variant(mode, mode, takes_options=True, control_start=True),
            *(
                Variant(f"{mode}:{d}", mode, True, (("datapath", d.value),), control_start=True)
                for d in (Datapath.SYSTEM, Datapath.NETDEV)
            ),
        )
