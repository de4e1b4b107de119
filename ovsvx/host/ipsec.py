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

import contextlib
import errno
import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovsvx import waits
from ovsvx.errors import ApplyError, PreconditionError, TopologyError
from ovsvx.host import netstack, secretfile, systemd
from ovsvx.host.processes import running_pid, serving, site_dir, stop_pid
from ovsvx.host.record import Deployment
from ovsvx.model.findings import MISSING, OK, Finding
from ovsvx.model.site import Site
from ovsvx.model.topology import Host, Topology

CHARON = Path("/usr/sbin/charon-systemd")
MARKER = "charon-systemd"
#: The plugins charon loads: randomness and nonces, AES-GCM and SHA-2 for IKE (openssl adds X25519),
#: the key derivation (kdf, a plugin of its own since 5.9.8), netlink to the kernel's xfrm, IKE's sockets
#: and vici.
PLUGINS = (
    "random nonce aes sha1 sha2 hmac kdf gcm openssl pem pkcs1 pkcs8 x509 pubkey kernel-netlink socket-default vici"
)
IKE_PROPOSAL = "aes128gcm16-prfsha256-x25519"
ESP_PROPOSAL = "aes128gcm16-x25519"  # topology.ESP_OVERHEAD is this cipher's
#: A pre-shared key shorter than this is refused: IKEv2 with a PSK is only as strong as the key.
PSK_MIN_CHARS = 16
START_WAIT_S = 15.0
ELIDED = "<elided>"
NOT_PLAIN = "not a plain file (a link or a folder is not followed)"
INSTALL = "apt-get install charon-systemd strongswan-swanctl libstrongswan-standard-plugins (scripts/setup does)"


# --- what charon is given: pure values ----------------------------------------------------------


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


# --- the credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """What one host proves itself with, read from its files: the pre-shared key, or its certificate and
    key and the CA's certificate (PEM).  Never shown: only `load` sends it, to charon."""

    secret: str = field(default="", repr=False)
    cert: bytes = b""
    key: bytes = field(default=b"", repr=False)
    ca: bytes = b""


def read_credentials(topology: Topology, host: Host) -> Credentials:
    """The host's credentials; a file that cannot serve is refused, naming the field and file, never what
    it holds.  Key files must be root's and closed to others."""
    assert topology.ipsec is not None
    read = {name: _read(name, path, secret) for name, path, secret in topology.ipsec.files(host.name)}
    if "psk_file" not in read:
        return Credentials(cert=read["cert"], key=read["key"], ca=read["ca"])
    secret = read["psk_file"].decode("utf-8", errors="replace").strip()
    if len(secret) < PSK_MIN_CHARS:
        raise TopologyError(
            f"ipsec.psk_file: {topology.ipsec.psk_file}: the key is shorter than {PSK_MIN_CHARS} characters "
            "(make one with `head -c 32 /dev/urandom | base64 > FILE`)"
        )
    return Credentials(secret=secret)


def _read(name: str, path: Path, secret: bool = False) -> bytes:
    data, problem = _checked(path, secret)
    if problem:
        raise TopologyError(f"ipsec.{name}: {path}: {problem}")
    return data


def file_problem(path: Path, secret: bool = True) -> str:
    """Why `path` cannot serve ("" when it can): missing, not a plain file, or (a secret) open to others."""
    return _checked(path, secret)[1]


def _checked(path: Path, secret: bool) -> tuple[bytes, str]:
    """The file's content and "", or no content and why it cannot serve (secretfile reads it once)."""
    try:
        opened = secretfile.open_file(path)
    except OSError as err:
        return b"", NOT_PLAIN if err.errno == errno.ELOOP else f"cannot read: {err.strerror}"
    if not opened.regular:
        return b"", NOT_PLAIN
    if secret and not opened.roots_alone:
        return b"", (
            f"must be root's and closed to others (owner uid {opened.uid}, mode {opened.mode:04o}):"
            " chown root and chmod 600 it"
        )
    return opened.data, ""


# --- charon, one per host -----------------------------------------------------------------------


@dataclass(frozen=True)
class CharonHome:
    """Where one host's charon lives: its strongswan.conf, control socket, pid, log and what it was given."""

    folder: Path
    netns: str | None
    host: str

    @property
    def conf(self) -> Path:
        return self.folder / "strongswan.conf"

    @property
    def vici(self) -> Path:
        return self.folder / "charon.vici"

    @property
    def pidfile(self) -> Path:
        return self.folder / "charon.pid"

    @property
    def log(self) -> Path:
        return self.folder / "charon.log"

    @property
    def loaded(self) -> Path:
        """The charon pid and a digest of what it was given: loaded again only when either changes."""
        return self.folder / "loaded.json"


def home(deployment: Deployment, site: Site) -> CharonHome:
    return CharonHome(site_dir(deployment, site) / "strongswan", site.netns, site.host.name)


