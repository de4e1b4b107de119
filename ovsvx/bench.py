"""Measure the raw underlay, kernel vxlan and OVS side by side, in one run, on labs of the bench's own.

For each mode the bench builds a lab under its own prefix (never a user's),
measures, and destroys it, also when interrupted.  The underlay is measured
between the two hosts' NICs in the kernel-mode lab (in ovs mode the userspace
datapath sits on the NIC).  Figures are what one run on this machine gave:
they are for comparing the modes with each other, not targets.
"""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ovsvx import daemons, netstack, ofctl, preflight, verify, waits
from ovsvx.deploy import Scope, deploy, destroy
from ovsvx.errors import ApplyError, UsageError
from ovsvx.options import DeployOptions
from ovsvx.record import Deployment, check_prefix
from ovsvx.site import Site
from ovsvx.topology import Mode, Topology

#: What the bench can measure: a mode, or ovs mode on a named datapath (its own column, beside the others).
# the columns a bench can measure: each mode, and ovs mode on a datapath of its choosing
MODES = (*Mode, *(f"{Mode.OVS}:{datapath}" for datapath in ("system", "netdev")))
IPERF_PORT = 5301
PING_COUNT = 200
PING_INTERVAL_S = 0.005
FIRST_PACKET_S = 20.0  # a controller that has not forwarded the first packet by then has failed
KNOCK_S = 0.2  # the pings' head start: they are already knocking when the controller starts (not a wait)


@dataclass
class Figures:
    """One mode's (or the underlay's) measurements; None where a figure does not apply."""

    tcp_1stream_gbps: float | None = None
    tcp_1stream_reverse_gbps: float | None = None
    tcp_4stream_gbps: float | None = None
    tcp_4stream_reverse_gbps: float | None = None
    rtt_min_ms: float | None = None
    rtt_median_ms: float | None = None
    rtt_p99_ms: float | None = None
    cpu_s_per_gbit: float | None = None  # machine-wide CPU seconds per gigabit sent, single stream
    deploy_s: float | None = None
    controller_to_first_packet_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def parse_modes(text: str) -> list[str]:
    """The columns to measure, in order: kernel, ovs, or ovs on a datapath (ovs:system, ovs:netdev)."""
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise UsageError(f"--modes {text!r} is not allowed: a comma list of {', '.join(MODES)}")
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


