"""`ovsvx bench`: checked for the shape of what it reports and for cleaning up, never for speed."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import STATE_DIR, TEST_PREFIX, Runner, leftover_netns, need_lab, start_ovsvx

FIGURES = (
    "tcp_1stream_gbps",
    "tcp_4stream_gbps",
    "tcp_1stream_reverse_gbps",
    "tcp_4stream_reverse_gbps",
    "rtt_min_ms",
    "rtt_median_ms",
    "rtt_p99_ms",
)


def test_a_short_bench_reports_every_mode_and_leaves_nothing(ovsvx: Runner, tmp_path: Path) -> None:
    need_lab()
    prefix = f"{TEST_PREFIX}b-"
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    argv = ("bench", "--duration", "1", "--repeat", "2", "--json-file", str(out), "--plot", str(png))
    done = ovsvx(*argv, "--prefix", prefix)
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"underlay", "kernel", "ovs"}
    assert report["order"] == ["underlay#1", "kernel#1", "ovs#1", "underlay#2", "kernel#2", "ovs#2"]
    for mode in ("underlay", "kernel", "ovs"):
        figures = report["modes"][mode]
        assert len(figures["samples"]) == 2
        assert all(s[key] > 0 for s in figures["samples"] for key in FIGURES), (mode, figures)
        for key in FIGURES:  # the median of two rounds lies between them
            assert figures["min"][key] <= figures[key] <= figures["max"][key], (mode, key, figures)
        assert figures["rtt_min_ms"] <= figures["rtt_median_ms"] <= figures["rtt_p99_ms"]
    assert report["modes"]["kernel"]["deploy_s"] > 0 and report["modes"]["ovs"]["deploy_s"] > 0
    assert report["modes"]["ovs"]["controller_to_first_packet_s"] > 0
    ratios = report["ratios"]["ovs"]
    assert ratios["tcp_1stream_vs_kernel"] == round(
        report["modes"]["ovs"]["tcp_1stream_gbps"] / report["modes"]["kernel"]["tcp_1stream_gbps"], 3
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "TCP 1 stream, Gbit/s" in done.stdout and "of 2 interleaved rounds" in done.stdout
    assert not [n for n in leftover_netns() if n.startswith(prefix)]


def test_an_interrupted_bench_tears_its_labs_down(tmp_path: Path) -> None:
    need_lab()
    prefix = f"{TEST_PREFIX}bi-"
    servers_before = set(iperf_servers())
    bench = start_ovsvx("bench", "--duration", "5", "--modes", "ovs", "--prefix", prefix)
    deadline = time.monotonic() + 60
    while not [n for n in leftover_netns() if n.startswith(prefix)] and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # well inside a measurement
    bench.send_signal(signal.SIGINT)
    _, err = bench.communicate(timeout=120)
    assert bench.returncode == 130, err
    assert "ovsvx: interrupted" in err
    assert not [n for n in leftover_netns() if n.startswith(prefix)]
    assert not [p for p in STATE_DIR.glob(f"lab-{prefix}*") if p.suffix != ".lock"]  # locks stay, by design
    left = set(iperf_servers()) - servers_before
    assert not left, f"iperf3 servers outlived the bench: {left}"


def iperf_servers() -> list[str]:
    return subprocess.run(["pgrep", "-f", "iperf3 -s -1 -B"], capture_output=True, text=True).stdout.split()
