"""The controller's side of `peerwatch`: reading each switch's counters of its peers, and asking a peer
for its router MAC (an ARP request into its tunnel) when it was sent to and did not answer, when a packet
for it meets the not-yet-learned flow, and when the switch connects."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp

from ovsvx.ovs.peerwatch import PROBE_GAP_S, READINGS, Counts, PeerProbe, counts, unanswered
from ovsvx.ovs.tables import CLASSIFY, TO_PEER, Purpose


class PeerAsker:
    """Every switch's peers, as the app reads and asks them; `probes` by bridge name."""

    def __init__(self, probes: Mapping[str, list[PeerProbe]], log: Any):
        self.probes = probes
        self.log = log
        self.last_asked: dict[tuple[int, str], float] = {}  # (datapath id, tunnel port) -> when
        self.reading: dict[int, tuple[set[int], dict[int, int]]] = {}  # datapath id -> (xids due, packets)
        self.counts: dict[int, deque[dict[str, Counts]]] = {}  # datapath id -> the last readings, by tunnel port

    def request_readings(self, datapath: Any) -> None:
        """Ask the switch what its learned flows sent, and what came in by any port."""
        parser = datapath.ofproto_parser
        requests = [
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

    def answers(self, datapath: Any, xid: int) -> bool:
        """Whether a flow-stats reply with `xid` is part of a reading (not the app's flow dump)."""
        return xid in self.reading.get(datapath.id, (set(), {}))[0]

    def read(self, datapath: Any, msg: Any, bridge: str | None, ports: dict[str, int]) -> None:
        """One part of a reading; with the last, ask the peers that were sent to and did not answer (of a
        switch in sync: `bridge` None is one that is not)."""
        xids, packets = self.reading[datapath.id]
        packets.update((stat.cookie, stat.packet_count) for stat in msg.body)
        if msg.flags & ofp.OFPMPF_REPLY_MORE:
            return
        xids.discard(msg.xid)
        if xids or bridge is None:
            return
        probes = self.probes.get(bridge, [])
        readings = self.counts.setdefault(datapath.id, deque(maxlen=READINGS))
        readings.append(counts(probes, packets))
        due = self.due(datapath, unanswered(probes, readings))
        for probe in due:
            self.log.info("bridge %s: %s was sent to and did not answer: asking for its MAC again", bridge, probe.peer)
        self.ask(datapath, ports, due)

    def due(self, datapath: Any, probes: list[PeerProbe]) -> list[PeerProbe]:
        """Those of `probes` not asked within PROBE_GAP_S."""
        now = time.monotonic()
        return [p for p in probes if now - self.last_asked.get((datapath.id, p.port), 0.0) >= PROBE_GAP_S]

    def ask(self, datapath: Any, ports: dict[str, int], probes: list[PeerProbe], on_demand: bool = True) -> None:
        """Send the ARP requests.  Only on-demand ones count against the rate limit: the ones sent when the
        switch connects often find a peer still being deployed (hosts deploy in parallel), and the first
        packet for that peer must be free to ask again."""
        parser = datapath.ofproto_parser
        for probe in probes:
            if probe.port in ports:
                if on_demand:
                    self.last_asked[(datapath.id, probe.port)] = time.monotonic()
                out = parser.OFPActionOutput(ports[probe.port])
                datapath.send_msg(
                    parser.OFPPacketOut(
                        datapath,
                        buffer_id=ofp.OFP_NO_BUFFER,
                        in_port=ofp.OFPP_CONTROLLER,
                        actions=[out],
                        data=probe.frame,
                    )
                )
