"""Runs one probe on its interval as an asyncio task and reports status changes.

The runner is the only place where time passes for a check: it starts the first run
at once (a node must not wait an interval to learn its service is down), spaces runs
start-to-start by ``interval`` like keepalived's ``vrrp_script``, and never overlaps
two runs of the same check — a run that overruns delays the next start instead of
stacking up (a probe is bounded by its timeout, which the model keeps ≤ interval).

Every result feeds a :class:`~keepvip.speaker.checks.tracker.CheckTracker`; the
``on_change`` callback fires only when the tracked status changes, so the router
recomputes its priority on transitions, not on every probe. The callback runs on the
event loop and must not block; an exception in it is logged and the check goes on.

Time comes from a :class:`Clock` (by default the event loop's), so the spacing rules
are tested on a virtual clock, without waiting and without wall-clock windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from keepvip.speaker.checks.probe import Probe, ProbeResult
from keepvip.speaker.checks.tracker import CheckState, CheckStatus, CheckTracker

log = logging.getLogger(__name__)

OnChange = Callable[[str, bool, str], None]
"""``on_change(check_name, passing, detail)``: the check's status changed."""


class Clock(Protocol):
    """Where the runner reads the time and waits: monotonic seconds."""

    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's monotonic clock (what the speaker uses)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class RunCounters:
    """Totals since the runner started, for metrics (monotonic counters)."""

    runs: int = 0
    failures: int = 0


class CheckRunner:
    """One health check (or the arbiter) as a task: probe, track, report changes."""

    def __init__(
        self,
        name: str,
        probe: Probe,
        tracker: CheckTracker,
        interval: float,
        on_change: OnChange | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive (got {interval})")
        self.name = name
        self.probe = probe
        self.tracker = tracker
        self.interval = interval
        self.on_change = on_change
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.counters = RunCounters()
        self.last_result: ProbeResult | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def status(self) -> CheckStatus:
        """The tracked status (UNKNOWN until the first run completes)."""
        return self.tracker.status

    @property
    def state(self) -> CheckState:
        """Name, weight and status: what :func:`effective_priority` takes."""
        return self.tracker.state(self.name)

    @property
    def running(self) -> bool:
        """Whether the task is started and not finished."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task on the running loop; the first probe runs right away."""
        if self._task is not None:
            raise RuntimeError(f"check {self.name} already started")
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"check-{self.name}")

    async def stop(self) -> None:
        """Cancel the task and wait until it is gone (an exec child is killed and reaped)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run_once(self) -> ProbeResult:
        """Probe once, count, track, and report a status change. The task calls this."""
        try:
            result = await self.probe.run()
        except Exception as error:  # a probe bug fails the check instead of ending it silently
            log.exception("check %s: probe %s raised", self.name, self.probe.target)
            result = ProbeResult(ok=False, detail=f"probe error: {error!r}", duration=0.0)
        self.last_result = result
        self.counters.runs += 1
        if not result.ok:
            self.counters.failures += 1
        if self.tracker.record(result.ok):
            passing = self.tracker.status is CheckStatus.PASSING
            log.info(
                "check %s %s: %s (%s)",
                self.name,
                self.tracker.status.value,
                result.detail,
                self.probe.target,
            )
            if self.on_change is not None:
                try:
                    self.on_change(self.name, passing, result.detail)
                except Exception:
                    log.exception("check %s: on_change callback failed", self.name)
        return result

    async def _loop(self) -> None:
        while True:
            started = self.clock.now()
            await self.run_once()
            await self.clock.sleep(max(0.0, started + self.interval - self.clock.now()))
