"""What FRR's zebra and bgpd are given for EVPN, computed by pure functions from the topology.

A host's (`host_config`) names only the host itself and the route reflectors,
never another host, so a host joins or leaves without any other host's
configuration changing.  A route reflector's (`reflector_config`) accepts any
VTEP of the underlay (`bgp listen range`), for the same reason.

What a host advertises, and why (docs/guide/evpn.md): the VNI is
EVPN's *routed* VNI (symmetric IRB, RFC 9135) in the default VRF, and each
host sends one type-5 route (RFC 9136) for its subnet, whose next hop is its
VTEP and whose Router's MAC community is the MAC of its vxlan address.  zebra
turns each received route into the tutorial's three pieces: a route to the
subnet through the routed VNI's bridge, a neighbour entry giving the router
MAC, and a forwarding entry sending that MAC to the VTEP.  Traffic is routed
at both ends, as in static mode (TTL 62 between namespaces).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network
from pathlib import Path

from ovsvx.model import routepolicy
from ovsvx.model.topology import Bgp, Host, Topology

FRR_BIN = Path("/usr/lib/frr")
# BGP timers: keepalive and hold time (FRR's datacenter profile), and how soon a host retries a route
# reflector it lost.  A host that vanishes without a word is forgotten within the hold time.
KEEPALIVE_S, HOLD_S, CONNECT_RETRY_S = 3, 9, 2
MAX_PREFIX_RESTART_MIN = 1  # a reflector tries a client that sent too many routes again after this (minutes)


# --- the sessions' password ---------------------------------------------------------------

#: What `plan` prints instead of the password.
HIDDEN = "<bgp.password_file>"


# --- configuration (pure) ----------------------------------------------------------------


def _router(topology: Topology, name: str, router_id: str) -> list[str]:
    """The start of a bgpd configuration: FRR's datacenter defaults (first, as FRR wants them), the
    name, and the router in the overlay's AS."""
    assert topology.bgp is not None
    return [
        "frr defaults datacenter",
        f"hostname {name}",
        f"router bgp {topology.bgp.asn}",
        f" bgp router-id {router_id}",
        " no bgp default ipv4-unicast",
        f" timers bgp {KEEPALIVE_S} {HOLD_S}",
    ]


def host_config(
    topology: Topology, host: Host, secret: str | None = None, foreign: Sequence[IPv4Network] = ()
) -> dict[str, str]:
    """zebra's and bgpd's configuration for `host`: the routed VNI, and one iBGP session per reflector
    (with `secret`, the sessions' TCP MD5 password).  `foreign`: the host's routes that ovsvx and FRR did
    not make, which no overlay route may shadow or cover."""
    assert topology.bgp is not None
    zebra = [f"hostname {host.name}", "vrf default", f" vni {topology.vni}", "exit-vrf"]
    # only what an overlay route can be reaches the kernel
    zebra += routepolicy.frr_policy(topology, host, routepolicy.in_range(topology, foreign))
    bgpd = _router(topology, host.name, str(host.vtep))
    for rr in topology.bgp.route_reflectors:
        bgpd += [
            f" neighbor {rr} remote-as {topology.bgp.asn}",
            f" neighbor {rr} description route reflector",
            f" neighbor {rr} update-source {host.vtep}",
            f" neighbor {rr} timers connect {CONNECT_RETRY_S}",
            f" neighbor {rr} ttl-security hops 1",  # GTSM: the reflector is on the underlay's link
        ]
        bgpd += [f" neighbor {rr} password {secret}"] if secret is not None else []
    bgpd += [" address-family ipv4 unicast", f"  network {host.subnet}", " exit-address-family"]
    bgpd += [" address-family l2vpn evpn"]
    for rr in topology.bgp.route_reflectors:
        bgpd += [f"  neighbor {rr} activate"]
    bgpd += ["  advertise-all-vni", "  advertise ipv4 unicast", " exit-address-family", "exit"]
    return {"zebra": _text(zebra), "bgpd": _text(bgpd)}


def reflector_config(topology: Topology, address: str, secret: str | None = None) -> dict[str, str]:
    """bgpd's configuration for a route reflector: every VTEP of the underlay is welcome as a client.

    A host forgets the routes of a reflector it loses: FRR keeps no EVPN route
    through a peer's graceful restart (FRRouting/frr#9749; docs/guide/evpn.md),
    so the reflector asks for none."""
    return {
        "bgpd": _text(
            [
                *_router(topology, f"rr-{address}", address),
                " neighbor vteps peer-group",
                f" neighbor vteps remote-as {_asn(topology)}",
                f" bgp listen range {topology.underlay} peer-group vteps",
                " neighbor vteps ttl-security hops 1",  # sends TTL 255; `gtsm`'s table holds the clients to it
                " bgp listen limit 5000",
                *([f" neighbor vteps password {secret}"] if secret is not None else []),
                " address-family l2vpn evpn",
                "  neighbor vteps activate",
                "  neighbor vteps route-reflector-client",
                # a client that announces more loses its session, tried again after a minute (`routepolicy`)
                f"  neighbor vteps maximum-prefix {bgp_of(topology).max_prefixes} restart {MAX_PREFIX_RESTART_MIN}",
                " exit-address-family",
            ]
        )
    }


def bgp_of(topology: Topology) -> Bgp:
    assert topology.bgp is not None
    return topology.bgp


def _asn(topology: Topology) -> int:
    return bgp_of(topology).asn


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def render(home_hint: str, configs: dict[str, str]) -> list[str]:
    """The configuration as the commands a person would type: each file, then its daemon."""
    lines = []
    for daemon, text in configs.items():
        path = f"{home_hint}/{daemon}.conf"
        lines += [f"cat > {path} <<'EOF'", *text.splitlines(), "EOF"]
    for daemon in configs:
        lines.append(f"{FRR_BIN}/{daemon} -d -f {home_hint}/{daemon}.conf")
    return lines
