"""The socket pool shares the event loop with the routers it feeds, even under a flood.

Real raw sockets between two namespaces: node1 sends more advertisements than one
readable callback may read (`READ_BATCH`), all queued in node2's socket before the
loop runs. A callback that re-schedules itself on every loop turn stands in for the
routers' ``_serve`` and timers: it must get turns while the backlog is read, i.e. no
reader callback delivers more than `READ_BATCH` packets at once (issue 10: reading
until the socket was empty starved every router under a flood).
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from keepvip.inet import VRRP_GROUP_V4 as GROUP4
from keepvip.localcluster.lan import Lan
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import Received, VrrpSocket
from keepvip.speaker.runtime.sockets import READ_BATCH, SocketPool
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.codec import encode

pytestmark = pytest.mark.timeout(30)

BACKLOG = 3 * READ_BATCH + 10


def test_a_backlog_is_read_in_batches_that_let_the_rest_of_the_loop_run(lan: Lan) -> None:
    node1, node2 = lan.nodes[:2]
    source = node1.ipv4.ip
    advert = Advertisement(version=3, vrid=51, priority=100, interval_cs=100, addresses=(node1.ipv4.ip,))
    payload = encode(advert, source=source, destination=GROUP4)
    with lan.inside(node1):
        sender = VrrpSocket.multicast("eth0", GROUP4)
    events: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def deliver(_advert: Advertisement, _packet: Received, _arrived: float) -> None:
            events.append("packet")
            if events.count("packet") == BACKLOG and not done.done():
                done.set_result(None)

        def tick() -> None:  # one entry per loop turn, like a router's `_serve`
            events.append("turn")
            if not done.done():
                loop.call_soon(tick)

        pool = SocketPool(SpeakerMetrics())
        with lan.inside(node2):
            pool.subscribe(("eth0", 4, GROUP4), name="web", vrid=51, deliver=deliver)
        try:
            for _ in range(BACKLOG):  # all queued before the loop reads any: a flood's backlog
                sender.send(payload, source=source, destination=GROUP4)
            time.sleep(0.2)
            loop.call_soon(tick)
            await asyncio.wait_for(done, 10)
        finally:
            pool.close()

    with sender:
        asyncio.run(scenario())

    runs = [len(list(group)) for kind, group in itertools.groupby(events) if kind == "packet"]
    assert sum(runs) == BACKLOG  # nothing lost: the socket buffer holds the backlog
    assert max(runs) <= READ_BATCH
    assert len(runs) >= BACKLOG // READ_BATCH  # the loop turned between the batches