def strongswan_conf(home: CharonHome) -> str:
    """charon's own configuration: only its plugins, its socket and its log (each line with the IKE_SA's
    name, so `status` can tell why a peer is down)."""
    return "\n".join(
        [
            "# ovsvx: this host's charon; written by ovsvx deploy, removed by ovsvx destroy",
            "charon-systemd {",
            f"    load = {PLUGINS}",
            "    install_routes = no",
            f"    plugins {{ vici {{ socket = unix://{home.vici} }} }}",
            "    journal { default = -1 }",
            "    filelog {",
            "        log {",
            f"            path = {home.log}",
            "            default = 1",
            "            ike_name = yes",
            "            flush_line = yes",
            "            time_format = %F %T",
            "        }",
            "    }",
            "}",
            "",
        ]
    )


def installed() -> bool:
    return CHARON.exists()


def require_installed() -> None:
    if not installed():
        raise PreconditionError(f'encryption = "ipsec" needs strongSwan (no {CHARON}): {INSTALL}')


def charon_pid(home: CharonHome) -> int | None:
    return running_pid(home.pidfile, MARKER)


def start(home: CharonHome) -> bool:
    """Start the host's charon unless it runs; True if it was started.  On a real host under ovsvx's unit
    it is a service of its own (`systemd.start_service`), else a process in the host's namespace."""
    if charon_pid(home) is not None:
        return False
    require_installed()
    home.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    home.conf.write_text(strongswan_conf(home))
    home.vici.unlink(missing_ok=True)
    home.loaded.unlink(missing_ok=True)
    env = (("STRONGSWAN_CONF", str(home.conf)),)
    if systemd.daemons_are_units(home.netns):
        pid = systemd.start_service(f"ovsvx-{home.host}-charon", [str(CHARON)], f"charon of ovsvx's {home.host}", env)
    else:
        pid = netstack.popen(
            home.netns,
            [str(CHARON)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **dict(env)},
        ).pid
    home.pidfile.write_text(f"{pid}\n")
    if not waits.until(lambda: serving(home.vici), START_WAIT_S):
        raise ApplyError(
            f"charon did not start (no {home.vici} after {waits.scaled(START_WAIT_S):g} s); see {home.log}"
        )
    return True


def stop(home: CharonHome) -> bool:
    """Stop charon: on SIGTERM it deletes its SAs and policies, telling each peer."""
    return stop_pid(home.pidfile, MARKER)


@contextlib.contextmanager
def session(home: CharonHome) -> Iterator[Any]:
    """A vici session with the host's charon."""
    import vici  # strongSwan's client; imported here, as only an encrypted overlay needs it
    from vici.exception import CommandException, SessionException

    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(waits.scaled(10.0))
    try:
        sock.connect(str(home.vici))
        yield vici.Session(sock)
    except (OSError, SessionException, CommandException) as err:
        raise ApplyError(f"{home.host}: charon ({home.vici}): {err}") from None
    finally:
        sock.close()


def given(home: CharonHome) -> bool:
    """Whether the charon running now has been given ovsvx's connections (by this pid): a charon that has
    not is new, and whatever SAs and policies the kernel holds for its peers are a dead charon's."""
    try:
        pid: object = json.loads(home.loaded.read_text()).get("pid")
    except (OSError, ValueError, AttributeError):
        return False
    return pid == charon_pid(home)


def load(home: CharonHome, topology: Topology, host: Host, credentials: Credentials) -> bool:
    """Give charon the host's connections and credentials, and drop connections of peers that left; then
    start IKE with each peer rather than wait for the first packet.  True if anything was loaded."""
    wanted = connections(topology, host)
    given = json.dumps(
        [wanted, credentials.secret, *(b.hex() for b in (credentials.cert, credentials.key, credentials.ca))]
    )
    digest = hashlib.sha256(given.encode()).hexdigest()
    pid = charon_pid(home)
    if home.loaded.exists() and json.loads(home.loaded.read_text()) == {"pid": pid, "digest": digest}:
        return False
    with session(home) as vici:
        for name in _loaded_conns(vici) - set(wanted):
            vici.unload_conn({"name": name})
            _terminate(vici, name)
        if credentials.secret:
            vici.load_shared(shared_key(topology, host, credentials.secret))
        else:
            vici.load_key({"type": "any", "data": credentials.key})
            vici.load_cert({"type": "X509", "flag": "CA", "data": credentials.ca})
        for name, conn in wanted.items():
            vici.load_conn({name: _with_contents(conn, credentials)})
        for peer in [] if topology.evpn else topology.peers(host):  # under EVPN the first packet starts IKE
            # one side of each pair starts IKE, so the two do not make an IKE SA each; the other's traps
            # start it when the first side is down.  -1: return at once (status shows how it went)
            if host.vtep < peer.vtep:
                for child in child_names(topology, peer):
                    list(vici.initiate({"ike": conn_name(topology, peer), "child": child, "timeout": -1}))
    fd = os.open(home.loaded, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"pid": pid, "digest": digest}, out)
    return True


