"""A backup hearing its master's unchanged advertisement again is served as it is delivered.

Issues 15 and 14 (a backup's CPU per advertisement): the core's `VirtualRouter.heard_again`
is the §6.4.2 reset of the Master_Down_Timer for the very advertisement the backup last
followed. A running router with nothing queued asks it first, in ``_deliver``, and skips
its inbox and serve loop. These tests pin what must not change with that shortcut: the
reset counts from the arrival, every advertisement is counted, silence still makes the
backup take over one Master_Down_Interval after the last arrival, and an advertisement
never overtakes an input queued before it.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address

import pytest

from keepvip.inet import VRRP_GROUP_V4 as GROUP4
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import Received
from keepvip.speaker.runtime.router_runner import RouterReport, RouterRunner, _Packet
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import State
from keepvip.speaker.vrrp.timers import master_down_interval
from tests.unit.test_packet_arrival import CapturingPool
from tests.unit.test_router_runner_faults import NAME, VIPS, Node, plan
from tests.unit.wire import VIP, config

pytestmark = pytest.mark.timeout(30)

PRIMARY, MASTER = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
DOWN = master_down_interval(3, plan().priority, plan().interval_cs)
HIGHER = Advertisement(3, plan().vrid, 200, plan().interval_cs, tuple(vip.ip for vip in VIPS))


def received_total(metrics: SpeakerMetrics) -> float | None:
    return metrics.registry.get_sample_value("keepvip_advert_rcvd_total", {"virtualip": NAME})


async def started(pool: CapturingPool, metrics: SpeakerMetrics) -> RouterRunner:
    reports: list[RouterReport] = []
    runner = RouterRunner(plan(), ifname="eth0", primary=PRIMARY, pool=pool, network=Node(),  # type: ignore[arg-type]
                          metrics=metrics, reporter=reports.append, node="node-a")  # fmt: skip
    await runner.start()
    while runner._busy is not None:  # the start's release of stale VIPs awaits the kernel
        await asyncio.sleep(0.001)
    return runner


def test_the_masters_repeat_is_served_at_delivery_counted_and_resets_from_its_arrival() -> None:
    metrics = SpeakerMetrics()

    async def scenario() -> tuple[list[float], float, float]:
        loop = asyncio.get_running_loop()
        pool = CapturingPool()
        runner = await started(pool, metrics)
        packet = Received(b"", MASTER, GROUP4, 255, 2)  # the pool hands out one object per distinct bytes
        pool.deliver(HIGHER, packet, loop.time())
        pool.flush()  # the first one is learnt the full way: through the inbox
        assert runner._router.master_address == MASTER
        lags: list[float] = []
        last = loop.time()
        for _ in range(8):  # 8 intervals: well past the first Master_Down_Interval
            await asyncio.sleep(plan().interval_cs / 100)
            last = loop.time() - 0.003  # it arrived a little before it was read
            pool.deliver(HIGHER, packet, last)
            assert not runner._inbox  # served at delivery, nothing left for the flush
            lags.append(runner._router.next_deadline - last)  # type: ignore[operator]
            pool.flush()
            assert runner._router.state is State.BACKUP
        while pool.socket.sent == 0:  # silence: the takeover's first advertisement
            await asyncio.sleep(0.001)
        took_over = loop.time()
        await runner.stop()
        return lags, last, took_over

    lags, last, took_over = asyncio.run(scenario())
    assert lags == [pytest.approx(DOWN)] * 8  # each reset counts from that advertisement's arrival
    assert received_total(metrics) == 9  # every advertisement counted, the shortcut's too
    assert took_over >= last + DOWN  # one Master_Down_Interval after the last arrival, never before


def test_a_repeat_behind_a_queued_input_waits_its_turn() -> None:
    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        pool = CapturingPool()
        runner = await started(pool, SpeakerMetrics())
        packet = Received(b"", MASTER, GROUP4, 255, 2)
        pool.deliver(HIGHER, packet, loop.time())
        pool.flush()
        # A lower-priority stranger is queued (the batch is not flushed yet), then the master's repeat:
        stranger = Advertisement(3, plan().vrid, 50, plan().interval_cs, tuple(vip.ip for vip in VIPS))
        pool.deliver(stranger, Received(b"", IPv4Address("198.18.0.9"), GROUP4, 255, 2), loop.time())
        pool.deliver(HIGHER, packet, loop.time())
        order = [item.advertisement.priority for item in runner._inbox if isinstance(item, _Packet)]
        pool.flush()
        assert not runner._inbox
        assert runner._router.state is State.BACKUP
        await runner.stop()
        return order

    assert asyncio.run(scenario()) == [50, 200]  # queued in arrival order, served by the flush


def test_heard_again_is_only_the_very_advertisement_followed_and_changes_nothing_otherwise() -> None:
    router = VirtualRouter(config(1, 100))
    router.start(0.0)
    advert = Advertisement(version=3, vrid=51, priority=150, interval_cs=100, addresses=(VIP,))
    master = IPv4Address("198.18.0.2")
    assert not router.heard_again(advert, master, 0.5)  # nothing followed yet
    router.receive(advert, master, 1.0)
    deadline = router.next_deadline
    equal_copy = Advertisement(version=3, vrid=51, priority=150, interval_cs=100, addresses=(VIP,))
    assert not router.heard_again(equal_copy, master, 2.0)  # equal is not the same object
    assert not router.heard_again(advert, IPv4Address("198.18.0.2"), 2.0)  # nor an equal source
    assert router.next_deadline == deadline  # a refusal touches nothing
    assert router.heard_again(advert, master, 2.0)
    assert router.next_deadline == 2.0 + router.master_down_interval
    router.set_effective_priority(120, 2.5)  # our priority changed: the full path decides again
    assert not router.heard_again(advert, master, 3.0)
