"""Pure arithmetic of the failover benchmark: gaps seen by the client, percentiles, RFC bounds.

Kept apart from the namespace plumbing so that what is measured is easy to read:

* a **gap** is the client's outage: from the last answer of the old master to the first
  answer of another node, both taken as the probes' send times (5 ms resolution);
* percentiles are nearest-rank (p99 of 20 trials is the worst trial: no interpolation
  flatters a small sample);
* the bounds are RFC 9568 §6.1 arithmetic for a backup of priority ``priority``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    """One answered probe: when it was sent (monotonic seconds) and which node answered."""

    sent: float
    node: str


def failover_window(answers: Sequence[Answer], injected_at: float, old: str) -> tuple[float, float] | None:
    """(``old``'s last answer, the first answer by another node after the injection), send times.

    None when no other node answered (the failover did not happen).
    """
    first_new = next((a for a in answers if a.sent > injected_at and a.node != old), None)
    if first_new is None:
        return None
    last_old = max((a.sent for a in answers if a.node == old and a.sent < first_new.sent), default=None)
    if last_old is None:
        return None
    return last_old, first_new.sent


def failover_gap(answers: Sequence[Answer], injected_at: float, old: str) -> float | None:
    """Seconds from ``old``'s last answer to the first answer by another node after the injection."""
    window = failover_window(answers, injected_at, old)
    return None if window is None else window[1] - window[0]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sample."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def skew_time(interval: float, priority: int) -> float:
    """RFC 9568 §6.1: Skew_Time = ((256 - Priority) * Master_Adver_Interval) / 256."""
    return (256 - priority) * interval / 256


def master_down_interval(interval: float, priority: int) -> float:
    """RFC 9568 §6.1: Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time."""
    return 3 * interval + skew_time(interval, priority)
