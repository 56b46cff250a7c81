"""A router is MASTER only with its VIPs bound, and a failed router never stays a silent MASTER.

`RouterRunner` against the real sans-IO core and the real metrics, on a node network
that refuses what the test tells it to refuse (the netns tier shows the same runner on
real netlink). Every report the runner publishes is checked at the moment it is made:
MASTER is never reported while a VIP of the router is not bound.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_interface
from typing import Any

import pytest

from keepvip.api.model import IPInterface
from keepvip.inet import VRRP_GROUP_V4
from keepvip.speaker.desired import RouterPlan
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime import router_runner
from keepvip.speaker.runtime.router_runner import RouterReport, RouterRunner
from keepvip.speaker.vrrp.constants import ChecksumMode
from keepvip.speaker.vrrp.state import FaultReason, State

pytestmark = pytest.mark.timeout(30)

VIPS = (ip_interface("198.18.0.100/24"), ip_interface("198.18.0.101/24"))
NAME = "web"


def plan() -> RouterPlan:
    return RouterPlan(
        name=NAME, addresses=VIPS, interface="eth0", version=3, vrid=7, group=VRRP_GROUP_V4,
        unicast_peers=(), interval_cs=5, checksum=ChecksumMode.PSEUDO_HEADER, priority=100,
        preempt=True, preempt_delay=0.0, password=None, health_checks=(), arbiter=None,
    )  # fmt: skip


@dataclass
class Node:
    """The node's addresses as the kernel would hold them, and what it refuses."""

    bound: set[IPInterface] = field(default_factory=set)
    refuse_adds: int = 0  # refuse this many address adds (EBUSY, as the kernel did in issue 15)
    crash_adds: int = 0  # raise an unexpected error (a bug) on this many adds
    refuse_removes: int = 0
    removed: list[IPInterface] = field(default_factory=list)

    async def add_address(self, ifname: str, vip: IPInterface) -> None:  # noqa: ARG002
        await asyncio.sleep(0)
        if self.crash_adds:
            self.crash_adds -= 1
            raise RuntimeError("bug in the adapter")
        if self.refuse_adds:
            self.refuse_adds -= 1
            raise OSError(errno.EBUSY, "Device or resource busy")
        self.bound.add(vip)

    async def remove_address(self, ifname: str, vip: IPInterface) -> None:  # noqa: ARG002
        await asyncio.sleep(0)
        if self.refuse_removes:
            self.refuse_removes -= 1
            raise OSError(errno.ETIMEDOUT, "no answer from the kernel")
        self.removed.append(vip)
        self.bound.discard(vip)

    def announce(self, name: str, ifname: str, addresses: tuple[Any, ...], still_master: Any = None) -> None:  # noqa: ARG002
        assert set(addresses) <= {vip.ip for vip in self.bound}, "announced a VIP that is not bound"

    def cancel_announcements(self, name: str) -> None:
        pass


class Socket:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, payload: bytes, *, source: Any, destination: Any) -> None:  # noqa: ARG002
        self.sent += 1


class Pool:
    """The shared raw sockets (the netns tier uses real ones): only counts what is sent."""

    def __init__(self) -> None:
        self.socket = Socket()

    def subscribe(self, key: Any, **_: Any) -> Socket:  # noqa: ARG002
        return self.socket

    def unsubscribe(self, key: Any, vrid: int) -> None:
        pass

    def read_pending(self, key: Any) -> None:
        pass  # nothing is ever received here

    def set_lazy(self, key: Any, vrid: int, interval: float | None) -> None:
        pass  # when it is read does not matter: nothing is ever received here


@dataclass
class Run:
    runner: RouterRunner
    node: Node
    metrics: SpeakerMetrics
    reports: list[RouterReport]
    pool: Pool

    def sample(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(name, {"virtualip": NAME}) or 0.0


async def start(node: Node) -> Run:
    metrics = SpeakerMetrics()
    reports: list[RouterReport] = []

    def report(item: RouterReport) -> None:
        if item.state is State.MASTER:  # the invariant, checked when MASTER is published
            assert node.bound >= set(VIPS), f"MASTER reported with only {node.bound} bound"
        reports.append(item)

    pool = Pool()
    runner = RouterRunner(plan(), ifname="eth0", primary=IPv4Address("198.18.0.1"), pool=pool,  # type: ignore[arg-type]
                          network=node, metrics=metrics, reporter=report, node="node-a")  # fmt: skip
    await runner.start()
    return Run(runner, node, metrics, reports, pool)


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_runner, "RETRY_FIRST", 0.2)


