"""The overlay encrypted (encryption = "ipsec", ipsec.py), where the kernel has ESP.

Our build machines' kernel has no ESP (xfrm's esp4), Debian's stock kernel has: `scripts/test` runs
these in the guest (scripts/vm/guest), and elsewhere they skip, saying why.  Two labs: kernel mode, and
one host of each mode (host1, which the tests strike, in ovs mode on OVS's kernel datapath).  Each
is checked as a user would: verify (TTL 62 across, the full-size DF ping), `status` (each peer's SA
up), a capture on the underlay (ESP, never UDP 4789 in clear), a stranger forging the peer's address
(nothing gets in), charon stopped (nothing leaves in clear; deploy repairs), a peer with another key
(unreachable, and `status` says why; the last test of each lab), and destroy (no charon, no
namespace left).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from ovsvx import waits
from ovsvx.deploy import lab
from ovsvx.host import charon, netstack, record, swanctl
from ovsvx.host.firewall import Counters, Firewall
from ovsvx.host.record import Kind
from ovsvx.model import generated, reader, topology, writer
from ovsvx.model.site import Site
from tests.conftest import TEST_PREFIX, leftover_netns, need_lab, run_ovsvx
from tests.lab.helpers import failed, status
from tests.lab.intruders import INTRUDER_ADDRESS, Listener, inject

pytestmark = pytest.mark.lab

# host1 is the host each test strikes: in kernel mode, then in ovs mode on the kernel datapath beside a
# kernel-mode host2 (an ovs host's xfrm path is the same whatever its peer runs).  Ids: -k "not kernel]"
# (scripts/test's guest selection) keeps both.
MODES = {"kernel-mode": "kernel", "mixed": "host1=ovs,host2=kernel"}
KEY = "ovsvx-test-key-" + os.urandom(12).hex()
HOST1, HOST2 = reader.default().hosts


def esp_missing() -> str:
    """Why this kernel cannot do ESP ("" when it can): an SA tried in a namespace of our own."""
    scratch = f"{TEST_PREFIX}esp-probe"
    netstack.create_netns(scratch)
    try:
        key = "0x" + "11" * 20
        argv = ["ip", "xfrm", "state", "add", "src", "10.0.0.1", "dst", "10.0.0.2", "proto", "esp", "spi", "0x100"]
        argv += ["mode", "transport", "aead", "rfc4106(gcm(aes))", key, "128"]
        done = netstack.run(scratch, argv)
    finally:
        netstack.remove_netns(scratch)
    return "" if done.returncode == 0 else done.stderr.strip()


@dataclass(frozen=True)
class Lab:
    prefix: str
    topology: topology.Topology
    path: Path  # its topology file


@pytest.fixture(scope="module")
def encrypted_topology(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, topology.Topology]:
    need_lab()
    why = esp_missing()
    if why:
        if os.environ.get("OVSVX_IN_GUEST"):
            pytest.fail(f"the guest's kernel has no ESP: {why}")
        pytest.skip(f"this kernel has no ESP ({why}): run it with scripts/vm/guest")
    folder = tmp_path_factory.mktemp("ipsec")
    psk = folder / "ipsec.psk"
    with os.fdopen(os.open(psk, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
        out.write(KEY + "\n")
    encrypted = replace(reader.default(), encryption=topology.Encryption.IPSEC, ipsec=topology.Ipsec(psk))
    path = folder / "ipsec.toml"
    path.write_text(writer.to_toml(encrypted))
    return path, encrypted


@pytest.fixture(scope="module", params=list(MODES))
def encrypted_lab(request: pytest.FixtureRequest, encrypted_topology: tuple[Path, topology.Topology]) -> Iterator[Lab]:
    path, encrypted = encrypted_topology
    prefix = f"{TEST_PREFIX}ip{request.param[0]}-"
    run_ovsvx("deploy", "--prefix", prefix, "--mode", MODES[request.param], "-t", str(path))
    try:
        yield Lab(prefix, encrypted, path)
    finally:
        run_ovsvx("destroy", "--prefix", prefix, check=False)
        assert not [n for n in leftover_netns() if n.startswith(prefix)]
        assert not charons_of(prefix), "destroy left charon running"


def charons_of(prefix: str) -> list[int]:
    """Every charon started for the lab: its environment names the lab's strongswan.conf."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if charon.MARKER.encode() in cmdline and f"lab-{prefix}/".encode() in environ:
            found.append(int(entry.name))
    return found


def sa_findings(prefix: str, host: str) -> dict[str, dict[str, Any]]:
    findings = status(prefix)["hosts"][host]["resources"]
    return {f["what"].split(" (")[0]: f for f in findings if f["what"].startswith(("ipsec SA", "charon"))}


