"""Only peers get in: a stranger on the underlay sends VXLAN frames with VNI 100 to each host.

The intruder is a third namespace cabled to the lab's underlay switch with an
address of its own.  Its frames are built by scapy and written to a packet
socket, and they are the worst case: the inner destination is the MAC that
the host itself would use (ovsvx's MACs are derived from addresses, so an
attacker can compute them), the inner packet an ICMP echo to the namespace
behind the host, from a made-up MAC.  ns1 and ns2 listen with tcpdump.

Documented behaviour (README, "Only peers get in"), asserted here:

- with ovsvx's firewall, nothing reaches ns1/ns2 in either mode, and where the
  kernel owns the tunnel's socket (kernel mode, and ovs mode on OVS's kernel
  datapath, which the guest suite runs: scripts/vm/guest) nftables counts the drops;
- without it (`--no-firewall`), kernel mode lets the frames through (the vxlan
  device takes any source); ovs mode still drops them (a port with a fixed
  `remote_ip` receives only from that address).

The real peer's traffic flows throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ovsvx.deploy import lab
from ovsvx.host import netstack, record
from ovsvx.host.firewall import Counters, Firewall
from ovsvx.host.record import Kind
from ovsvx.model import reader, topology
from ovsvx.model.site import Site
from tests.conftest import STATE_DIR, TEST_PREFIX, leftover_netns, need_lab, run_ovsvx
from tests.lab.helpers import in_host
from tests.lab.intruders import INTRUDER_ADDRESS, Listener, inject, open_up

TOPO = reader.default()


@pytest.fixture(scope="module", params=["kernel", "ovs"])
def lab_with_intruder(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(prefix, intruder namespace) of a lab in the given mode with a stranger on its underlay."""
    need_lab()
    mode = request.param
    prefix = f"{TEST_PREFIX}fw{mode[0]}-"
    intruder = f"{prefix}intruder"
    run_ovsvx("deploy", "--mode", mode, "--prefix", prefix)
    try:
        deployment = record.require(Kind.LAB, prefix)
        netstack.create_netns(intruder)
        lab.plug(deployment, "px", intruder, "eth0")
        with netstack.stack(intruder) as ns:
            index = ns.link_lookup(ifname="eth0")[0]
            ns.link("set", index=index, state="up")
            ns.addr("add", index=index, address=INTRUDER_ADDRESS, prefixlen=TOPO.underlay.prefixlen)
        yield prefix, intruder
    finally:
        netstack.remove_netns(intruder)
        run_ovsvx("destroy", "--prefix", prefix, check=False)
        left = [n for n in leftover_netns() if n.startswith(prefix)]
        assert not left, f"destroy left namespaces behind: {left}"


def firewall_counters(prefix: str, host: str) -> Counters:
    counters = Firewall(Site(TOPO.host(host), prefix + host, prefix), TOPO).counters()
    assert counters is not None, f"no ovsvx table on {host}"
    return counters


def tunnel_rx(prefix: str, host: topology.Host) -> int:
    """Packets OVS received on the host's vxlan port."""
    return int(in_host(prefix, host.name, "ovs-vsctl", "get", "interface", host.vxlan, "statistics:rx_packets").strip())


def probe(prefix: str, intruder: str) -> dict[str, Any]:
    """Inject at each host while its namespace listens; what got in, per host, and whether peers still talk."""
    got = {}
    for host in TOPO.hosts:
        listener = Listener(prefix, host.namespaces[0])
        try:
            sent = inject(intruder, host)
        finally:
            got[host.name] = listener.seen()
        assert sent == 20
    peers = run_ovsvx(
        "exec", "--prefix", prefix, "ns1", "--", "ping", "-c", "3", "-i", "0.2", "-W", "1", "192.168.2.100", check=False
    )
    return {"seen": got, "peers_talk": peers.returncode == 0}


def mode_of(prefix: str) -> str:
    return record.require(Kind.LAB, prefix).modes["host1"]


def kernel_takes_the_tunnel(prefix: str) -> bool:
    """Kernel mode, or ovs mode on the kernel datapath: the tunnel's UDP socket is the kernel's, so
    netfilter sees it (the userspace datapath reads the NIC ahead of netfilter)."""
    deployment = record.require(Kind.LAB, prefix)
    return mode_of(prefix) == "kernel" or deployment.settings["host1"]["datapath"] == "system"


def test_with_the_firewall_no_stranger_gets_in(lab_with_intruder: tuple[str, str]) -> None:
    prefix, intruder = lab_with_intruder
    run_ovsvx("deploy", "--prefix", prefix, "--mode", mode_of(prefix))
    before = {h.name: firewall_counters(prefix, h.name) for h in TOPO.hosts}
    result = probe(prefix, intruder)
    assert result["seen"] == {"host1": [], "host2": []}
    assert result["peers_talk"]
    if kernel_takes_the_tunnel(prefix):  # the host's stack takes the tunnel, so nftables counts the drops
        for host in TOPO.hosts:
            after = firewall_counters(prefix, host.name)
            assert after.dropped - before[host.name].dropped == 20
            assert after.accepted > before[host.name].accepted  # the peer's packets


