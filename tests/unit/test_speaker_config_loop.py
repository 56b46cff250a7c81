"""The configuration loop is supervised: a failure is counted, unreadies the speaker, and the loop restarts.

Issue 9: "If the configuration loop itself dies, readiness turns false and
keepvip_config_errors_total{reason} counts each failure". The speaker below is real;
the snapshots carry no VirtualIP, so no netlink is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.main import ConfigError, supervise_config
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.speaker import Speaker
from keepvip.speaker.sources.snapshot import ConfigSnapshot


def errors(metrics: SpeakerMetrics, reason: ConfigError) -> float:
    return metrics.config_errors.labels(reason.value).value


async def run_loop(failures: int) -> tuple[SpeakerMetrics, list[bool], int]:
    """A source that yields one snapshot then raises, ``failures`` times, then keeps yielding."""
    metrics = SpeakerMetrics()
    speaker = Speaker(NodeIdentity("node-a"), None, metrics, use_status_allocation=False)
    readiness: list[bool] = []
    starts = 0
    healthy = asyncio.Event()

    async def snapshots() -> AsyncIterator[ConfigSnapshot]:
        nonlocal starts
        starts += 1
        readiness.append(metrics.ready)
        yield ConfigSnapshot(virtualips=())
        if starts <= failures:
            raise RuntimeError("watch thread crashed")
        healthy.set()
        await asyncio.Event().wait()  # a healthy source waits for the next change
        yield ConfigSnapshot(virtualips=())  # pragma: no cover

    task = asyncio.create_task(supervise_config(speaker, metrics, snapshots, restart_after=0.01))
    await asyncio.wait_for(healthy.wait(), 5)
    await asyncio.sleep(0)
    final = metrics.ready
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return metrics, [*readiness, final], starts


def test_each_failure_of_the_source_is_counted_and_unreadies_until_a_snapshot_applies_again() -> None:
    metrics, readiness, starts = asyncio.run(run_loop(failures=2))
    assert starts == 3  # restarted after each failure
    assert errors(metrics, ConfigError.SOURCE_FAILED) == 2
    # Ready at first; not ready at each restart (after a failure); ready again once applied.
    assert readiness == [True, False, False, True]
    assert metrics.config_ready.value == 1


def test_a_source_that_ends_is_a_failure_too() -> None:
    async def scenario() -> SpeakerMetrics:
        metrics = SpeakerMetrics()
        speaker = Speaker(NodeIdentity("node-a"), None, metrics, use_status_allocation=False)

        async def ended() -> AsyncIterator[ConfigSnapshot]:
            for _ in ():
                yield ConfigSnapshot(virtualips=())

        task = asyncio.create_task(supervise_config(speaker, metrics, ended, restart_after=10))
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return metrics

    metrics = asyncio.run(scenario())
    assert errors(metrics, ConfigError.SOURCE_ENDED) == 1
    assert not metrics.ready


class _ApplyFailsOnce(Speaker):
    """A real speaker whose first apply raises for the whole snapshot (a bug outside any one VirtualIP)."""

    def __init__(self, metrics: SpeakerMetrics) -> None:
        super().__init__(NodeIdentity("node-a"), None, metrics, use_status_allocation=False)
        self.applied: list[ConfigSnapshot] = []
        self.ready_at_apply: list[bool] = []

    async def apply(self, snapshot: ConfigSnapshot) -> None:
        self.ready_at_apply.append(self._metrics.ready)
        if not self.applied:
            self.applied.append(snapshot)
            raise RuntimeError("bug while converging")
        self.applied.append(snapshot)
        await super().apply(snapshot)


def test_an_apply_that_raises_is_counted_unreadies_and_the_same_snapshot_is_applied_again() -> None:
    async def scenario() -> tuple[SpeakerMetrics, _ApplyFailsOnce, ConfigSnapshot]:
        metrics = SpeakerMetrics()
        speaker = _ApplyFailsOnce(metrics)
        first = ConfigSnapshot(virtualips=())

        async def quiet() -> AsyncIterator[ConfigSnapshot]:
            await asyncio.Event().wait()  # the source has nothing new
            yield ConfigSnapshot(virtualips=())  # pragma: no cover

        loop = supervise_config(speaker, metrics, quiet, initial=first, restart_after=0.01)
        task = asyncio.create_task(loop)
        async with asyncio.timeout(5):
            while len(speaker.applied) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return metrics, speaker, first

    metrics, speaker, first = asyncio.run(scenario())
    assert errors(metrics, ConfigError.APPLY_FAILED) == 1
    assert errors(metrics, ConfigError.SOURCE_FAILED) == 0
    assert speaker.applied == [first, first]  # nothing lost: the last snapshot is applied at the restart
    assert speaker.ready_at_apply[1] is False  # not ready between the failure and the next good apply
    assert metrics.ready  # an apply that works makes it ready again
