"""What the operator remembers of each VirtualIP between two watch events, and its locks.

The settling rules (:mod:`keepvip.operator.settle`) are pure; this is the mutable part
around them: one :class:`Remembered` per VirtualIP, used by one thread at a time. The
memory is lost on restart by design: the status the previous run wrote
(:func:`keepvip.operator.settle.first_sight`) is where a new run starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from keepvip.api.model import VirtualIPStatus
from keepvip.operator.settle import Settling

ReadinessKey = tuple[tuple[str, bool], ...] | None
"""Node readiness in a comparable form (sorted items; None when every entry is trusted)."""


def readiness_key(readiness: Mapping[str, bool] | None) -> ReadinessKey:
    """The comparable form of a node-readiness mapping."""
    return None if readiness is None else tuple(sorted(readiness.items()))


@dataclass
class Remembered:
    """What the operator last decided for one VirtualIP (mutated under its lock)."""

    settling: Settling | None = None
    written: VirtualIPStatus | None = None
    """The status last derived: the base for the next Events, newer than a lagging watch body."""
    patched: Mapping[str, object] | None = None
    """The operator's fields as last patched, and :attr:`patched_over` the ``resourceVersion``
    of the body that patch answered: a watch body that still shows that version predates our
    own patch, so deriving the same fields from it again is no reason to write them again."""
    patched_over: str | None = None
    derived_from: tuple[str | None, ReadinessKey] | None = None
    """(``resourceVersion``, node readiness) of the last derivation: while neither changes and
    nothing is waiting for its grace period, the periodic re-check has nothing to re-derive."""
    derived_at: float = 0.0
    """Monotonic time of the last derivation."""
    newest_body: Mapping[str, Any] | None = None
    """The body the watch (or the spec stage) last delivered. The periodic re-check derives
    from it, not from the body it copied before waiting for the lock: that copy can be older
    than one a watch event derived from meanwhile, and deriving from it would replay a
    takeover already told (``A → B`` told again after ``B → A``)."""

    def is_quiet(self, version: str | None, readiness: ReadinessKey, grace: float) -> bool:
        """Whether re-deriving from this body version and node readiness would change nothing.

        True only when the last derivation saw exactly these (a known ``resourceVersion``)
        and its settling waits for nothing: no transient still short of the grace period
        when it was derived, no first master waiting to be told. Time alone changes only
        those two. (No settling at all: the spec stage has not written a first status,
        which comes as a new version.)
        """
        settling = self.settling
        if version is None or self.derived_from != (version, readiness):
            return False
        if settling is None:
            return True
        waiting = settling.unsettled_since is not None and self.derived_at - settling.unsettled_since < grace
        return not waiting and settling.told_master == settling.view.master


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

    def peek(self, uid: str) -> Remembered | None:
        """The VirtualIP's memory without taking its lock (for a read-only check between
        derivations; None before the first)."""
        with self._guard:
            return self._entries.get(uid)

    def drop(self, uid: str) -> None:
        """Drop a deleted VirtualIP's memory."""
        with self._guard:
            self._entries.pop(uid, None)
            self._locks.pop(uid, None)
