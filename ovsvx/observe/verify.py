"""The probes that say whether an overlay works as the tutorial's does.

`probes(topology, sources)` is pure: every ordered pair of overlay nodes
(hosts, by their gateway address, and workload namespaces), each with the TTL
its reply must show, plus the underlay between VTEPs, a full-size ping with
DF set between namespaces on different hosts, and a TCP transfer.  The TTL is
the tutorial's routing made checkable: each host that forwards the reply takes
one off 64, so ns1 -> ns2 sees 62.  Both modes must give the same answers.

`run(deployment, probes)` executes them in the deployment's namespaces.
"""

from __future__ import annotations

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from ipaddress import IPv4Address
from typing import Any

from ovsvx.deploy import lab
from ovsvx.errors import ApplyError
from ovsvx.host import netstack, preflight, record
from ovsvx.host.record import Deployment, Kind
from ovsvx.model.topology import Node, Topology, nodes

INITIAL_TTL = 64
IPV4_ICMP_HEADERS = 28  # IP 20 + ICMP 8: ping -s takes the payload size
IPERF_PORT = 5201
IPERF_START_S = 5.0  # an iperf3 server binding its port
TCP_BYTES = "20M"
PING_COUNT = 3
PING_INTERVAL_S = "0.05"  # between a probe's echoes: the first reply is what waits on ARP and the controller
PARALLEL_PINGS = 32  # probes at once: a 32-host lab makes 6017 of them


@dataclass(frozen=True)
class Probe:
    kind: str  # "ping", "underlay", "ping-df" or "tcp"
    src: str
    dst: str
    address: IPv4Address
    expected_ttl: int | None
    size: int | None = None  # ping payload bytes, for ping-df


@dataclass(frozen=True)
class Result:
    probe: Probe
    ok: bool
    ttl: int | None
    detail: str
    rtt_ms: float | None = None
    gbps: float | None = None

    def to_json(self) -> dict[str, object]:
        data = asdict(self.probe)
        data["address"] = str(self.probe.address)
        data.update(ok=self.ok, ttl=self.ttl, detail=self.detail, rtt_ms=self.rtt_ms, gbps=self.gbps)
        return data


def routers_between(a: Node, b: Node) -> int:
    """Hosts that route a packet between two nodes: none on the same host (bridge or local),
    otherwise each namespace's host forwards once."""
    if a.host == b.host:
        return 0
    return (0 if a.is_host else 1) + (0 if b.is_host else 1)


def probes(topology: Topology, sources: set[str] | None = None) -> list[Probe]:
    """Every probe whose source is on one of `sources` hosts (all hosts when None)."""
    every = nodes(topology)
    local = [n for n in every if sources is None or n.host in sources]
    found = [
        Probe("ping", a.name, b.name, b.address, INITIAL_TTL - routers_between(a, b))
        for a in local
        for b in every
        if a != b
    ]
    found += [
        Probe("underlay", a.name, b.name, b.vtep, INITIAL_TTL)
        for a in topology.hosts
        if sources is None or a.name in sources
        for b in topology.hosts
        if a != b
    ]
    remote_pairs = [(a, b) for a in local for b in every if not a.is_host and not b.is_host and a.host != b.host]
    size = topology.overlay_mtu - IPV4_ICMP_HEADERS
    found += [Probe("ping-df", a.name, b.name, b.address, INITIAL_TTL - 2, size) for a, b in remote_pairs]
    if sources is None:  # both ends local (a lab): a real host cannot start the peer's iperf3 server
        found += [Probe("tcp", a.name, b.name, b.address, None) for a, b in remote_pairs[:1]]
    return found


# --- running ---------------------------------------------------------------------

_TTL_RE = re.compile(r"ttl=(\d+) time=([\d.]+)")
RTT_RE = re.compile(r"time=([\d.]+) ms")
STAMP_RE = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from", re.MULTILINE)  # ping -D