def charon_stopped(prefix: str, host: str, sig: signal.Signals) -> None:
    """Send `host`'s charon `sig`, and wait until status finds it gone."""
    charon = sa_findings(prefix, host)["charon"]
    os.kill(int(charon["detail"].split()[1]), sig)
    assert waits.until(lambda: sa_findings(prefix, host)["charon"]["state"] == "missing", 10)


def counters(prefix: str, encrypted: topology.Topology, host: topology.Host) -> Counters:
    found = Firewall(Site(host, prefix + host.name, prefix), encrypted).counters()
    assert found is not None and found.clear_dropped is not None, f"no encrypted ovsvx table on {host.name}"
    return found


def ping_ns2(prefix: str, count: int = 3) -> bool:
    argv = ["ping", "-c", str(count), "-i", "0.2", "-W", "1", str(HOST2.namespaces[0].address)]
    return run_ovsvx("exec", "--prefix", prefix, "ns1", "--", *argv, check=False).returncode == 0


def clear_vxlan_on_the_underlay(lab: Lab, while_doing: Callable[[], object]) -> list[str]:
    """tcpdump on host1's NIC for VXLAN in clear while `while_doing()` runs; the lines it saw."""
    dump = netstack.popen(
        f"{lab.prefix}host1",
        ["tcpdump", "-l", "-nn", "-i", HOST1.nic, f"udp port {lab.topology.port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert dump.stderr is not None
    for line in dump.stderr:
        if "listening on" in line:
            break
    try:
        while_doing()
    finally:
        dump.send_signal(signal.SIGINT)
        out, _ = dump.communicate(timeout=waits.scaled(10))
    return [line for line in out.splitlines() if line.strip()]


def test_verify_passes_and_each_peer_has_its_sa(encrypted_lab: Lab) -> None:
    prefix = encrypted_lab.prefix
    report = json.loads(run_ovsvx("verify", "--prefix", prefix, "--json", check=False).stdout)
    assert report["ok"], failed(report)
    ns_to_ns = next(c for c in report["checks"] if (c["kind"], c["src"], c["dst"]) == ("ping", "ns1", "ns2"))
    assert ns_to_ns["ttl"] == 62
    for host, peer in (("host1", "host2"), ("host2", "host1")):
        sa = sa_findings(prefix, host)[f"ipsec SA with {peer}"]
        assert sa["state"] == "ok" and sa["detail"].startswith("up for"), sa
    # the key is in no file ovsvx or charon wrote: the record, strongswan.conf, charon's log, ...
    deployment = record.require(Kind.LAB, prefix)
    written = [p for p in deployment.folder.rglob("*") if p.is_file()] + [deployment.path]
    assert any(p.name == "charon.log" for p in written)
    assert not [p for p in written if KEY.encode() in p.read_bytes()]


def test_the_underlay_carries_esp_and_never_vxlan_in_clear(encrypted_lab: Lab) -> None:
    prefix = encrypted_lab.prefix
    frames = json.loads(run_ovsvx("capture", "--prefix", prefix, "--json").stdout)["frames"]
    on_wire = [f for f in frames if f["point"] == f"host1:{HOST1.nic}"]
    kinds = {layer["layer"] for f in on_wire for layer in f["layers"]}
    assert "esp" in kinds and "vxlan" not in kinds and "udp" not in kinds, on_wire
    esp = [layer for f in on_wire for layer in f["layers"] if layer["layer"] == "esp"]
    assert all(layer["spi"].startswith("0x") and layer["seq"] > 0 for layer in esp)
    hops = json.loads(run_ovsvx("trace", "--prefix", prefix, "--json").stdout)["hops"]
    underlay = next(h for h in hops if h["where"] == "underlay")
    assert "ESP" in underlay["what"] and any(line.startswith("xfrm: charon's SA to-host2") for line in underlay["why"])
    assert not clear_vxlan_on_the_underlay(encrypted_lab, lambda: ping_ns2(prefix))


def test_a_forged_peer_address_gets_nothing_in(encrypted_lab: Lab) -> None:
    """The firewall alone admits this one (its source is the peer's VTEP); only ESP tells it apart."""
    prefix, encrypted = encrypted_lab.prefix, encrypted_lab.topology
    intruder = f"{prefix}intruder"
    netstack.create_netns(intruder)
    try:
        lab.plug(record.require(Kind.LAB, prefix), "px", intruder, "eth0")
        with netstack.stack(intruder) as ns:
            index = ns.link_lookup(ifname="eth0")[0]
            ns.link("set", index=index, state="up")
            ns.addr("add", index=index, address=INTRUDER_ADDRESS, prefixlen=encrypted.underlay.prefixlen)
        before = counters(prefix, encrypted, HOST1)
        listener = Listener(prefix, HOST1.namespaces[0])
        try:
            sent = inject(intruder, HOST1, src=str(HOST2.vtep))
        finally:
            seen = listener.seen()
    finally:
        netstack.remove_netns(intruder)
    assert seen == [], "a frame with the peer's forged address reached ns1"
    assert counters(prefix, encrypted, HOST1).dropped - before.dropped == sent
    assert ping_ns2(prefix)


def test_charon_stopped_nothing_leaves_in_clear_and_deploy_repairs(
    encrypted_lab: Lab,
) -> None:
    prefix, encrypted = encrypted_lab.prefix, encrypted_lab.topology
    charon_stopped(prefix, "host1", signal.SIGTERM)  # it takes its SAs and policies with it
    before = counters(prefix, encrypted, HOST1)
    answered: list[bool] = []
    seen = clear_vxlan_on_the_underlay(encrypted_lab, lambda: answered.append(ping_ns2(prefix)))
    assert answered == [False] and seen == [], seen
    assert (counters(prefix, encrypted, HOST1).clear_dropped or 0) > (before.clear_dropped or 0)
    redeployed = run_ovsvx("deploy", "--prefix", prefix, "-t", str(encrypted_lab.path)).stdout
    assert "host1: + charon" in redeployed
    assert waits.until(lambda: ping_ns2(prefix, count=1), 20)
    assert status(prefix)["ok"]


# charon's leftovers are the host's, not its mode's: the mixed lab strikes an ovs host (host1) and a kernel
# host (host2) at once, so the kernel-mode lab would repeat it (about 100 s under emulation)
@pytest.mark.parametrize("encrypted_lab", ["mixed"], indirect=True)
def test_a_charon_killed_leaves_no_sa_that_outlives_the_peers_restart(encrypted_lab: Lab) -> None:
    """charon killed -9 leaves its SAs in the kernel; the one ovsvx starts next must not send by them.
    Once host2's charon starts afresh (as at its reboot) it knows none of them, so an SA kept on host1
    would be ESP nobody can read, with no acquire to start IKE again."""
    prefix = encrypted_lab.prefix
    charon_stopped(prefix, "host1", signal.SIGKILL)
    redeployed = run_ovsvx("deploy", "--prefix", prefix, "-t", str(encrypted_lab.path)).stdout
    assert "host1: + charon" in redeployed and "host1: - xfrm SAs and policies" in redeployed, redeployed
    assert waits.until(lambda: ping_ns2(prefix, count=1), 20)
    charon_stopped(prefix, "host2", signal.SIGTERM)  # host2's SAs go with it, as at a reboot
    assert "host2: + charon" in run_ovsvx("deploy", "--prefix", prefix, "-t", str(encrypted_lab.path)).stdout
    assert waits.until(lambda: ping_ns2(prefix, count=1), 20), sa_findings(prefix, "host1")
    assert status(prefix)["ok"]


def test_a_peer_with_another_key_is_unreachable_and_status_says_why(
    encrypted_lab: Lab,
) -> None:
    prefix, encrypted = encrypted_lab.prefix, encrypted_lab.topology
    deployment = record.require(Kind.LAB, prefix)
    homes = {h.name: charon.home(deployment, Site(h, prefix + h.name, prefix)) for h in encrypted.hosts}
    with charon.session(homes["host2"]) as vici:
        vici.load_shared(swanctl.shared_key(encrypted, HOST2, "some-other-key-of-host2s-own"))
    with charon.session(homes["host1"]) as vici:  # a DELETE to host2: both forget the SAs
        list(vici.terminate({"ike": swanctl.conn_name(encrypted, HOST2), "timeout": -1}))
    assert waits.until(lambda: sa_findings(prefix, "host2")["ipsec SA with host1"]["state"] == "missing", 10)
    assert not ping_ns2(prefix)

    def says_why() -> bool:
        sa = sa_findings(prefix, "host1")["ipsec SA with host2"]
        return sa["state"] == "missing" and "keys differ" in sa["detail"]

    assert waits.until(says_why, 20), sa_findings(prefix, "host1")
    assert not status(prefix)["ok"]  # the lab goes with this module's last test: no key is put back


def certificates(folder: Path) -> tuple[str, str, str]:
    """A CA, and for each host a key and a certificate the CA signed, naming its VTEP (subjectAltName)
    and its name; the three paths as the topology takes them, `{host}` standing for a host's name."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ovsvx test"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    def signed(
        subject: x509.Name,
        key: ec.EllipticCurvePrivateKey,
        issuer: x509.Name,
        signer: ec.EllipticCurvePrivateKey,
        ca: bool,
        san: list[x509.GeneralName],
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def write(path: Path, data: bytes, mode: int) -> None:
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
            out.write(data)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("ovsvx test CA")
    write(
        folder / "ca.pem",
        signed(ca_name, ca_key, ca_name, ca_key, True, []).public_bytes(serialization.Encoding.PEM),
        0o644,
    )
    for host in reader.default().hosts:
        key = ec.generate_private_key(ec.SECP256R1())
        san = [x509.IPAddress(host.vtep), x509.DNSName(host.name)]
        cert = signed(name(host.name), key, ca_name, ca_key, False, san)
        write(folder / f"{host.name}.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write(folder / f"{host.name}.key", pem, 0o600)
    return str(folder / "{host}.pem"), str(folder / "{host}.key"), str(folder / "ca.pem")


def test_certificates_signed_by_one_ca_key_the_overlay(fresh_prefix: str, tmp_path: Path) -> None:
    """cert, key and ca instead of a pre-shared key: each host proves its VTEP address with a
    certificate the CA signed; verify passes and each peer's SA is up."""
    if esp_missing():
        pytest.skip("this kernel has no ESP: run it with scripts/vm/guest")
    cert, key, ca = certificates(tmp_path)
    text = reader.default_text()
    first_table = text.index("[[hosts]]")
    table = f'encryption = "ipsec"\n\n[ipsec]\ncert = "{cert}"\nkey = "{key}"\nca = "{ca}"\n\n'
    path = tmp_path / "certs.toml"
    path.write_text(text[:first_table] + table + text[first_table:])
    run_ovsvx("deploy", "--prefix", fresh_prefix, "--mode", "kernel", "-t", str(path))
    report = json.loads(run_ovsvx("verify", "--prefix", fresh_prefix, "--json", check=False).stdout)
    assert report["ok"], failed(report)
    for host, peer in (("host1", "host2"), ("host2", "host1")):
        sa = sa_findings(fresh_prefix, host)[f"ipsec SA with {peer}"]
        assert sa["state"] == "ok" and sa["detail"].startswith("up for"), sa


def test_under_evpn_ike_follows_the_hosts_bgp_brings_and_takes(fresh_prefix: str, tmp_path: Path) -> None:
    """Under EVPN the peers are whoever BGP announces: one connection covers the underlay, and charon
    dials the VTEP each first packet is for.  A host that joins is reached encrypted with nothing changed
    on the others (an ovs host on the kernel datapath and a kernel host); one that leaves takes its SAs
    with it."""
    if esp_missing():
        pytest.skip("this kernel has no ESP: run it with scripts/vm/guest")
    psk = tmp_path / "ipsec.psk"
    with os.fdopen(os.open(psk, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
        out.write(KEY + "\n")

    def evpn(count: int) -> str:
        hosts = generated.generate(count, topology.Control.EVPN)
        encrypted = replace(hosts, encryption=topology.Encryption.IPSEC, ipsec=topology.Ipsec(psk))
        path = tmp_path / f"evpn-{count}.toml"
        path.write_text(writer.to_toml(encrypted))
        return str(path)

    def verified() -> bool:
        return bool(json.loads(run_ovsvx("verify", "--prefix", fresh_prefix, "--json", check=False).stdout)["ok"])

    run_ovsvx("deploy", "--prefix", fresh_prefix, "-t", evpn(2), "--mode", "host1=ovs,host2=kernel")
    assert waits.until(verified, 30)
    grown = run_ovsvx("deploy", "--prefix", fresh_prefix, "-t", evpn(3), "--mode", "host3=kernel").stdout
    assert {line.split(":", 1)[0] for line in grown.splitlines() if line.startswith("host")} == {"host3"}, grown
    assert waits.until(verified, 30)
    for host in ("host1", "host2"):
        sa = sa_findings(fresh_prefix, host)["ipsec SA with host3"]
        assert sa["state"] == "ok" and sa["detail"].startswith("up for"), sa

    shrunk = run_ovsvx("deploy", "--prefix", fresh_prefix, "-t", evpn(2)).stdout
    assert "host3: - charon" in shrunk, shrunk

    def host3_forgotten() -> bool:  # its charon said goodbye: no SA with its VTEP is left on host1
        return "10.33.30.152" not in netstack.run(f"{fresh_prefix}host1", ["ip", "xfrm", "state"]).stdout

    assert waits.until(host3_forgotten, 10)
    assert verified()
