"""The os-ken OpenFlow 1.3 app: keeps each connected bridge at exactly its generated flows.

A thin adapter.  The flows come from `flows.host_flows` (set on the class by
`controller.run` before os-ken starts it); this app only turns them into
OpenFlow messages and sends them from one place, `_sync`.  On every
connection (first start, controller restart, ovs-vswitchd restart) it asks
the switch for its ports and flows, then adds the flows that are missing and
deletes every flow whose cookie is not in the generated set: equal cookies
mean equal flows (see flows.py), so the switch ends with exactly the
generated set, no duplicates, and untouched counters on flows that were
already right; flows the switch learned itself (a peer's router MAC) are
kept.  It then asks each peer for its router MAC with an ARP request into the
tunnel, and again whenever a packet for a peer meets the not-yet-learned flow
(a copy comes to the controller), and whenever a peer is sent to but does not
answer (`peerwatch`: the counters are read twice a second).  Errors from the
switch are logged with their OpenFlow names.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from typing import Any, ClassVar

from os_ken.base import app_manager
from os_ken.controller import event, ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp

from ovsvx import waits
from ovsvx.ovs.flows import (
    CLASSIFY,
    CONTROLLER,
    ETH_IP,
    IN_PORT,
    LOCAL,
    PACKET_IN_BYTES,
    TO_PEER,
    DecTtl,
    Flow,
    Goto,
    LearnPeerMac,
    Move,
    Output,
    Purpose,
    SetField,
    is_learned,
)
from ovsvx.ovs.peerwatch import PROBE_GAP_S, READINGS, WATCH_S, Counts, PeerProbe, counts, unanswered

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


class FlowInstaller(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    #: bridge name -> its generated flows; set by controller.run before os-ken instantiates the app.
    flows_by_bridge: ClassVar[dict[str, tuple[Flow, ...]]] = {}
    #: bridge name -> the ARP request for each peer's vxlan address, its tunnel port, subnet and counters.
    probes_by_bridge: ClassVar[dict[str, list[PeerProbe]]] = {}
    #: Run once the app is up, with the app (under EVPN: start the BGP speaker, which calls `replace_flows`).
    on_start: ClassVar[Callable[[FlowInstaller], None] | None] = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ports: dict[int, dict[str, int]] = {}  # datapath id -> port name -> number
        self.cookies: dict[int, set[int]] = {}  # datapath id -> cookies seen in this flow dump
        self.synced: dict[int, tuple[Any, str]] = {}  # datapath id -> (datapath, bridge) once in sync
        self.last_probe: dict[tuple[int, str], float] = {}  # (datapath id, tunnel port) -> when
        self.reading: dict[int, tuple[set[int], dict[int, int]]] = {}  # datapath id -> (xids due, packets)
        self.counts: dict[int, deque[dict[str, Counts]]] = {}  # datapath id -> the last readings, by tunnel port

    def start(self) -> None:
        super().start()
        self.threads.append(hub.spawn(self._clock))
        hook = FlowInstaller.on_start  # read off the class: a function there is not a method of the app
        if hook is not None:
            hook(self)

    def replace_flows(self, bridge: str, flows: tuple[Flow, ...]) -> None:
        """New flows for `bridge`, from any thread: the event thread installs them."""
        self.send_event(self.name, _NewFlows(bridge, flows))

    @set_ev_cls(_NewFlows)
    def _new_flows(self, ev: _NewFlows) -> None:
        """Send a switch in sync only the difference between its flows and the new ones (a route brings
        or takes a handful); a switch not yet in sync gets them all when it is."""
        old = {flow.cookie: flow for flow in self.flows_by_bridge.get(ev.bridge, ())}
        new = {flow.cookie: flow for flow in ev.flows}
        self.flows_by_bridge[ev.bridge] = ev.flows
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
            parser = datapath.ofproto_parser
            requests = [  # what the learned flows sent, and what came in by any port
                parser.OFPFlowStatsRequest(
                    datapath, table_id=TO_PEER, cookie=Purpose.LEARNED << 32, cookie_mask=0xFF << 32
                ),
                parser.OFPFlowStatsRequest(datapath, table_id=CLASSIFY),
            ]
            for request in requests:
                datapath.set_xid(request)
            self.reading[datapath.id] = ({r.xid for r in requests}, {})
            for request in requests:
                datapath.send_msg(request)

    def _read(self, datapath: Any, msg: Any) -> None:
        """One part of a reading; with the last, probe the peers that were sent to and did not answer."""
        xids, packets = self.reading[datapath.id]
        packets.update((stat.cookie, stat.packet_count) for stat in msg.body)
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return
        xids.discard(msg.xid)
        if xids or datapath.id not in self.synced:
            return
        bridge = self.synced[datapath.id][1]
        probes = self.probes_by_bridge.get(bridge, [])
        now = counts(probes, packets)
        readings = self.counts.setdefault(datapath.id, deque(maxlen=READINGS))
        readings.append(now)
        silent = unanswered(probes, readings)
        due = self._due(datapath, silent)
        for probe in due:
            LOG.info("bridge %s: %s was sent to and did not answer: asking for its MAC again", bridge, probe.peer)
        self._probe(datapath, due)

    def _due(self, datapath: Any, probes: list[PeerProbe]) -> list[PeerProbe]:
        """Those of `probes` not asked within PROBE_GAP_S."""
        now = time.monotonic()
        return [p for p in probes if now - self.last_probe.get((datapath.id, p.port), 0.0) >= PROBE_GAP_S]

    def _probe(self, datapath: Any, probes: list[PeerProbe], on_demand: bool = True) -> None:
        """Send the ARP requests.  Only on-demand ones count against the rate limit: the ones sent when the
        switch connects often find a peer still being deployed (hosts deploy in parallel), and the first
        packet for that peer must be free to ask again."""
        parser = datapath.ofproto_parser
        ports = self.ports.get(datapath.id, {})
        for probe in probes:
            if probe.port in ports:
                if on_demand:
                    self.last_probe[(datapath.id, probe.port)] = time.monotonic()
                datapath.send_msg(
                    parser.OFPPacketOut(
                        datapath,
                        buffer_id=ofp.OFP_NO_BUFFER,
                        in_port=ofp.OFPP_CONTROLLER,
                        actions=[parser.OFPActionOutput(ports[probe.port])],
                        data=probe.frame,
                    )
                )

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev: Any) -> None:
        """A packet went to a peer whose router MAC is not learned yet: ask that peer (rate-limited)."""
        datapath = ev.msg.datapath
        if ev.msg.table_id != TO_PEER or datapath.id not in self.synced:
            return
        bridge = self.synced[datapath.id][1]
        destination = ipv4_destination(ev.msg.data)
        wanted = [
            p for p in self.probes_by_bridge.get(bridge, []) if destination is not None and destination in p.subnet
        ]
        self._probe(datapath, self._due(datapath, wanted))

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
        if ev.msg.xid in self.reading.get(datapath.id, (set(), {}))[0]:
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
        """Delete the flows of the cookies `delete`, add the flows `add`, then a barrier."""
        parser = datapath.ofproto_parser
        ports = self.ports.get(datapath.id, {}) if ports is None else ports
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
        for flow in add:
            datapath.send_msg(flow_mod(datapath, flow, ports))
        datapath.send_msg(parser.OFPBarrierRequest(datapath))

    def _sync(self, datapath: Any) -> None:
        """The one place flows are sent: add what is missing, delete what is not generated."""
        ports = self.ports.get(datapath.id, {})
        bridge = next((name for name, number in ports.items() if number == ofp.OFPP_LOCAL), None)
        wanted = self.flows_by_bridge.get(bridge or "")
        if bridge is None or wanted is None:
            LOG.error(
                "switch %016x is bridge %r, which this controller has no flows for (it knows %s)",
                datapath.id,
                bridge,
                ", ".join(self.flows_by_bridge) or "none",
            )
            return
        unknown = missing_ports(wanted, ports)
        if unknown:
            LOG.error(
                "bridge %s lacks port(s) %s: not installing its flows until they exist (redeploy)",
                bridge,
                ", ".join(unknown),
            )
            return
        have = {c for c in self.cookies.pop(datapath.id, set()) if not is_learned(c)}
        want = {flow.cookie: flow for flow in wanted}
        self._send(datapath, [f for c, f in want.items() if c not in have], sorted(have - set(want)), ports)
        LOG.info(
            "bridge %s: %d flow(s) added, %d stale removed, %d kept",
            bridge,
            len(set(want) - have),
            len(have - set(want)),
            len(have & set(want)),
        )
        self.synced[datapath.id] = (datapath, bridge)
        self._probe(datapath, self.probes_by_bridge.get(bridge, []), on_demand=False)
