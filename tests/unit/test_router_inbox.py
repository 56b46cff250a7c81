"""A router's inbox of received advertisements is bounded: a flood is dropped, counted, named,
and the advertisements that matter (the master's, or any that could preempt us) are not lost
with it: they evict the oldest lower-priority packet instead (issue 10).

Packets are delivered the way the socket pool delivers them (``_deliver``, from the
event loop's reader callback) while the router is never served, as under a flood
that keeps the loop busy reading. Nothing is bound or sent: the runner is not started.
"""

from __future__ import annotations

import asyncio
from ipaddress import ip_address
from typing import Any

from keepvip.api.parse import parse_virtualip
from keepvip.speaker.desired import NodeIdentity, desired_routers
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import Received
from keepvip.speaker.runtime.router_runner import INBOX_PACKET_LIMIT, RouterRunner, _Packet
from keepvip.speaker.runtime.sockets import SocketPool
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.state import State

VIP = ip_address("198.18.0.100")
GROUP = ip_address("224.0.0.18")
MASTER = ip_address("198.18.0.2")
INBOX_FULL = {"virtualip": "web", "interface": "eth0", "reason": "inbox_full"}


def arrived() -> float:
    """Delivered as the pool delivers: with the time the packet arrived (here: just now)."""
    return asyncio.get_running_loop().time()


def runner(metrics: SpeakerMetrics, priority: int = 100, *, preempt: bool = True) -> RouterRunner:
    body = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": "web"},
            "spec": {"addresses": ["198.18.0.100/24"], "priority": priority, "preempt": preempt,
                     "vrrp": {"vrid": 51}}}  # fmt: skip
    node = NodeIdentity("n1", {})
    plans, _ = desired_routers([parse_virtualip(body)], node, {}, use_status_allocation=False)
    unused: Any = None  # the network and the reporter are not reached by delivery
    return RouterRunner(plans["web"], ifname="eth0", primary=ip_address("198.18.0.1"),
                        pool=SocketPool(metrics), network=unused, metrics=metrics, reporter=unused,
                        node="n1")  # fmt: skip


def test_a_flood_fills_the_inbox_to_its_bound_and_the_rest_is_dropped_as_inbox_full() -> None:
    metrics = SpeakerMetrics()

    async def scenario() -> RouterRunner:
        router = runner(metrics)
        vip = ip_address("198.18.0.100")
        advert = Advertisement(version=3, vrid=51, priority=100, interval_cs=100, addresses=(vip,))
        for n in range(INBOX_PACKET_LIMIT + 500):
            source = ip_address(f"198.18.{n // 250}.{n % 250 + 1}")
            router._deliver(advert, Received(b"", source, ip_address("224.0.0.18"), 255, 2), arrived())
        return router

    router = asyncio.run(scenario())
    assert len(router._inbox) == INBOX_PACKET_LIMIT
    labels = {"virtualip": "web", "interface": "eth0", "reason": "inbox_full"}
    assert metrics.registry.get_sample_value("keepvip_advert_dropped_total", labels) == 500


def advert(priority: int) -> Advertisement:
    return Advertisement(version=3, vrid=51, priority=priority, interval_cs=100, addresses=(VIP,))


def flood_source(n: int) -> Received:
    return Received(b"", ip_address(f"198.18.{100 + n // 250}.{n % 250 + 1}"), GROUP, 255, 2)


def queued(router: RouterRunner) -> list[tuple[int, str]]:
    packets = [item for item in router._inbox if isinstance(item, _Packet)]
    return [(packet.advertisement.priority, str(packet.source)) for packet in packets]


def backup_of(router: RouterRunner, master_priority: int) -> None:
    """Make the (unstarted) runner's core a backup that knows MASTER, as if it had heard it."""
    core = router._router
    core.start(0.0)
    core.receive(advert(master_priority), MASTER, 0.0)
    assert core.state is State.BACKUP
    assert core.master_address == MASTER


