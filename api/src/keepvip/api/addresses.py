"""Which addresses a VirtualIP may claim, and which a unicast peer may be.

The elected master adds every address to an interface and announces it with gratuitous
ARP / unsolicited NA, so admitting ``127.0.0.1/8`` or ``169.254.169.254`` would let whoever
writes a VirtualIP capture the node's loopback or the cloud metadata service on the LAN.
Each class is refused with the reason, so the user learns why rather than only that.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface
from typing import Final

_THIS_NETWORK: Final = ipaddress.ip_network("0.0.0.0/8")
_LIMITED_BROADCAST: Final = IPv4Address("255.255.255.255")


IP = IPv4Address | IPv6Address
# Address classes no host may claim, whatever the prefix: (test, why), checked in order.
_UNCLAIMABLE: Final[tuple[tuple[Callable[[IP], bool], str], ...]] = (
    (lambda ip: ip.is_unspecified, "{ip} is the unspecified address ('any'), not an address of one host"),
    (
        lambda ip: isinstance(ip, IPv4Address) and ip in _THIS_NETWORK,
        "{ip} lies in 0.0.0.0/8, 'this network' (RFC 1122 §3.2.1.3), which no host may claim",
    ),
    (lambda ip: ip == _LIMITED_BROADCAST, "{ip} is the limited broadcast address: it reaches every host"),
    (
        lambda ip: ip.is_loopback,
        "{ip} is a loopback address: it never leaves the node, so no other node could reach it",
    ),
    (lambda ip: ip.is_multicast, "{ip} is a multicast address (a group, not a host)"),
    (
        lambda ip: ip.is_link_local,
        "{ip} is link-local: it belongs to each node itself "
        "(169.254.169.254 is the cloud metadata service), and a VIP must not capture it",
    ),
    (
        lambda ip: isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None,
        "{ip} is an IPv4-mapped IPv6 address (::ffff:0:0/96), not an IPv6 address: write the IPv4 one",
    ),
)


def _class_problem(ip: IP) -> str | None:
    """The reason no host may use ``ip`` at all, whatever its prefix."""
    return next((why.format(ip=ip) for test, why in _UNCLAIMABLE if test(ip)), None)


def address_problem(value: IPv4Interface | IPv6Interface) -> str | None:
    """Why a VirtualIP may not claim ``value`` (address with prefix), or None."""
    network = value.network
    if network.prefixlen == 0:
        return f"{value} has a /0 prefix: it would claim every address of the family"
    problem = _class_problem(value.ip)
    if problem is not None:
        return problem
    if isinstance(value, IPv4Interface) and network.prefixlen <= 30:
        # /31 and /32 have no network or broadcast address (RFC 3021).
        if value.ip == network.network_address:
            return f"{value.ip} is the network address of {network}; use a host address"
        if value.ip == network.broadcast_address:
            return f"{value.ip} is the broadcast address of {network}; use a host address"
    if isinstance(value, IPv6Interface) and network.prefixlen <= 126 and value.ip == network.network_address:
        return f"{value.ip} is the Subnet-Router anycast address of {network} (RFC 4291 §2.6.1)"
    return None


def destination_problem(ip: IP, role: str) -> str | None:
    """Why ``ip`` cannot be the one host a ``role`` (peer, gateway) names, or None."""
    if ip.is_unspecified:
        return f"{ip} is the unspecified address, not a {role}"
    if ip.is_multicast:
        return f"{ip} is a multicast address, not a single {role}"
    if ip == _LIMITED_BROADCAST:
        return f"{ip} is the broadcast address, not a single {role}"
    return None


def broadcast_domains(addresses: Iterable[IPv4Interface | IPv6Interface]) -> list[IPv4Network]:
    """The IPv4 subnets of ``addresses`` that have a broadcast address (prefix /30 or shorter)."""
    return [a.network for a in addresses if isinstance(a, IPv4Interface) and a.network.prefixlen <= 30]
