"""Measure the raw underlay, kernel vxlan and OVS side by side, in one run, on labs of the bench's own.

For each mode the bench builds a lab under its own prefix (never a user's),
measures every column round after round, interleaved, and destroys the labs,
also when interrupted.  The underlay is measured between the two hosts' NICs
in the kernel-mode lab (in ovs mode the userspace datapath sits on the NIC).
An idle lab costs nothing measurable (its ovs-vswitchd: 1 tick of CPU in 5 s),
so every lab stays up while the others are measured.  Figures are for
comparing the modes with each other on this machine, not targets; `figures`
turns the rounds into medians, spreads and doubts.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ovsvx import waits
from ovsvx.deploy.backends import Backend, backend, variants
from ovsvx.deploy.deploy import Scope, deploy, destroy
from ovsvx.errors import ApplyError, UsageError
from ovsvx.host import netstack, preflight
from ovsvx.host.record import Deployment, check_prefix
from ovsvx.model.options import DeployOptions
from ovsvx.model.site import Site
from ovsvx.model.topology import Encryption, Ipsec, Topology
from ovsvx.observe import verify
from ovsvx.observe.figures import KERNEL, UNDERLAY, Figures, Summary, doubts, interleaved, ratio, rounds

#: The columns a bench can measure (each mode's `variants`): the baseline (kernel mode) first, then each
#: mode's own in the registry's order, the encrypted ones last.
COLUMNS = {v.column: v for v in sorted(variants().values(), key=lambda v: (v.column != KERNEL, v.encrypted))}
IPERF_PORT = 5301
PING_COUNT = 200
PING_INTERVAL_S = 0.005
FIRST_PACKET_S = 20.0  # a controller that has not forwarded the first packet by then has failed
KNOCK_S = 0.2  # the pings' head start: they are already knocking when the controller starts (not a wait)
REPEAT = 3  # rounds by default: the fewest that have a median and a spread


def parse_modes(text: str) -> list[str]:
    """The columns to measure, in order: kernel, ovs, ovs on a datapath (ovs:system, ovs:netdev), ipsec."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in COLUMNS]
    if bad or not modes:
        raise UsageError(f"--modes {text!r} is not allowed: a comma list of {', '.join(COLUMNS)}")
    return list(dict.fromkeys(modes))


def _lab_prefix(prefix: str, column: str) -> str:
    """Each column's lab has a prefix of its own: bench-k-, bench-o-, bench-os-, bench-on-."""
    mode, _, datapath = column.partition(":")
    return f"{prefix}{mode[0]}{datapath[:1]}-"


# --- measuring ------------------------------------------------------------------------------


def _cpu_busy_s() -> float:
    """CPU seconds the whole machine has spent busy, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / 100.0  # USER_HZ


def iperf(
    src_ns: str | None, dst_ns: str | None, address: str, seconds: float, streams: int, reverse: bool
) -> tuple[float, float]:
    """(Gbit/s received, machine CPU seconds) of one iperf3 run through the namespaces."""
    cpu = _cpu_busy_s()
    args = ["-t", str(seconds), "-P", str(streams), *(["-R"] if reverse else [])]
    received = verify.iperf3(
        src_ns, dst_ns, address, IPERF_PORT, args, timeout=seconds + 30, where=dst_ns or "this machine"
    )
    return received["bits_per_second"] / 1e9, _cpu_busy_s() - cpu


def latency(src_ns: str | None, address: str) -> tuple[float, float, float]:
    """(min, median, p99) RTT in ms of many pings at a short interval."""
    done = netstack.run(
        src_ns, ["ping", "-n", "-c", str(PING_COUNT), "-i", str(PING_INTERVAL_S), "-W", "1", address], timeout=60
    )
    rtts = sorted(float(t) for t in verify.RTT_RE.findall(done.stdout))
    if not rtts:
        raise ApplyError(f"no ping reply from {address}")
    p99 = rtts[min(len(rtts) - 1, int(round(0.99 * (len(rtts) - 1))))]
    return rtts[0], statistics.median(rtts), p99


def measure_path(
    src_ns: str | None, dst_ns: str | None, address: str, seconds: float, figures: Figures, step: Callable[[str], None]
) -> None:
    step("TCP, one stream")
    figures.tcp_1stream_gbps, cpu = iperf(src_ns, dst_ns, address, seconds, 1, False)
    sent_gbit = figures.tcp_1stream_gbps * seconds
    figures.cpu_s_per_gbit = round(cpu / sent_gbit, 3) if sent_gbit > 0 else None
    step("TCP, one stream, reverse")
    figures.tcp_1stream_reverse_gbps, _ = iperf(src_ns, dst_ns, address, seconds, 1, True)
    step("TCP, four streams")
    figures.tcp_4stream_gbps, _ = iperf(src_ns, dst_ns, address, seconds, 4, False)
    step("TCP, four streams, reverse")
    figures.tcp_4stream_reverse_gbps, _ = iperf(src_ns, dst_ns, address, seconds, 4, True)
    step("latency")
    figures.rtt_min_ms, figures.rtt_median_ms, figures.rtt_p99_ms = latency(src_ns, address)


def control_to_first_packet(lab: Lab) -> float:
    """Seconds from starting host1's control plane (its controller) on an empty switch to ns1's first
    answered ping.

    The mode empties the switch (`Backend.stop_control`), its tables and what its datapath caches: with
    flows cached, the pings sent meanwhile were answered before any controller ran, and the figure came
    out negative.  A first answer from before the start is refused, not reported."""
    chosen = _host1(lab)
    chosen.stop_control()
    deadline = waits.scaled(FIRST_PACKET_S)
    pinger = netstack.popen(
        lab.src_ns,
        ["ping", "-n", "-D", "-i", "0.01", "-w", f"{deadline:.0f}", "-c", "1", lab.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(KNOCK_S)
    started = time.time()  # the clock of ping's -D stamps
    chosen.start_control()
    out, _ = pinger.communicate(timeout=deadline + waits.scaled(10))
    stamps = [float(s) for s in verify.STAMP_RE.findall(out)]
    if not stamps:
        raise ApplyError(f"no packet was forwarded within {deadline:.0f} s of the controller's start")
    if stamps[0] <= started:
        raise ApplyError(
            f"a ping was answered {started - stamps[0]:.3f} s before the controller started: the bridge was "
            "not empty, so there is no controller-to-first-packet figure to report"
        )
    return round(stamps[0] - started, 3)


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    """A column's lab, up for every round: where its packets go from and to."""

    scope: Scope
    deployment: Deployment
    src_ns: str
    dst_ns: str
    address: str


