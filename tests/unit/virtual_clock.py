"""A virtual clock for asyncio code that takes a `Clock` (e.g. the check runner).

Time stands still until the test advances it; then every sleeper whose wake-up time
has come is woken, in order, and the event loop runs until nothing is ready, before
the clock moves on. So a test says "5 seconds pass" and sees exactly what the code did
in those 5 seconds, at once and the same way on a loaded machine.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

# Rounds of the event loop to let woken tasks run to their next wait. Each round runs
# every ready callback once; the runner needs a handful per wake-up.
_SETTLE_ROUNDS = 50


class VirtualClock:
    """Implements keepvip.speaker.checks.runner.Clock on virtual seconds."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._order = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._order), wake))
        await wake

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass."""
        until = self._now + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= until:
            at, _, wake = heapq.heappop(self._sleepers)
            self._now = at
            if not wake.done():  # a cancelled sleeper (a stopped task) is skipped
                wake.set_result(None)
            await _settle()
        self._now = until


async def _settle() -> None:
    for _ in range(_SETTLE_ROUNDS):
        await asyncio.sleep(0)
