"""The pure parts of `metrics`: addresses, the kinds of repair, FRR's uptimes, which peer a tunnel goes
to, and what a scrape says with no deployment and an agent's passes.  The scrapes of live labs and of a
real agent are lab tests (tests/lab/test_metrics_lab.py, tests/lab/test_real_host.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ovsvx.deploy import agent
from ovsvx.deploy.backends import BACKENDS
from ovsvx.deploy.deploy import Scope
from ovsvx.errors import UsageError
from ovsvx.model import generated, reader
from ovsvx.model.topology import Control, Mode
from ovsvx.observe import metrics
from tests.topologies import three_hosts


@pytest.mark.parametrize(
    ("text", "address"),
    [("9477", ("127.0.0.1", 9477)), ("0.0.0.0:9100", ("0.0.0.0", 9100)), (":9100", ("127.0.0.1", 9100))],
)
def test_an_address_is_a_port_on_loopback_or_an_address_and_port(text: str, address: tuple[str, int]) -> None:
    assert metrics.parse_address(text) == address


@pytest.mark.parametrize("text", ["", "http", "1.2.3.4:0", "1.2.3.4:65536", "localhost:9100", "::1:9100"])
def test_a_bad_address_is_refused_naming_the_value(text: str) -> None:
    with pytest.raises(UsageError, match=f"--metrics {text!r} is not allowed: PORT or ADDR:PORT"):
        metrics.parse_address(text)


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ("host1: + vxlan vxlan1 (id 100, dstport 4789, local 10.33.30.150)", "vxlan"),
        ("host1: - route 192.168.2.0/24", "route"),
        ("host1: ~ sysctl net.ipv4.ip_forward=1: is 0", "sysctl"),
        ("host1: + ovs bridge br1 (system)", "ovs"),
        ("host1: repaired after: something", "other"),
    ],
)
def test_a_change_line_says_the_kind_of_piece_repaired(change: str, kind: str) -> None:
    assert agent.repair_kind(change) == kind


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:01:02", 62), ("1d02h03m", 93780), ("2w3d04h", 1483200), ("never", None), ("", None), ("1d2x", None)],
)
def test_frr_uptimes_become_seconds(text: str, seconds: float | None) -> None:
    assert metrics.uptime_seconds(text) == seconds


def test_each_tunnel_is_labelled_with_the_peer_it_goes_to() -> None:
    two = reader.default()
    host1 = two.host("host1")
    assert metrics.tunnel_peers(two, host1, BACKENDS[Mode.KERNEL].pieces(two, host1, {"datapath": "system"})) == {
        "vxlan1": "host2"
    }
    three = reader.parse(three_hosts())
    ovs = metrics.tunnel_peers(
        three, three.host("host1"), BACKENDS[Mode.OVS].pieces(three, three.host("host1"), {"datapath": "system"})
    )
    assert ovs == {"vxlan1-1": "host2", "vxlan1-2": "host3"}
    kernel = metrics.tunnel_peers(
        three, three.host("host1"), BACKENDS[Mode.KERNEL].pieces(three, three.host("host1"), {"datapath": "system"})
    )
    assert kernel == {"vxlan1": metrics.EVERY_PEER}  # one device floods to both
    evpn = generated.generate(3, Control.EVPN)
    pieces = BACKENDS[Mode.OVS].pieces(evpn, evpn.hosts[0], {"datapath": "system"})
    assert metrics.tunnel_peers(evpn, evpn.hosts[0], pieces) == {evpn.hosts[0].vxlan: metrics.EVERY_PEER}


def test_an_agents_passes_are_counted_and_only_repairs_after_the_first_count_as_repairs() -> None:
    passes = agent.Passes()
    passes.record(True, 2.5, ["host1: + vxlan vxlan1 (...)", "host1: + route 192.168.2.0/24"], repairing=False)
    passes.record(True, 0.5, ["host1: + route 192.168.2.0/24 via 192.168.2.254 dev vxlan1 onlink"], repairing=True)
    before = time.time()
    passes.record(False, 0.25, [], repairing=True)
    registry = metrics.registry_for(Scope.lab("ovtnone-"), passes)  # nothing deployed under that prefix
    said = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(metrics.scrape(registry))
        for sample in family.samples
    }
    assert before <= said.pop(("ovsvx_agent_last_pass_timestamp_seconds", ())) <= time.time()
    assert said == {
        ("ovsvx_deployed", ()): 0,
        ("ovsvx_agent_passes_total", (("result", "converged"),)): 2,
        ("ovsvx_agent_passes_total", (("result", "failed"),)): 1,
        ("ovsvx_agent_repairs_total", (("kind", "route"),)): 1,
        ("ovsvx_agent_last_pass_seconds", ()): 0.25,
        ("ovsvx_agent_last_pass_converged", ()): 0,
    }


def test_only_a_non_loopback_endpoint_is_said_to_be_exposed() -> None:
    from ovsvx.observe import metrics

    assert metrics.exposure(("127.0.0.1", 9477)) is None
    said = metrics.exposure(("0.0.0.0", 9477))
    assert said is not None and "0.0.0.0:9477, not loopback: unauthenticated" in said


def test_status_reads_where_the_agent_serves_its_metrics_from_its_unit(tmp_path: Path, monkeypatch: Any) -> None:
    from ovsvx.host import systemd

    monkeypatch.setattr(systemd, "UNIT_DIR", tmp_path)
    unit = systemd.AgentUnit.host(
        "host1", Path("/etc/ovsvx/host1.toml"), None, (), "/usr/bin/python3", (), ("0.0.0.0:9477", False)
    )
    (tmp_path / unit.unit).write_text(unit.text())
    assert systemd.served_metrics(unit.unit) == "0.0.0.0:9477"
    assert systemd.served_metrics("ovsvx@host9.service") is None