def _encrypted(topology: Topology, folder: str) -> Topology:
    """The bench's topology with IPsec, keyed by a random key of the bench's own in a root-only file."""
    path = os.path.join(folder, "ipsec.psk")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(secrets.token_urlsafe(32))
    return dataclasses.replace(topology, encryption=Encryption.IPSEC, ipsec=Ipsec(Path(path)))


def _build(
    column: str, topology: Topology, prefix: str, options: DeployOptions, step: Callable[[str], None]
) -> tuple[Lab, float]:
    """Deploy one column's lab; the lab and how long its deploy took."""
    variant = COLUMNS[column]
    scope = Scope.lab(_lab_prefix(prefix, column))
    step(f"{column}: deploying a lab")
    started = time.monotonic()
    deployment = deploy(scope, topology, {"*": variant.mode}, variant.options(options)).deployment
    deploy_s = round(time.monotonic() - started, 2)
    src, dst = topology.hosts[0].namespaces[0], topology.hosts[1].namespaces[0]
    return Lab(scope, deployment, scope.prefix + src.name, scope.prefix + dst.name, str(dst.address)), deploy_s


def _underlay(kernel_lab: Lab, topology: Topology) -> Lab:
    """The physical baseline: the kernel-mode lab's two hosts, NIC to NIC."""
    src, dst = topology.hosts[0], topology.hosts[1]
    prefix = kernel_lab.scope.prefix
    return dataclasses.replace(kernel_lab, src_ns=prefix + src.name, dst_ns=prefix + dst.name, address=str(dst.vtep))


def _measure(column: str, lab: Lab, seconds: float, step: Callable[[str], None]) -> Figures:
    """One round of one column's path (and what its mode decided for its lab: ovs mode's datapath)."""
    figures = Figures()
    measure_path(lab.src_ns, lab.dst_ns, lab.address, seconds, figures, step)
    if column in COLUMNS:  # not the underlay
        figures.extra.update(_host1(lab).settings_figures())
    return figures


def _host1(lab: Lab) -> Backend:
    """The backend of the lab's first host, whose namespace the bench's packets leave from."""
    host = lab.deployment.topology.hosts[0]
    site = Site(host, lab.scope.prefix + host.name, lab.scope.prefix)
    return backend(lab.deployment.modes[host.name], site, lab.deployment)


