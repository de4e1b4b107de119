"""The controller's reachability check: which peers it asks again, from two readings of the counters."""

from __future__ import annotations

from scapy.layers.l2 import ARP, Ether

from ovsvx.model import generated
from ovsvx.ovs.flows import host_flows
from ovsvx.ovs.openflow import learned_cookie
from ovsvx.ovs.peerwatch import Counts, counts, peer_probes, unanswered
from ovsvx.ovs.tables import CLASSIFY

TOPO = generated.generate(3)
HOST = TOPO.hosts[0]
PROBES = peer_probes(TOPO, HOST, host_flows(TOPO, HOST))


def test_one_probe_per_peer_as_the_hosts_vxlan_device_would_ask() -> None:
    assert [p.peer for p in PROBES] == ["host2", "host3"]
    frame = Ether(PROBES[1].frame)
    assert (frame.src, frame.dst) == ("02:00:c0:a8:01:fe", "ff:ff:ff:ff:ff:ff")
    assert (frame[ARP].op, frame[ARP].psrc, frame[ARP].pdst, frame[ARP].hwdst) == (
        1,
        "192.168.1.254",
        "192.168.3.254",
        "00:00:00:00:00:00",
    )
    assert PROBES[1].sent_cookie == learned_cookie(1)
    tunnel_flows = [f for f in host_flows(TOPO, HOST) if f.table == CLASSIFY and ("in_port", PROBES[1].port) in f.match]
    assert PROBES[1].heard_cookies == {f.cookie for f in tunnel_flows} and len(tunnel_flows) == 2  # ARP and IPv4


def test_counts_add_up_what_came_in_by_the_tunnel() -> None:
    probe = PROBES[0]
    packets = {probe.sent_cookie: 7, **{c: 2 for c in probe.heard_cookies}, 12345: 99}
    assert counts(PROBES, packets)[probe.port] == Counts(sent=7, heard=4)
    assert counts(PROBES, {})[PROBES[1].port] == Counts(0, 0)


def test_only_a_peer_sent_to_and_silent_for_a_whole_period_after_is_asked_again() -> None:
    a, b = PROBES[0].port, PROBES[1].port
    start = {a: Counts(10, 10), b: Counts(10, 10)}
    sent = {a: Counts(15, 10), b: Counts(10, 12)}  # a: sent to, no answer yet; b: only heard
    assert unanswered(PROBES, [start, sent, {a: Counts(15, 10), b: Counts(10, 12)}]) == [PROBES[0]]  # still silent
    assert unanswered(PROBES, [start, sent, {a: Counts(15, 11), b: Counts(10, 12)}]) == []  # answered late
    assert unanswered(PROBES, [start, start, {a: Counts(15, 10), b: Counts(10, 10)}]) == []  # sent just now
    answered = {a: Counts(15, 15), b: start[b]}
    assert unanswered(PROBES, [start, answered, {a: Counts(20, 15), b: start[b]}]) == []  # answered, sent anew
    relearned = {a: Counts(3, 10), b: start[b]}  # a rewritten learned flow counts anew
    assert unanswered(PROBES, [start, relearned, relearned]) == []
    assert unanswered(PROBES, [sent, sent]) == [] and unanswered(PROBES, []) == []  # too few readings decide nothing
