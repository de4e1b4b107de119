"""`ovsvx doctor`: every precondition of a deployment, checked without changing anything, each with its fix.

It looks at this machine (root, the kernel's pieces, Open vSwitch) and at the
stack of each host it would deploy: this machine's for ``--host H``, each lab
host's namespace for a lab.  A lab that is not deployed yet has no host
stacks: the lab makes them itself, so only the machine is checked.

Where the answer depends on whether ovsvx already deployed the host (the
sysctls it sets, the controller it runs), the check says which it expects.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from socket import AF_INET
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ovsvx.deploy.backends import BACKENDS
from ovsvx.deploy.deploy import find_scope
from ovsvx.host import charon, credentials, netstack, preflight, record
from ovsvx.host.netlink import xdp_programs
from ovsvx.host.netstack import RT_TABLE_MAIN
from ovsvx.host.plan import LINK_ALIAS, RTPROT_OVSVX
from ovsvx.host.record import Kind
from ovsvx.model import reader
from ovsvx.model.findings import Diagnosis, Verdict
from ovsvx.model.site import Site
from ovsvx.model.topology import Mode, Topology

OK, WARN, FAIL = Verdict
KERNEL_PIECES = {"vxlan": "vxlan devices", "bridge": "Linux bridges", "veth": "veth pairs"}


@dataclass(frozen=True)
class StackView:
    """What the checks read from one host's stack, taken once: links by name, IPv4 addresses, and the
    main table's routes (the default route left out)."""

    links: dict[str, tuple[str, int]]  # name -> (alias, mtu)
    addresses: list[tuple[str, IPv4Interface]]  # (link name, address)
    routes: list[tuple[IPv4Network, str, int]]  # (destination, link name, proto)
    xdp: dict[str, int]  # link name -> the XDP program attached to it


def read_stack(netns: str | None) -> StackView:
    with netstack.stack(netns) as ipr:
        names = {}
        links = {}
        for link in ipr.get_links():
            names[link["index"]] = link.get("IFLA_IFNAME")
            links[link.get("IFLA_IFNAME")] = (link.get("IFLA_IFALIAS") or "", link.get("IFLA_MTU"))
        addresses = [
            (names.get(a["index"], "?"), IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}"))
            for a in ipr.get_addr(family=AF_INET)
        ]
        routes = [
            (
                IPv4Network(f"{r.get('RTA_DST')}/{r['dst_len']}", strict=False),
                names.get(r.get("RTA_OIF"), "?"),
                r["proto"],
            )
            for r in ipr.get_routes(family=AF_INET, table=RT_TABLE_MAIN)
            if r["dst_len"] > 0
        ]
        xdp = {name: prog for name, (_, prog, _) in xdp_programs(ipr, links).items()}
    return StackView(links, addresses, routes, xdp)


@dataclass(frozen=True)
class HostContext:
    """One host to examine: where its stack is, and what is deployed there now (mode None: nothing)."""

    topology: Topology
    site: Site
    mode: Mode | None

    @cached_property
    def stack(self) -> StackView:
        return read_stack(self.site.netns)


# --- this machine ------------------------------------------------------------------------


def machine() -> list[Diagnosis]:
    """Root, the kernel's pieces and Open vSwitch's programs."""
    if os.geteuid() != 0:
        return [
            Diagnosis(
                FAIL,
                "not running as root: ovsvx changes the network and reads other namespaces",
                "run it as root (sudo ovsvx doctor)",
            )
        ]
    found = [Diagnosis(OK, "running as root")]
    found += [_link_kind(kind, what) for kind, what in KERNEL_PIECES.items()]
    found.append(
        Diagnosis(OK, "network namespaces supported")
        if Path("/proc/self/ns/net").exists()
        else Diagnosis(FAIL, "no network namespaces in this kernel", "a kernel with CONFIG_NET_NS")
    )
    if preflight.module_loaded("openvswitch") or preflight.modprobe("openvswitch", dry_run=True):
        found.append(Diagnosis(OK, "openvswitch kernel module available: ovs mode uses the kernel datapath"))
    else:
        found.append(
            Diagnosis(
                WARN,
                "no openvswitch kernel module: ovs mode falls back to the userspace datapath "
                "(works; slower, see docs/performance.md)",
                "install the kernel's modules package (linux-image-*) for the kernel datapath",
            )
        )
    missing = [
        tool
        for tool in ("ovs-vswitchd", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "nft", "ethtool")
        if not preflight.installed(tool)
    ]
    packages = sorted({preflight.PACKAGES.get(t, t) for t in missing})
    found.append(
        Diagnosis(
            FAIL,
            f"missing programs: {', '.join(missing)}",
            f"apt-get install {' '.join(packages)} (scripts/setup does)",
        )
        if missing
        else Diagnosis(OK, "Open vSwitch, nftables and ethtool installed")
    )
    return found


