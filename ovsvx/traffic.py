"""What went through a tunnel or a flow: the counters `graph` and `metrics` read, as one value."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Traffic:
    """Packets and bytes each way, as the kernel or OVS counted them since the device, port or flow began
    (a flow has only one way: what it matched, counted as sent)."""

    sent_packets: int = 0
    sent_bytes: int = 0
    received_packets: int = 0
    received_bytes: int = 0

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(
            self.sent_packets + other.sent_packets,
            self.sent_bytes + other.sent_bytes,
            self.received_packets + other.received_packets,
            self.received_bytes + other.received_bytes,
        )
