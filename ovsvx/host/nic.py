"""What a NIC needs beyond netlink: its checksum offload (ethtool's ioctl) and announcing an address (ARP).

Small wrappers, shared by the reconciler (netlink.py) and the lab (lab.py).
"""

from __future__ import annotations

import logging
from typing import Any

from pyroute2.ethtool.ioctl import IoctlEthtool

from ovsvx.errors import ApplyError
from ovsvx.host import netstack
from ovsvx.host.plan import ZERO_MAC

#: The features `ethtool -k` shows together as tx-checksumming: the device computes some checksums it sends.
TX_CHECKSUM = ("tx-checksum-ipv4", "tx-checksum-ip-generic", "tx-checksum-ipv6")


def tx_offload(netns: str | None, dev: str) -> bool:
    """Whether `dev` checksums what it sends, read through ethtool's ioctl (pyroute2) in its namespace:
    ovs mode's every pass asks of each veth on the userspace datapath, and a program each time (`ethtool
    -k`) was most of what a quiet pass started."""

    def read() -> bool:
        ethtool = IoctlEthtool(dev)
        try:
            features = ethtool.get_features()
            return any(features.is_active(name) for name in TX_CHECKSUM)
        except OSError as err:
            raise ApplyError(f"ethtool: cannot read {dev}'s offloads: {err.strerror}") from None
        finally:
            ethtool.close()

    return netstack.call_in(netns, read)


def set_tx_offload(netns: str | None, dev: str, on: bool) -> None:
    setting = "on" if on else "off"
    done = netstack.run(netns, ["ethtool", "-K", dev, "tx", setting], timeout=10)
    if done.returncode != 0:
        raise ApplyError(f"ethtool -K {dev} tx {setting}: {done.stderr.strip()}")


def announce(netns: str | None, dev: str, address: Any, mac: str) -> None:
    """Send a gratuitous ARP for `address` from `dev`: the address moved to another MAC, and peers
    (a kernel's neighbour table, OVS's tunnel neighbour cache) would keep sending to the old one."""
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.layers.l2 import ARP, Ether
    from scapy.sendrecv import sendp

    frame = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=mac, psrc=str(address), pdst=str(address), hwdst=ZERO_MAC
    )
    netstack.call_in(netns, lambda: sendp(frame, iface=dev, count=2, inter=0.05, verbose=False))
