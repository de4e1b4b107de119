"""Compare netlink plan resources with a machine and apply the difference (both modes use it).

For each resource of a plan (`plan.py`) the reconciler inspects the site:
``ok``, ``missing``, ``differs`` (ours, but not as wanted) or ``foreign`` (in
the way, and not made by ovsvx).  `apply` refuses before touching anything if
a resource is foreign, then fixes the rest in order, inspecting each again
just before fixing it (recreating the vxlan device takes its address and
routes with it).  A second apply finds everything ``ok`` and changes nothing.

Ownership: links carry the alias ``ovsvx``, routes the protocol number 211,
namespaces and original sysctl values are in the deployment record.  `remove`
takes away exactly those.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Collection
from contextlib import ExitStack
from socket import AF_INET
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from ovsvx.errors import ApplyError, ConflictError
from ovsvx.host import netstack, routes
from ovsvx.host.nic import announce, set_tx_offload, tx_offload
from ovsvx.host.plan import (
    LINK_ALIAS,
    ZERO_MAC,
    Address,
    Bridge,
    FloodEntry,
    MovedAddress,
    Netns,
    Resource,
    Route,
    Sysctl,
    Up,
    Veth,
    Vxlan,
    describe,
    piece_of,
)
from ovsvx.host.record import Deployment
from ovsvx.model.findings import DIFFERS, FOREIGN, MISSING, OK, RECREATE, SET_UP, Finding, Remedy, State
from ovsvx.model.site import Site

IFF_UP = 1


def _found(resource: Resource, state: State, detail: str = "", remedy: Remedy = Remedy.NONE) -> Finding:
    return Finding(describe(resource), state, detail, resource, remedy, piece_of(resource))


def _recreate_it(resource: Resource, detail: str) -> Finding:
    """A link of ours that is not what the plan wants: deleted and made again."""
    return _found(resource, DIFFERS, f"recreate: {detail}", RECREATE)


class _Stacks:
    """pyroute2 handles for a site's host stack and its workload namespaces, opened on demand; and the
    tables that hold one entry per peer (routes, the vxlan device's flood list), each dumped once per
    pass rather than once per entry: a host of a 32-host topology has 31 of each to check."""

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.deployment = deployment
        self.handles: dict[str | None, Any] = {}
        self.route_dumps: dict[str | None, list[Any]] = {}
        self.flood_dumps: dict[str, set[str] | None] = {}
        self.indexes: dict[tuple[str | None, str], int | None] = {}
        self.exits = ExitStack()

    def get(self, netns: str | None) -> Any:
        """The handle for logical namespace `netns` (None: the host itself)."""
        real = self.site.netns if netns is None else self.site.ns(netns)
        if real not in self.handles:
            self.handles[real] = self.exits.enter_context(netstack.stack(real))
        return self.handles[real]

    def exists(self, netns: str | None) -> bool:
        return netns is None or netstack.netns_exists(self.site.ns(netns))

    def routes(self, netns: str | None) -> list[Any]:
        if netns not in self.route_dumps:
            self.route_dumps[netns] = routes.table(self.get(netns))
        return self.route_dumps[netns]

    def index(self, netns: str | None, dev: str) -> int | None:
        """The ifindex of device `dev` in logical namespace `netns`; None when there is none."""
        if (netns, dev) not in self.indexes:
            found = self.get(netns).link_lookup(ifname=dev)
            self.indexes[netns, dev] = found[0] if found else None
        return self.indexes[netns, dev]

    def flood_targets(self, dev: str) -> set[str] | None:
        """The VTEPs in the flood list (all-zero MAC entries) of host device `dev`; None without the device."""
        if dev not in self.flood_dumps:
            index = self.index(None, dev)
            self.flood_dumps[dev] = (
                None
                if index is None
                else {e.get("NDA_DST") for e in fdb_entries(self.get(None), index) if e.get("NDA_LLADDR") == ZERO_MAC}
            )
        return self.flood_dumps[dev]

    def changed(self, fixed: Resource) -> None:
        """`fixed` was just fixed: what was dumped may be out of date.  A route or a flood entry changes
        only itself, which the pass does not look at again."""
        if not isinstance(fixed, (Route, FloodEntry)):
            self.route_dumps.clear()
            self.flood_dumps.clear()
            self.indexes.clear()

    def close(self) -> None:
        self.exits.close()
        self.handles.clear()

    @property
    def unfinished(self) -> list[str]:
        """Links of this host that a deploy created but died before marking."""
        return self.deployment.unfinished_links.get(self.site.host.name, [])


class Reconciler:
    """Brings one site's netlink state to a list of plan resources, and takes it away again."""

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.deployment = deployment

    # --- the verbs -------------------------------------------------------------

    def inspect(self, resources: tuple[Resource, ...]) -> list[Finding]:
        stacks = _Stacks(self.site, self.deployment)
        try:
            return [_inspect(stacks, r) for r in resources]
        finally:
            stacks.close()

    def refuse_foreign(self, findings: list[Finding]) -> None:
        for finding in findings:
            if finding.state == FOREIGN:
                raise ConflictError(f"{self.site.host.name}: {finding.detail}")

    def apply(self, resources: tuple[Resource, ...]) -> list[str]:
        """Bring the site to `resources`; returns one line per change (none when already there)."""
        self.refuse_foreign(self.inspect(resources))
        stacks = _Stacks(self.site, self.deployment)
        changes = []
        try:
            for resource in resources:
                finding = _inspect(stacks, resource)
                if finding.state != OK:
                    try:
                        _fix(stacks, finding)
                    except NetlinkError as err:
                        why = _failed(resource, err)
                        raise ApplyError(f"{self.site.host.name}: {describe(resource)}: {why}") from None
                    finally:
                        stacks.changed(resource)
                    mark = "+" if finding.state == MISSING else "~"
                    changes.append(f"{self.site.host.name}: {mark} {finding.text}")
        finally:
            stacks.close()
        return changes

    def remove(self, links: list[str], moved: tuple[MovedAddress, ...] = ()) -> list[str]:
        """Remove ovsvx's routes, those of the named links that are ovsvx's, the workload namespaces
        it recorded; restore the sysctls and move addresses back.  What is already gone is fine."""
        removed: list[str] = []
        host = self.site.host
        if self.site.netns is None or netstack.netns_exists(self.site.netns):
            with netstack.stack(self.site.netns) as ipr:
                removed += self._remove_routes(ipr)
                for name in links:
                    link = _link(ipr, name)
                    if link is not None and _ours(link, self.deployment.unfinished_links.get(host.name, [])):
                        ipr.link("del", index=link["index"])
                        removed.append(f"{host.name}: - link {name}")
                for m in moved:
                    if ipr.link_lookup(ifname=m.origin) and not _has_address(ipr, m.origin, m.address, m.prefixlen):
                        mac = _move(ipr, m.address, m.prefixlen, m.dev, m.origin)
                        announce(self.site.netns, m.origin, m.address, mac)
                        removed.append(f"{host.name}: address {m.cidr} back on {m.origin}")
            removed += self._restore_sysctls()
        for ns in host.namespaces:
            real = self.site.ns(ns.name)
            if real in self.deployment.netns and netstack.netns_exists(real):
                netstack.remove_netns(real)
                removed.append(f"{host.name}: - netns {real}")
        return removed

    # --- removal ---------------------------------------------------------------

    def _remove_routes(self, ipr: Any) -> list[str]:
        return [f"{self.site.host.name}: {line}" for line in routes.sweep(ipr, routes.table(ipr))]

    def detach_recorded_xdp(self) -> list[str]:
        """Take off the XDP programs where the record says this host's OVS read devices through AF_XDP
        (a killed ovs-vswitchd leaves them, and a plain stack on those devices stays dark), and forget
        those devices."""
        name = self.site.host.name
        if name not in self.deployment.xdp_devices:
            return []
        removed = detach_xdp(self.site.netns, self.deployment.xdp_devices[name], name)
        self.deployment.note_xdp(name, [])
        return removed

    def _restore_sysctls(self) -> list[str]:
        """Put back what a sysctl held before ovsvx, unless someone changed it since (or it is gone)."""
        restored = []
        for key, (before, value) in self.deployment.sysctls.get(self.site.host.name, {}).items():
            if before != value and _read_sysctl(self.site.netns, key) == value:
                netstack.write_sysctl(self.site.netns, key, before)
                restored.append(f"{self.site.host.name}: sysctl {key}={before} (restored)")
        return restored


# --- inspecting and fixing one resource ------------------------------------------


def _inspect(stacks: _Stacks, r: Resource) -> Finding:
    match r:
        case Netns(name):
            return _inspect_netns(stacks, r, stacks.site.ns(name))
        case Vxlan():
            return _inspect_vxlan(stacks.get(None), r, stacks.unfinished)
        case FloodEntry(dev, dst):
            return _found(r, OK if str(dst) in (stacks.flood_targets(dev) or ()) else MISSING)
        case Bridge(name):
            return _inspect_bridge(stacks.get(None), r, stacks.unfinished)
        case Veth():
            return _inspect_veth(stacks, r)
        case Up():
            return _inspect_up(stacks.get(None), r)
        case MovedAddress(address, prefixlen, origin, dev):
            ipr = stacks.get(None)
            moved = _has_address(ipr, dev, address, prefixlen) and not _has_address(ipr, origin, address, prefixlen)
            return _found(r, OK if moved else MISSING)
        case Address():
            return _inspect_address(stacks.get(r.netns) if stacks.exists(r.netns) else None, r)
        case Route():
            if not stacks.exists(r.netns):
                return _found(r, MISSING)
            return _inspect_route(stacks.index(r.netns, r.dev), stacks.routes(r.netns), r)
        case Sysctl(key, value):
            current = _read_sysctl(stacks.site.netns, key)
            return _found(r, OK if current == value else DIFFERS, "" if current == value else f"is {current}")
    raise TypeError(r)


def _read_sysctl(netns: str | None, key: str) -> str | None:
    try:
        return netstack.read_sysctl(netns, key)
    except FileNotFoundError:
        return None  # e.g. the bridge's conf does not exist yet


def _inspect_netns(stacks: _Stacks, r: Netns, real: str) -> Finding:
    if not netstack.netns_exists(real):
        return _found(r, MISSING)
    if real not in stacks.deployment.netns:
        return _found(r, FOREIGN, _foreign(f"network namespace {real}", "not in ovsvx's record"))
    return _found(r, OK)


def _inspect_veth(stacks: _Stacks, r: Veth) -> Finding:
    ipr = stacks.get(None)
    base = _inspect_link(ipr, r, r.name, "veth", stacks.unfinished)
    if base.state != OK:
        return base
    host_end = _link(ipr, r.name)
    if host_end is None:
        return _found(r, MISSING)
    if r.master is not None:
        bridge = ipr.link_lookup(ifname=r.master)
        if not bridge or host_end.get("IFLA_MASTER") != bridge[0]:
            return _recreate_it(r, f"not in {r.master}")
    if not stacks.exists(r.netns):
        return _recreate_it(r, "namespace end missing")
    peer = _link(stacks.get(r.netns), r.peer)
    if peer is None or not _is_up(peer):
        return _recreate_it(r, f"{r.peer} missing or down in {r.netns}")
    wrong = [f"mac {peer.get('IFLA_ADDRESS')}"] if peer.get("IFLA_ADDRESS") != r.mac else []
    if r.mtu is not None:
        wrong += [f"mtu {link.get('IFLA_MTU')}" for link in (peer, host_end) if link.get("IFLA_MTU") != r.mtu]
    if wrong:
        return _recreate_it(r, ", ".join(wrong))
    if not r.tx_offload and tx_offload(stacks.site.ns(r.netns), r.peer):
        return _found(r, DIFFERS, "tx checksum offload on", Remedy.OFFLOAD_OFF)
    return base


def _fix(stacks: _Stacks, finding: Finding) -> None:
    fixers: dict[type, Callable[[_Stacks, Any, Finding], None]] = {
        Netns: _fix_netns,
        Vxlan: _fix_vxlan,
        FloodEntry: _fix_flood,
        Bridge: _fix_bridge,
        Veth: _fix_veth,
        Up: _fix_up,
        Address: _fix_address,
        MovedAddress: _fix_moved,
        Route: _fix_route,
        Sysctl: _fix_sysctl,
    }
    fix = fixers[type(finding.resource)]
    if not isinstance(finding.resource, (Vxlan, Bridge, Veth)):
        fix(stacks, finding.resource, finding)
        return
    # the kernel takes no alias when it creates a link, so the record claims it until the alias does
    host, name = stacks.site.host.name, finding.resource.name
    stacks.deployment.making_link(host, name, True)
    fix(stacks, finding.resource, finding)
    stacks.deployment.making_link(host, name, False)


def _fix_netns(stacks: _Stacks, r: Netns, _: Finding) -> None:
    real = stacks.site.ns(r.name)
    stacks.deployment.own_netns(real)  # recorded first, so a crash here still gets cleaned up
    netstack.create_netns(real)


def _fix_veth(stacks: _Stacks, r: Veth, finding: Finding) -> None:
    if finding.remedy == Remedy.OFFLOAD_OFF:  # the veth is as wanted but for that: its traffic goes on
        set_tx_offload(stacks.site.ns(r.netns), r.peer, on=False)
        return
    ipr = stacks.get(None)
    link = _link(ipr, r.name)
    if link is not None:
        ipr.link("del", index=link["index"])  # takes the namespace end with it
    ipr.link("add", ifname=r.name, kind="veth", peer={"ifname": r.peer, "net_ns_fd": stacks.site.ns(r.netns)})
    mtu = {"mtu": r.mtu} if r.mtu else {}
    inner = stacks.get(r.netns)
    inner.link("set", index=inner.link_lookup(ifname=r.peer)[0], ifalias=LINK_ALIAS, address=r.mac, state="up", **mtu)
    if not r.tx_offload:
        set_tx_offload(stacks.site.ns(r.netns), r.peer, on=False)
    master = {"master": ipr.link_lookup(ifname=r.master)[0]} if r.master else {}
    ipr.link("set", index=ipr.link_lookup(ifname=r.name)[0], ifalias=LINK_ALIAS, state="up", **mtu, **master)


def _fix_sysctl(stacks: _Stacks, r: Sysctl, _: Finding) -> None:
    current = _read_sysctl(stacks.site.netns, r.key)
    if current is not None:
        stacks.deployment.remember_sysctl(stacks.site.host.name, r.key, current, r.value)
    netstack.write_sysctl(stacks.site.netns, r.key, r.value)


# --- links -----------------------------------------------------------------------


def _link(ipr: Any, name: str) -> Any | None:
    found = ipr.link_lookup(ifname=name)
    return ipr.get_links(found[0])[0] if found else None


def _kind(link: Any) -> str | None:
    kind: str | None = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    return kind


def _is_up(link: Any) -> bool:
    return bool(link["flags"] & IFF_UP)


def _ours(link: Any, unfinished: Collection[str]) -> bool:
    """Marked with ovsvx's alias, or made by a deploy that died before it could mark it."""
    return link.get("IFLA_IFALIAS") == LINK_ALIAS or link.get("IFLA_IFNAME") in unfinished


def _foreign(name: str, what: str) -> str:
    return f"{name} exists and was not made by ovsvx ({what}); remove it or rename it in the topology"


def _inspect_link(ipr: Any, r: Resource, name: str, kind: str, unfinished: Collection[str]) -> Finding:
    link = _link(ipr, name)
    if link is None:
        return _found(r, MISSING)
    if not _ours(link, unfinished):
        return _found(r, FOREIGN, _foreign(f"link {name}", "no 'ovsvx' alias"))
    if link.get("IFLA_IFALIAS") != LINK_ALIAS:
        return _found(r, DIFFERS, "left unfinished by an interrupted deploy: recreate", RECREATE)
    if _kind(link) != kind:
        return _recreate_it(r, f"is a {_kind(link)}, not a {kind}")
    if not _is_up(link):
        return _found(r, DIFFERS, "down", SET_UP)
    return _found(r, OK)


def _failed(resource: Resource, err: NetlinkError) -> str:
    """Why the kernel refused a change, in words where the errno alone would puzzle."""
    if isinstance(resource, Vxlan) and err.code == errno.EADDRINUSE:
        return (
            f"UDP port {resource.port} is held by another tunnel device here (Open vSwitch's "
            f"vxlan_sys_{resource.port}, while one of its bridges has a vxlan port on it, or another vxlan "
            "device): remove that, or give the topology another port"
        )
    return str(err)


def _inspect_vxlan(ipr: Any, r: Vxlan, unfinished: Collection[str]) -> Finding:
    base = _inspect_link(ipr, r, r.name, "vxlan", unfinished)
    if base.state in (MISSING, FOREIGN) or base.remedy == RECREATE:
        return base
    link = _link(ipr, r.name)
    if link is None:
        return base
    data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA") or {}
    dev = ipr.link_lookup(ifname=r.dev)
    master = ipr.link_lookup(ifname=r.master) if r.master else None
    want = {
        "id": r.vni,
        "dstport": r.port,
        "local": str(r.local),
        "remote": str(r.remote) if r.remote else None,
        "dev": dev[0] if dev else None,
        "mac": r.mac,
        "learning": int(r.learning),
        "master": master[0] if master else None,
    }
    have = {
        "id": data.get("IFLA_VXLAN_ID"),
        "dstport": data.get("IFLA_VXLAN_PORT"),
        "local": data.get("IFLA_VXLAN_LOCAL"),
        "remote": data.get("IFLA_VXLAN_GROUP"),
        "dev": data.get("IFLA_VXLAN_LINK"),
        "mac": link.get("IFLA_ADDRESS"),
        "learning": data.get("IFLA_VXLAN_LEARNING"),
        "master": link.get("IFLA_MASTER"),
    }
    wrong = {k: f"{k} {have[k]} (want {want[k]})" for k in want if have[k] != want[k]}
    if list(wrong) == ["remote"]:  # the kernel changes a vxlan device's remote in place (its default entry)
        return _found(r, DIFFERS, wrong["remote"], Remedy.RETARGET)
    if wrong:
        return _recreate_it(r, ", ".join(wrong.values()))
    return base


def _inspect_bridge(ipr: Any, r: Bridge, unfinished: Collection[str]) -> Finding:
    base = _inspect_link(ipr, r, r.name, "bridge", unfinished)
    link = _link(ipr, r.name)
    if base.state != OK or link is None or r.mac is None or link.get("IFLA_ADDRESS") == r.mac:
        return base
    return _found(r, DIFFERS, f"address {link.get('IFLA_ADDRESS')}")


def _inspect_up(ipr: Any, r: Up) -> Finding:
    link = _link(ipr, r.dev)
    if link is None:
        return _found(r, MISSING, "the switch has not created it")
    wrong = [] if _is_up(link) else ["down"]
    if r.mtu and link.get("IFLA_MTU") != r.mtu:
        wrong.append(f"mtu {link.get('IFLA_MTU')}")
    return _found(r, DIFFERS if wrong else OK, ", ".join(wrong))


def _recreate(ipr: Any, name: str, finding: Finding) -> bool:
    """Delete a link of ours that differs in more than its up/down state; True when it is gone now."""
    link = _link(ipr, name)
    if link is not None and finding.remedy == RECREATE:
        ipr.link("del", index=link["index"])
        return True
    return link is None


def _fix_vxlan(stacks: _Stacks, r: Vxlan, finding: Finding) -> None:
    ipr = stacks.get(None)
    if _recreate(ipr, r.name, finding):
        spec: dict[str, Any] = {
            "ifname": r.name,
            "kind": "vxlan",
            "vxlan_id": r.vni,
            "vxlan_port": r.port,
            "vxlan_local": str(r.local),
            "vxlan_link": ipr.link_lookup(ifname=r.dev)[0],
        }
        if r.remote is not None:
            spec["vxlan_group"] = str(r.remote)
        if not r.learning:
            spec["vxlan_learning"] = 0
        ipr.link("add", **spec)
    elif finding.remedy == Remedy.RETARGET:  # no traffic is cut: the device, its routes and addresses stay
        remote = str(r.remote) if r.remote is not None else "0.0.0.0"
        ipr.link("set", index=ipr.link_lookup(ifname=r.name)[0], kind="vxlan", vxlan_group=remote)
    extra = {"master": ipr.link_lookup(ifname=r.master)[0]} if r.master else {}
    ipr.link("set", index=ipr.link_lookup(ifname=r.name)[0], ifalias=LINK_ALIAS, address=r.mac, state="up", **extra)


def _fix_bridge(stacks: _Stacks, r: Bridge, finding: Finding) -> None:
    ipr = stacks.get(None)
    if _recreate(ipr, r.name, finding):
        ipr.link("add", ifname=r.name, kind="bridge")
    extra = {"address": r.mac} if r.mac else {}
    ipr.link("set", index=ipr.link_lookup(ifname=r.name)[0], ifalias=LINK_ALIAS, state="up", **extra)


def _fix_flood(stacks: _Stacks, r: FloodEntry, _: Finding) -> None:
    stacks.get(None).fdb("append", ifindex=stacks.index(None, r.dev), lladdr=ZERO_MAC, dst=str(r.dst))


def _fix_up(stacks: _Stacks, r: Up, _: Finding) -> None:
    ipr = stacks.get(None)
    found = ipr.link_lookup(ifname=r.dev)
    if not found:
        raise ApplyError(f"{stacks.site.host.name}: {r.dev} does not exist: the switch did not create it")
    ipr.link("set", index=found[0], state="up", **({"mtu": r.mtu} if r.mtu else {}))


def _fix_moved(stacks: _Stacks, r: MovedAddress, _: Finding) -> None:
    mac = _move(stacks.get(None), r.address, r.prefixlen, r.origin, r.dev)
    announce(stacks.site.netns, r.dev, r.address, mac)


# --- addresses ---------------------------------------------------------------------


def _has_address(ipr: Any, dev: str, address: Any, prefixlen: int) -> bool:
    found = ipr.link_lookup(ifname=dev)
    return bool(found) and any(
        a.get("IFA_ADDRESS") == str(address) and a["prefixlen"] == prefixlen
        for a in ipr.get_addr(index=found[0], family=AF_INET)
    )


def _move(ipr: Any, address: Any, prefixlen: int, origin: str, dev: str) -> str:
    """Move an address between links (the kernel moves the connected route with it); a source that
    is already gone (br-phy, after OVS stopped) is fine.  Returns the MAC the address now answers for."""
    source = ipr.link_lookup(ifname=origin)
    if source and _has_address(ipr, origin, address, prefixlen):
        ipr.addr("del", index=source[0], address=str(address), prefixlen=prefixlen)
    target = ipr.link_lookup(ifname=dev)
    if not target:
        raise ApplyError(f"cannot move {address}/{prefixlen} to {dev}: no such link")
    if not _has_address(ipr, dev, address, prefixlen):
        ipr.addr("add", index=target[0], address=str(address), prefixlen=prefixlen)
    ipr.link("set", index=target[0], state="up")
    mac: str = ipr.get_links(target[0])[0].get("IFLA_ADDRESS")
    return mac


def _inspect_address(ipr: Any | None, r: Address) -> Finding:
    if ipr is None or not ipr.link_lookup(ifname=r.dev):
        return _found(r, MISSING)
    index = ipr.link_lookup(ifname=r.dev)[0]
    for addr in ipr.get_addr(index=index, family=AF_INET):
        if addr.get("IFA_ADDRESS") == str(r.address):
            if addr["prefixlen"] == r.prefixlen:
                return _found(r, OK)
            return _found(r, DIFFERS, f"has /{addr['prefixlen']}, want /{r.prefixlen}")
    return _found(r, MISSING)


def _fix_address(stacks: _Stacks, r: Address, _: Finding) -> None:
    ipr = stacks.get(r.netns)
    index = ipr.link_lookup(ifname=r.dev)[0]
    for addr in ipr.get_addr(index=index, family=AF_INET):
        if addr.get("IFA_ADDRESS") == str(r.address):  # same address, wrong prefix length
            ipr.addr("del", index=index, address=str(r.address), prefixlen=addr["prefixlen"])
    ipr.addr("add", index=index, address=str(r.address), prefixlen=r.prefixlen)


# --- routes, FDB, offloads ----------------------------------------------------------------


def _inspect_route(dev: int | None, dumped: list[Any], r: Route) -> Finding:
    state, detail = routes.compare(dumped, dev, r)
    return _found(r, state, _foreign(f"route {r.dst_text}", detail) if state == FOREIGN else detail)


def _fix_route(stacks: _Stacks, r: Route, _: Finding) -> None:
    routes.write(stacks.get(r.netns), r, stacks.index(r.netns, r.dev))


def fdb_entries(ipr: Any, index: int) -> list[Any]:
    """The FDB entries of one device.  (pyroute2's own ifindex filter on an FDB dump loses entries,
    the all-zero one among them, so this dumps everything and filters here.)"""
    return [entry for entry in ipr.fdb("dump") if entry["ifindex"] == index]


# --- XDP left behind ------------------------------------------------------------------

XDP_FLAGS_SKB_MODE, XDP_FLAGS_DRV_MODE = 2, 4
# How an XDP program is attached (IFLA_XDP_ATTACHED) -> the flags that name that mode when detaching.
_XDP_MODE_FLAGS = {
    "xdp": (XDP_FLAGS_DRV_MODE,),
    "xdpgeneric": (XDP_FLAGS_SKB_MODE,),
    "xdpmulti": (XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE),
}


def xdp_programs(ipr: Any, names: Collection[str]) -> dict[str, tuple[int, int, str]]:
    """The named links that carry an XDP program: name -> (ifindex, program id, attach mode)."""
    found = {}
    for link in ipr.get_links():
        name, xdp = link.get("IFLA_IFNAME"), link.get("IFLA_XDP")
        mode = xdp.get("IFLA_XDP_ATTACHED") if xdp is not None else None
        if name in names and mode:
            prog = xdp.get("IFLA_XDP_PROG_ID") or xdp.get("IFLA_XDP_DRV_PROG_ID") or xdp.get("IFLA_XDP_SKB_PROG_ID")
            found[name] = (link["index"], prog or 0, mode)
    return found


def detach_xdp(netns: str | None, names: Collection[str], host: str) -> list[str]:
    """Take XDP programs off the named links.

    OVS's AF_XDP ports attach one (xsk_def_prog) to every device they read and
    detach it when ovs-vswitchd stops cleanly; a killed ovs-vswitchd leaves it,
    and the kernel then hands the device's frames to a socket nobody reads: a
    plain stack on that NIC (kernel mode, a rebuild by hand) stays dark.
    """
    if netns is not None and not netstack.netns_exists(netns):
        return []
    removed = []
    with netstack.stack(netns) as ipr:
        for name, (index, prog, mode) in xdp_programs(ipr, names).items():
            for flags in _XDP_MODE_FLAGS.get(mode, (0,)):
                ipr.link("set", index=index, xdp={"attrs": [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", flags)]})
            removed.append(f"{host}: - XDP program {prog} on {name} (left by a stopped ovs-vswitchd)")
    return removed


def remove_stale_taps(netns: str | None, names: Collection[str], host: str) -> list[str]:
    """Delete the named links that are tap devices: the userspace datapath's bridge ports, which a killed
    ovs-vswitchd leaves persisting (a kernel-mode bridge of the same name could not be made)."""
    if netns is not None and not netstack.netns_exists(netns):
        return []
    removed = []
    with netstack.stack(netns) as ipr:
        for name in names:
            link = _link(ipr, name)
            if link is not None and _kind(link) == "tun":
                ipr.link("del", index=link["index"])
                removed.append(f"{host}: - tap {name} (left by a stopped ovs-vswitchd)")
    return removed
