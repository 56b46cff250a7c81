"""The speaker's netlink layer under a takeover of every VIP at once (issue 15).

One ``AsyncIPRoute`` shared by a thousand concurrent callers, as one speaker's routers
share it when a node takes over (or releases) every VIP at the same moment. Before the
fix, the kernel refused concurrent dumps on the socket with EBUSY (84 of 100 concurrent
adds failed), and at 1,000 the socket overflowed (ENOBUFS) and a third of the requests
never got an answer. Every address is checked afterwards with ``ip -j addr``, a reader
independent of the code under test; every call has a deadline, so a hang fails the test.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import AsyncIPRoute

from keepvip.localcluster.lan import Host, Lan
from keepvip.speaker.net import addresses, interfaces
from keepvip.speaker.net.addresses import AddResult, RemoveResult

pytestmark = pytest.mark.timeout(180)

CALL_TIMEOUT = 60.0  # seconds for each call: generous; a hang is what it catches


def bulk(count: int, third_octet: int = 0) -> list[IPv4Interface]:
    """``count`` /32 VIPs from 198.19.0.0/16 (inside the test range 198.18.0.0/15)."""
    return [IPv4Interface(f"198.19.{third_octet + i // 250}.{i % 250 + 1}/32") for i in range(count)]


def kernel_addresses(lan: Lan, node: Host) -> set[IPv4Interface | IPv6Interface]:
    """What ``ip -j addr show dev eth0`` lists."""
    links = json.loads(lan.run(node, "ip", "-j", "addr", "show", "dev", "eth0").stdout)
    return {ip_interface(f"{a['local']}/{a['prefixlen']}") for a in links[0]["addr_info"]}


def all_at_once(lan: Lan, node: Host, calls: list[Any]) -> list[Any]:
    """Run every ``call(ipr)`` concurrently on one socket in ``node``; results or exceptions."""

    async def main() -> list[Any]:
        async with AsyncIPRoute() as ipr:
            return await asyncio.gather(
                *(asyncio.wait_for(call(ipr), CALL_TIMEOUT) for call in calls), return_exceptions=True
            )

    with lan.inside(node):
        return asyncio.run(main())


def outcome(results: list[Any]) -> Counter[str]:
    return Counter(r.value if isinstance(r, AddResult | RemoveResult) else repr(r) for r in results)


def test_a_thousand_concurrent_adds_then_removes_all_complete(lan: Lan) -> None:
    node = lan.nodes[0]
    vips = bulk(1000)

    def present(vip: IPv4Interface) -> Any:
        return lambda ipr: addresses.ensure_present(ipr, "eth0", vip)

    def absent(vip: IPv4Interface) -> Any:
        return lambda ipr: addresses.ensure_absent(ipr, "eth0", vip)

    added = all_at_once(lan, node, [present(vip) for vip in vips])
    assert outcome(added) == {"added": 1000}
    assert kernel_addresses(lan, node) >= set(vips)

    again = all_at_once(lan, node, [present(vip) for vip in vips])  # idempotent under load too
    assert outcome(again) == {"already_present": 1000}

    removed = all_at_once(lan, node, [absent(vip) for vip in vips])
    assert outcome(removed) == {"removed": 1000}
    left = kernel_addresses(lan, node)
    assert not left & set(vips)
    assert node.ipv4 in left  # the node's own address is untouched


def test_a_takeover_and_a_release_at_once_leave_exactly_the_taken_vips(lan: Lan) -> None:
    """500 VIPs released while 500 others are taken over, one foreign address among them."""
    node = lan.nodes[0]
    leaving, arriving = bulk(500), bulk(500, third_octet=10)
    foreign = IPv4Interface("198.19.20.1/32")
    lan.run(node, "ip", "addr", "add", str(foreign), "dev", "eth0")  # an operator's address
    setup = all_at_once(
        lan, node, [lambda ipr, v=vip: addresses.ensure_present(ipr, "eth0", v) for vip in leaving]
    )
    assert outcome(setup) == {"added": 500}

    calls = [lambda ipr, v=vip: addresses.ensure_absent(ipr, "eth0", v) for vip in leaving]
    calls += [lambda ipr, v=vip: addresses.ensure_present(ipr, "eth0", v) for vip in arriving]
    calls += [lambda ipr: addresses.ensure_absent(ipr, "eth0", foreign)]
    calls += [lambda ipr: addresses.ensure_present(ipr, "eth0", foreign)]
    results = all_at_once(lan, node, calls)

    assert outcome(results) == {"removed": 500, "added": 500, "foreign": 2}
    now = kernel_addresses(lan, node)
    assert now >= {*arriving, foreign}
    assert not now & set(leaving)


def test_a_dump_of_thousands_of_addresses_succeeds_while_adds_run(lan: Lan, tmp_path: Path) -> None:
    node = lan.nodes[0]
    listed = bulk(2000, third_octet=30)
    batch = tmp_path / "addresses.batch"  # added by iproute2, not by the code under test
    batch.write_text("".join(f"addr add {vip} dev eth0\n" for vip in listed))
    lan.run(node, "ip", "-batch", str(batch))
    arriving = bulk(300, third_octet=50)

    calls: list[Any] = [interfaces.list_addresses, interfaces.list_addresses]
    calls += [lambda ipr, v=vip: addresses.ensure_present(ipr, "eth0", v) for vip in arriving]
    calls += [lambda ipr: addresses.marked_addresses(ipr, "eth0")]
    results = all_at_once(lan, node, calls)

    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    for dump in results[:2]:
        assert {ip_interface(f"{a.address}/{a.prefixlen}") for a in dump} >= set(listed)
    marked = results[-1]
    assert {vip for _, vip in marked} <= set(arriving)  # the 2,000 are not keepvip's
    assert kernel_addresses(lan, node) >= {*listed, *arriving}
