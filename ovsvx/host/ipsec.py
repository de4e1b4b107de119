"""The overlay encrypted: IKEv2 and ESP in transport mode between each pair of VTEPs, by strongSwan.

What is protected, and why this way:

- ESP in transport mode protects the VXLAN packets as the kernel sends
  them.  Kernel mode's vxlan device and OVS's kernel datapath (whose vxlan
  port is a kernel tunnel device too) both send through the kernel's IP
  output path, where xfrm applies, so a kernel-mode host and an ovs-mode host
  on the kernel datapath speak the same IPsec to each other.  OVS's userspace
  datapath builds its tunnel packets itself and sends them past xfrm: there
  encryption is refused (`ovs.OvsBackend.configure`).
- Not openvswitch-ipsec (ovs-monitor-ipsec): it reads IPsec settings from
  OVSDB's interface options, so it serves ovs mode only, and drives the
  system's own strongSwan.  Kernel mode has no OVSDB; one set of swanctl
  connections, made here for both modes, lets the modes talk to each other.
- One charon per host, run by ovsvx as it runs FRR: on a real host the
  strongswan service stays off; in a lab one charon per lab host's
  namespace (xfrm state is per namespace), each with its own strongswan.conf
  and vici socket.  Connections and the key go in through vici, the socket
  swanctl itself uses; `plan` shows them as the swanctl.conf they amount to.
- Two CHILD_SAs per peer.  A VXLAN packet's source port is a hash of the
  inner flow and its destination the overlay's port, so "to the peer's port"
  (to-PEER: here[udp] -> peer[udp/PORT]) and "from the peer to ours"
  (from-PEER: here[udp/PORT] <- peer[udp]) are two traffic selectors.  Both
  start as trap policies: the first packet starts IKE, and while there is no
  SA the kernel drops VXLAN to or from a peer rather than send it in clear.
  If charon stops and takes its policies with it, the firewall's
  `rt ipsec missing` and `meta ipsec missing` rules drop it (firewall.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ovsvx.host import netstack
from ovsvx.host.charon import UP, charon_pid, given, home, load, out_spi, peer_sas, start, stop
from ovsvx.host.credentials import read_credentials
from ovsvx.host.record import Deployment
from ovsvx.host.swanctl import child_names
from ovsvx.model.findings import MISSING, OK, Finding
from ovsvx.model.site import Site
from ovsvx.model.topology import Host


class HostIpsec:
    """A host's IPsec at its site: its charon, the connections to its peers, and what is left after it."""

    def __init__(self, site: Site, deployment: Deployment):
        self.site = site
        self.topology = deployment.topology
        self.home = home(deployment, site)

    def apply(self) -> list[str]:
        if not self.topology.encrypted:
            return self.remove()
        credentials = read_credentials(self.topology, self.site.host)  # a bad file: refused before charon starts
        name = self.site.host.name
        changes = [f"{name}: + charon ({self.home.conf})"] if start(self.home) else []
        if not given(self.home):
            # a charon killed -9 leaves its SAs in the kernel: the VXLAN to a peer would go on by an SA the
            # peer forgets at its next restart, with no acquire to start IKE again (seen on the machines)
            changes += self._leftovers()
        if load(self.home, self.topology, self.site.host, credentials):
            peers = ", ".join(p.name for p in self.topology.peers(self.site.host))
            changes.append(f"{name}: ipsec: IKEv2 and ESP with {peers} (udp {self.topology.port}, transport mode)")
        return changes

    def daemons(self) -> dict[str, int]:
        """The charon it keeps running, by pid, when the host is encrypted and charon runs."""
        pid = charon_pid(self.home) if self.topology.encrypted else None
        return {f"{self.site.host.name}'s charon": pid} if pid else {}

    def remove(self) -> list[str]:
        """Stop charon (it deletes its SAs and policies), then delete any it could not (it was killed), and
        its folder; nothing when the host never had IPsec."""
        if not self.home.folder.exists():
            return []
        name = self.site.host.name
        removed = [f"{name}: - charon"] if stop(self.home) else []
        if self.site.netns is None or netstack.netns_exists(self.site.netns):
            removed += self._leftovers()
        for path in self.home.folder.iterdir():
            path.unlink()
        self.home.folder.rmdir()
        return removed

    def _leftovers(self) -> list[str]:
        """SAs and policies between this VTEP and a peer's that a killed charon left in the kernel (`ip
        xfrm`: pyroute2 has no xfrm)."""
        vtep = str(self.site.host.vtep)
        removed = []
        for peer in self.topology.peers(self.site.host):
            for src, dst in ((vtep, str(peer.vtep)), (str(peer.vtep), vtep)):
                policies = netstack.run(self.site.netns, ["ip", "xfrm", "policy", "list", "src", src, "dst", dst])
                states = netstack.run(self.site.netns, ["ip", "xfrm", "state", "list", "src", src, "dst", dst])
                if policies.stdout.strip() or states.stdout.strip():
                    netstack.run(self.site.netns, ["ip", "xfrm", "policy", "deleteall", "src", src, "dst", dst])
                    netstack.run(self.site.netns, ["ip", "xfrm", "state", "deleteall", "src", src, "dst", dst])
                    removed.append(f"{self.site.host.name}: - xfrm SAs and policies {src} -> {dst}")
        return removed

    def inspect(self) -> list[Finding]:
        if not self.topology.encrypted:
            return []
        pid = charon_pid(self.home)
        what = f"charon ({self.home.conf})"
        if pid is None:
            return [Finding(what, MISSING, "not running: the overlay is down, and nothing goes in clear")]
        findings = [Finding(what, OK, f"pid {pid}")]
        for sa in peer_sas(self.home, self.topology, self.site.host):
            state = OK if sa.state == UP else MISSING
            findings.append(Finding(f"ipsec SA with {sa.peer} ({sa.vtep})", state, sa.describe()))
        return findings


@dataclass(frozen=True)
class Esp:
    """What ESP adds to the underlay hop `trace` tells: its header, and the SA that encrypts it."""

    header: str  # " / ESP spi 0x..." between the outer IP and UDP
    why: str


def esp_on_the_way(deployment: Deployment, site: Site, peer: Host) -> Esp:
    """The ESP the VXLAN packets from `site` to `peer` travel in now (or that none is up yet)."""
    spi = out_spi(home(deployment, site), deployment.topology, peer)
    to = child_names(deployment.topology, peer)[0]
    why = (
        f"xfrm: charon's SA {to} encrypts it, spi {spi}"
        if spi
        else f"xfrm: no SA {to} yet: the packet starts IKE, and the kernel drops it meanwhile"
    )
    return Esp(f" / ESP spi {spi or '<none: no SA>'}", why)
