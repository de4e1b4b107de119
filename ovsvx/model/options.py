"""The command line's choices for a deploy, beyond the topology: what every backend may read."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DeployOptions:
    """Command-line choices that shape a deployment beyond the topology.

    A choice left out keeps what the deployment has (a plain `ovsvx deploy` repairs, it does not
    reset), so only what the user says changes anything.
    """

    controller: bool = True  # ovs mode: flows from the os-ken controller, else from flows_dir
    flows_dir: Path = Path("flows")
    # None, for each of these: what the host is deployed with now, else the default
    datapath: str | None = None  # ovs mode: auto, system or netdev
    port_type: str | None = None  # ovs mode, userspace datapath: auto, system, afxdp or afxdp-nonpmd
    firewall: bool | None = None  # the VXLAN port admits only the peer VTEPs (nftables table inet ovsvx)
    ovs_config: tuple[str, ...] | None = None  # ovs mode: [HOST:]KEY=VALUE for OVS's other_config
    tunnel_csum: str | None = None  # ovs mode: the vxlan ports' outer UDP checksum, auto, on or off


@dataclass(frozen=True)
class Variant:
    """A column `bench` can measure: one mode deployed one way, its lab built with these choices."""

    column: str  # its name on the command line and in the figures: "kernel", "ovs:netdev", "ipsec"
    mode: str
    takes_options: bool = False  # the command line's deploy choices apply to its lab (else the defaults)
    choices: tuple[tuple[str, str], ...] = ()  # DeployOptions fields it sets over those: (("datapath", "system"),)
    encrypted: bool = False  # its topology encrypted (encryption = "ipsec", with a key of the bench's own)
    control_start: bool = False  # its controller's start to the first forwarded packet is measured too

    def options(self, given: DeployOptions) -> DeployOptions:
        """What its lab is deployed with, given the command line's choices."""
        chosen: dict[str, Any] = dict(self.choices)
        return replace(given if self.takes_options else DeployOptions(), **chosen)
