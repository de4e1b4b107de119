"""Topologies as data, for the pure tests: the tutorial's, and the same with a third host."""

from __future__ import annotations

import copy
from typing import Any

from ovsvx.model import reader, writer


def default_data() -> dict[str, Any]:
    return writer.to_data(reader.default())


def three_hosts() -> dict[str, Any]:
    data = default_data()
    third = copy.deepcopy(data["hosts"][1])
    third.update(
        name="host3",
        vtep="10.33.30.152",
        subnet="192.168.3.0/24",
        gateway="192.168.3.1",
        bridge="br3",
        vxlan="vxlan3",
        vxlan_address="192.168.3.254",
    )
    third["namespaces"] = [{"name": "ns3", "address": "192.168.3.100", "veth": "tap1", "peer": "tap2"}]
    data["hosts"].append(third)
    return data