def test_without_the_firewall_kernel_mode_lets_strangers_in_and_ovs_does_not(
    lab_with_intruder: tuple[str, str],
) -> None:
    prefix, intruder = lab_with_intruder
    mode = mode_of(prefix)
    run_ovsvx("deploy", "--prefix", prefix, "--mode", mode, "--no-firewall")
    assert "table inet ovsvx" not in in_host(prefix, "host1", "nft", "list", "ruleset")
    userspace = not kernel_takes_the_tunnel(prefix)
    rx_before = {h.name: tunnel_rx(prefix, h) for h in TOPO.hosts} if userspace else {}
    result = probe(prefix, intruder)
    assert result["peers_talk"]
    if mode == "kernel":  # the vxlan device takes VNI 100 from anyone: the echo reaches the namespace
        for host in TOPO.hosts:
            requests = [
                line
                for line in result["seen"][host.name]
                if f"> {host.namespaces[0].address}: ICMP echo request" in line
            ]
            assert requests, f"expected the intruder's echo in {host.namespaces[0].name}"
    else:  # a port with remote_ip receives only from that address
        assert result["seen"] == {"host1": [], "host2": []}
        for host in TOPO.hosts:
            if userspace:  # the kernel datapath counts on vxlan_sys_4789, which every tunnel packet crosses
                assert tunnel_rx(prefix, host) - rx_before[host.name] < 20  # only the peer's few packets
            log = (STATE_DIR / f"lab-{prefix}" / host.name / "ovs" / "ovs-vswitchd.log").read_text()
            assert "receive tunnel port not found" in log and f"tun_src={INTRUDER_ADDRESS}" in log
    run_ovsvx("deploy", "--prefix", prefix, "--mode", mode, "--firewall")  # back, for the next test


def test_plain_ip_to_a_namespace_gets_in_only_through_the_tunnel(lab_with_intruder: tuple[str, str]) -> None:
    """The side door: a neighbour routes the overlay's subnets via host1's VTEP and pings, as plain IP,
    ns1 (host1's own workload) and ns2 (host2's, which host1 would relay into its tunnel)."""
    prefix, intruder = lab_with_intruder
    mode = mode_of(prefix)
    host1, host2 = TOPO.hosts
    for host in (host1, host2):
        routed = netstack.run(intruder, ["ip", "route", "add", str(host.subnet), "via", str(host1.vtep)])
        assert routed.returncode == 0, routed.stderr

    def pings(ns: topology.Namespace) -> list[str]:
        return ["ping", "-c", "3", "-i", "0.2", "-W", "1", str(ns.address)]

    run_ovsvx("deploy", "--prefix", prefix, "--mode", mode, "--firewall")
    try:
        before = firewall_counters(prefix, host1.name)
        for host in (host1, host2):
            ns = host.namespaces[0]
            assert netstack.run(intruder, pings(ns)).returncode != 0, f"the intruder reached {ns.name} as plain IP"
        if kernel_takes_the_tunnel(prefix):  # the host's own stack would route it: the forward chain drops it
            assert firewall_counters(prefix, host1.name).forward_dropped - before.forward_dropped >= 6
        if mode == "kernel":  # and without the table both doors are open: the test can tell
            run_ovsvx("deploy", "--prefix", prefix, "--mode", mode, "--no-firewall")
            for host in (host1, host2):
                assert netstack.run(intruder, pings(host.namespaces[0])).returncode == 0
    finally:
        for host in (host1, host2):
            netstack.run(intruder, ["ip", "route", "del", str(host.subnet)])
        run_ovsvx("deploy", "--prefix", prefix, "--mode", mode, "--firewall")  # back, for the next test
    assert run_ovsvx("exec", "--prefix", prefix, "ns1", "--", *pings(host2.namespaces[0]), check=False).returncode == 0


def test_a_table_whose_drops_were_made_accepts_is_seen_and_mended(lab_with_intruder: tuple[str, str]) -> None:
    """Security round 3, 2: the table rewritten in place (drops made accepts, the same chains, sets and
    counters) fails `status` and `deploy` loads it again; then strangers are kept out once more."""
    prefix, intruder = lab_with_intruder
    mode = mode_of(prefix)
    open_up(prefix + "host1", "inet", "ovsvx")
    shown = run_ovsvx("status", "--prefix", prefix, check=False)
    assert shown.returncode == 1, shown.stdout
    assert "do not do what the topology says" in shown.stdout
    redeployed = run_ovsvx("deploy", "--prefix", prefix, "--mode", mode)
    assert "its rules had been changed" in redeployed.stdout
    assert run_ovsvx("status", "--prefix", prefix, check=False).returncode == 0
    assert " drop" in in_host(prefix, "host1", "nft", "list", "table", "inet", "ovsvx")
    result = probe(prefix, intruder)
    assert result["seen"] == {"host1": [], "host2": []} and result["peers_talk"]
