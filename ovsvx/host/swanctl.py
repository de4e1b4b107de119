"""What a host's charon is given, as pure values: the IKE connections to its peers (two CHILD_SAs
each, trap policies), the shared key as vici takes it, and the same as the swanctl.conf a person would
write (`ovsvx plan`).  Why these connections: `ipsec`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ovsvx.model.topology import Host, Topology

IKE_PROPOSAL = "aes128gcm16-prfsha256-x25519"
ESP_PROPOSAL = "aes128gcm16-x25519"  # topology.ESP_OVERHEAD is this cipher's
ELIDED = "<elided>"
EVPN_CONN = "ovsvx-evpn"


def conn_name(topology: Topology, peer: Host) -> str:
    """The connection that reaches `peer`: its own under static control; under EVPN the one for all."""
    return EVPN_CONN if topology.evpn else f"ovsvx-{peer.name}"


def child_names(topology: Topology, peer: Host) -> tuple[str, str]:
    """The CHILD_SAs that carry VXLAN to `peer` and from it."""
    who = "any" if topology.evpn else peer.name
    return f"to-{who}", f"from-{who}"


@dataclass(frozen=True)
class FarEnd:
    """What one connection reaches: the addresses IKE dials or answers, the selector of their VXLAN
    ("dynamic": the peer's own address), the identity asked of them, and the two CHILD_SAs' names."""

    conn: str
    addrs: str
    net: str
    identity: dict[str, str]
    children: tuple[str, str]


def far_ends(topology: Topology, host: Host) -> list[FarEnd]:
    """Each peer, by its VTEP, under static control; under EVPN, where the peers are whoever BGP
    announces, the whole underlay: its trap policies cover every VTEP, and charon dials the one the
    first packet is for (the acquire's destination), so IKE follows joins and leaves with nothing
    reloaded."""
    if topology.evpn:
        underlay = str(topology.underlay)
        return [FarEnd(EVPN_CONN, underlay, underlay, {}, child_names(topology, host))]
    return [
        FarEnd(conn_name(topology, p), str(p.vtep), "dynamic", {"id": str(p.vtep)}, child_names(topology, p))
        for p in topology.peers(host)
    ]


def connections(topology: Topology, host: Host) -> dict[str, dict[str, Any]]:
    """The IKE connections, as vici's load-conn takes them, each with its two CHILD_SAs."""
    auth = _auth(topology, host)
    return {far.conn: _conn(topology, host, auth, far) for far in far_ends(topology, host)}


def _conn(topology: Topology, host: Host, auth: dict[str, dict[str, Any]], far: FarEnd) -> dict[str, Any]:
    port = topology.port

    def child(local_ts: str, remote_ts: str) -> dict[str, Any]:
        return {
            "mode": "transport",
            "local_ts": [local_ts],
            "remote_ts": [remote_ts],
            "esp_proposals": [ESP_PROPOSAL],
            "start_action": "trap",
        }

    to, back = far.children
    return {
        "version": "2",
        "local_addrs": [str(host.vtep)],
        "remote_addrs": [far.addrs],
        "proposals": [IKE_PROPOSAL],
        "encap": "no",
        "mobike": "no",
        "dpd_delay": "10s",
        "local": {**auth["local"], "id": str(host.vtep)},
        "remote": {**auth["remote"], **far.identity},
        "children": {
            to: child("dynamic[udp]", f"{far.net}[udp/{port}]"),
            back: child(f"dynamic[udp/{port}]", f"{far.net}[udp]"),
        },
    }


def _auth(topology: Topology, host: Host) -> dict[str, dict[str, Any]]:
    """How each side proves itself: the key both know, or a certificate naming its VTEP (the identity
    each side asks of the other), checked against the CA.  Certificates by path: `load` sends their
    contents."""
    assert topology.ipsec is not None
    ipsec = topology.ipsec
    if not ipsec.certificates:
        return {"local": {"auth": "psk"}, "remote": {"auth": "psk"}}
    assert ipsec.cert is not None and ipsec.ca is not None
    return {
        "local": {"auth": "pubkey", "certs": [str(ipsec.of(ipsec.cert, host.name))]},
        "remote": {"auth": "pubkey", "cacerts": [str(ipsec.ca)]},
    }


def shared_key(topology: Topology, host: Host, secret: str) -> dict[str, Any]:
    """The key as vici's load-shared takes it: one for this host and all its peers (under EVPN, whoever
    proves they have it)."""
    if topology.evpn:
        return {"id": "ovsvx", "type": "IKE", "data": secret}
    owners = [str(host.vtep), *(str(peer.vtep) for peer in topology.peers(host))]
    return {"id": "ovsvx", "type": "IKE", "data": secret, "owners": owners}


def swanctl_conf(topology: Topology, host: Host) -> str:
    """What is loaded, as the swanctl.conf a person would write for it; the key elided (a certificate's
    private key is not in swanctl.conf at all: swanctl reads it from its private/ folder)."""
    assert topology.ipsec is not None
    lines = _section("connections", connections(topology, host))
    if topology.ipsec.certificates:
        return "\n".join(lines)
    owners = shared_key(topology, host, ELIDED).get("owners", [])
    secrets = {f"id-{i}": owner for i, owner in enumerate(owners, 1)}
    secrets["secret"] = f"{ELIDED} (from {topology.ipsec.psk_file})"
    return "\n".join(lines + _section("secrets", {"ike-ovsvx": secrets}))


def _section(name: str, body: dict[str, Any], depth: int = 0) -> list[str]:
    pad = "    " * depth
    lines = [f"{pad}{name} {{"]
    for key, value in body.items():
        if isinstance(value, dict):
            lines += _section(key, value, depth + 1)
        else:
            lines.append(f"{pad}    {key} = {', '.join(value) if isinstance(value, list) else value}")
    return [*lines, f"{pad}}}"]


def commands(topology: Topology, host: Host) -> list[str]:
    """The encryption as a person would set it up by hand (for `ovsvx plan`)."""
    if not topology.encrypted:
        return []
    assert topology.ipsec is not None
    ipsec = topology.ipsec
    conf = "/etc/swanctl/conf.d/ovsvx.conf"
    key = [f"install -m 600 {ipsec.of(ipsec.key, host.name)} /etc/swanctl/private/"] if ipsec.key else []
    return [*key, f"cat > {conf} <<'EOF'", *swanctl_conf(topology, host).splitlines(), "EOF", "swanctl --load-all"]
