"""`Timers` re-arms lazily (issue 15) and still calls every client exactly at its deadline.

A virtual clock stands in for the event loop (``time``, ``call_at``): time jumps from
one scheduled wake-up to the next, so "on time" is exact equality. A reference model
(each client's latest armed deadline, forgotten when disarmed or fired) decides what
must be called when; random sequences of arms, disarms and waits compare the two.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from keepvip.speaker.runtime.timers import Timers


class Handle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualLoop:
    """The part of an event loop `Timers` uses, on a clock that only moves in `advance`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[tuple[float, int, Handle]] = []
        self.wakeups = 0
        self._sequence = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Handle:
        handle = Handle(when, callback)
        heapq.heappush(self.handles, (when, next(self._sequence), handle))
        return handle

    def advance(self, until: float) -> None:
        """Run every wake-up due up to ``until``, each at its own time."""
        while self.handles and self.handles[0][0] <= until:
            when, _, handle = heapq.heappop(self.handles)
            if handle.cancelled:
                continue
            self.now = max(self.now, when)
            self.wakeups += 1
            handle.callback()
        self.now = max(self.now, until)


class Client:
    def __init__(self, name: int, loop: VirtualLoop, calls: list[tuple[int, float, float]]) -> None:
        self.name, self.loop, self.calls = name, loop, calls

    def on_timer(self, when: float) -> None:
        self.calls.append((self.name, when, self.loop.now))


def make(count: int) -> tuple[VirtualLoop, Timers, list[Client], list[tuple[int, float, float]]]:
    loop = VirtualLoop()
    loop_any: Any = loop
    timers = Timers(loop_any)
    calls: list[tuple[int, float, float]] = []
    return loop, timers, [Client(n, loop, calls) for n in range(count)], calls


def test_a_deadline_moved_later_fires_once_at_the_new_time_not_the_old() -> None:
    loop, timers, (backup,), calls = make(1)
    timers.arm(backup, 3.6)
    for heard in (1.0, 2.0, 3.0):  # the master's adverts: Master_Down moves each time
        loop.advance(heard)
        timers.arm(backup, heard + 3.6)
    loop.advance(20.0)
    assert calls == [(0, 6.6, 6.6)]
    assert len(timers) == 0


def test_re_arming_later_pushes_nothing_until_the_entry_surfaces() -> None:
    loop, timers, (backup,), _ = make(1)
    timers.arm(backup, 3.6)
    for step in range(1, 1000):
        timers.arm(backup, 3.6 + step * 0.001)
    assert len(timers._heap) == 1  # one entry, not one per advert
    loop.advance(3.6)  # it surfaces early: pushed again at the stored deadline, nobody called
    assert len(timers._heap) == 1
    assert timers._heap[0][0] == 3.6 + 999 * 0.001


def test_a_deadline_moved_earlier_fires_at_the_earlier_time_once() -> None:
    loop, timers, (router,), calls = make(1)
    timers.arm(router, 5.0)
    timers.arm(router, 2.0)
    loop.advance(10.0)
    assert calls == [(0, 2.0, 2.0)]


def test_a_disarmed_client_is_not_called_and_wakes_nothing_later() -> None:
    loop, timers, (router,), calls = make(1)
    timers.arm(router, 1.0)
    timers.disarm(router)
    loop.advance(10.0)
    assert calls == []
    assert len(timers) == 0


# Operations: (client, kind, value). kind 0: arm at now + value; 1: disarm; 2: wait value.
operations = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 2), st.floats(0.0, 5.0, allow_nan=False)),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_every_client_is_called_exactly_at_its_last_deadline_like_an_eager_timer(
    ops: list[tuple[int, int, float]],
) -> None:
    loop, timers, clients, calls = make(5)
    expected_armed: dict[int, float] = {}
    expected: list[tuple[int, float, float]] = []

    def wait(until: float) -> None:
        # The reference: every armed deadline up to ``until`` fires at its own time.
        for name, when in sorted(expected_armed.items(), key=lambda item: item[1]):
            if when <= until:
                expected.append((name, when, when))
                del expected_armed[name]
        loop.advance(until)

    for name, kind, value in ops:
        if kind == 0:
            when = round(loop.now + value, 3)
            timers.arm(clients[name], when)
            expected_armed[name] = when
        elif kind == 1:
            timers.disarm(clients[name])
            expected_armed.pop(name, None)
        else:
            wait(round(loop.now + value, 3))
    wait(loop.now + 100.0)
    assert sorted(calls) == sorted(expected)
    assert all(at == when for _, when, at in calls)  # never early, never late
    assert len(timers) == 0
