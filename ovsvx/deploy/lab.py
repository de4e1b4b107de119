"""The lab: every host of a topology simulated on this machine, one network namespace each.

A lab host is a namespace named ``<prefix><host>`` holding the host's underlay
NIC with its VTEP address; the NICs are cabled by veth to one switch, a
bridge in the ``<prefix>underlay`` namespace, as the tutorial's two servers
share one segment.  This module builds only
that "hardware"; what a real host would get is then deployed into each host
namespace by the same backends that deploy a real host.

All names derive from the prefix, so a crashed lab is still found and removed
by name, and test labs never touch a user's.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from ovsvx.deploy.backends import BACKENDS, decided
from ovsvx.errors import ConflictError, UsageError
from ovsvx.host import frr, frrconf, gtsm, netstack, secretfile
from ovsvx.host.nic import set_tx_offload, tx_offload
from ovsvx.host.plan import LINK_ALIAS
from ovsvx.host.record import Deployment
from ovsvx.model.findings import Finding
from ovsvx.model.topology import Topology

UNDERLAY_SWITCH = "underlay"
SWITCH_BRIDGE = "sw0"
MACHINE = "*"  # the record's sysctls of the machine itself, not of one host
NEIGH_GC = "net.ipv4.neigh.default.gc_thresh{}"


def node_netns(deployment: Deployment, node: str) -> str | None:
    """The namespace of a node by its topology name (host or workload namespace)."""
    topology = deployment.topology
    names = [h.name for h in topology.hosts] + [n.name for h in topology.hosts for n in h.namespaces]
    if node not in names:
        raise UsageError(f"unknown node {node!r}: one of {', '.join(names)}")
    if not deployment.is_lab and node in (h.name for h in topology.hosts):
        return None
    return deployment.prefix + node


def switch_netns(deployment: Deployment) -> str:
    return deployment.prefix + UNDERLAY_SWITCH


def build(deployment: Deployment) -> list[str]:
    """Create the lab's host namespaces and underlay; returns what changed (nothing when present)."""
    topology = deployment.topology
    changes: list[str] = []
    wanted = [deployment.prefix + h.name for h in topology.hosts] + [switch_netns(deployment)]
    wanted += [home.netns for _, home in reflectors(deployment) if home.netns is not None]
    for name in wanted:
        if netstack.netns_exists(name):
            if name not in deployment.netns:
                raise ConflictError(
                    f"network namespace {name!r} exists and was not made by this lab; "
                    "remove it or pick another --prefix"
                )
        else:
            deployment.own_netns(name)  # recorded before it exists, so cleanup finds it
            netstack.create_netns(name)
            changes.append(f"lab: netns {name}")
        with netstack.stack(name) as ns:  # also where a deploy killed a moment after creating it left lo down
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
    changes += _neighbour_room(deployment, topology)
    changes += _wire_underlay(deployment, topology)
    changes += _reflectors(deployment, topology)
    changes += _checksums(deployment, topology)
    return changes


def neighbour_entries(topology: Topology) -> int:
    """The ARP entries a verified lab holds: each host resolves every other VTEP on its NIC and (kernel
    mode) every other host's tunnel address, plus its namespaces and their gateways."""
    count = len(topology.hosts)
    return 2 * count * (count + 1)


def _neighbour_room(deployment: Deployment, topology: Topology) -> list[str]:
    """Make the kernel's ARP table big enough for the lab, which it shares with the whole machine.

    The table's limits are global, not per namespace: beyond gc_thresh3 (1024
    by default) the kernel refuses new entries ("neighbour table overflow") and
    a 32-host lab, needing about 2100, loses pings at random.  So the lab
    raises gc_thresh2 to what it needs and gc_thresh3 to twice that, never
    lowers them, and `teardown` puts back what it changed.
    """
    need = neighbour_entries(topology)
    changes = []
    for level, wanted in ((2, need), (3, 2 * need)):
        key = NEIGH_GC.format(level)
        current = netstack.read_sysctl(None, key)
        if int(current) < wanted:
            deployment.remember_sysctl(MACHINE, key, current, str(wanted))
            netstack.write_sysctl(None, key, str(wanted))
            changes.append(
                f"lab: sysctl {key}={wanted} (was {current}; machine-wide: the ARP table is shared by every namespace)"
            )
    return changes