def _link_kind(kind: str, what: str) -> Diagnosis:
    """Whether the kernel makes links of `kind`: tried for real, in a scratch namespace that vanishes."""
    specs: dict[str, dict[str, Any]] = {"vxlan": {"vxlan_id": 1}, "veth": {"peer": "doctor1"}}
    spec = specs.get(kind, {})

    def attempt() -> None:
        with IPRoute() as ipr:
            ipr.link("add", ifname="doctor0", kind=kind, **spec)

    try:
        netstack.call_in(None, attempt, scratch=True)
    except NetlinkError as err:
        return Diagnosis(
            FAIL,
            f"the kernel cannot make {what} ({kind}): {err.args[1]}",
            f"modprobe {kind}, or install the kernel's modules package",
        )
    return Diagnosis(OK, f"the kernel makes {what} ({kind})")


# --- one host's stack ---------------------------------------------------------------------


def host(context: HostContext) -> list[Diagnosis]:
    """Every check of one host's stack, in the order a person would fix them."""
    checks: list[Callable[[HostContext], list[Diagnosis]]] = [
        _nic_and_vtep,
        _mtu,
        _xdp,
        _sysctls,
        _conflicts,
        _firewall,
        _modes,
        _ipsec,
        _peers,
    ]
    return [d for check in checks for d in check(context)]


def _modes(context: HostContext) -> list[Diagnosis]:
    """What each mode needs of the machine (ovs mode: the system's OVS running; kernel mode under EVPN:
    FRR installed), said as each mode judges it for the mode deployed here, if any."""
    return [d for wing in BACKENDS.values() for d in wing.preconditions(context.topology, context.site, context.mode)]


def _ipsec(context: HostContext) -> list[Diagnosis]:
    """An encrypted overlay needs strongSwan's charon, and a key file only root can read."""
    topology = context.topology
    if topology.ipsec is None:
        return []
    found = []
    if charon.installed():
        found.append(Diagnosis(OK, f"strongSwan installed: {charon.CHARON} keys the overlay's ESP"))
    else:
        found.append(
            Diagnosis(
                FAIL,
                f'strongSwan is not installed (no {charon.CHARON}): encryption = "ipsec" runs it',
                charon.INSTALL,
            )
        )
    for name, path, secret in topology.ipsec.files(context.site.host.name):
        problem = credentials.file_problem(path, secret)
        if problem:
            fix = "write the key there, root's, mode 0600" if secret else "put the file there"
            found.append(Diagnosis(FAIL, f"ipsec.{name} {path}: {problem}", fix))
        else:
            found.append(
                Diagnosis(OK, f"ipsec.{name} {path}: " + ("root's, closed to others" if secret else "present"))
            )
    return found


def _nic_and_vtep(context: HostContext) -> list[Diagnosis]:
    h = context.site.host
    if h.nic not in context.stack.links:
        return [
            Diagnosis(
                FAIL,
                f"underlay NIC {h.nic} does not exist",
                f"fix hosts[].nic in the topology (is this machine {h.name}?)",
            )
        ]
    holders = [name for name, iface in context.stack.addresses if iface.ip == h.vtep]
    allowed = {h.nic} | (BACKENDS[context.mode].vtep_carriers(h) if context.mode else set())
    if not holders:
        return [
            Diagnosis(OK, f"underlay NIC {h.nic} present"),
            Diagnosis(
                FAIL,
                f"VTEP address {h.vtep} is on no interface",
                f"ip addr add {h.vtep}/{context.topology.underlay.prefixlen} dev {h.nic}",
            ),
        ]
    if not set(holders) <= allowed:
        return [
            Diagnosis(OK, f"underlay NIC {h.nic} present"),
            Diagnosis(
                FAIL,
                f"VTEP address {h.vtep} is on {', '.join(holders)}, not on {h.nic}",
                f"move it to {h.nic}, or fix hosts[].nic in the topology",
            ),
        ]
    return [Diagnosis(OK, f"underlay NIC {h.nic} present, VTEP {h.vtep} on {holders[0]}")]


