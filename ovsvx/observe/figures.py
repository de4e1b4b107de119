"""What a bench's repeated runs add up to: each figure's median and spread, and when not to trust them.

One iperf3 run on a shared machine is an anecdote: the same mode gave 1.02x,
1.19x, 1.20x and 0.93x kernel mode in four runs.  So the bench measures each
column several times, interleaved (A B C A B C ...) so that a slow minute
lands on every column alike, reports the median with its min-max, computes
ratios from medians, and says when the runs cannot carry what they seem to
claim.  Pure functions: no lab is needed to check them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Any

UNDERLAY = "underlay"  # the raw NIC-to-NIC column, measured in the kernel-mode lab
KERNEL = "kernel"  # the column every overlay is compared with
HEADLINE = "tcp_1stream_gbps"  # the figure the doubts are about: the steadiest throughput figure


@dataclass
class Figures:
    """One column's measurements in one round; None where a figure does not apply."""

    tcp_1stream_gbps: float | None = None
    tcp_1stream_reverse_gbps: float | None = None
    tcp_4stream_gbps: float | None = None
    tcp_4stream_reverse_gbps: float | None = None
    rtt_min_ms: float | None = None
    rtt_median_ms: float | None = None
    rtt_p99_ms: float | None = None
    cpu_s_per_gbit: float | None = None  # machine-wide CPU seconds per gigabit sent, single stream
    deploy_s: float | None = None  # measured once per column, in its first round
    controller_to_first_packet_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def numbers(self) -> dict[str, float | None]:
        """Every figure by name, without `extra`."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}


def _combined(samples: Sequence[Figures], how: Callable[[list[float]], float]) -> Figures:
    """One Figures whose each figure is `how` of the samples that have it (None where none has)."""
    values: dict[str, Any] = {}
    for name in samples[0].numbers():
        present = [v for s in samples if (v := getattr(s, name)) is not None]
        values[name] = round(how(present), 3) if present else None
    return replace(samples[0], **values)


@dataclass(frozen=True)
class Summary:
    """A column's samples, one per round, and their median and range figure by figure."""

    samples: tuple[Figures, ...]

    # computed once: the table, the doubts, the JSON and the plot each read them figure by figure
    @cached_property
    def median(self) -> Figures:
        return _combined(self.samples, statistics.median)

    @cached_property
    def low(self) -> Figures:
        return _combined(self.samples, min)

    @cached_property
    def high(self) -> Figures:
        return _combined(self.samples, max)

    def spread(self, name: str) -> float | None:
        """max - min of one figure over the rounds."""
        low, high = getattr(self.low, name), getattr(self.high, name)
        return None if low is None or high is None else round(high - low, 3)


def summarize(samples: dict[str, list[Figures]]) -> dict[str, Summary]:
    return {column: Summary(tuple(found)) for column, found in samples.items() if found}


def rounds(summaries: dict[str, Summary]) -> int:
    """How many rounds every column has."""
    return min(len(s.samples) for s in summaries.values())


def interleaved(columns: Sequence[str], repeat: int) -> list[tuple[int, str]]:
    """The order of the measurements: every column once per round, round after round (A B C A B C)."""
    return [(round_, column) for round_ in range(repeat) for column in columns]


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 3)


def doubts(summaries: dict[str, Summary]) -> list[str]:
    """Why the figures of these runs are not to be taken at their word; empty when nothing says so."""
    said = []
    repeated = rounds(summaries)
    if repeated < 2:
        said.append("one run of each column: no spread to judge the figures by (--repeat 3 or more to quote them)")
    under = summaries.get(UNDERLAY)
    for name, summary in summaries.items():
        overlay = summary.median.tcp_1stream_gbps
        raw = under.median.tcp_1stream_gbps if under is not None else None
        if name != UNDERLAY and overlay is not None and raw is not None and overlay > raw:
            said.append(
                f"{name} came out faster than the raw underlay it rides on (TCP 1 stream {overlay:g} against"
                f" {raw:g} Gbit/s): the underlay's figure is noise, and so are the ratios to it"
            )
    kernel = summaries.get(KERNEL)
    if kernel is None or repeated < 2:
        return said
    for name, summary in summaries.items():
        if name in (UNDERLAY, KERNEL):
            continue
        claimed = _gap(summary, kernel)
        widest = max((s.spread(HEADLINE) or 0.0) for s in (summary, kernel))
        if claimed is not None and claimed < widest:
            said.append(
                f"{name} against kernel, TCP 1 stream: the difference of the medians ({claimed:g} Gbit/s) is"
                f" smaller than the runs' spread ({widest:g} Gbit/s): these runs cannot tell the two apart"
            )
    return said


