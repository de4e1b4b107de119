"""The command line's choices for a deploy, beyond the topology: what every backend may read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
