"""Which gateway does 'auto' mean: the default route's next hop on the VRRP interface.

Looked up in the main routing table (254) over netlink, for the VRRP address family,
each time the arbiter probes, so a gateway that changes (DHCP, router replacement) is
followed. Among default routes leaving through the interface the lowest metric wins,
as the kernel would choose; a multipath default route contributes its next hops that
leave through the interface. The asynchronous pyroute2 client keeps the lookup off
the event loop's critical path; its netlink socket lives in the caller's namespace.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Final

from pyroute2.iproute.linux import AsyncIPRoute

MAIN_TABLE: Final = 254  # RT_TABLE_MAIN


class NoDefaultGateway(LookupError):
    """The main table has no default route with a gateway through the interface."""


def _candidates(route: Any, ifindex: int) -> list[tuple[int, str]]:
    """(metric, gateway) pairs of one default route that leave through ``ifindex``."""
    metric = route.get("priority") or 0
    found: list[tuple[int, str]] = []
    gateway = route.get("gateway")
    if gateway and route.get("oif") == ifindex:
        found.append((metric, gateway))
    for hop in route.get("multipath") or ():
        hop_gateway = hop.get("gateway")
        if hop_gateway and hop.get("oif") == ifindex:
            found.append((metric, hop_gateway))
    return found


async def default_gateway(interface: str, family: int) -> IPv4Address | IPv6Address:
    """The gateway of the main table's default route through ``interface`` (family 4 or 6).

    Raises :class:`NoDefaultGateway` when there is none (or the interface is gone).
    """
    address_family = socket.AF_INET6 if family == 6 else socket.AF_INET
    async with AsyncIPRoute() as ipr:
        indexes = await ipr.link_lookup(ifname=interface)
        if not indexes:
            raise NoDefaultGateway(f"interface {interface} does not exist")
        ifindex = indexes[0]
        candidates: list[tuple[int, str]] = []
        async for route in await ipr.get_default_routes(family=address_family, table=MAIN_TABLE):
            candidates.extend(_candidates(route, ifindex))
    if not candidates:
        raise NoDefaultGateway(f"no IPv{family} default route via a gateway on {interface}")
    return ip_address(min(candidates, key=lambda c: c[0])[1])
