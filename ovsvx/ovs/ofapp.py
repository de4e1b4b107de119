"""The os-ken OpenFlow 1.3 app: keeps each connected bridge at exactly its generated flows.

A thin adapter.  The flows come from `flows.host_flows` (`Served`, set on the
class by `controller.run` before os-ken starts it); this app only turns them into
OpenFlow messages and sends them from one place, `_send`.  On every
connection (first start, controller restart, ovs-vswitchd restart) it asks
the switch for its ports and flows, then adds the flows that are missing and
deletes every flow whose cookie is not in the generated set: equal cookies
mean equal flows (see openflow.py), so the switch ends with exactly the
generated set, no duplicates, and untouched counters on flows that were
already right; flows the switch learned itself (a peer's router MAC) are
kept.  It then asks each peer for its router MAC with an ARP request into the
tunnel, and again whenever a packet for a peer meets the not-yet-learned flow
(a copy comes to the controller), and whenever a peer is sent to but does not
answer (`peerwatch`, `peerasker`: the counters are read twice a second).  Errors from the
switch are logged with their OpenFlow names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Any, ClassVar

from os_ken.base import app_manager
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp

from ovsvx import waits
from ovsvx.ovs.openflow import DecTtl, Flow, Goto, LearnPeerMac, Move, Output, SetField, is_learned
from ovsvx.ovs.peerasker import PeerAsker
from ovsvx.ovs.peerwatch import WATCH_S, PeerProbe
from ovsvx.ovs.tables import CONTROLLER, ETH_IP, IN_PORT, LOCAL, PACKET_IN_BYTES, TO_PEER

LOG = logging.getLogger("ovsvx.ovs.controller")
ALL_COOKIES = 0xFFFFFFFFFFFFFFFF

#: OpenFlow 1.3 error types and the prefix of their codes' names, for readable error logs.
_ERROR_CODE_PREFIX = {
    "OFPET_HELLO_FAILED": "OFPHFC_",
    "OFPET_BAD_REQUEST": "OFPBRC_",
    "OFPET_BAD_ACTION": "OFPBAC_",
    "OFPET_BAD_INSTRUCTION": "OFPBIC_",
    "OFPET_BAD_MATCH": "OFPBMC_",
    "OFPET_FLOW_MOD_FAILED": "OFPFMFC_",
    "OFPET_GROUP_MOD_FAILED": "OFPGMFC_",
    "OFPET_PORT_MOD_FAILED": "OFPPMFC_",
    "OFPET_TABLE_MOD_FAILED": "OFPTMFC_",
    "OFPET_QUEUE_OP_FAILED": "OFPQOFC_",
    "OFPET_SWITCH_CONFIG_FAILED": "OFPSCFC_",
    "OFPET_ROLE_REQUEST_FAILED": "OFPRRFC_",
    "OFPET_METER_MOD_FAILED": "OFPMMFC_",
    "OFPET_TABLE_FEATURES_FAILED": "OFPTFFC_",
}


def ipv4_destination(frame: bytes) -> IPv4Address | None:
    """The IPv4 destination of an untagged Ethernet frame, or None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    return IPv4Address(frame[30:34])


def error_name(err_type: int, code: int) -> str:
    """'OFPET_BAD_ACTION/OFPBAC_BAD_OUT_PORT' for type 2, code 4."""
    type_name = next((n for n in _ERROR_CODE_PREFIX if getattr(ofp, n, None) == err_type), f"type {err_type}")
    prefix = _ERROR_CODE_PREFIX.get(type_name, "?")
    code_name = next((n for n in dir(ofp) if n.startswith(prefix) and getattr(ofp, n) == code), f"code {code}")
    return f"{type_name}/{code_name}"


def _port_number(name: str, ports: dict[str, int]) -> int:
    return {LOCAL: ofp.OFPP_LOCAL, IN_PORT: ofp.OFPP_IN_PORT, CONTROLLER: ofp.OFPP_CONTROLLER}.get(name) or ports[name]


