"""After an apply, the speaker's objects are out of the collector's reach; stopped routers are not.

Issue 15 (advert lateness): a full garbage collection walks every tracked object, and at
1,000 VirtualIPs such passes stalled every router for 0.2-2 s on a loaded machine. A real
speaker (real netlink and raw sockets, in a node namespace) applies VirtualIPs: its
routers must then be frozen (``gc.freeze``: later collections do not walk them). An apply
that stops routers must not leave them frozen for ever: the stopped router is collected.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
import yaml
from keepalived_harness import virtualip_document
from pyroute2 import AsyncIPRoute

from keepvip.localcluster.lan import Lan
from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.speaker import Speaker
from keepvip.speaker.sources.file import parse_config_text

pytestmark = pytest.mark.timeout(60)


def documents(count: int) -> str:
    docs = []
    for index in range(count):
        address = f"198.18.0.{100 + index}/32"
        document = virtualip_document(f"vip-{index}", address, vrid=index + 1, priority=100)
        document["spec"]["interface"] = "eth0"
        docs.append(document)
    return yaml.safe_dump_all(docs)


def test_applied_routers_are_frozen_and_a_stopped_router_is_collected(lan: Lan) -> None:
    node = lan.nodes[0]

    async def main() -> tuple[int, bool, bool]:
        async with AsyncIPRoute() as ipr:
            speaker = Speaker(NodeIdentity(node.name), ipr, SpeakerMetrics(), use_status_allocation=False)
            await speaker.start()
            try:
                await speaker.apply(parse_config_text(documents(3)))
                frozen = gc.get_freeze_count()
                router = speaker.routers["vip-2"]
                router.cycle = [router]  # type: ignore[attr-defined]  # only the cyclic collector frees it
                gone = weakref.ref(router)
                del router
                await speaker.apply(parse_config_text(documents(2)))  # vip-2 stopped
                await asyncio.sleep(0.1)
                return frozen, gone() is None, "vip-0" in speaker.routers
            finally:
                await speaker.stop()
                gc.unfreeze()  # the rest of the test session is not a speaker

    with lan.inside(node):
        frozen, collected, kept = asyncio.run(main())

    assert frozen > 1000  # the speaker's objects (and this process's) left the collector's walk
    assert collected  # the stopped router (in a reference cycle) was not kept for ever by the freeze
    assert kept
