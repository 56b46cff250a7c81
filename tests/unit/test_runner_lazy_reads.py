"""A router tells the socket pool how promptly its advertisements must be read (issue 14).

In BACKUP an advertisement's one effect is the reset of a Master_Down timer about three
intervals away, counted from its kernel arrival stamp, so the pool may read it on a
schedule (`sockets.LAZY_INTERVALS` of the master's interval; the pool's side is
tests/netns/test_socket_pool_lazy.py). In every other state it must be read at once: a
master yields to a higher priority the moment it is heard, and that includes the master
whose VIPs are still being bound.
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
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.state import State
from tests.unit.test_packet_arrival import CapturingPool
from tests.unit.test_router_runner_faults import VIPS, Node, plan

pytestmark = pytest.mark.timeout(30)

PRIMARY, MASTER = IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")
INTERVAL = plan().interval_cs / 100


class BindWatchingPool(CapturingPool):
    """Records, with each `set_lazy`, how many of the router's VIPs the node held then."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        self.bound_when_told: list[int] = []

    def set_lazy(self, key: Any, vrid: int, interval: float | None) -> None:
        super().set_lazy(key, vrid, interval)
        self.bound_when_told.append(len(self.node.bound))


async def started(pool: CapturingPool, node: Node) -> RouterRunner:
    reports: list[RouterReport] = []
    runner = RouterRunner(plan(), ifname="eth0", primary=PRIMARY, pool=pool, network=node,  # type: ignore[arg-type]
                          metrics=SpeakerMetrics(), reporter=reports.append, node="node-a")  # fmt: skip
    await runner.start()
    while runner._busy is not None:
        await asyncio.sleep(0.001)
    return runner


def test_a_backup_is_read_on_its_masters_interval_and_a_new_master_at_once_before_its_bind() -> None:
    node = Node()
    pool = BindWatchingPool(node)

    async def scenario() -> None:
        runner = await started(pool, node)
        assert runner.state is State.BACKUP
        assert pool.lazy == [INTERVAL]
        while runner.state is not State.MASTER:  # nobody else: Master_Down_Interval, then it takes over
            await asyncio.sleep(0.005)
        await runner.stop()

    asyncio.run(scenario())
    assert pool.lazy[:2] == [INTERVAL, None]
    assert pool.bound_when_told[1] < len(VIPS)  # told while the VIPs were still being bound


def test_a_master_that_yields_goes_back_to_scheduled_reads_at_the_new_masters_interval() -> None:
    node = Node()
    pool = BindWatchingPool(node)
    slower = plan().interval_cs * 2  # VRRPv3: a backup follows the master's interval (RFC 9568 §6.4.2)
    higher = Advertisement(3, plan().vrid, 200, slower, tuple(vip.ip for vip in VIPS))

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        runner = await started(pool, node)
        while runner.state is not State.MASTER:
            await asyncio.sleep(0.005)
        pool.deliver(higher, Received(b"", MASTER, GROUP4, 255, 2), loop.time())
        pool.flush()
        while runner.state is not State.BACKUP:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)
        await runner.stop()

    asyncio.run(scenario())
    assert pool.lazy[:3] == [INTERVAL, None, slower / 100]
