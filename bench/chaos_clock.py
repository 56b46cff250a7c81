"""Wall-clock stamps on the monotonic clock, through a step of the wall clock.

The chaos observer times everything on the monotonic clock, but two of its views arrive
stamped with the wall clock: the bridge capture (pcap) and ``ip -ts monitor neigh``. One
offset (wall - monotonic) taken at the start of a block placed them until the wall clock
moved. On this kind of virtual machine it does: in the fourteenth pass (issue 14, 1 s, seed
21) the wall clock stepped about 9 s ahead of the monotonic clock 981 s into a 2,165 s block,
the capture showed an 8.8 s hole there, and every frame after it was placed 9 s late. Both
daemons' blocks then held every VIP "without advertising" (invariant 3, ~300 readings each),
an artefact of the judge.

:class:`ClockWatch` samples the offset every :data:`PERIOD` seconds during the block;
:meth:`WallClock.to_monotonic` converts a wall stamp with the offset in force when it was
taken: the sample before it, or the next one if the result would fall past that sample (a
stamp taken after a step but before the next sample).
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from dataclasses import dataclass
from functools import cached_property

PERIOD = 0.1


@dataclass(frozen=True)
class WallClock:
    """Samples of (monotonic, wall - monotonic), in monotonic order; at least one."""

    samples: tuple[tuple[float, float], ...]

    @cached_property
    def _walls(self) -> list[float]:
        """Each sample's wall time, never decreasing, so that bisect stays valid. A step *back*
        repeats wall times, and a stamp alone cannot say on which side of it it was taken: such
        stamps take the offset from before the step (placed early by the step). Only forward
        steps have been seen here."""
        return list(itertools.accumulate((at + offset for at, offset in self.samples), max))

    @classmethod
    def fixed(cls, offset: float) -> WallClock:
        """One offset for all stamps (a capture read on its own, without samples)."""
        return cls(((0.0, offset),))

    def to_monotonic(self, wall: float) -> float:
        """``wall`` (seconds since the epoch) on the monotonic clock."""
        index = max(0, bisect.bisect_right(self._walls, wall) - 1)
        at = wall - self.samples[index][1]
        if index + 1 < len(self.samples) and at > self.samples[index + 1][0]:
            # Stamped after the step that the next sample saw, before that sample.
            return wall - self.samples[index + 1][1]
        return at


class ClockWatch:
    """A thread that samples wall - monotonic every ``period`` until :meth:`close`."""

    def __init__(self, period: float = PERIOD) -> None:
        self._period = period
        self._samples: list[tuple[float, float]] = [self._sample()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _sample() -> tuple[float, float]:
        monotonic = time.monotonic()
        return monotonic, time.time() - monotonic

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self._samples.append(self._sample())

    def clock(self) -> WallClock:
        """The samples so far (the watch goes on)."""
        return WallClock(tuple(self._samples))

    def close(self) -> WallClock:
        self._stop.set()
        self._thread.join(timeout=5)
        self._samples.append(self._sample())
        return self.clock()
