"""One timer for every virtual router of a speaker (issue 15, "close to keepalived's cost").

Each router has at most one deadline (`VirtualRouter.next_deadline`). Giving each its
own asyncio task blocked in ``wait_for`` cost a task switch, a future, a timer handle
and a cancellation per advertisement, per router: at 100 routers @ 100 ms that machinery
was most of the speaker's CPU. Here every deadline sits in one heap and the event loop
holds a single timer handle, for the earliest one; when it fires, every router that is
due at that moment runs in the same wake-up (keepalived's scheduler likewise keeps
all its timers in one sorted tree). The routers round their deadlines up to a grid
(`router_runner.timer_grid`) so that routers due at about the same time share one.

A router re-arms often (a backup's Master_Down timer moves with every advertisement it
receives), and almost always *later*. So re-arming is lazy (issue 15: a heap push per
received advertisement was a backup's cost): the client's deadline is stored in a
dict, and its heap entry stays where it is as long as it is not later than the new
deadline. When that entry surfaces early, the client is not called: its entry is
pushed again at the stored deadline. A backup hearing its master every interval thus
costs one dict store per advertisement and one heap operation per Master_Down_Interval.
Only a deadline moved *earlier* pushes a new entry at once; the old one is then stale
(it no longer matches the client's queued entry) and is skipped when it surfaces, or
compacted away when stale entries outnumber the live ones.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import weakref
from typing import Final, Protocol

log = logging.getLogger("keepvip.speaker.timers")

_COMPACT_SLACK: Final = 64  # stale heap entries tolerated beyond twice the armed ones


class Timed(Protocol):
    """A client of `Timers`: told when its deadline (``when``, as armed) has come."""

    def on_timer(self, when: float) -> None: ...


class Timers:
    """A heap of ``(deadline, sequence, client)`` behind a single loop timer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, Timed]] = []
        self._armed: dict[Timed, float] = {}  # the deadline each client wants
        self._queued: dict[Timed, float] = {}  # the client's live heap entry: never later than armed
        self._sequence = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._wake_at: float | None = None

    def __len__(self) -> int:
        """Clients with a deadline armed."""
        return len(self._armed)

    def arm(self, client: Timed, when: float) -> None:
        """Call ``client.on_timer()`` at ``when`` (loop time), replacing its earlier deadline."""
        self._armed[client] = when
        queued = self._queued.get(client)
        if queued is not None and queued <= when:
            return  # lazy: that entry surfaces first and is pushed again at ``when``
        self._push(client, when)

    def disarm(self, client: Timed) -> None:
        """Forget ``client``'s deadline (its heap entry is skipped when it surfaces)."""
        self._armed.pop(client, None)
        self._queued.pop(client, None)

    def _push(self, client: Timed, when: float) -> None:
        self._queued[client] = when
        heapq.heappush(self._heap, (when, next(self._sequence), client))
        if len(self._heap) > 2 * len(self._queued) + _COMPACT_SLACK:
            self._compact()
        self._wake_for(when)

    def _compact(self) -> None:
        self._heap = [(when, next(self._sequence), client) for client, when in self._queued.items()]
        heapq.heapify(self._heap)

    def _wake_for(self, when: float) -> None:
        if self._wake_at is not None and self._wake_at <= when:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._wake_at = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._wake_at = None
        now = self._loop.time()
        due: list[tuple[Timed, float]] = []
        later: list[tuple[Timed, float]] = []
        heap, queued, armed = self._heap, self._queued, self._armed
        while heap and heap[0][0] <= now:
            entry, _, client = heapq.heappop(heap)
            if queued.get(client) != entry:
                continue  # stale: the client pushed an earlier entry since
            del queued[client]
            when = armed.get(client)
            if when is None:
                continue  # disarmed
            if when <= now:
                del armed[client]
                due.append((client, when))
            else:
                later.append((client, when))  # re-armed later meanwhile (lazily)
        for client, when in later:
            self._push(client, when)
        for client, when in due:
            try:
                client.on_timer(when)  # may arm again (pushes onto the heap, may set the wake-up)
            except Exception:  # one client's bug must not stop the others' timers
                log.exception("timer callback failed")
        while heap and queued.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # stale entries on top would wake the loop for nothing
        if heap:
            self._wake_for(heap[0][0])


_PER_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Timers] = weakref.WeakKeyDictionary()


def timers_for(loop: asyncio.AbstractEventLoop) -> Timers:
    """The one `Timers` of this event loop (all routers of a speaker share it)."""
    timers = _PER_LOOP.get(loop)
    if timers is None:
        timers = _PER_LOOP[loop] = Timers(loop)
    return timers
