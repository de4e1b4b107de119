"""The overlay's own firewall: the VXLAN port open to the topology's peer VTEPs and to no one else.

VXLAN carries no authentication: whoever can send UDP to a VTEP's port can
put frames into the VNI.  The tutorial starts by switching the firewall off;
ovsvx instead adds an nftables table of its own, ``inet ovsvx``, in each
host's stack, and removes it on destroy.  It never touches anyone else's
tables: the chain hooks input just before the usual filter priority and only
drops; an ``accept`` here cannot override another table's drop, which is why
`preflight` still names any firewall that would drop the peers.

What each datapath needs it for (checked by tests/lab/test_intruder.py):

- kernel mode: the vxlan device's socket takes VNI 100 from any source and
  address (``remote`` only says where to send), so without this table an
  intruder's frames reach ns1;
- ovs mode: a vxlan port with a fixed ``remote_ip`` only receives packets
  from that address, so OVS drops an intruder's frames by itself.  On the
  kernel datapath the tunnel socket is the kernel's and the table filters it
  too; the userspace datapath reads the NIC through a packet socket, ahead of
  netfilter, so there the table sees nothing and OVS's check is the guard.

A second chain guards the other door, plain IP: deploy turns forwarding on,
so a neighbour on the underlay with a route `192.168.2.0/24 via <host1's
VTEP>` could use host1 as a relay into the overlay without VXLAN at all, to
host1's own workloads or, through host1's tunnel, to another host's (whose
vxlan device takes what host1 sends, as it comes from a peer).  So the rule
is about the way *into* the overlay: nothing the host forwards leaves by one
of its doors (the bridge, the vxlan device, EVPN's bridge of the routed VNI)
unless it came in by one of them, from a local workload or from the tunnel.
It holds for IPv6 as for IPv4 (the table is `inet`), in every mode and
control; whatever else the host forwards is left alone.  In ovs mode on the
userspace datapath OVS owns the NIC and the kernel never routes such a
packet; on the kernel datapath it would, and the chain drops it.

The table is judged by what it does (`nftables`): a table whose drops were
turned into accepts is not "as meant", and deploy (and so the agent, which
hears nftables' changes) loads it again.

Neither stops a packet that forges a peer's source address: that needs the
underlay to refuse spoofing, or IPsec.  With ``encryption = "ipsec"``
(ipsec.py) the VXLAN port admits only what ESP brought from a peer (``meta
ipsec exists``), and a third chain keeps VXLAN to a peer from leaving without
ESP (``rt ipsec missing``): the door stays shut when charon is gone, not only
while its trap policies hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovsvx.errors import ApplyError
from ovsvx.host import netstack, nftables, preflight
from ovsvx.model.findings import DIFFERS, MISSING, OK, Finding
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Topology, routed_vni_bridge

TABLE = "ovsvx"
FAMILY = "inet"
CHAIN = "vxlan-in"
FORWARD_CHAIN = "overlay-forward"
OUT_CHAIN = "vxlan-out"  # encrypted overlays only
PRIORITY = -10  # before the usual filter chains (priority 0), so drops here are counted here


@dataclass(frozen=True)
class Rules:
    """The desired table of one host: UDP `port` from `peers` passes, from anyone else is dropped; what
    the host forwards leaves by one of `doors` (the bridge, the tunnel device) only when it came in by one."""

    port: int
    peers: tuple[str, ...]
    doors: tuple[str, ...]
    encrypted: bool = False  # VXLAN in and out only through ESP

    def _vxlan_chains(self) -> list[str]:
        """The VXLAN port's own chains: in, from the peers (through ESP when encrypted); out, when
        encrypted, never in clear."""
        through_esp = " meta ipsec exists" if self.encrypted else ""
        from_peer = "from a peer VTEP, through ESP" if self.encrypted else "from a peer VTEP"
        dropped = "in clear, or from anyone else" if self.encrypted else "from anyone else"
        lines = [
            f"    chain {CHAIN} {{",
            f"        type filter hook input priority {PRIORITY}; policy accept;",
            f'        udp dport {self.port} ip saddr @peers{through_esp} counter accept comment "{from_peer}"',
            f'        udp dport {self.port} counter drop comment "{dropped}"',
            "    }",
        ]
        if self.encrypted:
            lines += [
                f"    chain {OUT_CHAIN} {{",
                f"        type filter hook output priority {PRIORITY}; policy accept;",
                f'        udp dport {self.port} ip daddr @peers rt ipsec missing counter drop comment "never in clear"',
                "    }",
            ]
        return lines

    def script(self) -> str:
        """An `nft -f` script that replaces the table atomically (create, delete, define: one transaction)."""
        elements = ", ".join(self.peers)
        interval = ["        flags interval"] if any("/" in p for p in self.peers) else []
        doors = ", ".join(f'"{door}"' for door in self.doors)
        return "\n".join(
            [
                f"table {FAMILY} {TABLE} {{}}",
                f"delete table {FAMILY} {TABLE}",
                f"table {FAMILY} {TABLE} {{",
                '    comment "ovsvx: VXLAN only from the peer VTEPs; removed by ovsvx destroy"',
                "    set peers {",
                "        type ipv4_addr",
                *interval,
                f"        elements = {{ {elements} }}",
                "    }",
                *self._vxlan_chains(),
                f"    chain {FORWARD_CHAIN} {{",
                f"        type filter hook forward priority {PRIORITY}; policy accept;",
                f"        oifname {{ {doors} }} iifname != {{ {doors} }} counter drop"
                ' comment "into the overlay only from a workload or the tunnel"',
                "    }",
                "}",
                "",
            ]
        )


def rules(topology: Topology, host: Host) -> Rules:
    """The peers' VTEPs; under EVPN, where peers come and go by BGP, the whole underlay network: a host
    that joins must not need a rule changed on every other.  The doors: the host's bridge and its vxlan
    device, and EVPN's bridge of the routed VNI (ovs mode has only the bridge; a name of no device
    matches nothing)."""
    # sets in the order nft lists them (sorted), so what is read back compares equal
    doors = tuple(sorted((host.bridge, host.vxlan, *((routed_vni_bridge(topology),) if topology.evpn else ()))))
    if topology.evpn:
        return Rules(topology.port, (str(topology.underlay),), doors, topology.encrypted)
    peers = tuple(str(vtep) for vtep in sorted(p.vtep for p in topology.peers(host)))
    return Rules(topology.port, peers, doors, topology.encrypted)


def commands(topology: Topology, host: Host) -> list[str]:
    """The table as a person would load it by hand (for `ovsvx plan`)."""
    return ["nft -f - <<'EOF'", *rules(topology, host).script().splitlines(), "EOF"]


@dataclass(frozen=True)
class Counters:
    accepted: int
    dropped: int
    forward_dropped: int  # forwarded into the overlay from outside it (plain IP by another door)
    clear_dropped: int | None = None  # encrypted overlays: VXLAN to a peer that would have left without ESP


class Firewall:
    """The table at one site: inspect, apply, remove, and read its counters."""

    def __init__(self, site: Site, topology: Topology):
        self.site = site
        self.wanted = rules(topology, site.host)

    def _nft(self, *argv: str, script: str | None = None) -> str:
        preflight.require_tools("nft")
        args = ["nft", *argv] if script is None else ["nft", "-f", "-"]
        done = netstack.run(self.site.netns, args, stdin=script)
        if done.returncode != 0:
            raise ApplyError(
                f"{self.site.host.name}: nft {' '.join(argv) or '-f'} failed: "
                f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
            )
        return done.stdout

    def _reading(self) -> nftables.Reading | None:
        return nftables.read(self.site.netns, FAMILY, TABLE, self.wanted.script())

    def counters(self) -> Counters | None:
        """What the table counted, when it is there and does what the topology says (a changed table's
        counters count something else)."""
        found = self._reading()
        return _counters(found.counts, self.wanted.encrypted) if found and found.as_meant else None

    def inspect(self) -> Finding:
        what = f"nftables table {FAMILY} {TABLE} (udp {self.wanted.port} only from {', '.join(self.wanted.peers)})"
        found = self._reading()
        if found is None:
            return Finding(what, MISSING)
        if not found.as_meant:
            return Finding(what, DIFFERS, "its rules do not do what the topology says (changed by hand?)")
        counters = _counters(found.counts, self.wanted.encrypted)
        detail = (
            f"{counters.accepted} accepted, {counters.dropped} dropped; "
            f"{counters.forward_dropped} forwarded into the overlay from outside it dropped"
            + (f"; {counters.clear_dropped} kept from leaving in clear" if counters.clear_dropped is not None else "")
        )
        return Finding(what, OK, detail)

    def apply(self) -> list[str]:
        found = self._reading()
        if found is not None and found.as_meant:
            return []
        self._nft(script=self.wanted.script())
        again = "" if found is None else " (again: its rules had been changed)"
        return [
            f"{self.site.host.name}: nftables table {FAMILY} {TABLE}: udp {self.wanted.port} "
            f"only from {', '.join(self.wanted.peers)}{again}"
        ]

    def remove(self) -> list[str]:
        if nftables.listed(self.site.netns, FAMILY, TABLE) is None:
            return []
        self._nft("delete", "table", FAMILY, TABLE)
        return [f"{self.site.host.name}: - nftables table {FAMILY} {TABLE}"]


def _counters(counts: dict[str, list[int]], encrypted: bool) -> Counters:
    """The counters of a table as meant: two in the VXLAN chain, one forward, one out when encrypted."""
    (accepted, dropped), (forwarded,) = counts[CHAIN], counts[FORWARD_CHAIN]
    return Counters(accepted, dropped, forwarded, counts[OUT_CHAIN][0] if encrypted else None)
