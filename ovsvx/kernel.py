"""Kernel mode: the tutorial's Linux bridge, veth, vxlan device and onlink route, through netlink.

The backend walks the host's plan (`plan.kernel_plan`) and, for each resource,
inspects the machine: ``ok``, ``missing``, ``differs`` (ours, but not as
wanted) or ``foreign`` (in the way, and not made by ovsvx).  Deploy refuses
before touching anything if a resource is foreign, then fixes the rest in
order, inspecting each again just before fixing it (recreating the vxlan
device takes its address and routes with it).  A second deploy finds
everything ``ok`` and changes nothing.

Ownership: links carry the alias ``ovsvx``, routes the protocol number 211,
namespaces and original sysctl values are in the deployment record.  Destroy
removes exactly those.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from ovsvx import netstack
from ovsvx.errors import ApplyError, ConflictError
from ovsvx.plan import (
    LINK_ALIAS, RTPROT_OVSVX, ZERO_MAC, Address, Bridge, FloodEntry, Netns, Resource, Route, Sysctl, Veth,
    Vxlan, describe, kernel_plan,
)
from ovsvx.record import Deployment
from ovsvx.site import Site

RTNH_F_ONLINK = 4
MAIN_TABLE = 254
AF_INET = 2

OK, MISSING, DIFFERS, FOREIGN = "ok", "missing", "differs", "foreign"


@dataclass(frozen=True)
class Finding:
    """How one desired resource compares with the machine."""

    resource: Resource
    state: str
    detail: str = ""

    @property
    def text(self) -> str:
        return describe(self.resource) + (f": {self.detail}" if self.detail else "")


class _Stacks:
    """pyroute2 handles for a site's host stack and its workload namespaces, opened on demand."""

    def __init__(self, site: Site):
        self.site = site
        self.open: dict[str | None, Any] = {}

    def get(self, netns: str | None) -> Any:
        """The handle for logical namespace `netns` (None: the host itself)."""
        real = self.site.netns if netns is None else self.site.ns(netns)
        if real not in self.open:
            cm = netstack.stack(real)
            self.open[real] = (cm, cm.__enter__())
        return self.open[real][1]

    def forget(self, netns: str) -> None:
        real = self.site.ns(netns)
        if real in self.open:
            self.open.pop(real)[0].__exit__(None, None, None)

    def close(self) -> None:
        for cm, _ in self.open.values():
            cm.__exit__(None, None, None)
        self.open.clear()


def _link(ipr: Any, name: str) -> Any | None:
    found = ipr.link_lookup(ifname=name)
    return ipr.get_links(found[0])[0] if found else None


def _kind(link: Any) -> str | None:
    return link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")


def _is_up(link: Any) -> bool:
    return bool(link["flags"] & 1)


def _ours(link: Any) -> bool:
    return link.get("IFLA_IFALIAS") == LINK_ALIAS


def _foreign(name: str, what: str) -> str:
    return f"{name} exists and was not made by ovsvx ({what}); remove it or rename it in the topology"


