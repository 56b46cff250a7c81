"""The Internet checksum and the pseudo-headers VRRP puts under it.

The one checksum module of keepvip: the ICMP echo of the health checks and the
unsolicited Neighbor Advertisements (ICMPv6, RFC 4443 §2.3) use it too.

Kept apart from the codec because the checksum is where VRRP implementations disagree:
VRRPv2 sums the message alone (RFC 3768 §5.3.8), VRRPv3 over IPv6 adds the IPv6
pseudo-header (RFC 9568 §5.2.8, RFC 8200 §8.1), and VRRPv3 over IPv4 is computed with
an IPv4 pseudo-header by keepalived, tcpdump and scapy but over the message alone by
RFC 9568 §5.2.8 (and Cisco, Juniper). Naming each form lets the codec send one and
accept either, and lets metrics say which form a peer uses.

The one's-complement sum of 16-bit words (RFC 1071) is computed as the big-endian
integer of the data modulo 0xFFFF: 2**16 ≡ 1 (mod 0xFFFF), so every 16-bit word
contributes its own value, and the end-around carry is the reduction itself. That is
exact, and much faster in Python than a loop over words.
"""

from __future__ import annotations

import enum
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from keepvip.inet import IPAddress
from keepvip.speaker.vrrp.constants import IPPROTO_VRRP

_ONES: Final = 0xFFFF


class ChecksumForm(enum.Enum):
    """Which bytes a received checksum covered; the value is a metric label."""

    MESSAGE = "message"  # VRRPv2 (RFC 3768 §5.3.8); VRRPv3/IPv4 per RFC 9568 §5.2.8
    IPV4_PSEUDO_HEADER = "ipv4_pseudo_header"  # VRRPv3/IPv4 as keepalived/tcpdump/scapy
    IPV6_PSEUDO_HEADER = "ipv6_pseudo_header"  # VRRPv3/IPv6 (RFC 9568 §5.2.8)


def _residue(data: bytes) -> int:
    """The one's-complement sum of ``data`` reduced modulo 0xFFFF (odd length: zero pad)."""
    if len(data) % 2:
        data += b"\x00"
    return int.from_bytes(data, "big") % _ONES


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's-complement sum of ``data``.

    Matches the usual word-by-word algorithm bit for bit (including its choice of
    0x0000 rather than 0xFFFF when the sum is all ones, and 0xFFFF for all-zero data).
    """
    residue = _residue(data)
    if residue == 0 and any(data):
        return 0  # the sum is 0xFFFF ("negative zero"); its complement is 0
    return _ONES - residue


def pseudo_header(
    source: IPAddress, destination: IPAddress, length: int, protocol: int = IPPROTO_VRRP
) -> bytes:
    """The pseudo-header for a message of ``length`` bytes between two addresses.

    IPv4 (as keepalived, tcpdump and scapy's ``in4_chksum``): source, destination,
    a zero byte, the protocol (VRRP: 112), 16-bit length. IPv6 (RFC 8200 §8.1):
    source, destination, 32-bit upper-layer length, three zero bytes, next header.
    """
    if isinstance(source, IPv4Address) and isinstance(destination, IPv4Address):
        return (
            source.packed
            + destination.packed
            + bytes((0, protocol))
            + length.to_bytes(2, "big")
        )
    if isinstance(source, IPv6Address) and isinstance(destination, IPv6Address):
        return (
            source.packed
            + destination.packed
            + length.to_bytes(4, "big")
            + bytes((0, 0, 0, protocol))
        )
    raise ValueError(
        f"pseudo-header needs two addresses of one family, got {source!r} and {destination!r}"
    )


def verifies(data: bytes, prefix: bytes = b"") -> bool:
    """True when ``prefix + data`` (checksum field included) sums to all ones.

    ``prefix`` is a pseudo-header or empty; both have even length, so their residues
    simply add. A non-empty message that sums to zero cannot verify: VRRP's first
    byte (version and type) is never zero.
    """
    if len(prefix) % 2:
        raise ValueError("a checksum prefix must have an even length")
    return (_residue(prefix) + _residue(data)) % _ONES == 0 and (any(data) or any(prefix))