def run(
    topology: Topology,
    modes: list[str],
    seconds: float,
    prefix: str,
    step: Callable[[str], None] = lambda _: None,
    options: DeployOptions = DeployOptions(),
    repeat: int = REPEAT,
) -> dict[str, list[Figures]]:
    """Each column's figures, one per round: every lab is built first, then the columns' paths are
    measured interleaved, `repeat` rounds of underlay, kernel, ..., then each column's controller start
    (where its mode has one) in the same turns; every lab is destroyed, whatever happens."""
    preflight.require_root()
    preflight.require_tools("iperf3", "ping")
    check_prefix(prefix)
    built = [KERNEL, *(m for m in modes if m != KERNEL)]  # kernel mode's lab always: the underlay is measured there
    columns = [UNDERLAY, *(m for m in built if m in modes)]
    labs: dict[str, Lab] = {}
    deploy_s: dict[str, float] = {}
    samples: dict[str, list[Figures]] = {column: [] for column in columns}
    key_folder = tempfile.TemporaryDirectory(prefix="ovsvx-bench-")  # the ipsec column's key, gone at the end
    try:
        for column in built:
            wanted = _encrypted(topology, key_folder.name) if COLUMNS[column].encrypted else topology
            labs[column], deploy_s[column] = _build(column, wanted, prefix, options, step)
        labs[UNDERLAY] = _underlay(labs[KERNEL], topology)
        for round_, column in interleaved(columns, repeat):
            said = partial(_labelled, step, f"round {round_ + 1} of {repeat}, {column}")
            figures = _measure(column, labs[column], seconds, said)
            figures.deploy_s = deploy_s.get(column) if round_ == 0 else None  # a lab is deployed once
            samples[column].append(figures)
        # only after every path is measured: a controller that was just restarted is still busy starting
        # (under emulation for seconds), and the rounds measured meanwhile came out with 4x the RTT
        started = [c for c in columns if c in COLUMNS and COLUMNS[c].control_start]
        for round_, column in interleaved(started, repeat):
            step(f"round {round_ + 1} of {repeat}, {column}: controller start to first forwarded packet")
            samples[column][round_].controller_to_first_packet_s = control_to_first_packet(labs[column])
    finally:
        for column in reversed(built):
            if column in labs:
                step(f"{column}: destroying its lab")
                destroy(labs[column].scope)
        key_folder.cleanup()
    return samples


def to_json(summaries: dict[str, Summary], seconds: float) -> dict[str, Any]:
    """Each column's medians (under the figures' own names), its min and max, and every sample; ratios
    from the medians; the doubts in words."""
    modes = {}
    for name, summary in summaries.items():
        median = summary.median
        modes[name] = {
            **median.numbers(),
            **median.extra,
            "min": summary.low.numbers(),
            "max": summary.high.numbers(),
            "samples": [s.numbers() for s in summary.samples],
        }
    under, kernel = summaries[UNDERLAY].median, summaries[KERNEL].median if KERNEL in summaries else None
    ratios = {
        name: {
            "tcp_1stream_vs_underlay": ratio(s.median.tcp_1stream_gbps, under.tcp_1stream_gbps),
            "tcp_1stream_vs_kernel": ratio(s.median.tcp_1stream_gbps, kernel.tcp_1stream_gbps if kernel else None),
            "rtt_median_vs_kernel": ratio(s.median.rtt_median_ms, kernel.rtt_median_ms if kernel else None),
        }
        for name, s in summaries.items()
        if name != UNDERLAY
    }
    repeated = rounds(summaries)
    return {
        "duration_s": seconds,
        "repeat": repeated,
        "order": [f"{column}#{round_ + 1}" for round_, column in interleaved(list(summaries), repeated)],
        "modes": modes,
        "ratios": ratios,
        "doubts": doubts(summaries),
    }


def require_matplotlib() -> Any:
    """The optional matplotlib, or a UsageError saying how to get it (checked before a bench starts)."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: .venv/bin/pip install -e '.[plot]' (scripts/setup does)") from None
    return matplotlib


def _labelled(step: Callable[[str], None], label: str, what: str) -> None:
    step(f"{label}: {what}")


def plot(summaries: dict[str, Summary], path: str) -> None:
    """A PNG bar chart of throughput and latency per column: medians, the runs' min-max as error bars
    (needs the optional matplotlib)."""
    matplotlib = require_matplotlib()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summaries)
    fig, (tcp, rtt) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.2
    series = [
        ("1 stream", "tcp_1stream_gbps"),
        ("1 stream, reverse", "tcp_1stream_reverse_gbps"),
        ("4 streams", "tcp_4stream_gbps"),
        ("4 streams, reverse", "tcp_4stream_reverse_gbps"),
    ]
    for axes, keys, unit in (
        (tcp, series, "TCP throughput, Gbit/s (iperf3)"),
        (rtt, [("min", "rtt_min_ms"), ("median", "rtt_median_ms"), ("p99", "rtt_p99_ms")], "ping round trip, ms"),
    ):
        middle = (len(keys) - 1) / 2
        for i, (label, key) in enumerate(keys):
            medians = [getattr(summaries[n].median, key) or 0 for n in names]
            below = [m - (getattr(summaries[n].low, key) or m) for n, m in zip(names, medians, strict=True)]
            above = [(getattr(summaries[n].high, key) or m) - m for n, m in zip(names, medians, strict=True)]
            spots = [x + (i - middle) * width for x in range(len(names))]
            axes.bar(spots, medians, width, yerr=[below, above], capsize=2, label=label)
        axes.set_xticks(range(len(names)), names)
        axes.set_ylabel(unit)
        axes.legend(fontsize=8)
    title = f"ovsvx bench: underlay, kernel vxlan and OVS on one machine (median of {rounds(summaries)}, min-max)"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
