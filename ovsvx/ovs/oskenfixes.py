"""What ovsvx mends in os-ken's BGP speaker before it uses it, on import.

os-ken's BGP code was written for eventlet's green threads, which switch only
where code waits.  os-ken 4.x runs it on native threads (OSKEN_HUB_TYPE
"native", the default), and the route processor's assumptions break under a
flood of routes, as a rogue speaker's 50,000 showed:

* A session's thread puts a route into the RIB and queues its destination for
  the processor thread, which takes destinations off the same linked list
  with no lock: an append racing a pop loses the appended destination, whose
  route is then never processed (the flood's count stopped short, for good).
* The processor sleeps on an event it clears after seeing the queue empty: a
  destination queued between the look and the clear waits for the next route.
* The queue asks whether a destination is on it by comparing it with its
  neighbour by `==`, which for a Destination compares their strings, and a
  Destination's string holds its whole table's: each queued route cost as much
  as the table (38% of the speaker's time, measured with py-spy).

The mends: one lock (`RIB`) held while a path enters the RIB and its
destination is queued, and while the processor takes and processes one; the
processor waits on that lock's condition for a non-empty queue; the list asks
by identity.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from os_ken.lib.packet.bgp import RF_RTC_UC
from os_ken.services.protocols.bgp.core_managers.table_manager import TableCoreManager
from os_ken.services.protocols.bgp.processor import BgpProcessor
from os_ken.services.protocols.bgp.utils.circlist import CircularListType

RIB = threading.Condition(threading.RLock())  # the RIB and the processor's queues change only under it


def _on_some_list(circle: CircularListType, node: Any) -> bool:
    """CircularListType.node_is_on_list, by identity (a node linked to itself, or unlinked, is on none)."""
    following = circle.node_next(node)
    return following is not node and following is not None


_plain_learn_path = TableCoreManager.learn_path


def _learn_path(self: Any, path: Any) -> None:
    """TableCoreManager.learn_path (insert a path, queue its destination) as one step under RIB."""
    with RIB:
        _plain_learn_path(self, path)


def _enqueue(self: Any, destination: Any) -> None:
    """BgpProcessor.enqueue: queue a destination once and wake the processor, under RIB."""
    queue = self._rtdest_queue if destination.route_family == RF_RTC_UC else self._dest_queue
    with RIB:
        if not queue.is_on_list(destination):
            queue.append(destination)
        RIB.notify_all()


def _run(self: Any, *_args: Any, **_kwargs: Any) -> None:
    """BgpProcessor's thread: wait for a queued destination, process a batch, let the sessions in."""
    while True:
        with RIB:
            while self._dest_queue.is_empty() and self._rtdest_queue.is_empty():
                RIB.wait()
            self._plain_process_rtdest()
        self._process_dest()
        time.sleep(0)  # as os-ken's pause(0): the sessions' threads run between batches


def _process_dest(self: Any) -> None:
    """Process up to a batch of destinations, each taken off the queue and processed under RIB."""
    for _ in range(self.work_units_per_cycle):
        with RIB:
            destination = self._dest_queue.pop_first()
            if destination is None:
                return
            destination.process()


CircularListType.node_is_on_list = _on_some_list
TableCoreManager.learn_path = _learn_path
BgpProcessor._plain_process_rtdest = BgpProcessor._process_rtdest
BgpProcessor.enqueue = _enqueue
BgpProcessor._run = _run
BgpProcessor._process_dest = _process_dest
