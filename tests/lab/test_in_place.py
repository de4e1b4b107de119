"""A deployed lab takes a topology with hosts and namespaces added in place, without a lost packet, and
refuses one that changes what it has, changing nothing (issue 34: the difference, not a rebuild).

The agent's reload and `enable -t` take the same path (`deploy` over the record's topology); the
two-machine suite shows them on machines that boot with systemd."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ovsvx.model import generated, reader, writer
from ovsvx.model.topology import Namespace, Topology
from tests.conftest import Runner, run_ovsvx
from tests.lab.helpers import failed, ping_result, start_ping, status, verify

BASE = reader.default()


def grown() -> Topology:
    """The tutorial's two hosts with a second namespace on host2 and a third host after them."""
    host2 = BASE.hosts[1]
    added = Namespace("ns2b", host2.subnet[101], "tap3", "tap4")
    host3 = replace(generated.generate(3).hosts[2], vtep=BASE.hosts[1].vtep + 1)
    return replace(BASE, hosts=(BASE.hosts[0], replace(host2, namespaces=(*host2.namespaces, added)), host3))


@pytest.mark.parametrize("mode", ["kernel", "ovs"])
def test_hosts_and_namespaces_added_apply_in_place_while_ns1_pings_ns2(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path, mode: str
) -> None:
    ovsvx("deploy", "--mode", mode, "--prefix", fresh_prefix)
    bigger = tmp_path / "grown.toml"
    bigger.write_text(writer.to_toml(grown()))
    ping = start_ping(fresh_prefix, count=100)  # 10 s, across the whole deploy
    done = ovsvx("deploy", "--mode", mode, "-t", str(bigger), "--prefix", fresh_prefix)
    sent, got, _ = ping_result(ping)
    print(f"\n[{mode}] deploy of the difference: {len(done.stdout.splitlines())} lines; ns1 -> ns2 {got} of {sent}")
    assert "+ netns" in done.stdout and "host3" in done.stdout, done.stdout
    assert got == sent, (sent, got, done.stdout)  # nothing that stayed was touched
    report = verify(ovsvx, fresh_prefix)
    assert not failed(report), failed(report)
    pairs = {(c["src"], c["dst"]): c for c in report["checks"] if c["kind"] == "ping"}
    assert pairs[("ns1", "ns2b")]["ttl"] == 62 and pairs[("ns3", "ns2b")]["ttl"] == 62
    again = ovsvx("deploy", "--mode", mode, "-t", str(bigger), "--prefix", fresh_prefix)
    assert "nothing changed" in again.stdout, again.stdout


def test_a_topology_that_changes_a_piece_is_refused_in_one_line_and_nothing_changes(
    ovsvx: Runner, fresh_prefix: str, tmp_path: Path
) -> None:
    ovsvx("deploy", "--mode", "kernel", "--prefix", fresh_prefix)
    before = status(fresh_prefix)["hosts"]
    other = tmp_path / "other.toml"
    other.write_text(writer.to_toml(replace(grown(), vni=200)))
    done = run_ovsvx("deploy", "-t", str(other), "--prefix", fresh_prefix, check=False)
    said = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(said) == 1, done.stderr
    assert "the topology's vni changed" in said[0] and "ovsvx destroy" in said[0], said
    after = status(fresh_prefix)["hosts"]
    assert sorted(after) == sorted(before) == ["host1", "host2"] and all(h["ok"] for h in after.values())
