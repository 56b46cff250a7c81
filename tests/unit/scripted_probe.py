"""A probe the test scripts, on the virtual clock: the runner's tests and the shared runs' use it."""

from __future__ import annotations

from dataclasses import dataclass, field

from keepvip.speaker.checks.probe import ProbeResult
from tests.unit.virtual_clock import VirtualClock


@dataclass
class ScriptedProbe:
    """A probe whose service the test turns up and down; each run takes ``duration``
    of virtual time and records when it started."""

    clock: VirtualClock
    up: bool = True
    duration: float = 0.0
    active: int = 0
    most_active: int = 0
    starts: list[float] = field(default_factory=list)
    target: str = "scripted"

    async def run(self) -> ProbeResult:
        self.starts.append(self.clock.now())
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await self.clock.sleep(self.duration)
        finally:
            self.active -= 1
        ok = self.up
        return ProbeResult(ok=ok, detail="answers" if ok else "connection refused", duration=self.duration)