def _gap(one: Summary, other: Summary) -> float | None:
    a, b = one.median.tcp_1stream_gbps, other.median.tcp_1stream_gbps
    return None if a is None or b is None else round(abs(a - b), 3)


# --- bench's table ---------------------------------------------------------------------------

#: bench's rows: what each says, and the figure it shows.
ROWS = [
    ("TCP 1 stream, Gbit/s", "tcp_1stream_gbps"),
    ("TCP 1 stream reverse, Gbit/s", "tcp_1stream_reverse_gbps"),
    ("TCP 4 streams, Gbit/s", "tcp_4stream_gbps"),
    ("TCP 4 streams reverse, Gbit/s", "tcp_4stream_reverse_gbps"),
    ("RTT min, ms", "rtt_min_ms"),
    ("RTT median, ms", "rtt_median_ms"),
    ("RTT p99, ms", "rtt_p99_ms"),
    ("CPU s per Gbit (machine)", "cpu_s_per_gbit"),
    ("deploy, s", "deploy_s"),
    ("controller start to first packet, s", "controller_to_first_packet_s"),
]


def cell(summary: Summary, key: str, *bases: tuple[str, float | None]) -> str:
    """The median, its runs' range when they differ, and its ratios (of medians) to the bases."""
    value = getattr(summary.median, key)
    if value is None:
        return "-"
    low, high = getattr(summary.low, key), getattr(summary.high, key)
    # three significant digits: repeated runs differ in the third already
    shown = f"{value:.3g}" + (f" [{low:.3g}-{high:.3g}]" if low != high else "")
    ratios = [f"{ratio(value, base):.2f}x {name}" for name, base in bases if base]
    return shown + (f" ({', '.join(ratios)})" if ratios else "")


def grid(summaries: dict[str, Summary]) -> list[tuple[str, list[str]]]:
    """bench's table as text: each row's label and one cell per column, the median with its rounds'
    [min-max] and its ratios to the underlay and, for an overlay other than kernel mode's, to kernel mode."""
    under, kern = summaries[UNDERLAY].median, summaries[KERNEL].median if KERNEL in summaries else None
    table = []
    for label, key in ROWS:
        cells = []
        for name, summary in summaries.items():
            bases: list[tuple[str, Any]] = [] if name == UNDERLAY else [(UNDERLAY, getattr(under, key))]
            if kern is not None and name not in (UNDERLAY, KERNEL):
                bases.append((KERNEL, getattr(kern, key)))
            cells.append(cell(summary, key, *bases))
        table.append((label, cells))
    return table


def described(summaries: dict[str, Summary], duration: float) -> str:
    """How the figures were taken, as the table's heading says it."""
    repeated = rounds(summaries)
    how = f"median [min-max] of {repeated} interleaved rounds" if repeated > 1 else "one round"
    return f"{duration:g} s per iperf3 run, {how}"


def untrusted(summaries: dict[str, Summary]) -> list[str]:
    """The doubts, as the table's notes say them."""
    return [f"not to be trusted: {doubt}" for doubt in doubts(summaries)]


def settings(summaries: dict[str, Summary]) -> list[str]:
    """How each ovs column's lab was built (its datapath and port type), where the bench recorded it."""
    return [
        f"{name} datapath: {s.median.extra['datapath']}, port type: {s.median.extra['port_type']}"
        for name, s in summaries.items()
        if "datapath" in s.median.extra
    ]


def from_json(data: dict[str, Any]) -> dict[str, Summary]:
    """The summaries a bench's JSON (`bench.to_json`, `bench --json-file`) was written from: each column's
    rounds, with what the bench recorded of its lab."""
    named = {f.name for f in fields(Figures)} | {"min", "max", "samples"}
    found = {}
    for column, mode in data["modes"].items():
        extra = {key: value for key, value in mode.items() if key not in named}
        samples = [Figures(**sample) for sample in mode["samples"]]
        found[column] = Summary((replace(samples[0], extra=extra), *samples[1:]))
    return found


def markdown(data: dict[str, Any]) -> str:
    """A bench's JSON as a Markdown table, with how its lab was built and the doubts under it (the docs'
    figures, so that a page shows exactly what its JSON file holds)."""
    summaries = from_json(data)
    lines = [
        f"| figure ({described(summaries, data['duration_s'])}) | " + " | ".join(summaries) + " |",
        "|---" * (len(summaries) + 1) + "|",
        *(f"| {label} | " + " | ".join(cells) + " |" for label, cells in grid(summaries)),
    ]
    notes = settings(summaries) + untrusted(summaries)
    return "\n".join(lines) + ("\n\n" + "\n".join(f"- {note}" for note in notes) if notes else "") + "\n"
