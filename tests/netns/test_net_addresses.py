"""VIPs on a real interface through rtnetlink: idempotent, marked, recoverable after a crash."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address, IPv6Address, ip_interface
from typing import Any, TypeVar

import pytest
from pyroute2 import AsyncIPRoute

from keepvip.localcluster.lan import Host, Lan
from keepvip.speaker.net import addresses, interfaces
from keepvip.speaker.net.addresses import AddResult, RemoveResult
from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO

pytestmark = pytest.mark.timeout(30)

T = TypeVar("T")
VIP4 = ip_interface("198.18.0.100/24")
VIP6 = ip_interface("2001:db8::100/64")


def on(lan: Lan, node: Host, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``action(ipr)`` with a netlink socket opened inside ``node``'s namespace."""

    async def main() -> T:
        async with AsyncIPRoute() as ipr:
            return await action(ipr)

    with lan.inside(node):
        return asyncio.run(main())


def ip_addr_json(lan: Lan, node: Host) -> list[dict[str, object]]:
    """``ip -j addr show dev eth0``'s address entries."""
    links = json.loads(lan.run(node, "ip", "-j", "addr", "show", "dev", "eth0").stdout)
    entries: list[dict[str, object]] = links[0]["addr_info"]
    return entries


@pytest.mark.parametrize("vip", [VIP4, VIP6], ids=["ipv4", "ipv6"])
def test_ensure_present_adds_the_vip_once_however_often_it_is_called(lan: Lan, vip: object) -> None:
    node = lan.nodes[0]
    assert vip not in lan.addresses(node, "eth0")

    results = [on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", vip)) for _ in "123"]

    assert results == [AddResult.ADDED, AddResult.ALREADY_PRESENT, AddResult.ALREADY_PRESENT]
    assert lan.addresses(node, "eth0").count(vip) == 1


@pytest.mark.parametrize("vip", [VIP4, VIP6], ids=["ipv4", "ipv6"])
def test_ensure_absent_removes_the_vip_and_then_reports_it_absent(lan: Lan, vip: object) -> None:
    node = lan.nodes[0]
    on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", vip))

    first = on(lan, node, lambda ipr: addresses.ensure_absent(ipr, "eth0", vip))
    second = on(lan, node, lambda ipr: addresses.ensure_absent(ipr, "eth0", vip))

    assert (first, second) == (RemoveResult.REMOVED, RemoveResult.ALREADY_ABSENT)
    assert vip not in lan.addresses(node)


def test_added_vips_carry_keepvips_address_protocol_mark(lan: Lan) -> None:
    """IFA_PROTO as the kernel reports it (iproute2 6.1 cannot show it; pyroute2 reads it raw)."""
    node = lan.nodes[0]
    on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", VIP4))

    async def protocols(ipr: Any) -> dict[str, int | None]:
        return {m.get("IFA_ADDRESS"): m.get("IFA_PROTO") async for m in await ipr.addr("dump")}

    marks = on(lan, node, protocols)

    assert marks[str(VIP4.ip)] == KEEPVIP_ADDRESS_PROTO
    assert marks[str(node.ipv4.ip)] in (None, 0)  # the node's own address is not keepvip's


def test_an_address_keepvip_did_not_add_is_never_claimed_nor_removed(lan: Lan) -> None:
    node = lan.nodes[0]
    own = node.ipv4

    added = on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", own))
    removed = on(lan, node, lambda ipr: addresses.ensure_absent(ipr, "eth0", own))

    assert (added, removed) == (AddResult.FOREIGN, RemoveResult.FOREIGN)
    assert own in lan.addresses(node, "eth0")


def test_ipv6_vip_is_usable_at_once_even_where_dad_is_on(lan: Lan) -> None:
    node = lan.nodes[0]
    lan.run(node, "sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=1")
    lan.run(node, "ip", "addr", "add", "2001:db8::200/64", "dev", "eth0")  # control: DAD runs

    on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", VIP6))

    flags = {e["local"]: e for e in ip_addr_json(lan, node)}
    assert flags["2001:db8::200"].get("tentative") is True
    assert "tentative" not in flags[str(VIP6.ip)]
    assert flags[str(VIP6.ip)].get("nodad") is True


LEAVE_VIPS_AND_DIE = """
import asyncio, os, signal, sys
from ipaddress import ip_interface
from pyroute2 import AsyncIPRoute
from keepvip.speaker.net.addresses import ensure_present

async def main():
    async with AsyncIPRoute() as ipr:
        for ifname, vip in zip(sys.argv[1::2], sys.argv[2::2]):
            await ensure_present(ipr, ifname, ip_interface(vip))
    os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup runs

asyncio.run(main())
"""


def leave_vips_of_a_killed_speaker(lan: Lan, node: Host) -> set[tuple[str, Any]]:
    """A speaker that added VIPs on two interfaces and was SIGKILLed: what it left behind."""
    lan.run(node, "ip", "link", "add", "side0", "type", "veth", "peer", "name", "side1")
    lan.run(node, "ip", "link", "set", "side0", "up")
    left = {("eth0", VIP4), ("eth0", VIP6), ("side0", ip_interface("198.19.0.7/32"))}
    argv = [arg for ifname, vip in sorted(left, key=str) for arg in (ifname, str(vip))]
    crashed = lan.run(node, sys.executable, "-c", LEAVE_VIPS_AND_DIE, *argv, check=False)
    assert crashed.returncode in (-9, 137), crashed.stderr
    assert VIP4 in lan.addresses(node, "eth0")
    return left


def test_a_fresh_speaker_finds_and_removes_what_a_killed_one_left(lan: Lan) -> None:
    node = lan.nodes[0]
    left = leave_vips_of_a_killed_speaker(lan, node)

    found = on(lan, node, addresses.marked_addresses)
    only_eth0 = on(lan, node, lambda ipr: addresses.remove_leftovers(ipr, "eth0"))
    rest = on(lan, node, addresses.remove_leftovers)

    assert set(found) == left
    assert set(only_eth0) == {("eth0", VIP4), ("eth0", VIP6)}
    assert set(rest) == {("side0", ip_interface("198.19.0.7/32"))}
    remaining = lan.addresses(node)
    assert not any(vip in remaining for _, vip in left)
    assert node.ipv4 in remaining  # the node's own address survives the sweep



def test_the_early_sweep_removes_exactly_the_marked_addresses_before_any_import(lan: Lan) -> None:
    # keepvip.speaker.entry runs it first in a new speaker (issue 14: a killed speaker's VIPs
    # stayed beside the new master's until the successor had imported everything).
    node = lan.nodes[0]
    left = leave_vips_of_a_killed_speaker(lan, node)
    someone_elses = ip_interface("198.18.0.101/24")
    lan.run(node, "ip", "addr", "add", str(someone_elses), "dev", "eth0")

    swept = lan.run(node, sys.executable, "-c", SWEEP_AND_LIST_MODULES)
    removed, imported = json.loads(swept.stdout)

    assert {(ifname, ip_interface(vip)) for ifname, vip in removed} == left
    remaining = lan.addresses(node)
    assert not any(vip in remaining for _, vip in left)
    assert someone_elses in remaining  # not keepvip's mark: left alone
    assert node.ipv4 in remaining
    # keepvip.speaker registers pyroute2 without running it (lean_imports); no part of it is loaded
    heavy = [m for m in imported if m.split(".")[0] in ("asyncio", "pydantic") or "pyroute2." in m]
    assert heavy == []
    assert on(lan, node, addresses.remove_leftovers) == []  # nothing left for the speaker's own sweep


SWEEP_AND_LIST_MODULES = """
import json, sys
from keepvip.speaker.net.early_sweep import sweep
removed = [(ifname, str(leftover)) for ifname, leftover in sweep()]
print(json.dumps([removed, sorted(sys.modules)]))
"""

def test_interface_for_picks_the_interface_whose_subnet_holds_the_address(lan: Lan) -> None:
    node = lan.nodes[0]
    lan.run(node, "ip", "link", "add", "side0", "type", "veth", "peer", "name", "side1")
    lan.run(node, "ip", "addr", "add", "198.18.0.129/25", "dev", "side0")  # more specific
    on(lan, node, lambda ipr: addresses.ensure_present(ipr, "side0", ip_interface("198.19.5.5/24")))

    def lookup(text: str) -> str | None:
        address = IPv6Address(text) if ":" in text else IPv4Address(text)
        return on(lan, node, lambda ipr: interfaces.interface_for(ipr, address))

    assert lookup("198.18.0.100") == "eth0"
    assert lookup("198.18.0.200") == "side0"  # longest prefix wins
    assert lookup("2001:db8::100") == "eth0"
    assert lookup("198.19.5.6") is None  # a keepvip VIP's subnet does not count
    assert lookup("198.51.100.1") is None


def test_primary_ipv4_is_the_nodes_address_not_a_vip(lan: Lan) -> None:
    node = lan.nodes[0]
    on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", ip_interface("198.19.0.9/32")))
    on(lan, node, lambda ipr: addresses.ensure_present(ipr, "eth0", VIP4))

    primary = on(lan, node, lambda ipr: interfaces.primary_ipv4(ipr, "eth0"))

    assert primary == node.ipv4.ip


def test_link_local_ipv6_is_the_kernels_link_local_address(lan: Lan) -> None:
    node = lan.nodes[1]
    found = on(lan, node, lambda ipr: interfaces.link_local_ipv6(ipr, "eth0"))
    assert found == node.link_local
    assert found != lan.nodes[0].link_local


def test_link_is_down_when_set_down_or_unplugged_and_up_again_after(lan: Lan) -> None:
    node = lan.nodes[0]

    def up() -> bool:
        return on(lan, node, lambda ipr: interfaces.is_link_up(ipr, "eth0"))

    assert up()
    lan.set_link(node, up=False)
    assert not up()
    lan.set_link(node, up=True)
    assert up()
    lan.set_port(node, up=False)  # cable pulled at the switch: carrier lost
    assert not up()
    lan.set_port(node, up=True)
    assert up()


def test_unknown_interface_is_a_lookup_error(lan: Lan) -> None:
    with pytest.raises(LookupError, match="nope0"):
        on(lan, lan.nodes[0], lambda ipr: addresses.ensure_present(ipr, "nope0", VIP4))


def test_the_interface_index_is_asked_once_and_asked_again_when_the_interface_is_recreated(lan: Lan) -> None:
    """Issue 15 (cost): one link lookup for many VIPs; a re-created interface costs one retry."""
    node = lan.nodes[0]
    lan.run(node, "ip", "link", "add", "vip0", "type", "veth", "peer", "name", "vip0p")
    lan.run(node, "ip", "link", "set", "vip0", "up")
    vips = [ip_interface(f"198.18.2.{n}/32") for n in range(1, 21)]

    async def scenario(ipr: Any) -> tuple[int, list[object], AddResult]:
        lookups = 0
        lookup = ipr.link_lookup

        async def counted(**query: Any) -> Any:
            nonlocal lookups
            lookups += 1
            return await lookup(**query)

        ipr.link_lookup = counted
        results: list[object] = [await addresses.ensure_present(ipr, "vip0", vip) for vip in vips]
        results += [await addresses.ensure_absent(ipr, "vip0", vip) for vip in vips]
        first_lookups = lookups
        # The interface is deleted and re-created under the same name: a new index.
        lan.run(node, "ip", "link", "del", "vip0")
        lan.run(node, "ip", "link", "add", "vip0", "type", "veth", "peer", "name", "vip0p")
        again = await addresses.ensure_present(ipr, "vip0", vips[0])
        return first_lookups, results, again

    try:
        lookups, results, again = on(lan, node, scenario)
        assert lookups == 1
        assert results == [AddResult.ADDED] * 20 + [RemoveResult.REMOVED] * 20
        assert again is AddResult.ADDED
        assert vips[0] in lan.addresses(node, "vip0")
    finally:
        lan.run(node, "ip", "link", "del", "vip0", check=False)
