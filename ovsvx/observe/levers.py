"""The levers of ovs mode's speed on the userspace datapath, by name: each a way to deploy the ovs lab
that `ovsvx bench --lever NAME` measures against kernel mode in the same run.

A lever is deploy's own choices (how the datapath reads the devices, OVS's tuning, the tunnel's
checksum) or the underlay's MTU, never anything set by hand.  `scripts/levers` runs the bench once per
lever: levers with PMD threads cannot share a run, since an idle lab's spinning PMD takes a core from
the column being measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovsvx.model import reader, writer
from ovsvx.model.options import DeployOptions
from ovsvx.model.topology import Topology

PINNED = ("host1:pmd-cpu-mask=0x1", "host2:pmd-cpu-mask=0x2")  # each lab host's PMD thread on a core of its own
NAPPING = ("pmd-maxsleep=50",)  # an idle PMD thread sleeps up to 50 us instead of spinning
JUMBO_MTU = 9000


@dataclass(frozen=True)
class Lever:
    name: str  # on the command line
    what: str  # in words, as the performance page's table says it
    port_type: str = "system"  # ovsvx's auto picks afxdp-nonpmd; each lever says its own
    ovs_config: tuple[str, ...] = ()
    tunnel_csum: str = "auto"  # off on the userspace datapath
    underlay_mtu: int | None = None  # the topology's own, unless the lever is the MTU

    def options(self) -> DeployOptions:
        """The ovs lab's deploy choices."""
        return DeployOptions(port_type=self.port_type, ovs_config=self.ovs_config, tunnel_csum=self.tunnel_csum)

    def topology(self, base: Topology) -> Topology:
        """The topology the bench's labs are built from: `base`, with the lever's underlay MTU (checked
        as a topology file's would be)."""
        if self.underlay_mtu is None:
            return base
        return reader.parse({**writer.to_data(base), "underlay_mtu": self.underlay_mtu})


LEVERS = {
    lever.name: lever
    for lever in (
        Lever("packet-sockets", "packet sockets"),
        Lever("afxdp-nonpmd", "AF_XDP, no PMD thread (the default)", "afxdp-nonpmd"),
        Lever("afxdp-nonpmd-csum", "AF_XDP, no PMD thread, the tunnel's outer checksum on", "afxdp-nonpmd", (), "on"),
        Lever("afxdp-pmd", "AF_XDP, PMD threads, unpinned", "afxdp"),
        Lever("afxdp-pmd-napping", "AF_XDP, PMD threads that nap", "afxdp", NAPPING),
        Lever("afxdp-pmd-pinned", "AF_XDP, PMD threads pinned", "afxdp", PINNED),
        Lever("afxdp-pmd-pinned-napping", "AF_XDP, PMD threads pinned and napping", "afxdp", PINNED + NAPPING),
        Lever(
            "jumbo",
            f"{JUMBO_MTU}-byte underlay (packet sockets: AF_XDP is refused above 1500)",
            underlay_mtu=JUMBO_MTU,
        ),
    )
}
