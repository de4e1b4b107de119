"""encryption = "ipsec": the topology's fields, what charon is given, what plan shows, and every refusal
that comes before anything is built.  The encrypted labs themselves run where the kernel has ESP
(tests/guest/test_ipsec.py)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from ovsvx.errors import TopologyError
from ovsvx.host import charon, credentials, firewall, netstack, swanctl
from ovsvx.model import generated, reader, topology, writer
from ovsvx.model.site import Site
from ovsvx.observe import doctor
from tests.conftest import Runner
from tests.test_cli_errors import one_line_error

KEY = "a-key-nobody-may-see-" + os.urandom(8).hex()
IPSEC_TABLE = '\nencryption = "ipsec"\n\n[ipsec]\npsk_file = "{path}"\n'


def encrypted(hosts: int = 2, psk: Path = Path("/etc/ovsvx/ipsec.psk")) -> topology.Topology:
    return replace(generated.generate(hosts), encryption=topology.Encryption.IPSEC, ipsec=topology.Ipsec(psk))


def key_file(folder: Path, text: str = KEY, mode: int = 0o600) -> Path:
    path = folder / "ipsec.psk"
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT, mode), "w") as out:
        out.write(text + "\n")
    os.chmod(path, mode)
    return path


def with_ipsec(psk: Path) -> str:
    """The default topology file with IPsec switched on (the keys go before its first table)."""
    text = reader.default_text()
    first_table = text.index("[[hosts]]")
    return text[:first_table] + IPSEC_TABLE.format(path=psk) + "\n" + text[first_table:]


# --- the topology ------------------------------------------------------------------------------


def test_the_file_round_trips_and_the_overlay_makes_room_for_esp() -> None:
    topo = encrypted()
    assert reader.parse_text(writer.to_toml(topo), "x") == topo
    assert topo.overlay_mtu == 1500 - topology.VXLAN_OVERHEAD - topology.ESP_OVERHEAD == 1410
    assert reader.default().overlay_mtu == 1450


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('encryption = "ipsec"\n', r'^ipsec: missing: encryption = "ipsec" needs an \[ipsec\] table'),
        ('[ipsec]\npsk_file = "/k"\n', r'^ipsec: only read with encryption = "ipsec"'),
        ('encryption = "wireguard"\n', r"^encryption: 'wireguard' is not allowed: one of none, ipsec$"),
        (
            'encryption = "ipsec"\n[ipsec]\npsk_file = "k.psk"\n',
            r"^ipsec.psk_file: 'k.psk' is not allowed: an absolute",
        ),
        ('encryption = "ipsec"\n[ipsec]\npsk_file = "/k"\ncert = "/c"\n', r"^ipsec.cert: not allowed with psk_file"),
        (
            'encryption = "ipsec"\n[ipsec]\ncert = "/c"\nca = "/a"\n',
            r"^ipsec.key: missing: certificates need cert, key",
        ),
        ('encryption = "ipsec"\n[ipsec]\n', r"^ipsec.psk_file: missing: a pre-shared key file, or cert, key and ca$"),
        ('encryption = "ipsec"\n[ipsec]\npsk_file = "/k"\ncrl = "/c"\n', r"^ipsec.crl: unknown key"),
        # security round 3, 7
        (
            'encryption = "ipsec"\n[ipsec]\npsk_file = "/etc/k\\u0000.psk"\n',
            r"^ipsec.psk_file: '/etc/k\\x00.psk' is not allowed: an absolute path of printable characters$",
        ),
    ],
)
def test_bad_encryption_fields_name_the_field(extra: str, message: str) -> None:
    text = reader.default_text()
    first_table = text.index("[[hosts]]")
    with pytest.raises(TopologyError, match=message):
        reader.parse(tomllib.loads(text[:first_table] + extra + "\n" + text[first_table:]))


def test_the_ike_nat_traversal_port_is_not_the_overlays_when_encrypted() -> None:
    text = reader.default_text().replace("port = 4789", "port = 4500", 1)
    first_table = text.index("[[hosts]]")
    extra = 'encryption = "ipsec"\n[ipsec]\npsk_file = "/k"\n'
    message = r'^port: 4500 is not allowed with encryption = "ipsec": it is IKE\'s NAT-traversal port$'
    with pytest.raises(TopologyError, match=message):
        reader.parse(tomllib.loads(text[:first_table] + extra + "\n" + text[first_table:]))
    assert reader.parse_text(text, "not encrypted").port == 4500  # a port like any other without IPsec


def test_under_evpn_one_connection_covers_the_underlay_and_any_vtep_may_prove_itself() -> None:
    """The peers are whoever BGP announces: the trap policies cover the whole underlay, and charon dials
    the VTEP the first packet is for; nothing is reloaded when a host joins or leaves."""
    evpn = generated.generate(3, topology.Control.EVPN)
    topo = replace(evpn, encryption=topology.Encryption.IPSEC, ipsec=topology.Ipsec(Path("/k")))
    assert reader.parse(writer.to_data(topo)) == topo
    conns = swanctl.connections(topo, topo.hosts[0])
    assert list(conns) == ["ovsvx-evpn"]
    conn = conns["ovsvx-evpn"]
    assert conn["remote_addrs"] == ["10.33.0.0/16"] and "id" not in conn["remote"]
    assert conn["children"]["to-any"]["remote_ts"] == ["10.33.0.0/16[udp/4789]"]
    assert conn["children"]["from-any"]["local_ts"] == ["dynamic[udp/4789]"]
    assert "owners" not in swanctl.shared_key(topo, topo.hosts[0], "k")
    script = firewall.rules(topo, topo.hosts[0]).script()
    assert "ip saddr @peers meta ipsec exists" in script and "rt ipsec missing" in script


# --- what charon is given ---------------------------------------------------------------------------


def test_each_peer_gets_a_connection_with_a_child_sa_each_way() -> None:
    topo = encrypted(3)
    host1 = topo.hosts[0]
    conns = swanctl.connections(topo, host1)
    assert sorted(conns) == ["ovsvx-host2", "ovsvx-host3"]
    conn = conns["ovsvx-host3"]
    assert (conn["local_addrs"], conn["remote_addrs"]) == (["10.33.30.150"], ["10.33.30.152"])
    assert conn["encap"] == "no"  # topology.ESP_OVERHEAD counts no UDP header for NAT traversal
    to, back = conn["children"]["to-host3"], conn["children"]["from-host3"]
    assert (to["local_ts"], to["remote_ts"]) == (["dynamic[udp]"], ["dynamic[udp/4789]"])
    assert (back["local_ts"], back["remote_ts"]) == (["dynamic[udp/4789]"], ["dynamic[udp]"])
    assert {to["mode"], back["mode"]} == {"transport"} and {to["start_action"], back["start_action"]} == {"trap"}
    assert swanctl.shared_key(topo, host1, "k")["owners"] == ["10.33.30.150", "10.33.30.151", "10.33.30.152"]


def certified(hosts: int = 2) -> topology.Topology:
    paths = topology.Ipsec(
        cert=Path("/etc/ovsvx/{host}.pem"), key=Path("/etc/ovsvx/{host}.key"), ca=Path("/etc/ca.pem")
    )
    return replace(generated.generate(hosts), encryption=topology.Encryption.IPSEC, ipsec=paths)


def test_certificates_name_each_hosts_own_files_and_ask_the_peer_for_its_vtep() -> None:
    topo = certified()
    assert reader.parse_text(writer.to_toml(topo), "x") == topo
    conn = swanctl.connections(topo, topo.hosts[1])["ovsvx-host1"]
    assert conn["local"] == {"auth": "pubkey", "certs": ["/etc/ovsvx/host2.pem"], "id": "10.33.30.151"}
    assert conn["remote"] == {"auth": "pubkey", "cacerts": ["/etc/ca.pem"], "id": "10.33.30.150"}
    commands = swanctl.commands(topo, topo.hosts[1])
    assert commands[0] == "install -m 600 /etc/ovsvx/host2.key /etc/swanctl/private/"
    assert "secrets {" not in commands and "secret" not in " ".join(commands)


def test_the_swanctl_configuration_elides_the_key() -> None:
    text = swanctl.swanctl_conf(encrypted(), generated.generate(2).hosts[0])
    assert text.startswith("connections {\n    ovsvx-host2 {\n")
    assert "        to-host2 {\n                mode = transport\n                local_ts = dynamic[udp]\n" in text
    assert "secret = <elided> (from /etc/ovsvx/ipsec.psk)" in text
    assert text.count("{") == text.count("}")


def test_the_firewall_admits_vxlan_only_through_esp_and_lets_none_leave_in_clear() -> None:
    script = firewall.rules(encrypted(), encrypted().hosts[0]).script()
    assert "udp dport 4789 ip saddr @peers meta ipsec exists counter accept" in script
    assert "type filter hook output priority -10" in script
    assert "udp dport 4789 ip daddr @peers rt ipsec missing counter drop" in script
    assert "meta ipsec" not in firewall.rules(reader.default(), reader.default().hosts[0]).script()


def test_the_key_file_must_be_roots_alone_and_long_enough(tmp_path: Path) -> None:
    topo = encrypted(psk=key_file(tmp_path))
    host = topo.hosts[0]
    if os.geteuid() == 0:
        assert credentials.read_credentials(topo, host).secret == KEY
    os.chmod(topo.ipsec.psk_file, 0o644)  # type: ignore[arg-type, union-attr]
    with pytest.raises(TopologyError, match=r"must be root's and closed to others .*mode 0644.*chmod 600") as caught:
        credentials.read_credentials(topo, host)
    assert KEY not in str(caught.value)
    (tmp_path / "short").mkdir()
    short = encrypted(psk=key_file(tmp_path / "short", "tiny-key"))
    if os.geteuid() == 0:  # root's file: only its length is wrong
        with pytest.raises(TopologyError, match="the key is shorter than 16 characters") as caught:
            credentials.read_credentials(short, short.hosts[0])
        assert "tiny-key" not in str(caught.value)


# --- the command line -----------------------------------------------------------------------------


def test_plan_prints_the_swanctl_configuration_and_never_the_key(ovsvx: Runner, tmp_path: Path) -> None:
    path = tmp_path / "ipsec.toml"
    path.write_text(with_ipsec(key_file(tmp_path)))
    text = ovsvx("plan", "-t", str(path), "--mode", "kernel").stdout
    assert "cat > /etc/swanctl/conf.d/ovsvx.conf <<'EOF'" in text and "swanctl --load-all" in text
    assert "ovsvx-host2 {" in text and "ovsvx-host1 {" in text
    assert KEY not in text
    assert "ip link set dev vxlan1 mtu 1410 up" in text


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (
            ["--mode", "ovs", "--datapath", "netdev"],
            ['encryption = "ipsec" is not allowed on OVS\'s userspace datapath'],
        ),
        (["--mode", "kernel", "--no-firewall"], ['--no-firewall is not allowed with encryption = "ipsec"']),
    ],
)
def test_deploy_refuses_what_cannot_be_encrypted_and_changes_nothing(
    ovsvx: Runner, tmp_path: Path, argv: list[str], fragments: list[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("deploy needs root")
    path = tmp_path / "ipsec.toml"
    path.write_text(with_ipsec(key_file(tmp_path)))
    done = ovsvx("deploy", "--prefix", "ovtipsec-", "-t", str(path), *argv, check=False)
    one_line_error(done, 2, *fragments)
    assert not [n for n in netstack.list_netns() if n.startswith("ovtipsec-")]
    assert ovsvx("status", "--prefix", "ovtipsec-", check=False).returncode != 0  # nothing was recorded


def test_deploy_refuses_a_key_file_others_can_read(ovsvx: Runner, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("deploy needs root")
    path = tmp_path / "ipsec.toml"
    path.write_text(with_ipsec(key_file(tmp_path, mode=0o644)))
    done = ovsvx("deploy", "--prefix", "ovtipsec-", "--mode", "kernel", "-t", str(path), check=False)
    one_line_error(done, 2, "ipsec.psk_file", "chmod 600")
    assert KEY not in done.stderr + done.stdout
    assert not [n for n in netstack.list_netns() if n.startswith("ovtipsec-")]


def test_doctor_checks_strongswan_and_the_key_files_permissions(tmp_path: Path) -> None:
    topo = encrypted(psk=key_file(tmp_path, mode=0o640))
    found = doctor._ipsec(doctor.HostContext(topo, Site(topo.hosts[0], None), topology.Mode.KERNEL))
    states = {d.what.split(" ")[0]: d.state for d in found}
    assert states["strongSwan"] == (doctor.OK if charon.installed() else doctor.FAIL)
    assert states["ipsec.psk_file"] == doctor.FAIL and "mode 0640" in found[-1].what
    assert KEY not in " ".join(d.text for d in found)
    assert doctor._ipsec(doctor.HostContext(reader.default(), Site(reader.default().hosts[0], None), None)) == []
