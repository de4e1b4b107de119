"""Checks made before ovsvx changes anything: root, system tools, and a real host's underlay.

Hard failures raise `PreconditionError` with the fix in the message.  The
firewall check never changes a firewall (the tutorial's first step turns it
off; ovsvx does not): it reports which firewall would drop the tunnel and
prints the rule that lets exactly the peer VTEPs in.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from socket import AF_INET

from ovsvx.errors import PreconditionError
from ovsvx.host import netstack
from ovsvx.model.topology import Host, Topology

#: The Debian package that provides each program ovsvx runs.
PACKAGES = {
    "ping": "iputils-ping",
    "iperf3": "iperf3",
    "tcpdump": "tcpdump",
    "ethtool": "ethtool",
    "nft": "nftables",
    "ovs-vsctl": "openvswitch-switch",
    "ovs-vswitchd": "openvswitch-switch",
    "ovsdb-server": "openvswitch-switch",
    "ovs-ofctl": "openvswitch-switch",
    "ovs-appctl": "openvswitch-switch",
    "ovsdb-tool": "openvswitch-switch",
}


def changeable_by_others(path: Path, folder_above: bool = False) -> str | None:
    """Why someone other than root could change `path`: its owner, or a group or world write bit; None
    when only root can.  A link's own bits mean nothing (what it names is checked where it is code).  A
    folder above (`folder_above`) may be world-writable with the sticky bit (/tmp): no one can replace
    root's entry in it."""
    found = os.lstat(path)
    if stat.S_ISLNK(found.st_mode):
        return None
    if found.st_uid != 0:
        return f"it is owned by uid {found.st_uid}, not root"
    if found.st_mode & 0o022 and not (folder_above and found.st_mode & stat.S_ISVTX):
        return f"group or others may write it (mode {stat.S_IMODE(found.st_mode):04o})"
    return None


def untrusted_code(roots: list[Path]) -> tuple[Path, str] | None:
    """The first file or folder under `roots` (or a folder above one) that someone other than root could
    change, with why; None when only root can change any of it.  As sshd's StrictModes: what root runs
    at every boot must be root's to change alone."""
    for root in roots:
        for above in reversed(root.parents):
            if (why := changeable_by_others(above, folder_above=True)) is not None:
                return above, why
        for path in _tree(root):
            if (why := changeable_by_others(path)) is not None:
                return path, why
    return None


def _tree(root: Path) -> Iterator[Path]:
    """`root` and, for a folder, everything in it (links not followed)."""
    yield root
    if root.is_dir() and not root.is_symlink():
        for folder, folders, files in os.walk(root):
            yield from (Path(folder) / name for name in (*folders, *files))


def require_trusted_code() -> None:
    """`enable` makes root run this interpreter, its venv and ovsvx's package at every boot: refused (one
    line naming the path) when anyone but root could change them."""
    import ovsvx

    roots = [Path(os.path.realpath(sys.executable)), Path(sys.prefix), Path(ovsvx.__file__).parent]
    found = untrusted_code(roots)
    if found is not None:
        path, why = found
        raise PreconditionError(
            f"{path}: {why}; root would run this code at every boot, so enable refuses (as sshd's StrictModes):"
            f" chown root and chmod go-w it"
        )


def require_roots_alone(path: Path, what: str) -> None:
    """A file root reads at every start (the stored topology): root's, written by no one else, not a link."""
    try:
        found = os.lstat(path)
    except OSError as err:
        raise PreconditionError(f"{what} {path}: cannot be read ({err.strerror})") from None
    why = "it is a link" if stat.S_ISLNK(found.st_mode) else changeable_by_others(path)
    if why is not None:
        raise PreconditionError(f"{what} {path}: {why}; the agent reads it as root: chown root and chmod 600 it")


def require_root() -> None:
    if os.geteuid() != 0:
        raise PreconditionError("ovsvx must run as root to change the network (try: sudo ovsvx ...)")


def installed(tool: str) -> bool:
    """Whether a program is there (root's PATH may lack /usr/sbin when run through sudo)."""
    return shutil.which(tool) is not None or os.path.exists(f"/usr/sbin/{tool}")


def module_loaded(name: str) -> bool:
    return Path(f"/sys/module/{name}").exists()


def modprobe(name: str, dry_run: bool) -> bool:
    """Load a kernel module (or, dry run, only ask whether it could be); whether that worked."""
    if not installed("modprobe"):
        return False
    return netstack.run(None, ["modprobe", *(["-n"] if dry_run else []), "-q", name], timeout=30).returncode == 0