def _match(parser: Any, flow: Flow, ports: dict[str, int]) -> Any:
    fields: dict[str, Any] = {}
    for name, value in flow.match:
        if name == "in_port":
            fields[name] = _port_number(str(value), ports)
        elif name == "ipv4_dst" and "/" in str(value):
            net = IPv4Network(str(value))
            fields[name] = (str(net.network_address), str(net.netmask))
        else:
            fields[name] = value
    return parser.OFPMatch(**fields)


def _instructions(parser: Any, flow: Flow, ports: dict[str, int]) -> list[Any]:
    actions: list[Any] = []
    instructions: list[Any] = []
    for action in flow.actions:
        match action:
            case Output(port):
                actions.append(parser.OFPActionOutput(_port_number(port, ports), PACKET_IN_BYTES))
            case SetField(field, value):
                actions.append(parser.OFPActionSetField(**{field: value}))
            case Move(src, dst, bits):
                actions.append(parser.NXActionRegMove(src_field=src, dst_field=dst, n_bits=bits))
            case DecTtl():
                actions.append(parser.OFPActionDecNwTtl())
            case LearnPeerMac():
                actions.append(_learn(parser, action))
            case Goto(table):
                instructions.append(parser.OFPInstructionGotoTable(table))
    if actions:
        instructions.insert(0, parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions))
    return instructions


def _learn(parser: Any, learn: LearnPeerMac) -> Any:
    """NXActionLearn writing: ip, nw_dst=<subnet> -> eth_dst=<ARP sender MAC>, output:<ARP's in_port>."""
    bits = learn.subnet.prefixlen
    return parser.NXActionLearn(
        table_id=learn.table,
        priority=learn.priority,
        cookie=learn.cookie,
        hard_timeout=learn.hard_timeout,
        specs=[
            parser.NXFlowSpecMatch(src=ETH_IP, dst=("eth_type_nxm", 0), n_bits=16),
            parser.NXFlowSpecMatch(
                src=int(learn.subnet.network_address) >> (32 - bits), dst=("ipv4_dst_nxm", 32 - bits), n_bits=bits
            ),
            parser.NXFlowSpecLoad(src=("arp_sha_nxm", 0), dst=("eth_dst_nxm", 0), n_bits=48),
            parser.NXFlowSpecOutput(src=("in_port_nxm", 0), dst="", n_bits=16),
        ],
    )


def missing_ports(flows: tuple[Flow, ...], ports: dict[str, int]) -> list[str]:
    """The port names the flows use that the switch does not have (reserved ports aside)."""
    used = {str(v) for f in flows for k, v in f.match if k == "in_port"}
    used |= {a.port for f in flows for a in f.actions if isinstance(a, Output)}
    return sorted(used - set(ports) - {LOCAL, IN_PORT, CONTROLLER})


def flow_mod(datapath: Any, flow: Flow, ports: dict[str, int]) -> Any:
    """The OFPFlowMod that adds `flow`, with port names resolved to the switch's numbers."""
    parser = datapath.ofproto_parser
    return parser.OFPFlowMod(
        datapath,
        cookie=flow.cookie,
        table_id=flow.table,
        priority=flow.priority,
        command=ofp.OFPFC_ADD,
        match=_match(parser, flow, ports),
        instructions=_instructions(parser, flow, ports),
    )


class _Tick(event.EventBase):
    """Time to read the peers' counters (sent to the app's own queue, so every message to a switch goes
    from the one event thread)."""


class _NewFlows(event.EventBase):
    """A bridge's flows changed (EVPN routes came or went): sync its switch again, from the event thread."""

    def __init__(self, bridge: str, flows: tuple[Flow, ...]):
        super().__init__()
        self.bridge = bridge
        self.flows = flows