def _ping(netns: str | None, probe: Probe) -> Result:
    argv = ["ping", "-n", "-c", str(PING_COUNT), "-i", PING_INTERVAL_S, "-W", "2", str(probe.address)]
    if probe.size is not None:
        argv[1:1] = ["-M", "do", "-s", str(probe.size)]
    done = netstack.run(netns, argv, timeout=15)
    replies = _TTL_RE.findall(done.stdout)
    if not replies:
        lines = (done.stdout + done.stderr).strip().splitlines()
        return Result(probe, False, None, lines[-1] if lines else f"ping exited {done.returncode}")
    ttl = int(replies[-1][0])
    rtt = min(float(r[1]) for r in replies)
    duplicates = done.stdout.count("(DUP!)")
    problems = (
        [f"TTL {ttl} but the tutorial's routing gives {probe.expected_ttl}"]
        if probe.expected_ttl is not None and ttl != probe.expected_ttl
        else []
    )
    problems += [f"{duplicates} duplicate replies: something forwards a second copy"] if duplicates else []
    detail = ", ".join([f"{len(replies) - duplicates}/{PING_COUNT} replies", *problems])
    return Result(probe, not problems, ttl, detail, rtt_ms=rtt)


def iperf3(
    src_ns: str | None, dst_ns: str | None, address: str, port: int, client_args: list[str], timeout: float, where: str
) -> dict[str, Any]:
    """One iperf3 transfer between namespaces: its report's `end.sum_received`, or ApplyError with why
    (`where` names the server's side in that message)."""
    server = netstack.popen(
        dst_ns, ["iperf3", "-s", "-1", "-B", address, "-p", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        try:
            netstack.wait_listening(dst_ns, port, IPERF_START_S)
        except ApplyError:
            server.kill()
            said = (server.communicate()[0] or "").strip().splitlines()
            raise ApplyError(
                f"the iperf3 server in {where} did not start" + (f": {said[-1]}" if said else "")
            ) from None
        done = netstack.run(src_ns, ["iperf3", "-c", address, "-p", str(port), "-J", *client_args], timeout=timeout)
        try:
            report = json.loads(done.stdout)
        except ValueError:
            raise ApplyError((done.stderr or "iperf3 gave no report").strip().splitlines()[-1]) from None
        if "error" in report:
            raise ApplyError(f"iperf3: {report['error']}")
        received: dict[str, Any] = report["end"]["sum_received"]
        return received
    finally:
        server.kill()
        server.wait()


def _tcp(src_ns: str | None, dst_ns: str | None, probe: Probe) -> Result:
    try:
        received = iperf3(
            src_ns,
            dst_ns,
            str(probe.address),
            IPERF_PORT,
            ["-n", TCP_BYTES, "--connect-timeout", "3000"],
            timeout=60,
            where=probe.dst,
        )
    except ApplyError as err:
        return Result(probe, False, None, str(err))
    gbps = received["bits_per_second"] / 1e9
    return Result(probe, received["bytes"] > 0, None, f"{received['bytes']} bytes", gbps=round(gbps, 3))


def run(deployment: Deployment, selected: list[Probe]) -> list[Result]:
    """Run the probes (pings in parallel, then TCP) in the deployment's namespaces."""
    where = {n.name: lab.node_netns(deployment, n.name) for n in nodes(deployment.topology)}
    pings = [p for p in selected if p.kind != "tcp"]
    with ThreadPoolExecutor(max_workers=PARALLEL_PINGS) as pool:
        results = list(pool.map(lambda p: _ping(where[p.src], p), pings))
    results += [_tcp(where[p.src], where[p.dst], p) for p in selected if p.kind == "tcp"]
    return results


def check(kind: Kind, prefix: str) -> list[Result]:
    """Every probe that can run here, for the deployment of `kind` and `prefix`: all of them in a lab; on
    a real host, those that start on it (the peers' namespaces are on other machines)."""
    preflight.require_root()
    preflight.require_tools("ping", "iperf3")
    deployment = record.require(kind, prefix)
    return run(deployment, local_probes(deployment))


def local_probes(deployment: Deployment) -> list[Probe]:
    """The probes that can start here: all of them in a lab; on a real host, those that start on it (the
    peers' namespaces are on other machines)."""
    return probes(deployment.topology, None if deployment.is_lab else set(deployment.modes))


def to_json(results: list[Result]) -> dict[str, Any]:
    """`verify --json`: whether every check passed, and each check."""
    return {"ok": all(r.ok for r in results), "checks": [r.to_json() for r in results]}
