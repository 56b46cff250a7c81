"""A backup's advertisements are read on a schedule; what cannot wait is read at once (issue 14).

Real raw sockets between two namespaces: node1 sends, node2's `SocketPool` receives. A
router in BACKUP tells the pool its master's interval (`SocketPool.set_lazy`); its
advertisements then wait in a second socket, split from the first by the kernel filter,
until the pool's scheduled read or a Master_Down timer's `read_pending`, and each still
counts from when the kernel stamped its arrival (RFC 9568 §6.4.2). Priority 0 (RFC 9568
§6.4.2: take over after Skew_Time) and every VRID not in BACKUP are read at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from keepvip.inet import VRRP_GROUP_V4 as GROUP4
from keepvip.localcluster.lan import Lan
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import Received, VrrpSocket
from keepvip.speaker.runtime import sockets
from keepvip.speaker.runtime.sockets import READ_BATCH, SocketPool
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.codec import encode

pytestmark = pytest.mark.timeout(60)

KEY = ("eth0", 4, GROUP4)
LONG = 5.0  # the lazy interval: "at once" below means well before a scheduled read


@dataclass(frozen=True)
class Heard:
    vrid: int
    priority: int
    arrived: float  # as the pool told it (loop time)
    delivered: float  # loop time of the delivery


class Node1:
    """The sender: one socket on node1, advertisements for any VRID and priority."""

    def __init__(self, lan: Lan) -> None:
        node = lan.nodes[0]
        self.source = node.ipv4.ip
        with lan.inside(node):
            self.sock = VrrpSocket.multicast("eth0", GROUP4)

    def send(self, vrid: int, priority: int = 100) -> None:
        advert = Advertisement(3, vrid, priority, 100, (self.source,))
        payload = encode(advert, source=self.source, destination=GROUP4)
        self.sock.send(payload, source=self.source, destination=GROUP4)


Scenario = Callable[[SocketPool, list[Heard], asyncio.AbstractEventLoop], Awaitable[None]]


def run_on_node2(lan: Lan, scenario: Scenario) -> None:
    """Run ``scenario`` (a coroutine function) with a pool on node2 subscribed to VRIDs 10, 20, 30."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        heard: list[Heard] = []

        def deliver(advert: Advertisement, _packet: Received, arrived: float) -> None:
            heard.append(Heard(advert.vrid, advert.priority, arrived, loop.time()))

        pool = SocketPool(SpeakerMetrics())
        with lan.inside(lan.nodes[1]):
            for vrid in (10, 20, 30):
                pool.subscribe(KEY, name=f"vip{vrid}", vrid=vrid, deliver=deliver)
        try:
            await scenario(pool, heard, loop)
        finally:
            pool.close()

    asyncio.run(main())


async def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def test_a_backups_advertisement_waits_for_a_read_and_counts_from_its_arrival(lan: Lan) -> None:
    node1 = Node1(lan)

    async def scenario(pool: SocketPool, heard: list[Heard], loop: asyncio.AbstractEventLoop) -> None:
        pool.set_lazy(KEY, 20, LONG)
        await asyncio.sleep(0.05)  # the filters split at the end of the turn
        sent = loop.time()
        node1.send(20)
        await asyncio.sleep(0.3)
        assert heard == []  # waiting on the lazy socket, not read
        pool.read_pending(KEY)  # what a Master_Down timer about to decide does
        assert [h.vrid for h in heard] == [20]
        assert sent <= heard[0].arrived < sent + 0.1  # its kernel stamp, not the read 0.3 s later
        assert heard[0].delivered - heard[0].arrived >= 0.25

    with node1.sock:
        run_on_node2(lan, scenario)


def test_priority_zero_and_routers_not_in_backup_are_read_at_once(lan: Lan) -> None:
    node1 = Node1(lan)

    async def scenario(pool: SocketPool, heard: list[Heard], loop: asyncio.AbstractEventLoop) -> None:
        pool.set_lazy(KEY, 20, LONG)
        pool.set_lazy(KEY, 30, LONG)
        await asyncio.sleep(0.05)
        node1.send(20, priority=0)  # the master of 20 leaves: Skew_Time, not a schedule
        node1.send(10)  # 10 is a master here (never told lazy): a higher priority must be heard now
        assert await wait_for(lambda: len(heard) == 2, LONG / 2)
        assert sorted((h.vrid, h.priority) for h in heard) == [(10, 100), (20, 0)]

    with node1.sock:
        run_on_node2(lan, scenario)