def test_a_refused_bind_is_a_fault_with_priority_zero_then_a_retry_that_binds() -> None:
    async def scenario() -> Run:
        run = await start(Node(refuse_adds=2))  # the first attempt fails on its first VIP, then again
        await wait_for(lambda: run.runner.state is State.MASTER, timeout=15)
        await run.runner.stop()
        return run

    run = asyncio.run(scenario())

    states = [(r.state, r.reason) for r in run.reports]
    faults = [s for s in states if s[0] is State.FAULT]
    assert faults == [(State.FAULT, "fault_address_bind")] * 2, states
    assert states.index(faults[0]) < states.index((State.MASTER, "master_down_timer"))
    assert run.sample("keepvip_address_bind_failures_total") == 2
    assert run.sample("keepvip_pri_zero_sent_total") >= 2  # one per fault (and one at the stop)
    assert run.sample("keepvip_become_master_total") == 1  # only the bind that succeeded
    assert run.reports[-1].state is State.INITIALIZE
    assert run.node.bound == set()  # released at the stop
    # The FAULT reports say what the kernel refused (the status entry's message and the
    # AddressBindFailed Event's note, issue 10); no other report carries a message.
    for fault in (r for r in run.reports if r.state is State.FAULT):
        assert fault.message is not None
        assert "on eth0 failed: [Errno 16] Device or resource busy" in fault.message, fault
    assert all(r.message is None for r in run.reports if r.state is not State.FAULT)


def test_the_advertisement_goes_out_before_the_bind_and_master_is_published_after_it() -> None:
    """RFC 9568 §6.4.2's order, and keepalived's: the advertisement settles the election
    while the kernel binds; the clients (announcement) and the status hear of it after."""
    seen_at_bind: list[tuple[int, list[State]]] = []

    async def scenario() -> Run:
        node = Node()
        run = await start(node)
        original = node.add_address
        pool_socket = run.pool.socket

        async def record(ifname: str, vip: IPInterface) -> None:
            seen_at_bind.append((pool_socket.sent, [r.state for r in run.reports]))
            await original(ifname, vip)

        node.add_address = record  # type: ignore[method-assign]
        await wait_for(lambda: run.runner.state is State.MASTER)
        await run.runner.stop()
        return run

    run = asyncio.run(scenario())
    sent_before_bind, states_before_bind = seen_at_bind[0]
    assert sent_before_bind == 1  # the takeover's advertisement, and nothing before it
    assert State.MASTER not in states_before_bind
    assert run.sample("keepvip_become_master_total") == 1


def test_a_partly_bound_master_releases_what_it_bound_when_the_rest_fails() -> None:
    async def scenario() -> Run:
        node = Node()
        run = await start(node)
        original = node.add_address

        async def refuse_second(ifname: str, vip: IPInterface) -> None:
            if vip == VIPS[1]:
                raise OSError(errno.ENOSPC, "No space left on device")
            await original(ifname, vip)

        node.add_address = refuse_second  # type: ignore[method-assign]
        await wait_for(lambda: run.runner.state is State.FAULT)
        assert VIPS[0] in node.removed
        assert node.bound == set()
        node.add_address = original  # type: ignore[method-assign]
        await wait_for(lambda: run.runner.state is State.MASTER, timeout=15)
        assert node.bound == set(VIPS)
        await run.runner.stop()
        return run

    run = asyncio.run(scenario())
    assert run.sample("keepvip_address_bind_failures_total") == 1


def test_an_unexpected_error_releases_the_vips_and_the_router_recovers() -> None:
    async def scenario() -> tuple[Run, bool]:
        node = Node()
        run = await start(node)
        await wait_for(lambda: run.runner.state is State.MASTER)
        # A bug while master: the reconfiguration adds a VIP and the adapter raises.
        node.crash_adds = 1
        extra = ip_interface("198.18.0.102/24")
        run.runner.update(RouterPlan(**{**plan().__dict__, "addresses": (*VIPS, extra)}))
        await wait_for(lambda: run.runner.state is State.FAULT)
        task_alive = run.runner.alive
        released = node.bound == set()
        await wait_for(lambda: run.runner.state is State.MASTER, timeout=15)
        assert node.bound == {*VIPS, extra}
        await run.runner.stop()
        return run, task_alive and released

    run, alive_and_released = asyncio.run(scenario())

    assert alive_and_released  # the loop survived the error, and no VIP was left bound in FAULT
    assert run.sample("keepvip_router_failures_total") == 1
    assert [r.reason for r in run.reports if r.state is State.FAULT] == ["fault_router"]
    assert run.sample("keepvip_pri_zero_sent_total") >= 1


def test_a_release_the_kernel_refused_is_retried_until_the_vips_are_gone() -> None:
    async def scenario() -> Node:
        node = Node()
        run = await start(node)
        await wait_for(lambda: run.runner.state is State.MASTER)
        node.refuse_removes = 3  # both VIPs at the first try, the first again at the retry
        run.runner.set_fault(FaultReason.LINK_DOWN, True)
        await wait_for(lambda: run.runner.state is State.FAULT)
        assert node.bound == set(VIPS)  # not released yet: the kernel refused
        await wait_for(lambda: not node.bound, timeout=5)
        await run.runner.stop()
        return node

    node = asyncio.run(scenario())
    assert node.refuse_removes == 0