def require_tools(*tools: str) -> None:
    for tool in tools:
        if not installed(tool):
            package = PACKAGES.get(tool, tool)
            raise PreconditionError(
                f"{tool} is not installed: install the Debian package {package} (scripts/setup does)"
            )


def check_real_host(topology: Topology, host: Host, carriers: Collection[str] = ()) -> list[str]:
    """A real host must already have its underlay NIC with the VTEP address (or one of `carriers`, the
    links a mode moves it onto: `backends.vtep_carriers`, so that a second deploy, the agent's every pass,
    finds it); returns warnings."""
    with netstack.stack(None) as ipr:
        index = ipr.link_lookup(ifname=host.nic)
        if not index:
            raise PreconditionError(
                f"{host.name}: underlay NIC {host.nic} does not exist here; is this machine {host.name}? "
                "(fix hosts[].nic in the topology)"
            )
        addresses = {a.get("IFA_ADDRESS") for a in ipr.get_addr(index=index[0], family=AF_INET)}
        carried = {
            a.get("IFA_ADDRESS")
            for name in carriers
            for moved in ipr.link_lookup(ifname=name)
            for a in ipr.get_addr(index=moved, family=AF_INET)
        }
        if str(host.vtep) not in addresses | carried:
            raise PreconditionError(
                f"{host.name}: VTEP address {host.vtep} is not on {host.nic} "
                f"(it has {', '.join(sorted(addresses)) or 'none'}); fix hosts[].vtep or the NIC's address"
            )
        link = ipr.get_links(index[0])[0]
    warnings = []
    if link.get("IFLA_MTU", 0) < topology.underlay_mtu:
        warnings.append(
            f"{host.nic} has MTU {link.get('IFLA_MTU')}, less than underlay_mtu {topology.underlay_mtu}: "
            "the overlay MTU will be smaller than planned"
        )
    peers = [p.vtep for p in topology.peers(host)]
    warnings += [blocker.text for blocker in firewall_blockers(None, topology.port, peers)]
    return warnings


@dataclass(frozen=True)
class Blocker:
    """An active firewall that would drop the tunnel from the peers, and the commands that let them in."""

    what: str
    allow: str

    @property
    def text(self) -> str:
        return f"{self.what}; allow the peers with: {self.allow}"


def firewall_blockers(netns: str | None, port: int, peers: list[IPv4Address]) -> list[Blocker]:
    """Which active firewall would drop UDP `port` from the peers, each with the rule to allow it."""
    found = []
    sources = ", ".join(str(p) for p in peers)
    for family, table, chain in _nft_dropping_input_chains(netns, port):
        found.append(
            Blocker(
                f"nftables chain {family} {table} {chain} drops input by default and has no rule for udp port {port}",
                f"nft insert rule {family} {table} {chain} ip saddr {{ {sources} }} udp dport {port} accept",
            )
        )
    if shutil.which("firewall-cmd") and netstack.run(netns, ["firewall-cmd", "--state"]).returncode == 0:
        rules = " && ".join(
            f"firewall-cmd --permanent --add-rich-rule='rule family=ipv4 source address={p} "
            f"port port={port} protocol=udp accept'"
            for p in peers
        )
        found.append(Blocker("firewalld is running", f"{rules} && firewall-cmd --reload"))
    if shutil.which("ufw"):
        status = netstack.run(netns, ["ufw", "status"])
        if status.returncode == 0 and "Status: active" in status.stdout:
            rules = " && ".join(f"ufw allow proto udp from {p} to any port {port}" for p in peers)
            found.append(Blocker("ufw is active", rules))
    return found


def _nft_dropping_input_chains(netns: str | None, port: int) -> list[tuple[str, str, str]]:
    """(family, table, chain) of each nftables input chain that drops by policy while no rule of its
    table mentions the port."""
    if shutil.which("nft") is None:
        return []
    listing = netstack.run(netns, ["nft", "-j", "list", "ruleset"], timeout=10)
    if listing.returncode != 0:
        return []
    try:
        items = json.loads(listing.stdout).get("nftables", [])
    except ValueError:
        return []
    chains = [
        item["chain"]
        for item in items
        if "chain" in item and item["chain"].get("hook") == "input" and item["chain"].get("policy") == "drop"
    ]
    rules = [item["rule"] for item in items if "rule" in item]
    return [
        (c["family"], c["table"], c["name"])
        for c in chains
        if f'"right": {port}'
        not in json.dumps([r for r in rules if (r["family"], r["table"]) == (c["family"], c["table"])])
    ]
