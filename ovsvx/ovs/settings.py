"""What ovs mode decided for a host at deploy time, kept in the deployment record.

The record keeps it as the mode's own words (a dictionary no one else reads);
this one frozen value is how the ovs wing reads and writes them, typed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ovsvx.host.record import Deployment

AUTO = "auto"  # what --datapath, --port-type and --tunnel-csum mean when not given: the machine decides


class Datapath(StrEnum):
    """Where OVS forwards: the kernel's openvswitch module, or ovs-vswitchd itself."""

    SYSTEM = "system"  # the kernel's
    NETDEV = "netdev"  # userspace


class PortType(StrEnum):
    """How the userspace datapath reads a kernel device: a packet socket (AF_PACKET), or AF_XDP polled
    by a PMD thread (afxdp) or by the main thread (afxdp-nonpmd)."""

    SYSTEM = "system"
    AFXDP = "afxdp"
    AFXDP_NONPMD = "afxdp-nonpmd"

    @property
    def af_xdp(self) -> bool:
        return self != PortType.SYSTEM

    @property
    def interface_type(self) -> str:
        """The OVSDB Interface type that reads a device this way ("" is a plain system port)."""
        return "" if self == PortType.SYSTEM else self.value


@dataclass(frozen=True)
class OvsSettings:
    datapath: Datapath = Datapath.NETDEV
    why: str = "unknown"  # why that datapath
    datapath_asked: str = AUTO  # what --datapath said, kept for the next plain deploy
    flows_file: str = ""  # the flows file loaded without a controller; "": flows from the controller
    port_type: PortType = PortType.SYSTEM  # how the userspace datapath reads the devices
    port_type_why: str = "unknown"
    port_type_asked: str = AUTO
    ovs_config: dict[str, str] = field(default_factory=dict)  # other_config keys ovsvx sets
    ovs_config_before: dict[str, str | None] = field(default_factory=dict)  # what they held before ovsvx
    tunnel_csum_asked: str = AUTO  # what --tunnel-csum said (auto: on for the kernel datapath), kept

    @property
    def userspace(self) -> bool:
        return self.datapath == Datapath.NETDEV

    @property
    def af_xdp(self) -> bool:
        return self.port_type.af_xdp

    @property
    def from_controller(self) -> bool:
        return not self.flows_file

    @classmethod
    def of(cls, deployment: Deployment, host: str) -> OvsSettings:
        """What the record says ovs mode decided for `host` (the defaults, before it decided anything)."""
        return cls.from_record(deployment.settings.get(host, {}))

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> OvsSettings:
        """From the record: older records kept the OVS config as JSON text inside the JSON, and the flows'
        source as "controller" or the file's path."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("ovs_config", "ovs_config_before"):
            if isinstance(known.get(key), str):
                known[key] = json.loads(known[key])
        if data.get("flows", "controller") != "controller":
            known["flows_file"] = data["flows"]
        for key, kind in (("datapath", Datapath), ("port_type", PortType)):
            if key in known:
                known[key] = kind(known[key])
        return cls(**known)
