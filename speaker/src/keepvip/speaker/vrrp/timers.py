"""The RFC timer formulas, as pure functions of (version, priority, interval).

Kept apart from the state machine so the arithmetic can be checked against the worked
values in vrrp-facts.md §3.4 on its own, and so the speaker and the docs can quote
the same numbers (e.g. "failover within Master_Down_Interval").

Intervals are in centiseconds (the unit of VRRPv3's Max Adver Int; a VRRPv2 interval
is its whole seconds × 100); results are float seconds, the unit of ``now``.
"""

from __future__ import annotations

from keepvip.speaker.vrrp.constants import VERSION_2

CENTISECONDS_PER_SECOND = 100


def interval_seconds(interval_cs: int) -> float:
    """An advertisement interval in seconds."""
    return interval_cs / CENTISECONDS_PER_SECOND


def skew_time(version: int, priority: int, master_adver_interval_cs: int) -> float:
    """Skew_Time in seconds: higher priorities wait less, so they win a race.

    RFC 3768 §6.1 (v2): ``(256 - Priority) / 256`` seconds, independent of the interval.
    RFC 9568 §6.1 (v3): ``((256 - Priority) * Master_Adver_Interval) / 256`` centiseconds.
    """
    if version == VERSION_2:
        return (256 - priority) / 256
    return (256 - priority) * master_adver_interval_cs / 256 / CENTISECONDS_PER_SECOND


def master_down_interval(version: int, priority: int, master_adver_interval_cs: int) -> float:
    """Master_Down_Interval in seconds (RFC 3768 §6.1, RFC 9568 §6.1 "Active_Down_Interval").

    ``3 × Master_Adver_Interval + Skew_Time``: how long a backup waits in silence before it
    declares the master dead.
    """
    return 3 * interval_seconds(master_adver_interval_cs) + skew_time(
        version, priority, master_adver_interval_cs
    )
