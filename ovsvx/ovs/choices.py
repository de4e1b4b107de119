"""What ovs mode decides for a host, once per deploy: its datapath, how that datapath reads the devices,
where the flows come from, the tunnels' checksum and OVS's other_config; kept in the record.

The datapath is picked by what the machine has: the kernel's (`system`) where
the openvswitch module loads, else the userspace one (`netdev`), and the record
keeps which and why, for `status`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ovsvx.errors import UsageError
from ovsvx.host import preflight
from ovsvx.host.record import Deployment
from ovsvx.model.options import DeployOptions
from ovsvx.ovs import switch
from ovsvx.ovs.flows import render_file
from ovsvx.ovs.settings import AUTO, Datapath, OvsSettings, PortType

DATAPATHS = (AUTO, *(d.value for d in Datapath))  # what --datapath takes
PORT_TYPES = (AUTO, *(p.value for p in PortType))  # what --port-type takes
AUTO_PORT_TYPE = PortType.AFXDP_NONPMD
AFXDP_MAX_MTU = 1500  # measured to work at 1500 and to stall TCP at 9000; between is untested
# OVS gives each AF_XDP port a 64 MiB buffer (16384 frames of 4 KiB, fixed when OVS is built): it is
# 148 of ovs-vswitchd's 166 MiB per lab host (18 MiB with packet sockets).  Past this many hosts on one
# machine, auto takes packet sockets: a 32-host lab would hold 4.6 GiB in those buffers alone.
AFXDP_MAX_HOSTS_HERE = 8
AFXDP_MIB_PER_HOST = 128  # two AF_XDP ports a host: the underlay NIC and the namespace's veth


def choose_datapath(wanted: str = AUTO, load_module: bool = True) -> tuple[Datapath, str]:
    """The datapath to use and why: the kernel's where the openvswitch module is there, else userspace.

    `load_module` False only looks (for `plan`, which changes nothing).
    """
    if wanted in tuple(Datapath):
        return Datapath(wanted), f"asked for (--datapath {wanted})"
    if preflight.module_loaded("openvswitch"):
        return Datapath.SYSTEM, "the openvswitch kernel module is loaded"
    if load_module and preflight.modprobe("openvswitch", dry_run=False):
        return Datapath.SYSTEM, "loaded the openvswitch kernel module"
    return Datapath.NETDEV, "no openvswitch kernel module on this machine, so the userspace datapath"


def choose_port_type(
    wanted: str, datapath: str, datapath_why: str, underlay_mtu: int, hosts_here: int = 1
) -> tuple[PortType, str]:
    """How the userspace datapath reads the devices, and why (docs/performance.md has the measurements).

    auto: AF_XDP polled by the main thread: the fastest setting measured that
    leaves the CPU idle when the overlay is (a PMD thread is faster still but
    spins a core per host).  AF_XDP frames are one page, so a jumbo underlay
    keeps packet sockets (measured: TCP stalls at 9000 bytes); and a lab of many
    hosts (`hosts_here` on this machine) keeps them too, for memory.
    """
    if wanted not in PORT_TYPES:
        raise UsageError(f"--port-type {wanted!r} is not allowed: one of {', '.join(PORT_TYPES)}")
    xdp_fits = underlay_mtu <= AFXDP_MAX_MTU
    userspace = Datapath(datapath) == Datapath.NETDEV
    if wanted == AUTO:
        if not userspace:
            return PortType.SYSTEM, "the kernel datapath reads the devices itself"
        if not xdp_fits:
            return PortType.SYSTEM, f"AF_XDP is for an underlay MTU up to {AFXDP_MAX_MTU}; this one is {underlay_mtu}"
        if hosts_here > AFXDP_MAX_HOSTS_HERE:
            return PortType.SYSTEM, (
                f"{hosts_here} lab hosts on this machine: AF_XDP's fixed buffers would hold "
                f"{hosts_here * AFXDP_MIB_PER_HOST / 1024:.1f} GiB (more than {AFXDP_MAX_HOSTS_HERE} "
                "hosts: packet sockets)"
            )
        return AUTO_PORT_TYPE, "fastest measured without spinning a core (docs/performance.md)"
    chosen = PortType(wanted)
    if chosen.af_xdp and not userspace:
        raise UsageError(
            f"--port-type {wanted} is for the userspace datapath; this host uses {datapath} ({datapath_why})"
        )
    if chosen.af_xdp and not xdp_fits:
        raise UsageError(
            f"--port-type {wanted} needs underlay_mtu up to {AFXDP_MAX_MTU} (AF_XDP frames are one "
            f"page; at 9000 TCP stalls); this topology has {underlay_mtu}: use --port-type system"
        )
    return chosen, f"asked for (--port-type {wanted})"


def flows_file(folder: Path, host: str) -> Path:
    return folder / f"{host}.flows"


def decide(deployment: Deployment, host: str, options: DeployOptions) -> OvsSettings:
    """The datapath, port type, flows' source, tunnel checksum and OVS tuning for `host`: what the command
    line asks, else what the host was deployed with, else the machine's best."""
    preflight.require_tools("ovs-vsctl", "ovs-ofctl", "ovs-vswitchd", "ovsdb-server", "ethtool")
    topology = deployment.topology
    previous = OvsSettings.of(deployment, host)
    wanted = options.datapath or previous.datapath_asked
    if wanted not in DATAPATHS:
        raise UsageError(f"--datapath {wanted!r} is not allowed: one of {', '.join(DATAPATHS)}")
    chosen, why = choose_datapath(wanted)
    if topology.encrypted and chosen != Datapath.SYSTEM:
        raise UsageError(
            f'encryption = "ipsec" is not allowed on OVS\'s userspace datapath ({host}: {why}): it sends its '
            "tunnel packets past the kernel's IPsec; use the kernel datapath (--datapath system, with the "
            "openvswitch module) or kernel mode (--mode kernel)"
        )
    port_asked = options.port_type or previous.port_type_asked
    hosts_here = len(topology.hosts) if deployment.is_lab else 1
    port_type, port_why = choose_port_type(port_asked, chosen, why, topology.underlay_mtu, hosts_here)
    csum = options.tunnel_csum or previous.tunnel_csum_asked
    if csum not in switch.TUNNEL_CSUM:
        raise UsageError(f"--tunnel-csum {csum!r} is not allowed: one of {', '.join(switch.TUNNEL_CSUM)}")
    if options.ovs_config is None:
        tuning = previous.ovs_config
    else:
        tuning = switch.ovs_config(options.ovs_config, host, [h.name for h in topology.hosts])
    return OvsSettings(
        datapath=chosen,
        why=why,
        datapath_asked=wanted,
        flows_file=_flows_without_controller(deployment, host, options),
        port_type=port_type,
        port_type_why=port_why,
        port_type_asked=port_asked,
        ovs_config=tuning,
        ovs_config_before=previous.ovs_config_before,
        tunnel_csum_asked=csum,
    )


def _flows_without_controller(deployment: Deployment, host: str, options: DeployOptions) -> str:
    """With --no-controller, the host's checked-in flows file, if it matches the topology; else ""."""
    topology = deployment.topology
    if options.controller:
        return ""
    if topology.evpn:
        raise UsageError('--no-controller is not allowed with control = "evpn": the controller speaks BGP')
    path = flows_file(options.flows_dir, host).resolve()
    try:
        text = path.read_text()
    except OSError as err:
        raise UsageError(
            f"--no-controller needs {path}: {err.strerror} (write it with `ovsvx flows --render`)"
        ) from None
    if text != render_file(topology, topology.host(host)):
        raise UsageError(
            f"{path} does not match the topology: regenerate it with `ovsvx flows --render` (with the same -t)"
        )
    return str(path)


def foresee(options: DeployOptions) -> dict[str, Any]:
    """The datapath as deploy would choose it, loading nothing (for `plan` and `graph`)."""
    chosen, why = choose_datapath(options.datapath or AUTO, load_module=False)
    return OvsSettings(datapath=chosen, why=why).to_record()


def label(settings: OvsSettings) -> tuple[str, str]:
    return f"{settings.datapath} datapath", settings.why