class KernelBackend:
    """Deploys one host of the topology in kernel mode at a site."""

    name = "kernel"

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.deployment = deployment
        self.plan = kernel_plan(deployment.topology, site.host)

    # --- the verbs -------------------------------------------------------------

    def inspect(self) -> list[Finding]:
        stacks = _Stacks(self.site)
        try:
            return [self._inspect(stacks, r) for r in self.plan]
        finally:
            stacks.close()

    def apply(self) -> list[str]:
        """Bring the site to the plan; returns one line per change (none when already there)."""
        findings = self.inspect()
        for finding in findings:
            if finding.state == FOREIGN:
                raise ConflictError(f"{self.site.host.name}: {finding.detail}")
        stacks = _Stacks(self.site)
        changes = []
        try:
            for resource in self.plan:
                finding = self._inspect(stacks, resource)
                if finding.state != OK:
                    self._fix(stacks, finding)
                    mark = "+" if finding.state == MISSING else "~"
                    changes.append(f"{self.site.host.name}: {mark} {finding.text}")
        except NetlinkError as err:
            raise ApplyError(f"{self.site.host.name}: {describe(resource)}: {err}") from None
        finally:
            stacks.close()
        return changes

    def destroy(self) -> list[str]:
        """Remove what this backend made at the site; what is already gone is fine."""
        removed: list[str] = []
        host = self.site.host
        if self.site.netns is None or netstack.netns_exists(self.site.netns):
            with netstack.stack(self.site.netns) as ipr:
                removed += self._remove_routes(ipr)
                for name in [host.vxlan, host.bridge, *(ns.peer for ns in host.namespaces)]:
                    link = _link(ipr, name)
                    if link is not None and _ours(link):
                        ipr.link("del", index=link["index"])
                        removed.append(f"{host.name}: - link {name}")
            removed += self._restore_sysctls()
        for ns in host.namespaces:
            real = self.site.ns(ns.name)
            if real in self.deployment.netns and netstack.netns_exists(real):
                netstack.remove_netns(real)
                removed.append(f"{host.name}: - netns {real}")
        return removed

    # --- inspection ------------------------------------------------------------

    def _inspect(self, stacks: _Stacks, r: Resource) -> Finding:
        match r:
            case Netns(name):
                return self._inspect_netns(r, self.site.ns(name))
            case Vxlan():
                return self._inspect_vxlan(stacks.get(None), r)
            case FloodEntry(dev, dst):
                ipr = stacks.get(None)
                link = _link(ipr, dev)
                return Finding(r, OK if link and _flood_entry(ipr, link["index"], str(dst)) else MISSING)
            case Bridge(name):
                return self._inspect_link(stacks.get(None), r, name, "bridge")
            case Veth():
                return self._inspect_veth(stacks, r)
            case Address():
                return _inspect_address(stacks.get(r.netns) if self._stack_exists(r.netns) else None, r)
            case Route():
                return _inspect_route(stacks.get(r.netns) if self._stack_exists(r.netns) else None, r)
            case Sysctl(key, value):
                current = self._read_sysctl(key)
                return Finding(r, OK if current == value else DIFFERS, "" if current == value else f"is {current}")
        raise TypeError(r)

    def _stack_exists(self, netns: str | None) -> bool:
        return netns is None or netstack.netns_exists(self.site.ns(netns))

    def _read_sysctl(self, key: str) -> str | None:
        try:
            return netstack.read_sysctl(self.site.netns, key)
        except FileNotFoundError:
            return None  # e.g. the bridge's conf does not exist yet

    def _inspect_netns(self, r: Netns, real: str) -> Finding:
        if not netstack.netns_exists(real):
            return Finding(r, MISSING)
        if real not in self.deployment.netns:
            return Finding(r, FOREIGN, _foreign(f"network namespace {real}", "not in ovsvx's record"))
        return Finding(r, OK)

    def _inspect_link(self, ipr: Any, r: Resource, name: str, kind: str) -> Finding:
        link = _link(ipr, name)
        if link is None:
            return Finding(r, MISSING)
        if not _ours(link):
            return Finding(r, FOREIGN, _foreign(f"link {name}", "no 'ovsvx' alias"))
        if _kind(link) != kind:
            return Finding(r, DIFFERS, f"is a {_kind(link)}, not a {kind}")
        if not _is_up(link):
            return Finding(r, DIFFERS, "down")
        return Finding(r, OK)

    def _inspect_vxlan(self, ipr: Any, r: Vxlan) -> Finding:
        base = self._inspect_link(ipr, r, r.name, "vxlan")
        if base.state in (MISSING, FOREIGN) or base.detail.startswith("is a"):
            return base
        link = _link(ipr, r.name)
        data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        dev = ipr.link_lookup(ifname=r.dev)
        want = {
            "id": r.vni, "dstport": r.port, "local": str(r.local),
            "remote": str(r.remote) if r.remote else None, "dev": dev[0] if dev else None,
        }
        have = {
            "id": data.get("IFLA_VXLAN_ID"), "dstport": data.get("IFLA_VXLAN_PORT"),
            "local": data.get("IFLA_VXLAN_LOCAL"), "remote": data.get("IFLA_VXLAN_GROUP"),
            "dev": data.get("IFLA_VXLAN_LINK"),
        }
        wrong = [f"{k} {have[k]} (want {want[k]})" for k in want if have[k] != want[k]]
        if wrong:
            return Finding(r, DIFFERS, "recreate: " + ", ".join(wrong))
        return base

    def _inspect_veth(self, stacks: _Stacks, r: Veth) -> Finding:
        base = self._inspect_link(stacks.get(None), r, r.name, "veth")
        if base.state != OK:
            return base
        host_end = _link(stacks.get(None), r.name)
        bridge = stacks.get(None).link_lookup(ifname=r.master)
        if not bridge or host_end.get("IFLA_MASTER") != bridge[0]:
            return Finding(r, DIFFERS, f"not in {r.master}")
        if not self._stack_exists(r.netns):
            return Finding(r, DIFFERS, "namespace end missing")
        peer = _link(stacks.get(r.netns), r.peer)
        if peer is None or not _is_up(peer):
            return Finding(r, DIFFERS, f"{r.peer} missing or down in {r.netns}")
        return base

    # --- fixing ----------------------------------------------------------------

    def _fix(self, stacks: _Stacks, finding: Finding) -> None:
        fixers: dict[type, Callable[[_Stacks, Any, Finding], None]] = {
            Netns: self._fix_netns, Vxlan: self._fix_vxlan, FloodEntry: self._fix_flood,
            Bridge: self._fix_bridge, Veth: self._fix_veth, Address: self._fix_address,
            Route: self._fix_route, Sysctl: self._fix_sysctl,
        }
        fixers[type(finding.resource)](stacks, finding.resource, finding)

    def _fix_netns(self, stacks: _Stacks, r: Netns, _: Finding) -> None:
        real = self.site.ns(r.name)
        stacks.forget(r.name)
        self.deployment.own_netns(real)  # recorded first, so a crash here still gets cleaned up
        netstack.create_netns(real)

    def _fix_vxlan(self, stacks: _Stacks, r: Vxlan, finding: Finding) -> None:
        ipr = stacks.get(None)
        link = _link(ipr, r.name)
        if link is not None and finding.detail != "down":
            ipr.link("del", index=link["index"])
            link = None
        if link is None:
            spec: dict[str, Any] = {
                "ifname": r.name, "kind": "vxlan", "vxlan_id": r.vni, "vxlan_port": r.port,
                "vxlan_local": str(r.local), "vxlan_link": ipr.link_lookup(ifname=r.dev)[0],
            }
            if r.remote is not None:
                spec["vxlan_group"] = str(r.remote)
            ipr.link("add", **spec)
        ipr.link("set", index=ipr.link_lookup(ifname=r.name)[0], ifalias=LINK_ALIAS, state="up")

    def _fix_flood(self, stacks: _Stacks, r: FloodEntry, _: Finding) -> None:
        ipr = stacks.get(None)
        ipr.fdb("append", ifindex=ipr.link_lookup(ifname=r.dev)[0], lladdr=ZERO_MAC, dst=str(r.dst))

    def _fix_bridge(self, stacks: _Stacks, r: Bridge, finding: Finding) -> None:
        ipr = stacks.get(None)
        link = _link(ipr, r.name)
        if link is not None and finding.detail != "down":
            ipr.link("del", index=link["index"])
            link = None
        if link is None:
            ipr.link("add", ifname=r.name, kind="bridge")
        ipr.link("set", index=ipr.link_lookup(ifname=r.name)[0], ifalias=LINK_ALIAS, state="up")

    def _fix_veth(self, stacks: _Stacks, r: Veth, _: Finding) -> None:
        ipr = stacks.get(None)
        link = _link(ipr, r.name)
        if link is not None:
            ipr.link("del", index=link["index"])  # takes the namespace end with it
        ipr.link("add", ifname=r.name, kind="veth", peer={"ifname": r.peer, "net_ns_fd": self.site.ns(r.netns)})
        inner = stacks.get(r.netns)
        inner.link("set", index=inner.link_lookup(ifname=r.peer)[0], ifalias=LINK_ALIAS, state="up")
        bridge = ipr.link_lookup(ifname=r.master)[0]
        ipr.link("set", index=ipr.link_lookup(ifname=r.name)[0], ifalias=LINK_ALIAS, master=bridge, state="up")

    def _fix_address(self, stacks: _Stacks, r: Address, finding: Finding) -> None:
        ipr = stacks.get(r.netns)
        index = ipr.link_lookup(ifname=r.dev)[0]
        for addr in ipr.get_addr(index=index, family=AF_INET):
            if addr.get("IFA_ADDRESS") == str(r.address):  # same address, wrong prefix length
                ipr.addr("del", index=index, address=str(r.address), prefixlen=addr["prefixlen"])
        ipr.addr("add", index=index, address=str(r.address), prefixlen=r.prefixlen)

    def _fix_route(self, stacks: _Stacks, r: Route, finding: Finding) -> None:
        ipr = stacks.get(r.netns)
        ipr.route(
            "replace", dst=r.dst_text if r.dst else "0.0.0.0/0", gateway=str(r.gateway),
            oif=ipr.link_lookup(ifname=r.dev)[0], flags=RTNH_F_ONLINK if r.onlink else 0,
            proto=RTPROT_OVSVX, table=MAIN_TABLE,
        )

    def _fix_sysctl(self, stacks: _Stacks, r: Sysctl, _: Finding) -> None:
        current = self._read_sysctl(r.key)
        if current is not None:
            self.deployment.remember_sysctl(self.site.host.name, r.key, current)
        netstack.write_sysctl(self.site.netns, r.key, r.value)

    # --- removal ---------------------------------------------------------------

    def _remove_routes(self, ipr: Any) -> list[str]:
        removed = []
        for route in ipr.get_routes(family=AF_INET, table=MAIN_TABLE):
            if route["proto"] == RTPROT_OVSVX:
                dst = f"{route.get('RTA_DST') or '0.0.0.0'}/{route['dst_len']}"
                try:
                    ipr.route("del", dst=dst, table=MAIN_TABLE, proto=RTPROT_OVSVX)
                    removed.append(f"{self.site.host.name}: - route {dst}")
                except NetlinkError as err:
                    if err.code != errno.ESRCH:
                        raise
        return removed

    def _restore_sysctls(self) -> list[str]:
        """Put back what a sysctl held before ovsvx, unless someone changed it since."""
        restored = []
        ours = {r.key: r.value for r in self.plan if isinstance(r, Sysctl)}
        for key, original in self.deployment.sysctls.get(self.site.host.name, {}).items():
            if key in ours and self._read_sysctl(key) == ours[key] and original != ours[key]:
                netstack.write_sysctl(self.site.netns, key, original)
                restored.append(f"{self.site.host.name}: sysctl {key}={original} (restored)")
        return restored


