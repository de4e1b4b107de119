"""A topology given back: as plain data (JSON, the deployment record) and as TOML that the reader
takes back to the same value."""

from __future__ import annotations

from typing import Any

from ovsvx.model.topology import CERTIFICATE_FIELDS, Host, Topology


def to_data(topology: Topology) -> dict[str, Any]:
    """Plain data for JSON output and for the deployment record (round-trips through `parse`)."""

    def host(h: Host) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": h.name,
            "nic": h.nic,
            "vtep": str(h.vtep),
            "subnet": str(h.subnet),
            "gateway": str(h.gateway),
            "bridge": h.bridge,
            "vxlan": h.vxlan,
            "vxlan_address": str(h.vxlan_address),
            "namespaces": [
                {"name": n.name, "address": str(n.address), "veth": n.veth, "peer": n.peer} for n in h.namespaces
            ],
        }
        if h.mode is not None:
            data["mode"] = h.mode
        return data

    data: dict[str, Any] = {
        "vni": topology.vni,
        "port": topology.port,
        "underlay": str(topology.underlay),
        "underlay_mtu": topology.underlay_mtu,
    }
    if topology.bgp is not None:
        data["control"] = str(topology.control)
        data["bgp"] = {"asn": topology.bgp.asn, "route_reflectors": [str(a) for a in topology.bgp.route_reflectors]}
        if topology.bgp.password_file is not None:
            data["bgp"]["password_file"] = str(topology.bgp.password_file)
        if topology.bgp.accept:
            data["bgp"]["accept"] = [str(n) for n in topology.bgp.accept]
        for key, default in (("max_prefixlen", 30), ("max_prefixes", 1024)):
            if getattr(topology.bgp, key) != default:
                data["bgp"][key] = getattr(topology.bgp, key)
    if topology.ipsec is not None:
        data["encryption"] = str(topology.encryption)
        fields = ("psk_file", *CERTIFICATE_FIELDS)
        data["ipsec"] = {name: str(path) for name in fields if (path := getattr(topology.ipsec, name)) is not None}
    data["hosts"] = [host(h) for h in topology.hosts]
    return data


def to_toml(topology: Topology) -> str:
    """The topology as a file `load` reads back to the same value."""

    def value(v: Any) -> str:
        return str(v) if isinstance(v, int) else f'"{v}"'

    data = to_data(topology)
    top = ("vni", "port", "underlay", "underlay_mtu", "control", "encryption")
    lines = [f"{key} = {value(data[key])}" for key in top if key in data]
    if "bgp" in data:
        reflectors = ", ".join(value(a) for a in data["bgp"]["route_reflectors"])
        lines += ["", "[bgp]", f"asn = {data['bgp']['asn']}", f"route_reflectors = [{reflectors}]"]
        if "password_file" in data["bgp"]:
            lines.append(f"password_file = {value(data['bgp']['password_file'])}")
        if "accept" in data["bgp"]:
            lines.append(f"accept = [{', '.join(value(n) for n in data['bgp']['accept'])}]")
        lines += [f"{key} = {data['bgp'][key]}" for key in ("max_prefixlen", "max_prefixes") if key in data["bgp"]]
    if "ipsec" in data:
        lines += ["", "[ipsec]", *(f"{name} = {value(path)}" for name, path in data["ipsec"].items())]
    for host in data["hosts"]:
        lines += ["", "[[hosts]]"] + [f"{k} = {value(v)}" for k, v in host.items() if k != "namespaces"]
        for ns in host["namespaces"]:
            lines += ["", "  [[hosts.namespaces]]"] + [f"  {k} = {value(v)}" for k, v in ns.items()]
    return "\n".join(lines) + "\n"
