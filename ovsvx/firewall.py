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

Neither stops a packet that forges a peer's source address: that needs the
underlay to refuse spoofing (or IPsec), which is outside ovsvx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ovsvx import netstack, preflight
from ovsvx.errors import ApplyError
from ovsvx.findings import DIFFERS, MISSING, OK, Finding
from ovsvx.site import Site
from ovsvx.topology import Host, Topology

TABLE = "ovsvx"
FAMILY = "inet"
CHAIN = "vxlan-in"
PRIORITY = -10  # before the usual filter chains (priority 0), so drops here are counted here


@dataclass(frozen=True)
class Rules:
    """The desired table of one host: UDP `port` from `peers` passes, from anyone else is dropped."""

    port: int
    peers: tuple[str, ...]

    def script(self) -> str:
        """An `nft -f` script that replaces the table atomically (create, delete, define: one transaction)."""
        elements = ", ".join(self.peers)
        interval = ["        flags interval"] if any("/" in p for p in self.peers) else []
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
                f"    chain {CHAIN} {{",
                f"        type filter hook input priority {PRIORITY}; policy accept;",
                f'        udp dport {self.port} ip saddr @peers counter accept comment "from a peer VTEP"',
                f'        udp dport {self.port} counter drop comment "from anyone else"',
                "    }",
                "}",
                "",
            ]
        )


def rules(topology: Topology, host: Host) -> Rules:
    """The peers' VTEPs; under EVPN, where peers come and go by BGP, the whole underlay network: a host
    that joins must not need a rule changed on every other."""
    if topology.evpn:
        return Rules(topology.port, (str(topology.underlay),))
    return Rules(topology.port, tuple(str(p.vtep) for p in topology.peers(host)))


def _element(item: Any) -> str | None:
    """A set element from `nft -j`: an address as text, a prefix as {"prefix": {"addr", "len"}}."""
    if isinstance(item, str):
        return item
    prefix = item.get("prefix") if isinstance(item, dict) else None
    return f"{prefix['addr']}/{prefix['len']}" if isinstance(prefix, dict) else None


def commands(topology: Topology, host: Host) -> list[str]:
    """The table as a person would load it by hand (for `ovsvx plan`)."""
    return ["nft -f - <<'EOF'", *rules(topology, host).script().splitlines(), "EOF"]


@dataclass(frozen=True)
class Counters:
    accepted: int
    dropped: int


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

    def _table(self) -> list[dict[str, Any]] | None:
        """The table's objects from `nft -j`, or None when there is no such table."""
        done = netstack.run(self.site.netns, ["nft", "-j", "list", "table", FAMILY, TABLE])
        if done.returncode != 0:
            return None
        return [item for item in json.loads(done.stdout).get("nftables", []) if "metainfo" not in item]

    def installed(self) -> tuple[Rules, Counters | None] | None:
        """The rules the table holds, read back in the shape they were written, with their counters;
        None when there is no table (one `nft -j` listing for both)."""
        table = self._table()
        if table is None:
            return None
        peers: tuple[str, ...] = ()
        ports = set()
        counts = []
        rules_count = 0
        for item in table:
            if "set" in item and item["set"]["name"] == "peers":
                peers = tuple(e for e in map(_element, item["set"].get("elem", [])) if e is not None)
            if "rule" in item:
                rules_count += 1
                expressions = item["rule"]["expr"]
                ports |= {
                    m["match"]["right"]
                    for m in expressions
                    if "match" in m and m["match"]["left"].get("payload", {}).get("field") == "dport"
                }
                counts += [e["counter"]["packets"] for e in expressions if "counter" in e]
        shape_ok = rules_count == 2 and len(ports) == 1
        return Rules(ports.pop() if shape_ok else -1, peers), Counters(*counts) if len(counts) == 2 else None

    def counters(self) -> Counters | None:
        """Packets to the VXLAN port accepted from peers and dropped from anyone else."""
        found = self.installed()
        return found[1] if found else None

    def inspect(self) -> Finding:
        what = f"nftables table {FAMILY} {TABLE} (udp {self.wanted.port} only from {', '.join(self.wanted.peers)})"
        found = self.installed()
        if found is None:
            return Finding(what, MISSING)
        rules_found, counters = found
        if rules_found != self.wanted:
            return Finding(what, DIFFERS, "rules differ from the topology's")
        detail = f"{counters.accepted} accepted, {counters.dropped} dropped" if counters else ""
        return Finding(what, OK, detail)

    def apply(self) -> list[str]:
        found = self.installed()
        if found is not None and found[0] == self.wanted:
            return []
        self._nft(script=self.wanted.script())
        return [
            f"{self.site.host.name}: nftables table {FAMILY} {TABLE}: udp {self.wanted.port} "
            f"only from {', '.join(self.wanted.peers)}"
        ]

    def remove(self) -> list[str]:
        if self._table() is None:
            return []
        self._nft("delete", "table", FAMILY, TABLE)
        return [f"{self.site.host.name}: - nftables table {FAMILY} {TABLE}"]
