"""TTL security (GTSM, RFC 5082) for the overlay's BGP: only a neighbour on the underlay's own link speaks.

A route reflector welcomes every address of the underlay (`bgp listen
range`), and TCP MD5 only helps where a password is set.  GTSM bounds who can
reach BGP at all: every BGP packet leaves with TTL 255, and a packet that
arrives with less has crossed a router, so it did not come from the underlay's
own link (where every VTEP and reflector is, by the topology's construction).

Each speaker does its part:

- FRR on a host: `neighbor RR ttl-security hops 1` (sends 255, takes only 255);
- os-ken's speaker on an ovs host knows no TTL: `evpnspeaker` sets both
  options on the sockets it dials with;
- FRR on a reflector sends 255 with the same line on its peer group, but does
  not hold the clients of a listen range to it (tried on FRR 8.4: a client
  sending TTL 64 got its session).  So a reflector's stack gets an nftables
  table of its own, `inet ovsvx-gtsm-ADDRESS`, that drops BGP to its address
  arriving with any other TTL, and counts it.  The table is judged by what
  it does (`nftables`): one whose drop was turned into an accept is loaded
  again by the reflector's next pass.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from ovsvx.errors import ApplyError
from ovsvx.host import netstack, nftables, preflight
from ovsvx.model.findings import DIFFERS, MISSING, OK, Finding

TTL = 255  # what every BGP packet leaves with, and the only TTL taken: one hop (RFC 5082)
BGP_PORT = 179
FAMILY = "inet"
CHAIN = "bgp-in"


def table(address: IPv4Address) -> str:
    """The reflector's table: one per address, so two reflectors on one machine keep theirs."""
    return f"ovsvx-gtsm-{address}"


def script(address: IPv4Address) -> str:
    """An `nft -f` script that replaces the table atomically: BGP to `address` from beyond one hop is dropped."""
    name = table(address)
    return "\n".join(
        [
            f"table {FAMILY} {name} {{}}",
            f"delete table {FAMILY} {name}",
            f"table {FAMILY} {name} {{",
            '    comment "ovsvx: BGP to the route reflector only from one hop away (GTSM); removed by ovsvx"',
            f"    chain {CHAIN} {{",
            "        type filter hook input priority -10; policy accept;",
            f"        ip daddr {address} tcp dport {BGP_PORT} ip ttl != {TTL} counter drop"
            ' comment "from beyond one hop"',
            "    }",
            "}",
            "",
        ]
    )


def _reading(netns: str | None, address: IPv4Address) -> nftables.Reading | None:
    """The reflector's table as found, judged by what it does (`nftables`); None when it is not there."""
    return nftables.read(netns, FAMILY, table(address), script(address))


def dropped(netns: str | None, address: IPv4Address) -> int | None:
    """BGP packets the table dropped (they came from beyond one hop); None when there is no table, or one
    that no longer does what it should (its counter counts something else)."""
    found = _reading(netns, address)
    if found is None or not found.as_meant:
        return None
    return found.counts[CHAIN][0]


def inspect(netns: str | None, address: IPv4Address) -> Finding:
    """Whether the reflector's guard is there and does what it should, with what it dropped."""
    what = f"nftables table {FAMILY} {table(address)} (BGP to {address} only with TTL {TTL})"
    found = _reading(netns, address)
    if found is None:
        return Finding(what, MISSING)
    if not found.as_meant:
        return Finding(what, DIFFERS, "its rule does not do what it should (changed by hand?)")
    return Finding(what, OK, f"{found.counts[CHAIN][0]} from beyond one hop dropped")


def apply(netns: str | None, address: IPv4Address) -> list[str]:
    """Guard the reflector at `address`; nothing when its table is there and does what it should."""
    preflight.require_tools("nft")
    found = _reading(netns, address)
    if found is not None and found.as_meant:
        return []
    done = netstack.run(netns, ["nft", "-f", "-"], stdin=script(address))
    if done.returncode != 0:
        raise ApplyError(f"nft: the GTSM table for {address} failed: {done.stderr.strip() or done.returncode}")
    again = "" if found is None else " (again: its rule had been changed)"
    return [f"+ nftables table {FAMILY} {table(address)}: BGP to {address} only with TTL {TTL} (one hop){again}"]


def remove(netns: str | None, address: IPv4Address) -> list[str]:
    if nftables.listed(netns, FAMILY, table(address)) is None:
        return []
    netstack.run(netns, ["nft", "delete", "table", FAMILY, table(address)])
    return [f"- nftables table {FAMILY} {table(address)}"]
