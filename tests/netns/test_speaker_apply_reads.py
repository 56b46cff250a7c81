"""Applying many VirtualIPs reads the node's addresses once, not once per VirtualIP (issue 15).

Before, every VirtualIP a speaker started checked its addresses against the node's own
(``speaker/runtime/conflicts.py``) with a fresh dump of every address of the node: a
1,000-VIP start made 1,000 dumps, each longer as VIPs were bound, and did not bind all
its VIPs within the target. The speaker below is real (real netlink, raw sockets, in a
node namespace); the one thing added is a counter around the netlink layer's dump, which
still does the dump. The conflict check must still refuse the node's own address.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import yaml
from keepalived_harness import virtualip_document
from pyroute2 import AsyncIPRoute

from keepvip.localcluster.lan import Lan
from keepvip.speaker.desired import NodeIdentity
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net import netlink
from keepvip.speaker.runtime.failures import Failure
from keepvip.speaker.runtime.speaker import Speaker
from keepvip.speaker.sources.file import parse_config_text

pytestmark = pytest.mark.timeout(120)

COUNT = 60


@pytest.fixture
def dumps(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many dumps of each kind (``addr``, ``link``) the netlink layer made."""
    counted: Counter[str] = Counter()
    real = netlink.dump

    async def counting(ipr: Any, kind: str) -> list[Any]:
        counted[kind] += 1
        return await real(ipr, kind)

    monkeypatch.setattr(netlink, "dump", counting)
    return counted


def test_one_snapshot_of_many_virtualips_reads_the_node_addresses_once(lan: Lan, dumps: Counter[str]) -> None:
    node = lan.nodes[0]
    documents = []
    for index in range(COUNT):
        address = f"198.18.0.{100 + index}/32"
        document = virtualip_document(f"vip-{index}", address, vrid=index + 1, priority=150)
        document["spec"]["interface"] = "eth0"
        documents.append(document)
    own = virtualip_document("own", f"{node.ipv4.ip}/32", vrid=COUNT + 1, priority=150)  # the node's address
    own["spec"]["interface"] = "eth0"
    snapshot = parse_config_text(yaml.safe_dump_all([*documents, own]))

    async def main() -> tuple[set[str], dict[str, Failure], Counter[str]]:
        async with AsyncIPRoute() as ipr:
            speaker = Speaker(NodeIdentity(node.name), ipr, SpeakerMetrics(), use_status_allocation=False)
            await speaker.start()
            try:
                before = Counter(dumps)
                await speaker.apply(snapshot)
                await asyncio.sleep(0.2)  # the routers' start-up releases, queued in the background
                made = dumps - before
                return set(speaker.routers), {n: e.failure for n, e in speaker.failures.items()}, made
            finally:
                await speaker.stop()

    with lan.inside(node):
        running, failures, made = asyncio.run(main())

    assert running == {f"vip-{index}" for index in range(COUNT)}
    assert failures == {"own": Failure.ADDRESS_CONFLICT}
    # One reading for the conflict check, one shared listing for the start-up releases,
    # one for the interface's primary address; before: one (and a link dump) per VirtualIP.
    assert made["addr"] <= 3, made
    assert made["link"] <= 2, made
