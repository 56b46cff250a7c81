"""An advertisement counts from when it arrived, not from when the speaker got to read it.

RFC 9568 §6.4.2: a backup takes over when no advertisement *arrived* for
Master_Down_Interval. The socket pool reads a burst a millisecond after the socket became
readable (`sockets.GATHER_SECONDS`), so the kernel's own stamp of each packet is what the
router is told (issue 14, takeover figures), within a window that keeps a step of the wall
clock from moving a deadline far.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import Any

import pytest

from keepvip.inet import VRRP_GROUP_V4 as GROUP4
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import Received
from keepvip.speaker.runtime.router_runner import RouterReport, RouterRunner
from keepvip.speaker.runtime.sockets import ARRIVAL_WINDOW, arrival_time
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.timers import master_down_interval
from tests.unit.test_router_runner_faults import VIPS, Node, Socket, plan

pytestmark = pytest.mark.timeout(30)

PRIMARY, MASTER = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
NOW, WALL = 1000.0, 1_800_000_000.0  # the loop's clock and the wall clock at the read


def test_the_kernels_stamp_is_the_arrival_on_the_loops_clock() -> None:
    assert arrival_time(WALL - 0.0013, now=NOW, wall_now=WALL) == pytest.approx(NOW - 0.0013)


def test_without_a_stamp_the_read_is_the_arrival() -> None:
    assert arrival_time(None, now=NOW, wall_now=WALL) == NOW


def test_a_stamp_from_the_future_is_the_read_a_wall_clock_stepped_back() -> None:
    assert arrival_time(WALL + 5.0, now=NOW, wall_now=WALL) == NOW


def test_a_stamp_long_before_the_read_counts_only_the_window() -> None:
    # A wall clock stepped forward, or a process that was off the CPU: either way a
    # deadline moves at most ARRIVAL_WINDOW earlier than counting from the read would.
    assert arrival_time(WALL - 30.0, now=NOW, wall_now=WALL) == NOW - ARRIVAL_WINDOW


class CapturingPool:
    """The shared socket, as far as a router sees it: what it sends, and its deliver hook."""

    def __init__(self) -> None:
        self.socket = Socket()
        self.deliver: Any = None
        self.flush: Any = None
        self.lazy: list[float | None] = []  # what the router told `SocketPool.set_lazy`, in order

    def subscribe(self, key: Any, *, deliver: Any, flush: Any, **_: Any) -> Socket:  # noqa: ARG002
        self.deliver, self.flush = deliver, flush
        return self.socket

    def unsubscribe(self, key: Any, vrid: int) -> None:
        pass

    def read_pending(self, key: Any) -> None:
        pass

    def set_lazy(self, key: Any, vrid: int, interval: float | None) -> None:  # noqa: ARG002
        self.lazy.append(interval)


def test_a_backup_takes_over_master_down_interval_after_the_advertisement_arrived() -> None:
    down = master_down_interval(3, plan().priority, plan().interval_cs)
    early = 0.040  # the advertisement arrived this long before the router was served

    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        pool = CapturingPool()
        reports: list[RouterReport] = []
        runner = RouterRunner(plan(), ifname="eth0", primary=PRIMARY, pool=pool, network=Node(),  # type: ignore[arg-type]
                              metrics=SpeakerMetrics(), reporter=reports.append, node="node-a")  # fmt: skip
        await runner.start()
        await asyncio.sleep(2 * early)  # a backup for a while: the advertisement comes after its start
        master = Advertisement(3, plan().vrid, 200, plan().interval_cs, tuple(vip.ip for vip in VIPS))
        arrived = loop.time() - early
        pool.deliver(master, Received(b"", MASTER, GROUP4, 255, 2), arrived)
        pool.flush()
        while pool.socket.sent == 0:  # the takeover's first advertisement
            await asyncio.sleep(0.001)
        took_over = loop.time()
        await runner.stop()
        return arrived, took_over

    arrived, took_over = asyncio.run(scenario())
    assert took_over >= arrived + down  # never before the interval has passed since the arrival
    assert took_over < arrived + early + down - 0.020  # and not counted from the read
