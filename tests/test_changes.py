"""Which topology changes a deployed host takes in place (`model/changes.py`), and the word for the rest."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from ovsvx.model import changes, generated
from ovsvx.model.topology import Control, Namespace, Topology


def with_namespace(base: Topology, host: int, name: str, last_octet: int) -> Topology:
    """`base` with one more namespace on hosts[host], after its own."""
    h = base.hosts[host]
    added = Namespace(name, h.subnet[last_octet], f"{name}-in", f"{name}-out")
    hosts = list(base.hosts)
    hosts[host] = replace(h, namespaces=(*h.namespaces, added))
    return replace(base, hosts=tuple(hosts))


@pytest.mark.parametrize("control", [Control.STATIC, Control.EVPN])
def test_hosts_and_namespaces_added_after_the_others_apply_in_place(control: Control) -> None:
    two, three = generated.generate(2, control), generated.generate(3, control)
    assert changes.refusal(two, two) is None
    assert changes.refusal(two, three) is None  # a third host
    assert changes.refusal(two, with_namespace(two, 1, "ns3", 101)) is None  # a namespace on host2
    assert changes.refusal(two, with_namespace(three, 0, "ns4", 102)) is None  # both at once


def test_a_host_leaves_in_place_only_under_evpn() -> None:
    assert changes.refusal(generated.generate(3, Control.EVPN), generated.generate(2, Control.EVPN)) is None
    said = changes.refusal(generated.generate(3), generated.generate(2))
    assert said == "host3 left a static overlay (only EVPN's peers forget a host by themselves)"


def test_what_changes_or_reorders_a_piece_is_refused_naming_it() -> None:
    two = generated.generate(2)
    assert changes.refusal(two, replace(two, vni=200)) == "the topology's vni changed"
    assert changes.refusal(two, replace(two, control=Control.EVPN, bgp=generated.GENERATED_BGP)) == (
        "the topology's control changed"
    )
    moved = replace(two, hosts=(replace(two.hosts[0], gateway=IPv4Address("192.168.1.2")), two.hosts[1]))
    assert changes.refusal(two, moved) == "host1's gateway changed"
    three = generated.generate(3)
    reordered = replace(three, hosts=(three.hosts[2], *three.hosts[:2]))
    assert changes.refusal(two, reordered) == "the hosts' order changed (new hosts go after the others)"
    before = with_namespace(two, 1, "ns3", 101)
    assert changes.refusal(before, two) == (
        "host2's namespaces changed (new ones go after the others; none is changed or removed)"
    )
    h2 = before.hosts[1]
    swapped = replace(before, hosts=(before.hosts[0], replace(h2, namespaces=h2.namespaces[::-1])))
    assert changes.refusal(before, swapped) is not None
