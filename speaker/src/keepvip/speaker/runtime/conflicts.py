"""Addresses a VirtualIP must never take on this node (issue 10, "Addresses a VirtualIP may claim").

Admission refuses the address classes that can never work; only the node knows the
rest: an address that is already one of its own (on any interface, e.g. the node's
primary address) or its default gateway. Binding either would hijack the node's own
traffic or the LAN's router, so the speaker checks before it joins the election and
stays out of it for that VirtualIP. keepvip's own VIPs (marked with ``IFA_PROTO``, or
recorded in the state file on older kernels, :mod:`keepvip.speaker.net.ownership`) are
not conflicts: they are what a previous or the current run holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import ip_address
from socket import AF_INET, AF_INET6
from typing import Any

from keepvip.api.model import IPInterface
from keepvip.speaker.net.addresses import PROTO_ONLY
from keepvip.speaker.net.interfaces import interface_names, list_addresses
from keepvip.speaker.net.ownership import Ownership
from keepvip.speaker.vrrp.advertisement import IPAddress

MAIN_TABLE = 254  # RT_TABLE_MAIN


async def default_gateways(ipr: Any) -> set[IPAddress]:
    """Every next hop of the main table's IPv4 and IPv6 default routes (multipath included)."""
    found: set[IPAddress] = set()
    for family in (AF_INET, AF_INET6):
        async for route in await ipr.get_default_routes(family=family, table=MAIN_TABLE):
            hops = [route.get("gateway"), *(hop.get("gateway") for hop in route.get("multipath") or ())]
            found.update(ip_address(hop) for hop in hops if hop)
    return found


@dataclass(frozen=True)
class NodeAddresses:
    """What the conflict check needs to know about this node, read once per configuration.

    ``own``: every address of the node that is not keepvip's (address -> ifindex), decided
    when it was read (a VIP released later would otherwise look foreign); ``names``:
    ifindex -> interface name; ``gateways``: the default routes' next hops.

    Why once per configuration and not once per VirtualIP (issue 15): each reading is a
    dump of every address of the node, and with a thousand VIPs bound that is a thousand
    netlink messages parsed in Python. A speaker applying 1,000 VirtualIPs read it 1,000
    times, one after the other (py-spy: a third of a start's CPU, and most of the time
    until the last router joined). The node's own addresses change rarely and keepvip's
    VIPs are excluded, so one reading per applied snapshot answers every VirtualIP of it.
    """

    own: dict[IPAddress, int]
    names: dict[int, str]
    gateways: set[IPAddress]


async def read_node_addresses(ipr: Any, ownership: Ownership = PROTO_ONLY) -> NodeAddresses:
    """One reading of the node's addresses (keepvip's excluded), interface names and gateways."""
    names = await interface_names(ipr)
    recording = ownership.recording
    own = {
        entry.address: entry.ifindex
        for entry in await list_addresses(ipr)
        if not entry.is_keepvip and not (recording and ownership.owns(entry, names.get(entry.ifindex, "")))
    }
    return NodeAddresses(own, names, await default_gateways(ipr))


def conflicts_in(node: NodeAddresses, addresses: tuple[IPInterface, ...]) -> list[str]:
    """Why each of ``addresses`` may not be bound on ``node`` (empty: none conflicts).

    Each item names the field (``spec.addresses[i]``) and says what the address already is.
    """
    problems: list[str] = []
    for index, vip in enumerate(addresses):
        if vip.ip in node.own:
            where = node.names.get(node.own[vip.ip], f"interface {node.own[vip.ip]}")
            problems.append(f"spec.addresses[{index}]: {vip.ip} is already an address of this node ({where})")
        elif vip.ip in node.gateways:
            problems.append(f"spec.addresses[{index}]: {vip.ip} is this node's default gateway")
    return problems


async def address_conflicts(
    ipr: Any, addresses: tuple[IPInterface, ...], ownership: Ownership = PROTO_ONLY
) -> list[str]:
    """Why each of ``addresses`` may not be bound on this node, from a fresh reading."""
    return conflicts_in(await read_node_addresses(ipr, ownership), addresses)
