"""What ovs mode decided for a host at deploy time, kept in the deployment record.

One frozen value with one (de)serialiser, so every reader (the backend,
status, the lab's checksum rule, capture, bench) gets typed fields instead of
keys of a dictionary, and the record is read in one place.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class OvsSettings:
    datapath: str = "netdev"  # "system" (the kernel's) or "netdev" (userspace)
    why: str = "unknown"  # why that datapath
    datapath_asked: str = "auto"  # what --datapath said, kept for the next plain deploy
    flows: str = "controller"  # "controller", or the flows file loaded without one
    port_type: str = "system"  # how the userspace datapath reads the devices
    port_type_why: str = "unknown"
    port_type_asked: str = "auto"
    ovs_config: dict[str, str] = field(default_factory=dict)  # other_config keys ovsvx sets
    ovs_config_before: dict[str, str | None] = field(default_factory=dict)  # what they held before ovsvx
    tunnel_csum_asked: str = "auto"  # what --tunnel-csum said (auto: on for the kernel datapath), kept

    @property
    def userspace(self) -> bool:
        return self.datapath == "netdev"

    @property
    def af_xdp(self) -> bool:
        return self.port_type.startswith("afxdp")

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> OvsSettings:
        """From the record (older records kept the OVS config as JSON text inside the JSON)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("ovs_config", "ovs_config_before"):
            if isinstance(known.get(key), str):
                known[key] = json.loads(known[key])
        return cls(**known)
