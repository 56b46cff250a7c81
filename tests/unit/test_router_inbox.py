"""A router's inbox of received advertisements is bounded: a flood is dropped, counted, named.

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
from keepvip.speaker.runtime.router_runner import INBOX_PACKET_LIMIT, RouterRunner
from keepvip.speaker.runtime.sockets import SocketPool
from keepvip.speaker.vrrp.advertisement import Advertisement


def runner(metrics: SpeakerMetrics) -> RouterRunner:
    body = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": "web"},
            "spec": {"addresses": ["198.18.0.100/24"], "vrrp": {"vrid": 51}}}  # fmt: skip
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
            router._deliver(advert, Received(b"", source, ip_address("224.0.0.18"), 255, 2))
        return router

    router = asyncio.run(scenario())
    assert len(router._inbox) == INBOX_PACKET_LIMIT
    labels = {"virtualip": "web", "interface": "eth0", "reason": "inbox_full"}
    assert metrics.registry.get_sample_value("keepvip_advert_dropped_total", labels) == 500
