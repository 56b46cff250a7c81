"""ICMP probes, default-gateway resolution and the arbiter, with real packets on a namespace LAN.

node1 is the node under test; the LAN's client namespace plays the gateway (node1 gets
a default route via the client). Unreachable targets are unused addresses of the test
LAN itself (198.18.0.99, 2001:db8::99): they are on-link, so the request never leaves
the test's namespaces and simply goes unanswered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import TypeVar

import pytest

from keepvip.api.model import Arbiter
from keepvip.localcluster.lan import Host, Lan
from keepvip.speaker.checks import ArbiterRunner, IcmpProbe, NoDefaultGateway, ProbeResult, default_gateway

T = TypeVar("T")
UNUSED_V4 = IPv4Address("198.18.0.99")
UNUSED_V6 = IPv6Address("2001:db8::99")


def inside(lan: Lan, host: Host, coro: Awaitable[T]) -> T:
    """Run ``coro`` on an event loop whose sockets live in ``host``'s namespace."""

    async def main() -> T:
        return await coro

    with lan.inside(host):
        return asyncio.run(main())


def route_default_via_client(
    lan: Lan, host: Host, *, link_local_v6: bool = False
) -> tuple[IPv4Address, IPv6Address]:
    client = lan.client
    assert client is not None
    gateway6 = client.link_local if link_local_v6 else client.ipv6.ip
    lan.run(host, "ip", "route", "add", "default", "via", str(client.ipv4.ip), "dev", host.ifname)
    lan.run(host, "ip", "-6", "route", "add", "default", "via", str(gateway6), "dev", host.ifname)
    return client.ipv4.ip, gateway6


def ping(lan: Lan, host: Host, target: IPv4Address | IPv6Address, **options: object) -> ProbeResult:
    return inside(lan, host, IcmpProbe(target, timeout=0.5, **options).run())  # type: ignore[arg-type]


# -- icmp probe -----------------------------------------------------------------------


def test_icmp_passes_to_a_reachable_neighbour_over_ipv4(lan: Lan) -> None:
    node1, node2 = lan.nodes[0], lan.nodes[1]
    result = ping(lan, node1, node2.ipv4.ip)
    assert result.ok, result.detail
    assert result.detail.startswith("echo reply in")
    assert result.duration < 0.5


def test_icmp_fails_when_nobody_holds_the_address_over_ipv4(lan: Lan) -> None:
    result = ping(lan, lan.nodes[0], UNUSED_V4)
    assert not result.ok
    assert result.detail == "no echo reply within 500ms"


def test_icmp_passes_to_a_reachable_neighbour_over_ipv6(lan: Lan) -> None:
    node1, node2 = lan.nodes[0], lan.nodes[1]
    result = ping(lan, node1, node2.ipv6.ip)
    assert result.ok, result.detail


def test_icmp_fails_when_nobody_holds_the_address_over_ipv6(lan: Lan) -> None:
    result = ping(lan, lan.nodes[0], UNUSED_V6)
    assert not result.ok
    assert result.detail == "no echo reply within 500ms"


def test_icmp_reaches_a_link_local_neighbour_through_the_named_interface(lan: Lan) -> None:
    node1, node2 = lan.nodes[0], lan.nodes[1]
    result = ping(lan, node1, node2.link_local, interface=node1.ifname)
    assert result.ok, result.detail


def test_icmp_does_not_take_the_reply_of_another_probe(lan: Lan) -> None:
    node1, node2 = lan.nodes[0], lan.nodes[1]

    async def both() -> tuple[ProbeResult, ProbeResult]:
        alive = IcmpProbe(node2.ipv4.ip, timeout=0.5)
        dead = IcmpProbe(UNUSED_V4, timeout=0.5)
        dead.identifier = alive.identifier  # even the same identifier: the source and payload differ
        return await asyncio.gather(alive.run(), dead.run())

    alive, dead = inside(lan, node1, both())
    assert alive.ok
    assert not dead.ok


# -- default gateway -------------------------------------------------------------------


def test_auto_gateway_is_the_default_route_of_the_interface(lan: Lan) -> None:
    node1 = lan.nodes[0]
    gateway4, gateway6 = route_default_via_client(lan, node1)

    async def both() -> tuple[IPv4Address | IPv6Address, IPv4Address | IPv6Address]:
        return await default_gateway(node1.ifname, 4), await default_gateway(node1.ifname, 6)

    assert inside(lan, node1, both()) == (gateway4, gateway6)