def test_a_priority_zero_comes_after_the_advertisements_that_waited_before_it(lan: Lan) -> None:
    """The other order resets the Skew_Time that priority 0 set: a graceful handover took
    Master_Down_Interval (tests/netns/test_speaker_election.py found it)."""
    node1 = Node1(lan)

    async def scenario(pool: SocketPool, heard: list[Heard], loop: asyncio.AbstractEventLoop) -> None:
        pool.set_lazy(KEY, 20, LONG)
        await asyncio.sleep(0.05)
        node1.send(20, priority=100)  # the master's last advertisement: waits on the lazy socket
        await asyncio.sleep(0.05)
        node1.send(20, priority=0)  # it leaves
        assert await wait_for(lambda: len(heard) == 2, LONG / 2)
        assert [h.priority for h in heard] == [100, 0]
        assert heard[0].arrived < heard[1].arrived

    with node1.sock:
        run_on_node2(lan, scenario)


def test_the_scheduled_read_delivers_each_interval(lan: Lan) -> None:
    node1 = Node1(lan)

    async def scenario(pool: SocketPool, heard: list[Heard], loop: asyncio.AbstractEventLoop) -> None:
        pool.set_lazy(KEY, 20, 0.2)
        await asyncio.sleep(0.05)
        sent = loop.time()
        node1.send(20)
        assert await wait_for(lambda: len(heard) == 1, 5.0)  # read within an interval or so, no read_pending
        assert sent <= heard[0].arrived < sent + 0.1

    with node1.sock:
        run_on_node2(lan, scenario)


def test_a_router_leaving_backup_gets_what_waited_and_then_hears_at_once(lan: Lan) -> None:
    node1 = Node1(lan)

    async def scenario(pool: SocketPool, heard: list[Heard], loop: asyncio.AbstractEventLoop) -> None:
        pool.set_lazy(KEY, 20, LONG)
        await asyncio.sleep(0.05)
        node1.send(20, priority=150)
        await asyncio.sleep(0.1)
        assert heard == []
        pool.set_lazy(KEY, 20, None)  # it took over: MASTER hears a higher priority at once
        assert await wait_for(lambda: len(heard) == 1, LONG / 2)  # the one that waited
        node1.send(20, priority=200)
        assert await wait_for(lambda: len(heard) == 2, LONG / 2)
        assert [h.priority for h in heard] == [150, 200]

    with node1.sock:
        run_on_node2(lan, scenario)


def test_a_queue_filled_between_reads_sends_the_socket_back_to_prompt_reads(lan: Lan) -> None:
    node1 = Node1(lan)
    burst = 4000  # a flood for a backup's VRID: well over a quarter of the lazy queue

    async def scenario(pool: SocketPool, heard: list[Heard], loop: asyncio.AbstractEventLoop) -> None:
        pool.set_lazy(KEY, 20, 0.5)
        await asyncio.sleep(0.05)
        for _ in range(burst):
            node1.send(20, priority=90)
        assert await wait_for(lambda: len(heard) >= burst, 10.0)  # the scheduled read: nothing lost
        assert len(heard) == burst
        node1.send(20, priority=91)  # suspended: read at once, not at the next schedule
        assert await wait_for(lambda: len(heard) == burst + 1, 0.4)

    with node1.sock:
        run_on_node2(lan, scenario)
    assert sockets.LAZY_SUSPEND_SECONDS > 1  # the switch back outlasts this test's last send


def test_a_scheduled_read_of_a_flood_serves_the_routers_every_batch(lan: Lan) -> None:
    """Read in one go, 4,000 packets waited in a router's bounded inbox (bench/flood.py at
    100,000/s: 11,483 ``inbox_full``); served every `READ_BATCH`, as the prompt reader does."""
    node1 = Node1(lan)
    burst = 4000
    delivered: list[int] = []
    batches: list[int] = []  # packets delivered since the flush before, at each flush

    async def scenario() -> None:
        def deliver(_advert: Advertisement, _packet: Received, _arrived: float) -> None:
            delivered.append(1)

        def flush() -> None:
            batches.append(len(delivered) - sum(batches))

        pool = SocketPool(SpeakerMetrics())
        with lan.inside(lan.nodes[1]):
            pool.subscribe(KEY, name="vip20", vrid=20, deliver=deliver, flush=flush)
        try:
            pool.set_lazy(KEY, 20, 0.5)
            await asyncio.sleep(0.05)
            for _ in range(burst):
                node1.send(20, priority=90)
            assert await wait_for(lambda: len(delivered) >= burst, 10.0)
        finally:
            pool.close()

    with node1.sock:
        asyncio.run(scenario())
    assert len(delivered) == burst
    assert max(batches) <= READ_BATCH
