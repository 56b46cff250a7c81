"""What every probe is: one bounded asynchronous attempt that answers pass or fail.

A probe never raises for a failure of the thing it checks (refused, timed out, bad
status, exit code): those are results, with a ``detail`` a human can read in the log.
It is bounded by its own timeout, so a runner can await it without a watchdog, and it
never blocks the event loop that also sends VRRP advertisements.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe run."""

    ok: bool
    detail: str
    duration: float  # seconds, measured on the event loop's monotonic clock


class Probe(Protocol):
    """One kind of health check, ready to run against its target."""

    @property
    def target(self) -> str:
        """What the probe checks, for logs (e.g. ``tcp 127.0.0.1:80``)."""
        ...

    async def run(self) -> ProbeResult:
        """Probe once; return within the probe's timeout (plus scheduling slack)."""
        ...


class Stopwatch:
    """Elapsed time on the running loop's clock, for :attr:`ProbeResult.duration`."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()

    def elapsed(self) -> float:
        """Seconds since construction."""
        return self._loop.time() - self._start

    def result(self, ok: bool, detail: str) -> ProbeResult:
        """A :class:`ProbeResult` stamped with the elapsed time."""
        return ProbeResult(ok=ok, detail=detail, duration=self.elapsed())


def format_seconds(seconds: float) -> str:
    """``0.25`` → ``250ms``, ``2.0`` → ``2s``: durations as the API writes them."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


def describe_error(error: OSError) -> str:
    """A short reason for a socket error (``connection refused``), without the errno noise."""
    if error.errno:
        return os.strerror(error.errno).lower()  # asyncio rewords strerror ("Connect call failed")
    return str(error) or type(error).__name__
