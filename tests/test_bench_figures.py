"""What repeated bench rounds add up to: medians, spreads, the interleaved order and the doubts (no root)."""

from __future__ import annotations

from ovsvx.model import reader
from ovsvx.observe import bench, figures, levers
from ovsvx.observe.figures import Figures, Summary, doubts, interleaved, summarize


def rounds(*gbps: float) -> Summary:
    """A column whose rounds gave these single-stream figures."""
    return Summary(tuple(Figures(tcp_1stream_gbps=g) for g in gbps))


def test_the_columns_take_turns_round_after_round() -> None:
    assert interleaved(["underlay", "kernel", "ovs"], 2) == [
        (0, "underlay"),
        (0, "kernel"),
        (0, "ovs"),
        (1, "underlay"),
        (1, "kernel"),
        (1, "ovs"),
    ]


def test_median_and_range_are_taken_figure_by_figure_over_the_rounds_that_have_it() -> None:
    summary = Summary(
        (
            Figures(tcp_1stream_gbps=3.0, rtt_median_ms=0.2, deploy_s=2.5, extra={"datapath": "netdev"}),
            Figures(tcp_1stream_gbps=1.0, rtt_median_ms=0.4),
            Figures(tcp_1stream_gbps=2.0, rtt_median_ms=0.3),
        )
    )
    assert (summary.median.tcp_1stream_gbps, summary.low.tcp_1stream_gbps, summary.high.tcp_1stream_gbps) == (2, 1, 3)
    assert summary.median.rtt_median_ms == 0.3 and summary.spread("rtt_median_ms") == 0.2
    assert summary.median.deploy_s == 2.5  # deployed once: its one figure
    assert summary.median.controller_to_first_packet_s is None and summary.spread("cpu_s_per_gbit") is None
    assert summary.median.extra == {"datapath": "netdev"}


def test_steady_repeated_runs_with_a_clear_difference_raise_no_doubt() -> None:
    summaries = {"underlay": rounds(18, 19, 18.5), "kernel": rounds(12, 12.5, 12.2), "ovs": rounds(1.4, 1.5, 1.6)}
    assert doubts(summaries) == []


def test_one_round_is_said_to_have_no_spread() -> None:
    (said,) = doubts({"underlay": rounds(18), "kernel": rounds(12)})
    assert "one run of each column" in said and "--repeat 3" in said


def test_an_overlay_faster_than_its_underlay_makes_the_underlay_noise() -> None:
    said = doubts({"underlay": rounds(1.1, 1.2, 1.15), "kernel": rounds(1.8, 1.9, 1.82)})
    assert len(said) == 1
    assert "kernel came out faster than the raw underlay" in said[0] and "1.82 against 1.15" in said[0]


def test_a_difference_inside_the_spread_cannot_be_claimed() -> None:
    summaries = {"underlay": rounds(5, 5, 5), "kernel": rounds(1.6, 1.7, 1.64), "ovs:system": rounds(1.2, 1.9, 1.6)}
    (said,) = doubts(summaries)
    assert said.startswith("ovs:system against kernel") and "(0.04 Gbit/s)" in said and "(0.7 Gbit/s)" in said


def test_the_report_keeps_every_sample_and_takes_its_ratios_from_the_medians() -> None:
    samples = {
        "underlay": [Figures(tcp_1stream_gbps=g) for g in (10, 30, 20)],
        "kernel": [Figures(tcp_1stream_gbps=g, deploy_s=d) for g, d in ((6, 0.4), (4, None), (5, None))],
        "ovs": [Figures(tcp_1stream_gbps=g) for g in (2, 1, 3)],
    }
    report = bench.to_json(summarize(samples), 1.0)
    assert report["repeat"] == 3
    assert report["order"][:4] == ["underlay#1", "kernel#1", "ovs#1", "underlay#2"]
    kernel = report["modes"]["kernel"]
    single = "tcp_1stream_gbps"
    assert (kernel[single], kernel["min"][single], kernel["max"][single]) == (5, 4, 6)
    assert [s["tcp_1stream_gbps"] for s in kernel["samples"]] == [6, 4, 5] and kernel["deploy_s"] == 0.4
    assert report["ratios"]["ovs"] == {
        "tcp_1stream_vs_underlay": 0.1,
        "tcp_1stream_vs_kernel": 0.4,
        "rtt_median_vs_kernel": None,
    }
    assert report["doubts"] == []


def test_a_bench_json_file_gives_back_its_summaries_and_its_table() -> None:
    """The docs' bench tables are rendered from the JSON files the bench wrote (`figures.markdown`): the
    summaries read back from `to_json` are the ones it was written from, lab settings included."""
    samples = {
        "underlay": [Figures(tcp_1stream_gbps=g) for g in (10.0, 12.0, 11.0)],
        "kernel": [Figures(tcp_1stream_gbps=g) for g in (6.0, 5.0, 7.0)],
        "ovs": [
            Figures(tcp_1stream_gbps=1.2, extra={"datapath": "netdev", "port_type": "afxdp-nonpmd"}),
            Figures(tcp_1stream_gbps=1.0),
            Figures(tcp_1stream_gbps=1.1),
        ],
    }
    data = bench.to_json(summarize(samples), 5.0)
    back = figures.from_json(data)
    assert bench.to_json(back, 5.0) == data
    table = figures.markdown(data).splitlines()
    assert (
        table[0]
        == "| figure (5 s per iperf3 run, median [min-max] of 3 interleaved rounds) | underlay | kernel | ovs |"
    )
    assert table[2] == (
        "| TCP 1 stream, Gbit/s | 11 [10-12] | 6 [5-7] (0.55x underlay) | 1.1 [1-1.2] (0.10x underlay, 0.18x kernel) |"
    )
    assert "- ovs datapath: netdev, port type: afxdp-nonpmd" in table


def test_a_lever_is_deploys_own_choices_or_the_underlays_mtu() -> None:
    """`bench --lever NAME` builds the ovs lab from the lever's choices; the jumbo lever's topology is the
    base with a 9000-byte underlay, checked as a file's would be (its overlay MTU follows)."""
    pinned = levers.LEVERS["afxdp-pmd-pinned"].options()
    assert (pinned.port_type, pinned.ovs_config) == ("afxdp", levers.PINNED)
    base = reader.default()
    assert levers.LEVERS["afxdp-nonpmd"].topology(base) is base
    jumbo = levers.LEVERS["jumbo"].topology(base)
    assert (jumbo.underlay_mtu, jumbo.overlay_mtu) == (9000, 8950) and jumbo.hosts == base.hosts
