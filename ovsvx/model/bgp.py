"""What a host's BGP EVPN speaker knows, in one shape for both modes: its sessions, the EVPN routes it
holds and those it refused.  FRR's bgpd tells it in kernel mode, the controller's speaker in ovs mode;
`status`, `metrics`, `graph`, a lab's convergence and ovs mode's flows all read this one value."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

ESTABLISHED = "Established"
SHOWN_REFUSED = 10  # status lists this many refused routes, and counts the rest


@dataclass(frozen=True)
class Session:
    peer: str
    state: str  # BGP's FSM state: Established, Active, Connect, ... (the speaker says Established or Down)
    uptime: str  # "00:01:02", or how long it has been down
    received: int  # EVPN prefixes received

    @property
    def up(self) -> bool:
        return self.state == ESTABLISHED


@dataclass(frozen=True)
class EvpnRoute:
    """A route as bgpd's EVPN table holds it: type 5 (a subnet) with its next hop (the VTEP) and router MAC."""

    type: int
    prefix: str  # "192.168.2.0/24" for type 5; "10.33.30.151" (the originator) for type 3
    vtep: str
    router_mac: str
    origin: str  # "local", or the router id of the host that sent it

    def describe(self) -> str:
        what = f"type-{self.type} route of {self.prefix}"
        return what + (f" (router MAC {self.router_mac})" if self.router_mac else "")

    @property
    def received(self) -> bool:
        return self.origin != "local"


@dataclass(frozen=True)
class Refused:
    """A route announced to the host and not taken, with why (`routepolicy`)."""

    prefix: str
    vtep: str
    why: str


@dataclass(frozen=True)
class BgpView:
    answering: bool  # False: the speaker does not answer (the lists are then empty)
    sessions: list[Session] = field(default_factory=list)
    routes: list[EvpnRoute] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    unlisted: int = 0  # refused beyond what the speaker keeps a record of (a flood of routes)

    @property
    def refused_count(self) -> int:
        return len(self.refused) + self.unlisted

    @property
    def received(self) -> list[EvpnRoute]:
        return [r for r in self.routes if r.received]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> dict[str, str]:
        """Status's text lines."""
        if not self.answering:
            return {"bgp": "bgp speaker does not answer"}
        sessions = "; ".join(
            f"{s.peer} {s.state} ({'up' if s.up else 'down'} {s.uptime}), {s.received} received" for s in self.sessions
        )
        received = ", ".join(f"{r.prefix} via {r.vtep}" for r in self.received)
        refused = "; ".join(f"{r.prefix} via {r.vtep}: {r.why}" for r in self.refused[:SHOWN_REFUSED])
        more = self.refused_count - min(len(self.refused), SHOWN_REFUSED)
        return {
            "bgp": sessions or "no sessions",
            "evpn routes": f"{len(self.received)} received: {received or '-'}",
            "evpn routes refused": f"{self.refused_count}"
            + (f": {refused}" if refused else "")
            + (f"; and {more} more" if more else ""),
        }