def test_auto_gateway_prefers_the_lowest_metric(lan: Lan) -> None:
    node1, node2 = lan.nodes[0], lan.nodes[1]
    lan.run(node1, "ip", "route", "add", "default", "via", str(node2.ipv4.ip), "metric", "200")
    lan.run(node1, "ip", "route", "add", "default", "via", str(lan.nodes[2].ipv4.ip), "metric", "100")
    assert inside(lan, node1, default_gateway(node1.ifname, 4)) == lan.nodes[2].ipv4.ip


def test_auto_gateway_without_a_default_route_is_an_error(lan: Lan) -> None:
    node1 = lan.nodes[0]
    with pytest.raises(NoDefaultGateway, match="no IPv4 default route"):
        inside(lan, node1, default_gateway(node1.ifname, 4))
    with pytest.raises(NoDefaultGateway, match="does not exist"):
        inside(lan, node1, default_gateway("nosuch0", 4))


# -- arbiter -------------------------------------------------------------------------

FAST_ARBITER = {"gateway": "auto", "interval": "100ms", "timeout": "80ms", "rise": 2, "fall": 3}


async def watch_arbiter(lan: Lan, arbiter: ArbiterRunner, cut: Host | None) -> list[tuple[bool, str, float]]:
    """Start the arbiter, wait until reachable, unplug ``cut``'s cable, wait until lost, replug."""
    events: list[tuple[bool, str, float]] = []
    arbiter.on_reachability = lambda reachable, detail: events.append((reachable, detail, time.monotonic()))

    async def until(count: int) -> None:
        async with asyncio.timeout(3):
            while len(events) < count:
                await asyncio.sleep(0.01)

    arbiter.start()
    try:
        await until(1)
        if cut is not None:
            lan.set_port(cut, up=False)
            events.append((True, "cable cut", time.monotonic()))
            await until(3)
            lan.set_port(cut, up=True)
            await until(4)
    finally:
        await arbiter.stop()
    return events


@pytest.mark.parametrize("family", [4, 6])
def test_arbiter_reports_the_gateway_lost_when_its_link_is_cut_and_back_when_replugged(
    lan: Lan, family: int
) -> None:
    node1, client = lan.nodes[0], lan.client
    assert client is not None
    gateway4, gateway6 = route_default_via_client(lan, node1, link_local_v6=True)
    runner = ArbiterRunner(Arbiter.model_validate(FAST_ARBITER), node1.ifname, family)
    events = inside(lan, node1, watch_arbiter(lan, runner, cut=client))
    reachable = [event[0] for event in events]
    assert reachable == [True, True, False, True]  # reachable, (cut), lost, reachable again
    gateway = gateway4 if family == 4 else gateway6
    assert runner.gateway_probe.last_gateway == gateway
    assert str(gateway) in events[0][1]
    # fall=3 at 100 ms: lost after the third failed probe, i.e. within ~0.2-0.4 s of the cut.
    lost_after = events[2][2] - events[1][2]
    assert 0.15 <= lost_after <= 0.6, lost_after
    assert runner.reachable is True


def test_arbiter_without_a_default_route_reports_lost(lan: Lan) -> None:
    node1 = lan.nodes[0]
    runner = ArbiterRunner(Arbiter.model_validate(FAST_ARBITER), node1.ifname, 4)
    events = inside(lan, node1, watch_arbiter(lan, runner, cut=None))
    assert events[0][0] is False
    assert "no IPv4 default route" in events[0][1]
    assert runner.reachable is False


def test_arbiter_with_an_explicit_gateway_pings_that_address(lan: Lan) -> None:
    node1, node2 = lan.nodes[0], lan.nodes[1]
    runner = ArbiterRunner(
        Arbiter.model_validate({**FAST_ARBITER, "gateway": str(node2.ipv4.ip)}), node1.ifname, 4
    )
    events = inside(lan, node1, watch_arbiter(lan, runner, cut=node2))
    assert [event[0] for event in events] == [True, True, False, True]
    assert runner.gateway_probe.last_gateway == ip_address(str(node2.ipv4.ip))
