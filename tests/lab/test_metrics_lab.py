"""`ovsvx metrics --prefix P` on a real lab: Prometheus scrapes it while ns1 pings ns2, and the counters move.

ovs mode (the default), so both kinds of counter are read: the vxlan ports' (OVS refreshes them every
5 s, hence the polling) and the flows' by purpose.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ovsvx import waits
from ovsvx.observe import metrics
from tests.conftest import Runner, start_ovsvx
from tests.lab.helpers import ping_result, start_ping

SERVING_S = 10.0  # the endpoint answers once the command has imported and bound its port
COUNTED_S = 11.0  # OVS reads its interfaces' counters every 5 s: two readings, and time to spare
PINGS = 150  # at 10 a second, 15 s: still pinging when the counters have moved
MOVED = 10  # packets more than before, in each counter
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(url: str) -> Samples | None:
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return None
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


TUNNEL = (("host", "host1"), ("peer", "host2"), ("tunnel", "vxlan1"))
ROUTE_OUT = (("host", "host1"), ("purpose", "route-out"))


def test_a_scrape_while_ns1_pings_ns2_sees_the_tunnel_and_flow_counters_move(ovsvx: Runner, fresh_prefix: str) -> None:
    ovsvx("deploy", "--prefix", fresh_prefix)
    url = f"http://127.0.0.1:{free_port()}/metrics"
    served = start_ovsvx("metrics", "--prefix", fresh_prefix, "--metrics", url.split("/")[2])
    ping: subprocess.Popen[str] | None = None
    try:
        assert waits.until(lambda: scrape(url) is not None, SERVING_S), served.stderr
        before = scrape(url)
        assert before is not None and before[("ovsvx_deployed", ())] == 1
        ping = start_ping(fresh_prefix, count=PINGS)

        def moved() -> bool:
            now = scrape(url) or {}
            return all(
                now.get(key, 0) >= before.get(key, 0) + MOVED
                for key in (
                    ("ovsvx_tunnel_tx_packets_total", TUNNEL),
                    ("ovsvx_tunnel_rx_packets_total", TUNNEL),
                    ("ovsvx_flow_packets_total", ROUTE_OUT),
                )
            )

        assert waits.until(moved, COUNTED_S, interval=1), (before, scrape(url))
        assert ping.poll() is None  # the counters moved while ns1 was still pinging
        sent, received, _ = ping_result(ping)
        assert received == sent
        after = scrape(url) or {}
        assert after[("ovsvx_tunnel_tx_bytes_total", TUNNEL)] > before[("ovsvx_tunnel_tx_bytes_total", TUNNEL)]
        assert ("ovsvx_tunnel_last_received_timestamp_seconds", TUNNEL) in after  # it grew between two scrapes
        assert after[("ovsvx_peer_answered", (("host", "host1"), ("peer", "host2")))] == 1
    finally:
        if ping is not None and ping.poll() is None:  # the test failed while it ran
            ping.kill()
            ping.wait()
        served.send_signal(signal.SIGTERM)
        try:
            code = served.wait(timeout=waits.scaled(10))
        except subprocess.TimeoutExpired:
            served.kill()
            raise
    assert code == 0, served.stderr.read() if served.stderr else ""


def test_probes_are_served_only_when_asked_and_say_what_verify_says(ovsvx: Runner, fresh_prefix: str) -> None:
    ovsvx("deploy", "--prefix", fresh_prefix, "--mode", "kernel")
    assert "ovsvx_probe_ok" not in ovsvx("metrics", "--prefix", fresh_prefix, "--once").stdout  # sends nothing
    said = {
        (s.labels["src"], s.labels["dst"]): s.value
        for f in text_string_to_metric_families(ovsvx("metrics", "--prefix", fresh_prefix, "--once", "--probes").stdout)
        for s in f.samples
        if s.name == "ovsvx_probe_ok" and s.labels["kind"] == "ping"
    }
    assert said[("ns1", "ns2")] == 1 and len(said) == 12 and set(said.values()) == {1}  # 4 nodes, each to 3


BURST = 100


def cpu_seconds(pid: int) -> float:
    """The CPU a process spent, its own and that of the children it waited for (pings, ovs-ofctl)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def burst(url: str, count: int) -> list[bool]:
    """`count` scrapes at once; whether each was answered (one turned away sees its connection closed)."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: scrape(url) is not None, range(count)))


def test_a_burst_of_scrapes_costs_what_one_scrape_costs(ovsvx: Runner, fresh_prefix: str) -> None:
    """Security round 3, 5: 100 scrapes at once, with --probes, read the deployment (and ping) once; the
    endpoint serves a bounded number at a time and turns the rest away at once, and it still answers."""
    ovsvx("deploy", "--prefix", fresh_prefix, "--mode", "kernel")
    url = f"http://127.0.0.1:{free_port()}/metrics"
    served = start_ovsvx("metrics", "--prefix", fresh_prefix, "--metrics", url.split("/")[2], "--probes")
    try:
        assert waits.until(lambda: scrape(url) is not None, SERVING_S), served.stderr
        time.sleep(metrics.PROBES_S)  # the probes of that first scrape are stale now: the next pings again
        start = cpu_seconds(served.pid)
        assert scrape(url) is not None
        one = cpu_seconds(served.pid) - start
        time.sleep(metrics.PROBES_S)
        start = cpu_seconds(served.pid)
        answered = burst(url, BURST)
        many = cpu_seconds(served.pid) - start
        print(f"\none scrape (probes): {one:.2f} s CPU; {BURST} at once: {many:.2f} s, {sum(answered)} answered")
        assert sum(answered) >= metrics.MAX_SCRAPES  # the ones let in were answered
        assert many <= 2 * one + 0.5, (one, many)  # one reading and one round of pings, not a hundred
        assert scrape(url) is not None  # and it serves on
    finally:
        served.send_signal(signal.SIGTERM)
        served.wait(timeout=waits.scaled(10))