def test_the_masters_advert_evicts_the_oldest_lower_packet_from_a_full_inbox() -> None:
    metrics = SpeakerMetrics()

    async def scenario() -> RouterRunner:
        router = runner(metrics, priority=120)
        backup_of(router, master_priority=150)
        for n in range(INBOX_PACKET_LIMIT + 10):  # the flood: priority 100, below ours
            router._deliver(advert(100), flood_source(n), arrived())
        router._deliver(advert(150), Received(b"", MASTER, GROUP, 255, 2), arrived())
        return router

    router = asyncio.run(scenario())
    packets = queued(router)
    assert len(router._inbox) == INBOX_PACKET_LIMIT
    assert packets[-1] == (150, str(MASTER))  # queued, not dropped
    assert packets[0] == (100, str(flood_source(1).source))  # the oldest (n = 0) made room
    assert metrics.registry.get_sample_value("keepvip_advert_dropped_total", INBOX_FULL) == 10 + 1


def test_a_lower_priority_master_is_kept_too_and_a_preempting_stranger_as_well() -> None:
    """nopreempt: the master may advertise below our priority; its adverts still matter."""
    metrics = SpeakerMetrics()

    async def scenario() -> RouterRunner:
        router = runner(metrics, priority=120, preempt=False)
        backup_of(router, master_priority=110)
        for n in range(INBOX_PACKET_LIMIT):
            router._deliver(advert(100), flood_source(n), arrived())
        router._deliver(advert(110), Received(b"", MASTER, GROUP, 255, 2), arrived())  # the master, below us
        # One that ties ours, and one that neither ties nor comes from the master:
        router._deliver(advert(120), Received(b"", ip_address("198.18.0.3"), GROUP, 255, 2), arrived())
        router._deliver(advert(119), Received(b"", ip_address("198.18.0.4"), GROUP, 255, 2), arrived())
        return router

    router = asyncio.run(scenario())
    packets = queued(router)
    assert packets[-2:] == [(110, str(MASTER)), (120, "198.18.0.3")]
    assert (119, "198.18.0.4") not in packets
    assert packets[0] == (100, str(flood_source(2).source))
    assert metrics.registry.get_sample_value("keepvip_advert_dropped_total", INBOX_FULL) == 3


def test_when_every_queued_packet_matters_the_newcomer_is_the_one_dropped() -> None:
    metrics = SpeakerMetrics()

    async def scenario() -> RouterRunner:
        router = runner(metrics, priority=120)
        backup_of(router, master_priority=150)
        for n in range(INBOX_PACKET_LIMIT):
            router._deliver(advert(200), flood_source(n), arrived())  # all above ours: none evictable
        router._deliver(advert(150), Received(b"", MASTER, GROUP, 255, 2), arrived())
        return router

    router = asyncio.run(scenario())
    packets = queued(router)
    assert len(packets) == INBOX_PACKET_LIMIT
    assert (150, str(MASTER)) not in packets
    assert packets[0] == (200, str(flood_source(0).source))
    assert metrics.registry.get_sample_value("keepvip_advert_dropped_total", INBOX_FULL) == 1


def test_served_packets_free_their_place_and_their_evictable_count() -> None:
    """The bookkeeping follows the inbox as it is served: no eviction of a packet already gone."""
    metrics = SpeakerMetrics()

    async def scenario() -> RouterRunner:
        router = runner(metrics, priority=120)
        backup_of(router, master_priority=150)
        for n in range(INBOX_PACKET_LIMIT):
            router._deliver(advert(100), flood_source(n), arrived())
        while router._inbox:  # served, as `_serve` does
            router._handle(router._inbox.popleft(), 0.0)
        for n in range(INBOX_PACKET_LIMIT):
            router._deliver(advert(200), flood_source(n), arrived())
        router._deliver(advert(150), Received(b"", MASTER, GROUP, 255, 2), arrived())
        return router

    router = asyncio.run(scenario())
    assert (router._queued_packets, router._queued_lower) == (INBOX_PACKET_LIMIT, 0)
    assert (150, str(MASTER)) not in queued(router)
