"""Regression of the chaos run's finding (issue 14, bench/chaos.py, fifth pass): a loser must not
announce the VIP once the winner's advertisement has reached it.

In the 200-fault run at 100 ms adverts (seed 14) a ``partition`` healed; the rightful master
re-announced the VIP, and a millisecond later the lower-priority node — master while cut off
from it, about to yield — sent the next round of its own announcement schedule. The client's
ARP entry followed the loser, which released the VIP at once, and the client got no answer
until the winner's next round 200 ms later (the partition slice of the same session, whose
observation was kept, showed it twice: 220 ms gaps, both starting with the loser's round
within 1 ms of the winner's advertisement). The round fell due between the advertisement's
arrival and the router's seeing it: the socket's reader gathers a burst for a millisecond
and serves the routers in a later callback. Now a round first reads what waits on the
socket and serves it (`RouterRunner.still_master`); a router that has yielded sends none.

The race is made to happen every time: the loser (node3, two VirtualIPs in this process on
node3's real raw socket and netlink, so the reader gathers) becomes master while node2's
port and its own are isolated; then, just before its schedule's 0.2 s round, the event loop
is blocked while the partition heals and until node2's advertisements wait on the socket
and the round is due. When the loop runs again both are ready at once. The winner is a real
speaker on node2.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from ipaddress import ip_address, ip_interface

from pyroute2.iproute.linux import AsyncIPRoute
from speaker_harness import SpeakerSet, virtualip, wait_until

from keepvip.api.model import IPInterface
from keepvip.api.parse import parse_virtualip
from keepvip.localcluster.lan import Lan
from keepvip.speaker.desired import NodeIdentity, desired_routers
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.network import FIRST_ROUNDS, LinuxNetwork
from keepvip.speaker.runtime.router_runner import RouterReport, RouterRunner
from keepvip.speaker.runtime.sockets import SocketPool
from keepvip.speaker.vrrp.advertisement import IPAddress
from keepvip.speaker.vrrp.state import State

PRIORITIES = {"node2": 250, "node3": 200}
DOCUMENTS = [
    virtualip("web", vrid=51, addresses=["198.18.0.100/24"], node_priorities=PRIORITIES),
    virtualip("api", vrid=52, addresses=["198.18.0.101/24"], node_priorities=PRIORITIES),
]  # two routers on node3's socket: its reader gathers bursts, as with the chaos run's ten
SECOND_ROUND = FIRST_ROUNDS[1]
BLOCK = 0.3  # node2 advertises every 0.1 s: after the heal, some are waiting when the loop runs


class WatchedNetwork:
    """node3's real network; says when the schedule of ``web`` started."""

    def __init__(self, real: LinuxNetwork) -> None:
        self.real = real
        self.announced: dict[str, float] = {}  # VirtualIP -> loop time its schedule started

    async def add_address(self, ifname: str, vip: IPInterface) -> None:
        await self.real.add_address(ifname, vip)

    async def remove_address(self, ifname: str, vip: IPInterface) -> None:
        await self.real.remove_address(ifname, vip)

    def announce(
        self, name: str, ifname: str, addresses: tuple[IPAddress, ...], still_master: Callable[[], bool]
    ) -> None:
        self.announced[name] = asyncio.get_running_loop().time()
        self.real.announce(name, ifname, addresses, still_master)

    def cancel_announcements(self, name: str) -> None:
        self.real.cancel_announcements(name)


async def _loser(lan: Lan) -> tuple[float, float, list[State]]:
    """node3: master of both while partitioned; the heal lands under a blocked loop. Returns the
    gratuitous ARPs for ``web`` sent before and after the heal, and web's states after it."""
    node = NodeIdentity("node3")
    plans, _ = desired_routers([parse_virtualip(d) for d in DOCUMENTS], node, {}, use_status_allocation=False)
    metrics = SpeakerMetrics()
    pool = SocketPool(metrics)
    loop = asyncio.get_running_loop()
    states: list[State] = []

    def report(name: str) -> Callable[[RouterReport], None]:
        return (lambda report: states.append(report.state)) if name == "web" else (lambda _: None)

    async with AsyncIPRoute() as ipr:
        network = WatchedNetwork(LinuxNetwork(ipr, metrics))
        primary = ip_address(str(lan.node("node3").ipv4.ip))
        runners = [
            RouterRunner(plans[name], ifname="eth0", primary=primary, pool=pool, network=network,
                         metrics=metrics, node="node3",
                         reporter=report(name))
            for name in ("web", "api")
        ]  # fmt: skip
        for runner in runners:
            await runner.start()
        try:
            deadline = time.monotonic() + 5
            while "web" not in network.announced:
                assert time.monotonic() < deadline, "node3 never became master while partitioned"
                await asyncio.sleep(0.01)
            garps = metrics.garp_sent.labels("web")
            healed = loop.create_future()

            def heal_under_a_blocked_loop() -> None:
                lan.isolate("node3", on=False)
                before = garps.value
                states.clear()
                time.sleep(BLOCK)  # node2's adverts arrive; the 0.2 s round falls due
                healed.set_result(before)

            loop.call_at(network.announced["web"] + SECOND_ROUND - 0.05, heal_under_a_blocked_loop)
            before = await healed
            await asyncio.sleep(0.5)  # the rounds at 0.2 and 0.5 s would have gone out by now
            return before, garps.value, states
        finally:
            for runner in runners:
                await runner.stop()
            pool.close()
            await network.real.close()


def test_a_loser_sends_no_announcement_after_the_winners_advertisement_reached_it(
    lan: Lan, speakers: SpeakerSet
) -> None:
    speakers.configure(*DOCUMENTS, nodes=["node2"])
    lan.isolate("node2", on=True)
    lan.isolate("node3", on=True)
    speakers.start("node2")
    speakers.wait_state("node2", "MASTER", "web")

    with lan.inside("node3"):
        before, after, states = asyncio.run(_loser(lan))

    assert states[:1] == [State.BACKUP], states  # node3 yielded web to node2 ...
    assert State.MASTER not in states, states
    assert after == before, f"node3 sent {after - before:.0f} ARPs for web after node2 reached it"
    assert wait_until(lambda: ip_interface("198.18.0.100/24") not in lan.addresses("node3") or None, 5)
    assert speakers.state("node2", "web") == "MASTER"