def _with_contents(conn: dict[str, Any], credentials: Credentials) -> dict[str, Any]:
    """A connection as vici takes it: certificates as their contents, not their paths (charon may run
    where the paths mean nothing, and reads no file of ours)."""
    if not credentials.cert:
        return conn
    local = {**conn["local"], "certs": [credentials.cert]}
    remote = {**conn["remote"], "cacerts": [credentials.ca]}
    return {**conn, "local": local, "remote": remote}


def _loaded_conns(vici: Any) -> set[str]:
    names: set[str] = set()
    for conn in vici.list_conns():
        names.update(name for name in conn if name.startswith("ovsvx-"))
    return names


def _terminate(vici: Any, name: str) -> None:
    with contextlib.suppress(Exception):  # nothing to terminate is not an error
        list(vici.terminate({"ike": name, "force": "yes", "timeout": -1}))


# --- what charon knows ----------------------------------------------------------------------------

UP, CONNECTING, DOWN = "up", "connecting", "down"


@dataclass(frozen=True)
class PeerSa:
    """One peer's SAs, as status shows them."""

    peer: str
    vtep: str
    state: str  # up | connecting | down
    age_s: int | None  # since the IKE SA was established
    detail: str  # the child SAs up, or why not

    def describe(self) -> str:
        age = f" for {self.age_s} s" if self.age_s is not None else ""
        return f"{self.state}{age}" + (f": {self.detail}" if self.detail else "")


def _sas_with(listed: list[tuple[str, dict[str, Any]]], peer: Host) -> list[dict[str, Any]]:
    """ovsvx's IKE SAs whose other end is `peer`'s VTEP (under EVPN one connection serves every peer)."""
    return [sa for name, sa in listed if name.startswith("ovsvx-") and sa.get("remote-host") == str(peer.vtep).encode()]


def _listed(home: CharonHome) -> list[tuple[str, dict[str, Any]]]:
    with session(home) as vici:
        return [sa for entry in vici.list_sas() for sa in entry.items()]


def _installed(sas: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The installed CHILD_SAs of established IKE SAs, by child name."""
    return {
        child["name"].decode(): child
        for sa in sas
        if sa["state"] == b"ESTABLISHED"
        for child in sa.get("child-sas", {}).values()
        if child.get("state") == b"INSTALLED"
    }


def peer_sas(home: CharonHome, topology: Topology, host: Host) -> list[PeerSa]:
    """Each peer's IKE SA and CHILD_SAs, from charon; `down` says why when charon's log does.  Under
    EVPN a peer's SAs come with its first packet: down means no traffic yet, or no way through."""
    listed = _listed(home)
    found = []
    for peer in topology.peers(host):
        mine = _sas_with(listed, peer)
        installed = _installed(mine)
        both = set(child_names(topology, peer))
        if both <= set(installed):
            age = max(int(sa.get("established", b"0")) for sa in mine if sa["state"] == b"ESTABLISHED")
            found.append(PeerSa(peer.name, str(peer.vtep), UP, age, f"ESP both ways ({', '.join(sorted(both))})"))
        elif mine:
            missing = ", ".join(sorted(both - set(installed)))
            found.append(PeerSa(peer.name, str(peer.vtep), CONNECTING, None, f"waiting for {missing}"))
        else:
            found.append(PeerSa(peer.name, str(peer.vtep), DOWN, None, why_down(home, topology, peer)))
    return found


def out_spi(home: CharonHome, topology: Topology, peer: Host) -> str | None:
    """The SPI of the SA that encrypts VXLAN to `peer` now (its to-PEER CHILD_SA), None without one."""
    child = _installed(_sas_with(_listed(home), peer)).get(child_names(topology, peer)[0])
    return f"0x{child['spi-out'].decode()}" if child else None


#: What charon's log says when IKE with a peer fails, and what that means to a person.
FAILURES = (
    ("AUTHENTICATION_FAILED", "authentication failed: the two hosts' keys differ"),
    ("MAC mismatched", "authentication failed: the two hosts' keys differ"),
    ("NO_PROPOSAL_CHOSEN", "no proposal in common"),
    ("giving up after", "the peer does not answer IKE"),
    ("establishing IKE_SA failed", "the peer does not answer IKE"),
)
LOG_TAIL_BYTES = 65536


def why_down(home: CharonHome, topology: Topology, peer: Host) -> str:
    """The latest failure charon logged for `peer` (its lines carry the connection's name, or the peer's
    address before a connection is chosen; under EVPN, where one connection serves all, only the
    address), else that nothing was tried yet."""
    try:
        with open(home.log, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return "no IKE SA"
    marks = (str(peer.vtep),) if topology.evpn else (f"<{conn_name(topology, peer)}|", str(peer.vtep))
    for line in reversed(lines):
        if any(mark in line for mark in marks):
            for pattern, meaning in FAILURES:
                if pattern in line:
                    return meaning
    return "no IKE SA"


# --- one host ---------------------------------------------------------------------------------------


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