@dataclass(frozen=True)
class Served:
    """What the app serves, set once before os-ken starts it: each bridge's generated flows, the ARP
    requests that ask its peers for their router MACs, and what to run once the app is up (under EVPN:
    start the BGP speaker, which calls `replace_flows`)."""

    flows: Mapping[str, tuple[Flow, ...]]
    probes: Mapping[str, list[PeerProbe]] = field(default_factory=dict)
    on_start: Callable[[FlowInstaller], None] | None = None


class FlowInstaller(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    #: Set by controller.run before os-ken instantiates the app (os-ken makes it; nothing can be passed in).
    serving: ClassVar[Served] = Served({})

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.flows = dict(self.serving.flows)  # bridge -> its flows now (EVPN's routes change them)
        self.asker = PeerAsker(self.serving.probes, LOG)
        self.ports: dict[int, dict[str, int]] = {}  # datapath id -> port name -> number
        self.cookies: dict[int, set[int]] = {}  # datapath id -> cookies seen in this flow dump
        self.synced: dict[int, tuple[Any, str]] = {}  # datapath id -> (datapath, bridge) once in sync

    def start(self) -> None:
        super().start()
        self.threads.append(hub.spawn(self._clock))
        if self.serving.on_start is not None:
            self.serving.on_start(self)

    def replace_flows(self, bridge: str, flows: tuple[Flow, ...]) -> None:
        """New flows for `bridge`, from any thread: the event thread installs them."""
        self.send_event(self.name, _NewFlows(bridge, flows))

    @set_ev_cls(_NewFlows)
    def _new_flows(self, ev: _NewFlows) -> None:
        """Send a switch in sync only the difference between its flows and the new ones (a route brings
        or takes a handful); a switch not yet in sync gets them all when it is."""
        old = {flow.cookie: flow for flow in self.flows.get(ev.bridge, ())}
        new = {flow.cookie: flow for flow in ev.flows}
        self.flows[ev.bridge] = ev.flows
        for datapath, bridge in list(self.synced.values()):
            if bridge == ev.bridge:
                self._send(datapath, [new[c] for c in set(new) - set(old)], sorted(set(old) - set(new)))

    def _clock(self) -> None:
        while True:
            hub.sleep(waits.scaled(WATCH_S))
            self.send_event(self.name, _Tick())

    @set_ev_cls(_Tick)
    def _watch(self, _: _Tick) -> None:
        """Ask each switch in sync for the counters that say whether its peers answer."""
        for datapath, _bridge in list(self.synced.values()):
            self.asker.request_readings(datapath)

    def _read(self, datapath: Any, msg: Any) -> None:
        synced = self.synced.get(datapath.id)
        self.asker.read(datapath, msg, synced[1] if synced else None, self.ports.get(datapath.id, {}))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        """A packet went to a peer whose router MAC is not learned yet: ask that peer (rate-limited)."""
        datapath = ev.msg.datapath
        if ev.msg.table_id != TO_PEER or datapath.id not in self.synced:
            return
        destination = ipv4_destination(ev.msg.data)
        probes = self.serving.probes.get(self.synced[datapath.id][1], [])
        wanted = [p for p in probes if destination is not None and destination in p.subnet]
        self.asker.ask(datapath, self.ports.get(datapath.id, {}), self.asker.due(datapath, wanted))

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _connected(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        LOG.info("switch %016x connected", datapath.id)
        self._ask_ports(datapath)

    def _ask_ports(self, datapath: Any) -> None:
        self.ports[datapath.id] = {}
        datapath.send_msg(datapath.ofproto_parser.OFPPortDescStatsRequest(datapath, 0))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN_DISPATCHER)
    def _port_desc(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        ports = self.ports.setdefault(datapath.id, {})
        for port in ev.msg.body:
            ports[port.name.decode()] = port.port_no
        if ev.msg.flags & ofp.OFPMPF_REPLY_MORE:
            return
        self.cookies[datapath.id] = set()
        parser = datapath.ofproto_parser
        datapath.send_msg(parser.OFPFlowStatsRequest(datapath, table_id=ofp.OFPTT_ALL))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats(self, ev: Any) -> None:
        datapath = ev.msg.datapath
        if self.asker.answers(datapath, ev.msg.xid):
            self._read(datapath, ev.msg)
            return
        self.cookies.setdefault(datapath.id, set()).update(stat.cookie for stat in ev.msg.body)
        if not ev.msg.flags & ofp.OFPMPF_REPLY_MORE:
            self._sync(datapath)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_changed(self, ev: Any) -> None:
        """A port came, went or was renumbered: compare the whole switch again."""
        port = ev.msg.desc
        LOG.info(
            "switch %016x: port %s (%d) %s",
            ev.msg.datapath.id,
            port.name.decode(),
            port.port_no,
            {ofp.OFPPR_ADD: "added", ofp.OFPPR_DELETE: "deleted"}.get(ev.msg.reason, "modified"),
        )
        if ev.msg.reason != ofp.OFPPR_MODIFY:
            self._ask_ports(ev.msg.datapath)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        LOG.error(
            "switch %016x refused a message: %s (xid %s)", msg.datapath.id, error_name(msg.type, msg.code), msg.xid
        )

    def _send(self, datapath: Any, add: list[Flow], delete: list[int], ports: dict[str, int] | None = None) -> None:
        """The one place flows are sent from: add the flows `add`, then delete the flows of the cookies
        `delete`, then a barrier.  Made before broken: a flow whose content changed (a new peer in a
        flood's outputs) has a new cookie, and its new version, added with the old one's match and
        priority, takes the old one's place, so no packet meets neither."""
        parser = datapath.ofproto_parser
        ports = self.ports.get(datapath.id, {}) if ports is None else ports
        for flow in add:
            datapath.send_msg(flow_mod(datapath, flow, ports))
        for cookie in delete:
            datapath.send_msg(
                parser.OFPFlowMod(
                    datapath,
                    cookie=cookie,
                    cookie_mask=ALL_COOKIES,
                    table_id=ofp.OFPTT_ALL,
                    command=ofp.OFPFC_DELETE,
                    out_port=ofp.OFPP_ANY,
                    out_group=ofp.OFPG_ANY,
                )
            )
        datapath.send_msg(parser.OFPBarrierRequest(datapath))

    def _sync(self, datapath: Any) -> None:
        """Bring a switch just dumped to its generated flows: add what is missing, delete what is not
        generated (and keep what it learned), then ask its peers for their MACs."""
        ports = self.ports.get(datapath.id, {})
        bridge, refused = bridge_of(datapath.id, ports, self.flows)
        if bridge is None:
            LOG.error("%s", refused)
            return
        have = {c for c in self.cookies.pop(datapath.id, set()) if not is_learned(c)}
        want = {flow.cookie: flow for flow in self.flows[bridge]}
        self._send(datapath, [f for c, f in want.items() if c not in have], sorted(have - set(want)), ports)
        added, removed, kept = len(set(want) - have), len(have - set(want)), len(have & set(want))
        LOG.info("bridge %s: %d flow(s) added, %d stale removed, %d kept", bridge, added, removed, kept)
        self.synced[datapath.id] = (datapath, bridge)
        self.asker.ask(datapath, ports, self.serving.probes.get(bridge, []), on_demand=False)


def bridge_of(dpid: int, ports: dict[str, int], flows: Mapping[str, tuple[Flow, ...]]) -> tuple[str | None, str]:
    """The bridge a switch is (its LOCAL port's name), if this controller has its flows and the switch has
    every port they name; else None and why not."""
    bridge = next((name for name, number in ports.items() if number == ofp.OFPP_LOCAL), None)
    if bridge is None or bridge not in flows:
        known = ", ".join(flows) or "none"
        return (
            None,
            f"switch {dpid:016x} is bridge {bridge!r}, which this controller has no flows for (it knows {known})",
        )
    unknown = missing_ports(flows[bridge], ports)
    if unknown:
        return (
            None,
            f"bridge {bridge} lacks port(s) {', '.join(unknown)}: not installing its flows until they exist (redeploy)",
        )
    return bridge, ""