def _mtu(context: HostContext) -> list[Diagnosis]:
    h, topology = context.site.host, context.topology
    if h.nic not in context.stack.links:
        return []
    mtu = context.stack.links[h.nic][1]
    if mtu < topology.underlay_mtu:
        return [
            Diagnosis(
                FAIL,
                f"{h.nic} MTU {mtu} leaves {mtu - topology.encapsulation} bytes after the "
                f"{topology.encapsulation}-byte encapsulation, but the overlay is planned for "
                f"{topology.overlay_mtu}: full-size packets would be dropped",
                f"ip link set {h.nic} mtu {topology.underlay_mtu}, or underlay_mtu = {mtu} in the topology",
            )
        ]
    return [
        Diagnosis(
            OK,
            f"{h.nic} MTU {mtu}: room for the {topology.encapsulation}-byte encapsulation "
            f"(overlay MTU {topology.overlay_mtu})",
        )
    ]


def _xdp(context: HostContext) -> list[Diagnosis]:
    """An XDP program on the overlay's devices takes their frames before the kernel's stack sees them.
    In ovs mode that is OVS's AF_XDP reading them; otherwise it is most likely one left by a killed
    ovs-vswitchd, and the tunnel is dark."""
    h = context.site.host
    found = []
    for name in (h.nic, *(ns.peer for ns in h.namespaces)):
        prog = context.stack.xdp.get(name)
        if prog is None:
            continue
        reader = BACKENDS[context.mode].xdp_reader if context.mode else None
        if reader is not None:
            found.append(Diagnosis(OK, f"XDP program {prog} on {name}: {reader} reads it"))
        else:
            found.append(
                Diagnosis(
                    FAIL,
                    f"XDP program {prog} on {name} takes its frames before the kernel's "
                    "stack (a killed ovs-vswitchd leaves its AF_XDP program behind)",
                    f"ip link set dev {name} xdp off (ovsvx deploy takes off what its own OVS left)",
                )
            )
    return found


def _sysctls(context: HostContext) -> list[Diagnosis]:
    """ip_forward must be 1 where a host routes; a strict rp_filter is reported (ovsvx sets what it needs)."""
    found = []
    forward = _read(context, "net.ipv4.ip_forward")
    if forward == "1":
        found.append(Diagnosis(OK, "net.ipv4.ip_forward=1"))
    elif context.mode is None:
        found.append(Diagnosis(OK, "net.ipv4.ip_forward=0 now: deploy sets it to 1 (and restores it on destroy)"))
    else:
        found.append(
            Diagnosis(
                FAIL,
                "net.ipv4.ip_forward=0 on a deployed host: nothing is routed between the namespace and the tunnel",
                "ovsvx deploy (or sysctl -w net.ipv4.ip_forward=1)",
            )
        )
    strict = [key for key in ("all", context.site.host.nic) if _read(context, f"net.ipv4.conf.{key}.rp_filter") == "1"]
    if "all" in strict and context.mode and BACKENDS[context.mode].needs_loose_rp_filter:
        found.append(
            Diagnosis(
                FAIL,
                f"net.ipv4.conf.all.rp_filter=1 on a {context.mode}-mode host, where ovsvx set 0",
                "ovsvx deploy (or sysctl -w net.ipv4.conf.all.rp_filter=0)",
            )
        )
    elif strict:
        found.append(
            Diagnosis(
                OK,
                f"strict rp_filter on {', '.join(strict)}: harmless here (the tunnel's "
                "replies come back the way they went); kernel mode sets all=0 as the "
                "tutorial does",
            )
        )
    return found


def _read(context: HostContext, key: str) -> str | None:
    try:
        return netstack.read_sysctl(context.site.netns, key)
    except FileNotFoundError:
        return None


