"""One host's charon (strongSwan's IKE daemon), run by ovsvx: its folder and strongswan.conf, starting
and stopping it, a vici session with it, giving it the host's connections, and reading back what it
knows (each peer's SAs, and from its log why a peer is down)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovsvx import waits
from ovsvx.errors import ApplyError, PreconditionError
from ovsvx.host import netstack, systemd
from ovsvx.host.credentials import Credentials
from ovsvx.host.processes import running_pid, serving, site_dir, stop_pid
from ovsvx.host.record import Deployment
from ovsvx.host.swanctl import child_names, conn_name, connections, shared_key
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
START_WAIT_S = 15.0
INSTALL = "apt-get install charon-systemd strongswan-swanctl libstrongswan-standard-plugins (scripts/setup does)"


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