def _flood_entry(ipr: Any, index: int, dst: str) -> bool:
    for entry in ipr.fdb("dump", ifindex=index):
        if entry.get("NDA_LLADDR") == ZERO_MAC and entry.get("NDA_DST") == dst:
            return True
    return False


def _inspect_address(ipr: Any | None, r: Address) -> Finding:
    if ipr is None or not ipr.link_lookup(ifname=r.dev):
        return Finding(r, MISSING)
    index = ipr.link_lookup(ifname=r.dev)[0]
    for addr in ipr.get_addr(index=index, family=AF_INET):
        if addr.get("IFA_ADDRESS") == str(r.address):
            if addr["prefixlen"] == r.prefixlen:
                return Finding(r, OK)
            return Finding(r, DIFFERS, f"has /{addr['prefixlen']}, want /{r.prefixlen}")
    return Finding(r, MISSING)


def _inspect_route(ipr: Any | None, r: Route) -> Finding:
    if ipr is None:
        return Finding(r, MISSING)
    dst = None if r.dst is None else str(r.dst.network_address)
    dst_len = 0 if r.dst is None else r.dst.prefixlen
    for route in ipr.get_routes(family=AF_INET, table=MAIN_TABLE):
        if route.get("RTA_DST") != dst or route["dst_len"] != dst_len:
            continue
        if route["proto"] != RTPROT_OVSVX:
            return Finding(r, FOREIGN, _foreign(f"route {r.dst_text}", f"proto {route['proto']}"))
        dev = ipr.link_lookup(ifname=r.dev)
        onlink = bool(route["flags"] & RTNH_F_ONLINK)
        if route.get("RTA_GATEWAY") != str(r.gateway) or not dev or route.get("RTA_OIF") != dev[0] \
                or onlink != r.onlink:
            return Finding(r, DIFFERS, "replace")
        return Finding(r, OK)
    return Finding(r, MISSING)
