"""All routers share one timer; a router waiting for the kernel never delays another's adverts.

`Timers` on the real event loop, and two `RouterRunner`s (real sans-IO core, real
metrics) sharing it: one master whose VIP bind hangs in the kernel, one that advertises.
"""

from __future__ import annotations

import asyncio
import itertools
from ipaddress import IPv4Address, ip_interface
from typing import Any

import pytest

from keepvip.api.model import IPInterface
from keepvip.inet import VRRP_GROUP_V4
from keepvip.speaker.desired import RouterPlan
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.router_runner import RouterReport, RouterRunner, on_grid, timer_grid
from keepvip.speaker.runtime.timers import Timers, timers_for
from keepvip.speaker.vrrp.constants import ChecksumMode
from keepvip.speaker.vrrp.state import State

pytestmark = pytest.mark.timeout(30)


class Client:
    def __init__(self, timers: Timers, log: list[str], name: str) -> None:
        self.timers, self.log, self.name = timers, log, name

    def on_timer(self, when: float) -> None:  # noqa: ARG002
        self.log.append(self.name)


def test_each_client_fires_once_at_its_latest_deadline_in_deadline_order() -> None:
    async def scenario() -> tuple[list[str], int]:
        loop = asyncio.get_running_loop()
        timers = Timers(loop)
        log: list[str] = []
        a, b, c = (Client(timers, log, name) for name in "abc")
        now = loop.time()
        timers.arm(a, now + 0.05)
        timers.arm(b, now + 0.02)
        timers.arm(c, now + 0.01)
        timers.arm(c, now + 0.08)  # re-armed later: the earlier entry is stale
        timers.arm(a, now + 0.03)
        timers.disarm(b)
        await asyncio.sleep(0.15)
        return log, len(timers)

    log, armed = asyncio.run(scenario())
    assert log == ["a", "c"]
    assert armed == 0


def test_many_rearms_do_not_grow_the_heap_without_bound() -> None:
    async def scenario() -> int:
        loop = asyncio.get_running_loop()
        timers = Timers(loop)
        clients = [Client(timers, [], str(n)) for n in range(10)]
        for step in range(10_000):  # a backup's Master_Down timer moves with every advert
            timers.arm(clients[step % 10], loop.time() + 10 + step)
        return len(timers._heap)

    assert asyncio.run(scenario()) <= 2 * 10 + 64 + 1


def plan(name: str, vrid: int, vip: str) -> RouterPlan:
    return RouterPlan(
        name=name, addresses=(ip_interface(vip),), interface="eth0", version=3, vrid=vrid,
        group=VRRP_GROUP_V4, unicast_peers=(), interval_cs=5, checksum=ChecksumMode.PSEUDO_HEADER,
        priority=100, preempt=True, preempt_delay=0.0, password=None, health_checks=(), arbiter=None,
    )  # fmt: skip


class Node:
    """Binds at once, except the VIPs listed in ``hang``: those wait for ``release``."""

    def __init__(self, hang: set[IPInterface]) -> None:
        self.hang = hang
        self.release = asyncio.Event()
        self.bound: set[IPInterface] = set()

    async def add_address(self, ifname: str, vip: IPInterface) -> None:  # noqa: ARG002
        if vip in self.hang:
            await self.release.wait()
        self.bound.add(vip)

    async def remove_address(self, ifname: str, vip: IPInterface) -> None:  # noqa: ARG002
        self.bound.discard(vip)

    def announce(self, name: str, ifname: str, addresses: tuple[Any, ...], still_master: Any = None) -> None:
        pass

    def cancel_announcements(self, name: str) -> None:
        pass


class Socket:
    def __init__(self) -> None:
        self.sent: list[float] = []

    def send(self, payload: bytes, *, source: Any, destination: Any) -> None:  # noqa: ARG002
        self.sent.append(asyncio.get_running_loop().time())


class Pool:
    def __init__(self) -> None:
        self.sockets: dict[int, Socket] = {}

    def subscribe(self, key: Any, *, vrid: int, **_: Any) -> Socket:  # noqa: ARG002
        return self.sockets.setdefault(vrid, Socket())

    def unsubscribe(self, key: Any, vrid: int) -> None:
        pass

    def read_pending(self, key: Any) -> None:
        pass  # nothing is ever received here

    def set_lazy(self, key: Any, vrid: int, interval: float | None) -> None:
        pass  # when it is read does not matter: nothing is ever received here


def test_a_bind_that_hangs_in_the_kernel_delays_no_other_routers_adverts() -> None:
    slow_vip = ip_interface("198.18.0.100/24")

    async def scenario() -> tuple[list[float], list[State], bool, int]:
        metrics = SpeakerMetrics()
        node, pool = Node(hang={slow_vip}), Pool()
        states: list[State] = []

        def report(item: RouterReport) -> None:
            if item.virtualip == "slow":
                states.append(item.state)

        def runner(p: RouterPlan) -> RouterRunner:
            return RouterRunner(p, ifname="eth0", primary=IPv4Address("198.18.0.1"), pool=pool,  # type: ignore[arg-type]
                                network=node, metrics=metrics, reporter=report, node="node-a")  # fmt: skip

        fast = runner(plan("fast", 1, "198.18.0.101/24"))
        slow = runner(plan("slow", 2, str(slow_vip)))
        await fast.start()
        await slow.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while fast.state is not State.MASTER:  # Master_Down ≈ 0.2 s at 50 ms adverts
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)  # slow has been stuck in its bind all this time
        stuck = State.MASTER not in states and slow_vip not in node.bound
        sent_while_stuck = list(pool.sockets[1].sent)
        node.release.set()
        while State.MASTER not in states:
            assert loop.time() < deadline
            await asyncio.sleep(0.01)
        await fast.stop()
        await slow.stop()
        return sent_while_stuck, states, stuck, len(timers_for(loop))

    sent, states, stuck, armed = asyncio.run(scenario())
    assert stuck  # the slow router was waiting for the kernel (MASTER not published)
    spacing = [b - a for a, b in itertools.pairwise(sent)]
    assert len(sent) >= 10  # ~1 s of 50 ms adverts (loose: the machine may be loaded)
    assert max(spacing) < 0.5  # a design that waited for the bind would stop for the whole 1 s
    assert State.MASTER in states  # published only once bound
    assert armed == 0  # stopped routers leave no timer behind


@pytest.mark.parametrize("interval_cs", [1, 10, 100, 300])
def test_deadlines_go_on_the_grid_never_early_and_at_most_one_step_late(interval_cs: int) -> None:
    grid = timer_grid(interval_cs)
    assert grid <= interval_cs / 100 / 20
    assert grid <= 0.02
    start = 12_345.678_9
    point = on_grid(start, grid)
    assert start <= point < start + grid
    for _ in range(1000):  # a master's deadlines: the last grid point + the interval, on the grid
        following = on_grid(point + interval_cs / 100, grid)
        assert following == pytest.approx(point + interval_cs / 100, abs=1e-6)
        point = following
