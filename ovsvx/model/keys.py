"""The topology file's keys, described: the reference page is generated from these and from the parser.

Each key has what it means and a value the parser must refuse; its default and its refusal are not
written here but asked of `reader.parse` (a sample with the key left out, a sample with the bad
value), so the page says what the code does.  `tests/test_keys.py` holds the list to the parser: a
key the parser reads that is not here, or one here that it does not read, fails it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ovsvx.errors import TopologyError
from ovsvx.model import generated, reader, writer
from ovsvx.model.topology import Control


@dataclass(frozen=True)
class Key:
    """One key of the topology file: the table it is in ("" for the top, "hosts[]", "bgp", ...), its name,
    what it holds and means, and a value the parser refuses."""

    table: str
    name: str
    what: str
    bad: Any
    absent: str = ""  # what leaving it out means, where the parser's value alone would not say it

    @property
    def path(self) -> str:
        return f"{self.table}.{self.name}" if self.table else self.name


TABLES = {
    "": "The overlay as a whole.",
    "hosts[]": "One `[[hosts]]` table per VTEP, at least two.",
    "hosts[].namespaces[]": "One `[[hosts.namespaces]]` table per workload namespace of the host.",
    "bgp": 'The BGP EVPN control plane: required with `control = "evpn"`, refused without it.',
    "ipsec": 'How the hosts prove themselves to each other: required with `encryption = "ipsec"`.',
}

KEYS = (
    Key("", "vni", "The VXLAN network identifier of the overlay.", 0),
    Key("", "port", "The tunnel's UDP destination port (4789 is IANA's; Linux defaults to 8472).", 6653),
    Key("", "underlay", "The network that joins the VTEPs: the lab builds it, a real host's is checked.", "10.0.0.1/8"),
    Key("", "underlay_mtu", "The underlay NICs' MTU; VXLAN takes 50 bytes of it.", 9000000),
    Key("", "hosts", "The hosts, as `[[hosts]]` tables.", []),
    Key("", "control", "How hosts learn their peers: `static` from this file, `evpn` from BGP EVPN.", "ospf"),
    Key("", "bgp", "The `[bgp]` table.", "65000", 'required with `control = "evpn"`'),
    Key("", "encryption", "`ipsec`: the tunnel's packets are carried in ESP between the VTEPs.", "wireguard"),
    Key("", "ipsec", "The `[ipsec]` table.", "psk", 'required with `encryption = "ipsec"`'),
    Key("hosts[]", "name", "The host's name, as `--host` and the lab name it.", "-host"),
    Key("hosts[]", "nic", "The underlay NIC that holds the VTEP address.", "a-name-longer-than-15"),
    Key("hosts[]", "vtep", "The host's VTEP: its address on the underlay.", "10.33.30.300"),
    Key("hosts[]", "subnet", "The overlay subnet behind this host.", "192.168.1.1/24"),
    Key("hosts[]", "gateway", "The subnet's gateway: the bridge's address.", "192.168.9.1"),
    Key("hosts[]", "bridge", "The bridge (Linux or OVS) that is the namespaces' gateway.", "-h"),
    Key("hosts[]", "vxlan", "The VXLAN device (kernel mode) or the name its address is routed by.", ""),
    Key("hosts[]", "vxlan_address", "The vxlan device's /32 (the tutorial's .254): peers route via it.", "x"),
    Key("hosts[]", "namespaces", "The host's workload namespaces, as `[[hosts.namespaces]]` tables.", []),
    Key(
        "hosts[]",
        "mode",
        "The host's mode when the command line names none: `kernel` or `ovs`.",
        "vpp",
        "the mode it is deployed in, else ovs",
    ),
    Key("hosts[].namespaces[]", "name", "The namespace's name.", "ns 1"),
    Key("hosts[].namespaces[]", "address", "Its address in the host's subnet; its default route is the gateway.", "1"),
    Key("hosts[].namespaces[]", "veth", "The veth end inside the namespace.", "lo"),
    Key("hosts[].namespaces[]", "peer", "The veth end on the host, in the bridge.", "a/b"),
    Key("bgp", "asn", "The overlay's one AS (iBGP).", 0),
    Key("bgp", "route_reflectors", "The route reflectors every host peers with, on the underlay.", []),
    Key("bgp", "password_file", "A root-only file holding the sessions' TCP MD5 password.", "secret"),
    Key(
        "bgp",
        "accept",
        "The overlay's address range: a route from BGP is taken only inside it.",
        ["0.0.0.0/0"],
        "the smallest network covering every host's subnet (`topology show` names it)",
    ),
    Key("bgp", "max_prefixlen", "The longest prefix taken from BGP.", 33),
    Key("bgp", "max_prefixes", "The most routes taken from one session; the rest are refused and counted.", 0),
    Key("ipsec", "psk_file", "A root-only file holding the pre-shared key.", "psk", "required, or cert, key and ca"),
    Key("ipsec", "cert", 'Each host\'s certificate ("{host}" stands for its name); its VTEP in subjectAltName.', "x"),
    Key("ipsec", "key", "Each host's private key, root's and 0600.", "x"),
    Key("ipsec", "ca", "The CA that signed every host's certificate.", "x"),
)


def samples() -> dict[str, dict[str, Any]]:
    """A valid topology, as data, that holds each table: the built-in one; the generated EVPN one; and
    the built-in one encrypted, with a pre-shared key and with certificates."""
    static = writer.to_data(reader.default())
    evpn = writer.to_data(generated.generate(2, Control.EVPN))
    psk = {**static, "encryption": "ipsec", "ipsec": {"psk_file": "/etc/ovsvx/psk"}}
    certs = {**static, "encryption": "ipsec", "ipsec": {n: f"/etc/ovsvx/{n}.pem" for n in ("cert", "key", "ca")}}
    return {"static": static, "evpn": evpn, "psk": psk, "certs": certs}


#: The sample a key is tried in: by its path, else by its table; the rest are in the built-in topology.
SAMPLE_OF = {"bgp": "evpn", "ipsec": "psk", "ipsec.cert": "certs", "ipsec.key": "certs", "ipsec.ca": "certs"}


def _sample_for(key: Key) -> dict[str, Any]:
    kind = SAMPLE_OF.get(key.path) or SAMPLE_OF.get(key.table, "static")
    return copy.deepcopy(samples()[kind])


def _table_of(data: dict[str, Any], table: str) -> dict[str, Any]:
    """The first table at `table` ("hosts[]" is the first host's)."""
    if table == "hosts[]":
        return data["hosts"][0]  # type: ignore[no-any-return]
    if table == "hosts[].namespaces[]":
        return data["hosts"][0]["namespaces"][0]  # type: ignore[no-any-return]
    return data[table] if table else data


def refusal(key: Key) -> str:
    """The parser's one line for the key's bad value, in a sample that is otherwise valid."""
    data = _sample_for(key)
    _table_of(data, key.table)[key.name] = key.bad
    try:
        reader.parse(data)
    except TopologyError as err:
        return str(err)
    raise AssertionError(f"{key.path}: the parser took {key.bad!r}")


def default(key: Key) -> str | None:
    """What the parser makes of the key left out, shown; None when it must be given."""
    data = _sample_for(key)
    _table_of(data, key.table).pop(key.name, None)
    try:
        parsed = reader.parse(data)
    except TopologyError:
        return None
    holder: Any = {"": parsed, "bgp": parsed.bgp, "ipsec": parsed.ipsec}.get(key.table)
    if key.table == "hosts[]":
        holder = parsed.hosts[0]
    if holder is None or not hasattr(holder, key.name):
        return "none"
    value = getattr(holder, key.name)
    if value is None or value == ():
        return "none"
    return str(value.value if hasattr(value, "value") else value)


def reference_markdown() -> str:
    """The reference page: each table, each key with what it means, its default and its refusal."""
    lines = [
        "# Topology file",
        "",
        "Every key `ovsvx` reads from a topology file (`-t FILE`; `ovsvx topology init` writes the built-in",
        "one, commented). Generated from the topology model: each default is what the parser makes of the",
        "key left out, each refusal what it says of the bad value shown, one line, exit 2, nothing changed.",
        "",
    ]
    for table, about in TABLES.items():
        lines += [f"## `{table or 'top level'}`", "", about, "", "| key | what | default | refused, for example |"]
        lines.append("|---|---|---|---|")
        for key in (k for k in KEYS if k.table == table):
            given = default(key)
            shown = key.absent or ("required" if given is None else f"`{given}`")
            said = refusal(key).replace("|", "\\|")
            lines.append(f"| `{key.name}` | {key.what} | {shown} | `{key.bad!r}`: {said} |")
        lines.append("")
    return "\n".join(lines)