def _conflicts(context: HostContext) -> list[Diagnosis]:
    """Addresses and routes, not ovsvx's, inside the overlay subnets: traffic would go their way instead."""
    subnets = [h.subnet for h in context.topology.hosts]
    ours = {name for name, (alias, _) in context.stack.links.items() if alias == LINK_ALIAS}
    if context.mode:  # links of the mode's own that carry no alias (OVS's internal ports)
        ours |= BACKENDS[context.mode].unaliased_links(context.site.host)
    found = []
    for name, iface in context.stack.addresses:
        subnet = next((s for s in subnets if iface.ip in s), None)
        if subnet is not None and name not in ours:
            found.append(
                Diagnosis(
                    FAIL,
                    f"{iface} on {name} lies in the overlay subnet {subnet}",
                    f"remove it (ip addr del {iface} dev {name}) or choose other subnets in the topology",
                )
            )
    for dst, dev, proto in context.stack.routes:
        if proto != RTPROT_OVSVX and dev not in ours and any(dst.overlaps(s) for s in subnets):
            found.append(
                Diagnosis(
                    FAIL,
                    f"route {dst} dev {dev} (not ovsvx's) overlaps the overlay",
                    f"ip route del {dst} dev {dev}, or choose other subnets in the topology",
                )
            )
    return found or [
        Diagnosis(OK, f"no foreign address or route in the overlay subnets ({', '.join(str(s) for s in subnets)})")
    ]


def _firewall(context: HostContext) -> list[Diagnosis]:
    peers = [p.vtep for p in context.topology.peers(context.site.host)]
    blockers = preflight.firewall_blockers(context.site.netns, context.topology.port, peers)
    found = [Diagnosis(FAIL, blocker.what, blocker.allow) for blocker in blockers]
    return found or [Diagnosis(OK, f"no firewall drops udp {context.topology.port} from the peers")]


def _peers(context: HostContext) -> list[Diagnosis]:
    """The underlay between the VTEPs: each peer answers a ping (a peer not set up yet is a warning)."""
    if context.site.host.vtep not in {iface.ip for _, iface in context.stack.addresses}:
        return []  # without its VTEP address the host has no underlay to ping from
    found = []
    for peer in context.topology.peers(context.site.host):
        answered = netstack.run(context.site.netns, ["ping", "-c", "1", "-W", "1", str(peer.vtep)], timeout=5)
        found.append(
            Diagnosis(OK, f"peer VTEP {peer.vtep} ({peer.name}) answers on the underlay")
            if answered.returncode == 0
            else Diagnosis(
                WARN,
                f"peer VTEP {peer.vtep} ({peer.name}) does not answer a ping",
                "check the underlay link and routes, and that the peer is up",
            )
        )
    return found


@dataclass(frozen=True)
class Examination:
    """What `ovsvx doctor` found, for the deployment (or the lab to be) a command named."""

    scope: str
    undeployed_lab: bool  # a lab that is not deployed: only this machine was examined
    found: dict[str, list[Diagnosis]]

    @property
    def failed(self) -> bool:
        return any(d.state == FAIL for ds in self.found.values() for d in ds)

    def to_json(self) -> dict[str, Any]:
        """`doctor --json`: where, whether all passed, and each finding with its fix."""
        findings = {name: [asdict(d) for d in ds] for name, ds in self.found.items()}
        return {"scope": self.scope, "ok": not self.failed, "findings": findings}


def examine(host_name: str | None, prefix: str | None, topology_file: Path | None) -> Examination:
    """Examine what a command names: this machine as --host, the lab of --prefix, else the default lab
    or this machine's deployment; with the deployment's topology unless a file is given."""
    scope = find_scope(host_name, prefix)
    existing = record.load(scope.kind, scope.prefix)
    topology = existing.topology if existing and topology_file is None else reader.load(topology_file)
    modes = existing.modes if existing else {}
    if scope.kind == Kind.HOST:
        hosts = [(Site(topology.host(scope.host or ""), None), modes.get(scope.host or ""))]
    else:
        hosts = [(site, modes.get(site.host.name)) for site in existing.sites()] if existing else []
    return Examination(scope.describe(), scope.kind == Kind.LAB and existing is None, diagnose(topology, hosts))


def diagnose(topology: Topology, hosts: list[tuple[Site, Mode | None]]) -> dict[str, list[Diagnosis]]:
    """This machine's findings under "machine", then each host's (given as its site and deployed mode)."""
    found = {"machine": machine()}
    if found["machine"][0].state == FAIL:  # not root: no stack can be read
        return found
    for site, mode in hosts:
        found[site.host.name] = host(HostContext(topology, site, mode))
    return found
