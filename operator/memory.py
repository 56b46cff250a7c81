"""What the operator remembers of each VirtualIP between two watch events, and its locks.

The settling rules (:mod:`keepvip.operator.settle`) are pure; this is the mutable part
around them: one :class:`Remembered` per VirtualIP, used by one thread at a time. The
memory is lost on restart by design: the status the previous run wrote
(:func:`keepvip.operator.settle.first_sight`) is where a new run starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from keepvip.api.model import VirtualIPStatus
from keepvip.operator.settle import Settling


@dataclass
class Remembered:
    """What the operator last decided for one VirtualIP (mutated under its lock)."""

    settling: Settling | None = None
    written: VirtualIPStatus | None = None
    """The status last written: the base for the next Events, newer than a lagging watch body."""


@dataclass
class StatusMemory:
    """Per-VirtualIP :class:`Remembered`, each used by one thread at a time.

    The watch-event handler and the periodic re-evaluation run in different threads;
    holding the VirtualIP's lock from reading the memory to posting the Events makes
    each settled change produce its Events exactly once.
    """

    _entries: dict[str, Remembered] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def hold(self, uid: str) -> Iterator[Remembered]:
        """The VirtualIP's memory, exclusively, for the duration of the block."""
        with self._guard:
            lock = self._locks.setdefault(uid, threading.Lock())
        with lock:
            with self._guard:
                entry = self._entries.setdefault(uid, Remembered())
            yield entry

    def drop(self, uid: str) -> None:
        """Drop a deleted VirtualIP's memory."""
        with self._guard:
            self._entries.pop(uid, None)
            self._locks.pop(uid, None)