def _restore_neighbour_room(deployment: Deployment) -> list[str]:
    """Put back the ARP table's limits, unless someone changed them since the lab raised them."""
    restored = []
    for key, (before, value) in deployment.sysctls.get(MACHINE, {}).items():
        if netstack.read_sysctl(None, key) == value:
            netstack.write_sysctl(None, key, before)
            restored.append(f"sysctl {key}={before} (restored)")
    return restored


def _wire_underlay(deployment: Deployment, topology: Topology) -> list[str]:
    """The lab's "hardware": each host's NIC with its VTEP address, cabled to one switch.

    The switch is a bridge in its own namespace, as the tutorial's servers
    share one segment; a further machine on that segment (a test's intruder)
    plugs into it the same way.  Each piece is made only where it is missing,
    so a first deploy killed halfway through the wiring is finished by the
    next; a VTEP address present anywhere in the host is left where it is,
    because ovs mode on the userspace datapath moves it onto br-phy.
    """
    changes = []
    with netstack.stack(switch_netns(deployment)) as sw:
        if not sw.link_lookup(ifname=SWITCH_BRIDGE):
            sw.link("add", ifname=SWITCH_BRIDGE, kind="bridge")
            changes.append(f"lab: underlay switch {switch_netns(deployment)}:{SWITCH_BRIDGE}")
        sw.link("set", index=sw.link_lookup(ifname=SWITCH_BRIDGE)[0], state="up")
    for host in topology.hosts:
        if _cable(deployment, deployment.prefix + host.name, host.nic, switch_port(deployment, host.name), host.vtep):
            changes.append(f"lab: {host.name}:{host.nic} {host.vtep}/{topology.underlay.prefixlen}")
    return changes


def _cable(deployment: Deployment, netns: str, nic: str, port: str, address: IPv4Address) -> bool:
    """Cable `nic` of machine `netns` to switch port `port`, with `address` on the underlay, where either is
    missing; True when something was made.  The address counts wherever the machine holds it."""
    topology = deployment.topology
    with netstack.stack(netns) as ns:
        cabled = bool(ns.link_lookup(ifname=nic))
    held = address in netstack.local_addresses(netns)
    if cabled and held:
        return False
    plug(deployment, port, netns, nic)
    with netstack.stack(netns) as ns:
        index = ns.link_lookup(ifname=nic)[0]
        ns.link("set", index=index, mtu=topology.underlay_mtu, ifalias=LINK_ALIAS, state="up")
        ns.addr("add", index=index, address=str(address), prefixlen=topology.underlay.prefixlen)
    return True


def switch_port(deployment: Deployment, host: str) -> str:
    """The underlay switch's port cabled to `host`'s NIC: the wire as seen from the other end."""
    return f"p{[h.name for h in deployment.topology.hosts].index(host)}"


def reflector_port(address: IPv4Address) -> str:
    """The switch port cabled to the route reflector at `address`: r0a211e02 is 10.33.30.2."""
    return "r" + address.packed.hex()


# --- route reflectors (control = "evpn") -------------------------------------------------

REFLECTOR_NIC = "eth0"


def reflector_netns(deployment: Deployment, address: IPv4Address) -> str:
    """The namespace of the route reflector at `address`: a machine of its own on the underlay switch."""
    return f"{deployment.prefix}rr-{address}"


def reflectors(deployment: Deployment) -> list[tuple[IPv4Address, frr.FrrHome]]:
    """Each route reflector's address and FRR (none without EVPN)."""
    bgp = deployment.topology.bgp
    addresses = bgp.route_reflectors if bgp is not None else ()
    return [(a, frr.reflector_home(deployment.folder, str(a), reflector_netns(deployment, a))) for a in addresses]