def controller_to_first_packet(deployment: Deployment, site: Site, src_ns: str | None, address: str) -> float:
    """Seconds from starting host1's controller on an empty bridge to ns1's first answered ping.

    The bridge is emptied twice over: its OpenFlow tables, and the flows its datapath caches.  After
    `del-flows` the datapath keeps forwarding with the flows it cached until the revalidators catch up, so
    the pings sent meanwhile were answered before any controller ran, and the figure came out negative.
    A first answer from before the start is refused, not reported."""
    home = daemons.ovs_home(deployment, site)
    daemons.stop_controller(deployment, site)
    ofctl.tool(home, "ovs-ofctl", "del-flows", site.host.bridge)
    ofctl.tool(home, "ovs-appctl", "dpctl/del-flows")
    deadline = waits.scaled(FIRST_PACKET_S)
    pinger = netstack.popen(
        src_ns,
        ["ping", "-n", "-D", "-i", "0.01", "-w", f"{deadline:.0f}", "-c", "1", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(KNOCK_S)
    started = time.time()  # the clock of ping's -D stamps
    daemons.start_controller(deployment, site)
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


def run(
    topology: Topology,
    modes: list[str],
    seconds: float,
    prefix: str,
    step: Callable[[str], None] = lambda _: None,
    options: DeployOptions = DeployOptions(),
) -> dict[str, Figures]:
    """Measure the underlay and each mode in turn; every lab is destroyed, whatever happens."""
    preflight.require_root()
    preflight.require_tools("iperf3", "ping")
    check_prefix(prefix)
    results: dict[str, Figures] = {}
    src, dst = topology.hosts[0], topology.hosts[1]
    ns_src, ns_dst = src.namespaces[0], dst.namespaces[0]
    for column in [Mode.KERNEL, *(m for m in modes if m != Mode.KERNEL)]:
        mode, _, datapath = column.partition(":")
        scope = Scope.lab(_lab_prefix(prefix, column))
        try:
            step(f"{column}: deploying a lab")
            started = time.monotonic()
            chosen = (
                dataclasses.replace(options, datapath=datapath or options.datapath)
                if mode == Mode.OVS
                else DeployOptions()
            )
            deployment = deploy(scope, topology, {"*": mode}, chosen).deployment
            deploy_s = round(time.monotonic() - started, 2)
            if mode == Mode.KERNEL:  # the physical baseline, NIC to NIC
                results["underlay"] = Figures()
                measure_path(
                    scope.prefix + src.name,
                    scope.prefix + dst.name,
                    str(dst.vtep),
                    seconds,
                    results["underlay"],
                    lambda what: step(f"underlay: {what}"),
                )
            if column not in modes:
                continue
            figures = results[column] = Figures(deploy_s=deploy_s)
            measure_path(
                scope.prefix + ns_src.name,
                scope.prefix + ns_dst.name,
                str(ns_dst.address),
                seconds,
                figures,
                partial(_labelled, step, column),
            )
            if mode == Mode.OVS:
                step(f"{column}: controller start to first forwarded packet")
                site = Site(src, scope.prefix + src.name, scope.prefix)
                figures.controller_to_first_packet_s = controller_to_first_packet(
                    deployment, site, scope.prefix + ns_src.name, str(ns_dst.address)
                )
                figures.extra["datapath"] = deployment.settings[src.name].datapath
                figures.extra["port_type"] = deployment.settings[src.name].port_type
                figures.extra["ovs_config"] = " ".join(options.ovs_config or ())
        finally:
            step(f"{column}: destroying its lab")
            destroy(scope)
    return results


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, 3)


def to_json(results: dict[str, Figures], seconds: float) -> dict[str, Any]:
    modes = {}
    for name, figures in results.items():
        data = {k: v for k, v in vars(figures).items() if k != "extra"}
        data.update(figures.extra)
        modes[name] = data
    underlay, kernel = results["underlay"], results.get(Mode.KERNEL)
    ratios = {
        name: {
            "tcp_1stream_vs_underlay": ratio(figures.tcp_1stream_gbps, underlay.tcp_1stream_gbps),
            "tcp_1stream_vs_kernel": ratio(figures.tcp_1stream_gbps, kernel.tcp_1stream_gbps if kernel else None),
            "rtt_median_vs_kernel": ratio(figures.rtt_median_ms, kernel.rtt_median_ms if kernel else None),
        }
        for name, figures in results.items()
        if name != "underlay"
    }
    return {"duration_s": seconds, "modes": modes, "ratios": ratios}


def require_matplotlib() -> Any:
    """The optional matplotlib, or a UsageError saying how to get it (checked before a bench starts)."""
    try:
        import matplotlib
    except ImportError:
        raise UsageError("--plot needs matplotlib: .venv/bin/pip install -e '.[plot]' (scripts/setup does)") from None
    return matplotlib


def _labelled(step: Callable[[str], None], column: str, what: str) -> None:
    step(f"{column}: {what}")


def plot(results: dict[str, Figures], path: str) -> None:
    """A PNG bar chart of throughput and latency per mode (needs the optional matplotlib)."""
    matplotlib = require_matplotlib()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, (tcp, rtt) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.2
    series = [
        ("1 stream", "tcp_1stream_gbps"),
        ("1 stream, reverse", "tcp_1stream_reverse_gbps"),
        ("4 streams", "tcp_4stream_gbps"),
        ("4 streams, reverse", "tcp_4stream_reverse_gbps"),
    ]
    for i, (label, key) in enumerate(series):
        tcp.bar(
            [x + (i - 1.5) * width for x in range(len(names))],
            [getattr(results[n], key) or 0 for n in names],
            width,
            label=label,
        )
    tcp.set_xticks(range(len(names)), names)
    tcp.set_ylabel("TCP throughput, Gbit/s (iperf3)")
    tcp.legend(fontsize=8)
    for i, (label, key) in enumerate([("min", "rtt_min_ms"), ("median", "rtt_median_ms"), ("p99", "rtt_p99_ms")]):
        rtt.bar(
            [x + (i - 1) * width for x in range(len(names))],
            [getattr(results[n], key) or 0 for n in names],
            width,
            label=label,
        )
    rtt.set_xticks(range(len(names)), names)
    rtt.set_ylabel("ping round trip, ms")
    rtt.legend(fontsize=8)
    fig.suptitle("ovsvx bench: underlay, kernel vxlan and OVS on one machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
