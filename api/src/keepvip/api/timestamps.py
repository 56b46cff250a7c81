"""RFC 3339 timestamps as Kubernetes writes them: UTC, whole seconds, a ``Z``.

One spelling for every time keepvip puts in an object (condition transitions, Event
times, ``status.nodes[].since``), so they compare and sort as Kubernetes' own do.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """``moment`` (timezone-aware) as ``2006-01-02T15:04:05Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_now() -> str:
    """The current time as :func:`rfc3339` writes it."""
    return rfc3339(datetime.now(UTC))
