"""What went through a tunnel or a flow: the counters `graph` and `metrics` read, as one value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The counters' names, the same in the kernel's link statistics (IFLA_STATS64) and in OVS's Interface table.
COUNTERS = ("tx_packets", "tx_bytes", "rx_packets", "rx_bytes")


@dataclass(frozen=True)
class Traffic:
    """Packets and bytes each way, as the kernel or OVS counted them since the device, port or flow began
    (a flow has only one way: what it matched, counted as sent)."""

    sent_packets: int = 0
    sent_bytes: int = 0
    received_packets: int = 0
    received_bytes: int = 0

    @classmethod
    def from_counters(cls, stats: Mapping[str, Any]) -> Traffic:
        """From a device's or an OVS interface's statistics, by their common names (absent: 0)."""
        return cls(*(int(stats.get(name, 0)) for name in COUNTERS))

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.sent_packets + other.sent_packets,
            self.sent_bytes + other.sent_bytes,
            self.received_packets + other.received_packets,
            self.received_bytes + other.received_bytes,
        )
