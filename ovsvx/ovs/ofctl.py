"""Run OVS's own command-line tools against one host's OVS, and read `dump-flows`.

ovsvx changes OVS through OVSDB and OpenFlow messages; it reads flows back the
way a person does, with `ovs-ofctl -O OpenFlow13 dump-flows`, so what
`ovsvx flows` and the tests show is exactly what a user would see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ovsvx.errors import ApplyError
from ovsvx.host import netstack
from ovsvx.ovs.daemons import OvsHome

_STAT_RE = re.compile(r"(cookie|table|n_packets|n_bytes)=(0x[0-9a-f]+|\d+)")


@dataclass(frozen=True)
class InstalledFlow:
    cookie: int
    table: int
    n_packets: int
    n_bytes: int
    rule: str  # "priority=...,match actions=..." as ovs-ofctl prints it


def tool(home: OvsHome, program: str, *args: str, timeout: float = 20) -> str:
    """Run an OVS tool (ovs-ofctl, ovs-appctl, ovs-vsctl) in the host's namespace against its OVS."""
    argv = [program, *(("-O", "OpenFlow13") if program == "ovs-ofctl" else ()), *args]
    done = netstack.run(home.netns, argv, timeout=timeout, env=home.env())
    if done.returncode != 0:
        raise ApplyError(f"{' '.join(argv[:4])}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def dump_flows(home: OvsHome, bridge: str, *options: str) -> list[InstalledFlow]:
    flows = []
    for line in tool(home, "ovs-ofctl", "dump-flows", "--names", *options, bridge).splitlines():
        if "priority=" not in line:
            continue
        stats = {key: int(value, 0) for key, value in _STAT_RE.findall(line[: line.index("priority=")])}
        flows.append(
            InstalledFlow(
                stats.get("cookie", 0),
                stats.get("table", 0),
                stats.get("n_packets", 0),
                stats.get("n_bytes", 0),
                line[line.index("priority=") :].strip(),
            )
        )
    return flows
