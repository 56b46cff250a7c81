"""Which node problems become Kubernetes Events, and how many (pure: no API, no clock).

Issue 10 asks that an address conflict (and issue 15 that a failed bind) be told as an
Event on the VirtualIP, besides the node's status entry, the log and a metric. Events
are written by hundreds of speakers into one namespace, so what a speaker may write is
bounded here, whatever happens on its node:

* edge-triggered: a VirtualIP's story is told when it starts or changes, not on every
  report that repeats it (:meth:`EventLimiter.observe` gets every report);
* a story that recurs (a bind retried and failing again) stays one Event whose
  ``count`` (and ``lastTimestamp``) is patched, at most once per ``series_interval``
  seconds per (VirtualIP, reason), as client-go's recorder aggregates;
* a token bucket caps all writes of the node (``burst``, then one per ``refill`` s);
* per-key memory is an LRU of ``max_keys`` entries, so no input grows it without bound.

Only what the runtime already decided reaches here; what is refused is counted by the
caller under a named :class:`EventResult`.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from keepvip.speaker.runtime.failures import Failure, FailureReport
from keepvip.speaker.runtime.router_runner import RouterReport
from keepvip.speaker.vrrp.state import State, TransitionReason

MAX_KEYS: Final = 256
SERIES_INTERVAL: Final = 60.0
BURST: Final = 10
REFILL_SECONDS: Final = 6.0  # after the burst, one write per 6 s: at most 10 a minute per node
NOTE_LIMIT: Final = 1024  # the API server's limit on an Event's message (note)


class EventReason(enum.StrEnum):
    """The Event reasons a speaker writes (also the metric label)."""

    CONFLICT = "Conflict"  # an address is already the node's own or its gateway
    ADDRESS_BIND_FAILED = "AddressBindFailed"  # the kernel refused a VIP: FAULT, priority 0


class EventResult(enum.StrEnum):
    """What became of one occurrence (the ``result`` label of keepvip_speaker_events_total)."""

    CREATED = "created"  # a new Event
    SERIES = "series"  # the existing Event's count was patched
    RATE_LIMITED = "rate_limited"  # within the series interval or over the node's budget
    QUEUE_FULL = "queue_full"  # the writer was behind: dropped
    FAILED = "failed"  # the API server refused or was unreachable


@dataclass(frozen=True)
class Occurrence:
    """One problem of one VirtualIP on this node, as an Event tells it."""

    virtualip: str
    reason: EventReason
    note: str


def occurrence_of(report: RouterReport | FailureReport, node: str) -> Occurrence | None:
    """The Event a node report calls for, or None (most reports call for none)."""
    if isinstance(report, FailureReport):
        if report.reason != Failure.ADDRESS_CONFLICT.value:
            return None
        note = f"node {node}: {report.message}; this node stays out of the election for this VirtualIP"
        return Occurrence(report.virtualip, EventReason.CONFLICT, note[:NOTE_LIMIT])
    if report.state is State.FAULT and report.reason == TransitionReason.FAULT_ADDRESS_BIND.value:
        detail = report.message or f"binding the addresses on {report.interface} failed"
        note = f"node {node}: {detail}; FAULT: priority 0 sent, addresses released, retried with backoff"
        return Occurrence(report.virtualip, EventReason.ADDRESS_BIND_FAILED, note[:NOTE_LIMIT])
    return None


@dataclass(frozen=True)
class Create:
    """Write a new Event named ``name``."""

    name: str


@dataclass(frozen=True)
class Patch:
    """Set the count of Event ``name`` to ``count`` occurrences."""

    name: str
    count: int


@dataclass(frozen=True)
class Suppressed:
    """Write nothing now (a later count patch carries it)."""


Decision = Create | Patch | Suppressed


@dataclass
class _Series:
    name: str
    note: str
    count: int
    sent_at: float


def event_name(virtualip: str, node: str, reason: EventReason, unique: int) -> str:
    """A DNS-subdomain Event name: the VirtualIP's name and a digest unique per node and write."""
    digest = hashlib.sha256(f"{node}/{reason.value}/{unique}".encode()).hexdigest()[:16]
    return f"{virtualip[:236].rstrip('.-')}.{digest}"


class EventLimiter:
    """Edge detection, series and the node's write budget; bounded memory."""

    def __init__(
        self,
        node: str,
        *,
        max_keys: int = MAX_KEYS,
        series_interval: float = SERIES_INTERVAL,
        burst: int = BURST,
        refill: float = REFILL_SECONDS,
    ) -> None:
        self._node = node
        self._max_keys = max_keys
        self._interval = series_interval
        self._burst = burst
        self._refill = refill
        self._tokens = float(burst)
        self._tokens_at: float | None = None
        self._current: OrderedDict[str, Occurrence] = OrderedDict()  # VirtualIP -> its told story
        self._series: OrderedDict[tuple[str, EventReason], _Series] = OrderedDict()
        self._written = 0

    def __len__(self) -> int:
        """Entries held (both maps): never more than twice ``max_keys``."""
        return len(self._current) + len(self._series)

    def observe(self, virtualip: str, occurrence: Occurrence | None, now: float) -> Decision | None:
        """A report of ``virtualip`` (``occurrence`` None: nothing to tell); None: not an edge."""
        if occurrence is None:
            self._current.pop(virtualip, None)
            return None
        if self._current.get(virtualip) == occurrence:
            return None
        self._remember(self._current, virtualip, occurrence)
        return self._decide(occurrence, now)

    def forget(self, virtualip: str) -> None:
        """The VirtualIP no longer runs here: its next problem is a new story."""
        self._current.pop(virtualip, None)

    def recreate(self, occurrence: Occurrence, now: float) -> Create:
        """The Event to patch is gone (expired): a new name for the same series."""
        key = (occurrence.virtualip, occurrence.reason)
        series = self._series.get(key)
        self._written += 1
        name = event_name(occurrence.virtualip, self._node, occurrence.reason, self._written)
        if series is not None:
            series.name, series.count, series.sent_at = name, 1, now
        return Create(name)

    def _decide(self, occurrence: Occurrence, now: float) -> Decision:
        key = (occurrence.virtualip, occurrence.reason)
        series = self._series.get(key)
        if series is not None and series.note == occurrence.note:
            series.count += 1
            self._series.move_to_end(key)
            if now - series.sent_at < self._interval or not self._take(now):
                return Suppressed()
            series.sent_at = now
            return Patch(series.name, series.count)
        if not self._take(now):
            return Suppressed()
        self._written += 1
        name = event_name(occurrence.virtualip, self._node, occurrence.reason, self._written)
        self._remember(self._series, key, _Series(name, occurrence.note, 1, now))
        return Create(name)

    def _take(self, now: float) -> bool:
        """One token of the node's budget, if any is left."""
        if self._tokens_at is not None:
            self._tokens = min(float(self._burst), self._tokens + (now - self._tokens_at) / self._refill)
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _remember(self, table: OrderedDict[Any, Any], key: object, value: object) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._max_keys:
            table.popitem(last=False)