def reflector_findings(deployment: Deployment) -> dict[str, list[Finding]]:
    """What `status` shows of each route reflector, by its namespace: whether its GTSM guard is there and
    does what it should."""
    return {
        reflector_netns(deployment, address): [gtsm.inspect(reflector_netns(deployment, address), address)]
        for address, _ in reflectors(deployment)
    }


def _reflectors(deployment: Deployment, topology: Topology) -> list[str]:
    """Under EVPN, each route reflector: its namespace (made with the hosts') cabled to the underlay switch,
    running bgpd."""
    changes = []
    for address, home in reflectors(deployment):
        netns = reflector_netns(deployment, address)
        _cable(deployment, netns, REFLECTOR_NIC, reflector_port(address), address)
        started = gtsm.apply(netns, address)
        started += frr.start(home, frrconf.reflector_config(topology, str(address), secretfile.bgp_password(topology)))
        changes += [f"lab: route reflector {netns} {address}: {line}" for line in started]
    return changes


def stop_reflectors(deployment: Deployment) -> list[str]:
    stopped = [
        (home, line)
        for address, home in reflectors(deployment)
        for line in frr.stop(home) + gtsm.remove(home.netns, address)
    ]
    return [f"lab: route reflector {home.netns}: {line}" for home, line in stopped]


def retire_host(deployment: Deployment, host: str) -> list[str]:
    """Take a host that left the topology out of the lab: its namespace, and with it its cable."""
    name = deployment.prefix + host
    removed = []
    if name in deployment.netns and netstack.netns_exists(name):
        netstack.remove_netns(name)
        removed.append(f"lab: - netns {name}")
    deployment.disown_netns(name)
    return removed


def plug(deployment: Deployment, port: str, netns: str, nic: str) -> None:
    """Cable NIC `nic` of namespace `netns` to switch port `port` of the lab's underlay (a cable that is
    there already is only put in the switch and up)."""
    with netstack.stack(switch_netns(deployment)) as sw:
        if not sw.link_lookup(ifname=port):
            sw.link("add", ifname=port, kind="veth", peer={"ifname": nic, "net_ns_fd": netns})
        index = sw.link_lookup(ifname=port)[0]
        sw.link(
            "set",
            index=index,
            mtu=deployment.topology.underlay_mtu,
            master=sw.link_lookup(ifname=SWITCH_BRIDGE)[0],
            state="up",
        )


def _checksums(deployment: Deployment, topology: Topology) -> list[str]:
    """A veth leaves checksums to "hardware" that never fills them in; a real NIC computes them.

    A datapath that reads frames raw (OVS's userspace one) drops VXLAN whose UDP
    checksum was left for offload (counted as datapath_drop_tunnel_pop_error), so
    a kernel-mode host could not reach an ovs-mode one.  While any host of the
    lab runs such a datapath (`Backend.raw_frames`), the lab's NICs therefore
    checksum in software, as a real NIC's hardware would; otherwise (kernel
    mode, or OVS's kernel datapath, which decapsulates in the kernel) they keep
    offloading, which is much faster: it is also what lets TSO reach the wire.
    """
    offload = not any(BACKENDS[mode].raw_frames(decided(deployment, host)) for host, mode in deployment.modes.items())
    changes = []
    nics = [(deployment.prefix + host.name, host.nic) for host in topology.hosts]
    nics += [(reflector_netns(deployment, address), REFLECTOR_NIC) for address, _ in reflectors(deployment)]
    for netns, nic in nics:
        if tx_offload(netns, nic) != offload:
            set_tx_offload(netns, nic, offload)
            where = netns.removeprefix(deployment.prefix)
            changes.append(f"lab: {where}:{nic} tx checksum offload {'on' if offload else 'off'}")
    return changes


def teardown(deployment: Deployment) -> list[str]:
    """Remove every namespace the lab recorded (workload namespaces first); gone ones are fine."""
    removed = stop_reflectors(deployment)
    hosts = {deployment.prefix + h.name for h in deployment.topology.hosts}
    for name in sorted(deployment.netns, key=lambda n: n in hosts):
        if netstack.netns_exists(name):
            netstack.remove_netns(name)
            removed.append(f"netns {name}")
    return removed + _restore_neighbour_room(deployment)
