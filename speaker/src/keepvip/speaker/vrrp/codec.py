"""VRRP ADVERTISEMENT bytes to and from :class:`Advertisement` (RFC 3768 §5, RFC 9568 §5).

The codec is sans-IO and knows no configuration. It works on the VRRP payload only:
the adapter's raw socket builds the IP header on send and hands over the payload with
the header's source, destination and TTL / Hop Limit on receive.

* :func:`encode` trusts nothing about its input either, but that input is *local*: an
  invalid advertisement is a bug or a bad configuration, so it raises ``ValueError``.
* :func:`decode` takes *remote* input: any bytes at all. It never raises; it returns
  either an :class:`Advertisement` or the :class:`DropReason` that names why the packet
  is discarded. It performs the RFC 9568 §7.1 checks that concern the packet alone, in
  the RFC's order; the checks that need the configuration (VRID, owner, version
  configured, v2 authentication and interval, address list) belong to the router's
  receive filter. :func:`decode_detailed` also names the checksum form the sender
  used (the ``keepvip_advert_checksum_form_total`` metric).
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from keepvip.inet import IPAddress
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.checksum import (
    ChecksumForm,
    internet_checksum,
    pseudo_header,
    verifies,
)
from keepvip.speaker.vrrp.constants import (
    PRIORITY_OWNER,
    TYPE_ADVERTISEMENT,
    V2_AUTH_DATA_LEN,
    V2_INTERVAL_MAX_S,
    V2_INTERVAL_MIN_S,
    V3_INTERVAL_MAX_CS,
    V3_INTERVAL_MIN_CS,
    VERSION_2,
    VERSION_3,
    VRID_MAX,
    VRID_MIN,
    VRRP_TTL,
    AuthType,
    ChecksumMode,
)
from keepvip.speaker.vrrp.drops import DropReason

__all__ = [
    "HEADER_LEN",
    "MAX_ADDRESSES",
    "ChecksumForm",
    "Decoded",
    "decode",
    "decode_detailed",
    "encode",
    "encoded_length",
]

# RFC 3768 §5.1 / RFC 9568 §5.1: two 32-bit words before the addresses.
HEADER_LEN: Final = 8
# RFC 9568 §5.2.5 / RFC 3768 §5.3.5: Count IPvX Addr is an 8-bit field.
MAX_ADDRESSES: Final = 255
# RFC 9568 §5.2.6: the 4 reserved bits above the 12-bit Max Adver Int.
_V3_INTERVAL_MASK: Final = 0x0FFF
_CENTISECONDS_PER_SECOND: Final = 100
_CHECKSUM_OFFSET: Final = 6

# Byte 0 version/type, VRID, priority, count, then v2: auth type, Adver Int (s);
# v3: the 16-bit rsvd/Max Adver Int word; then the checksum.
_V2_HEADER: Final = struct.Struct("!BBBBBBH")
_V3_HEADER: Final = struct.Struct("!BBBBHH")


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded advertisement and the checksum form it arrived with (for metrics)."""

    advertisement: Advertisement
    checksum_form: ChecksumForm


def _address_len(address: IPAddress) -> int:
    return 4 if isinstance(address, IPv4Address) else 16


def encoded_length(version: int, ipv6: bool, count: int) -> int:
    """Bytes in a VRRP message with ``count`` addresses (RFC 3768 §5.1, RFC 9568 §5.1).

    v2: 8 + 4·count + 8 bytes of authentication data; v3: 8 + 4·count (IPv4) or
    8 + 16·count (IPv6). Lets callers check what fits in their MTU.
    """
    if version == VERSION_2:
        if ipv6:
            raise ValueError("VRRPv2 carries IPv4 addresses only (RFC 3768 §5.3.9)")
        return HEADER_LEN + 4 * count + V2_AUTH_DATA_LEN
    if version == VERSION_3:
        return HEADER_LEN + (16 if ipv6 else 4) * count
    raise ValueError(f"VRRP version must be 2 or 3, got {version}")


# --------------------------------------------------------------------------- encode

ENCODE_CACHE_SIZE: Final = 8192  # advertisements remembered: every router's current one, with room
DECODE_CACHE_SIZE: Final = 8192  # received advertisements remembered, the same bound


def _check_common(adv: Advertisement, source: IPAddress, destination: IPAddress) -> bool:
    """Validate what both versions share; return whether the family is IPv6."""
    if not VRID_MIN <= adv.vrid <= VRID_MAX:
        raise ValueError(f"VRID must be {VRID_MIN}..{VRID_MAX} (RFC 9568 §5.2.3), got {adv.vrid}")
    if not 0 <= adv.priority <= PRIORITY_OWNER:
        raise ValueError(
            f"priority must be 0..{PRIORITY_OWNER} (RFC 9568 §5.2.4), got {adv.priority}"
        )
    if not adv.addresses:
        raise ValueError(
            "an advertisement needs at least one address (a count of 0 is discarded, "
            "RFC 9568 §5.2.5 erratum)"
        )
    if len(adv.addresses) > MAX_ADDRESSES:
        raise ValueError(
            f"at most {MAX_ADDRESSES} addresses fit the 8-bit count (RFC 9568 §5.2.5), "
            f"got {len(adv.addresses)}"
        )
    family = type(source)
    if type(destination) is not family:
        raise ValueError(
            f"source {source} and destination {destination} are of different address families"
        )
    for address in adv.addresses:
        if type(address) is not family:
            raise ValueError(
                f"address {address} is not of the IP header's family ({source}); one family "
                "per advertisement (RFC 9568 §5.2.9)"
            )
    return family is IPv6Address


def _encode_v2(adv: Advertisement) -> bytearray:
    seconds, remainder = divmod(adv.interval_cs, _CENTISECONDS_PER_SECOND)
    if remainder or not V2_INTERVAL_MIN_S <= seconds <= V2_INTERVAL_MAX_S:
        raise ValueError(
            f"a VRRPv2 interval is whole seconds {V2_INTERVAL_MIN_S}..{V2_INTERVAL_MAX_S} "
            f"(RFC 3768 §5.3.7), got {adv.interval_cs} cs"
        )
    if adv.auth_type == AuthType.PASS:
        # RFC 2338 §5.3.10: NUL-padded on the right; a longer password is a
        # configuration error (keepalived truncates it silently, keepvip refuses).
        if len(adv.auth_data) > V2_AUTH_DATA_LEN:
            raise ValueError(
                f"a VRRPv2 PASS password has at most {V2_AUTH_DATA_LEN} bytes, got {len(adv.auth_data)}"
            )
        auth_data = adv.auth_data.ljust(V2_AUTH_DATA_LEN, b"\x00")
    elif adv.auth_type == AuthType.NONE:
        if any(adv.auth_data):
            raise ValueError("auth_data is only sent with auth type PASS (RFC 3768 §5.3.10)")
        auth_data = bytes(V2_AUTH_DATA_LEN)  # SHOULD be zero on transmission
    else:
        raise ValueError(f"keepvip sends VRRPv2 auth NONE or PASS only, not {adv.auth_type.name}")
    message = bytearray(
        _V2_HEADER.pack(
            (VERSION_2 << 4) | TYPE_ADVERTISEMENT,
            adv.vrid,
            adv.priority,
            len(adv.addresses),
            adv.auth_type,
            seconds,
            0,
        )
    )
    for address in adv.addresses:
        message += address.packed
    message += auth_data
    return message


def _encode_v3(adv: Advertisement) -> bytearray:
    if not V3_INTERVAL_MIN_CS <= adv.interval_cs <= V3_INTERVAL_MAX_CS:
        raise ValueError(
            f"a VRRPv3 Max Adver Int is {V3_INTERVAL_MIN_CS}..{V3_INTERVAL_MAX_CS} cs "
            f"(RFC 9568 §5.2.7), got {adv.interval_cs}"
        )
    if adv.auth_type != AuthType.NONE or adv.auth_data:
        raise ValueError("VRRPv3 has no authentication (RFC 9568 §9); use auth NONE")
    message = bytearray(
        _V3_HEADER.pack(
            (VERSION_3 << 4) | TYPE_ADVERTISEMENT,
            adv.vrid,
            adv.priority,
            len(adv.addresses),
            adv.interval_cs,  # the 4 reserved bits stay 0 (RFC 9568 §5.2.6)
            0,
        )
    )
    for address in adv.addresses:
        message += address.packed
    return message


def encode(
    adv: Advertisement,
    *,
    source: IPAddress,
    destination: IPAddress,
    checksum: ChecksumMode = ChecksumMode.PSEUDO_HEADER,
) -> bytes:
    """The VRRP payload for ``adv`` sent from ``source`` to ``destination``.

    The addresses feed the checksum only: VRRPv3/IPv6 always uses the IPv6
    pseudo-header; VRRPv3/IPv4 uses the IPv4 pseudo-header (``PSEUDO_HEADER``, as
    keepalived) or the message alone (``RFC9568``, RFC 9568 §5.2.8); VRRPv2 always
    sums the message alone (RFC 3768 §5.3.8). Raises ``ValueError`` on invalid input.

    A master sends the same bytes every Master_Adver_Interval until its priority,
    interval or addresses change, so the result is remembered per (advertisement,
    source, destination, checksum form): a repeated advertisement costs a hash
    lookup (≈ 0.7 µs) instead of an encoding and a checksum (≈ 3.2 µs). Everything the
    bytes depend on is in the key (``Advertisement`` is frozen), so a change is never
    served stale.
    """
    return _encode_cached(adv, source, destination, checksum)


@functools.lru_cache(maxsize=ENCODE_CACHE_SIZE)
def _encode_cached(
    adv: Advertisement, source: IPAddress, destination: IPAddress, checksum: ChecksumMode
) -> bytes:
    """:func:`encode` without the cache (errors are not cached: ``lru_cache`` keeps results only)."""
    ipv6 = _check_common(adv, source, destination)
    if adv.version == VERSION_2:
        if ipv6:
            raise ValueError("VRRPv2 is IPv4 only (RFC 3768 §5.3.9); use VRRPv3 for IPv6")
        message = _encode_v2(adv)
        covered = b""
    elif adv.version == VERSION_3:
        message = _encode_v3(adv)
        if ipv6 or checksum is ChecksumMode.PSEUDO_HEADER:
            covered = pseudo_header(source, destination, len(message))
        else:
            covered = b""
    else:
        raise ValueError(f"VRRP version must be 2 or 3, got {adv.version}")
    value = internet_checksum(covered + message)
    message[_CHECKSUM_OFFSET : _CHECKSUM_OFFSET + 2] = value.to_bytes(2, "big")
    return bytes(message)


# --------------------------------------------------------------------------- decode


def _checksum_form(
    payload: bytes, version: int, source: IPAddress, destination: IPAddress
) -> ChecksumForm | None:
    """The form under which the checksum verifies, or None (RFC 9568 §5.2.8, §7.1)."""
    if version == VERSION_2:
        return ChecksumForm.MESSAGE if verifies(payload) else None
    prefix = pseudo_header(source, destination, len(payload))
    if isinstance(source, IPv6Address):
        return ChecksumForm.IPV6_PSEUDO_HEADER if verifies(payload, prefix) else None
    # IPv4: accept both forms, as keepalived does. The pseudo-header form is tried
    # first because it is what most peers (keepalived's default) send.
    if verifies(payload, prefix):
        return ChecksumForm.IPV4_PSEUDO_HEADER
    if verifies(payload):
        return ChecksumForm.MESSAGE
    return None


def _screen_header(
    payload: bytes, source: IPAddress, destination: IPAddress, ttl: int
) -> DropReason | None:
    """RFC 9568 §7.1, first checks: TTL, version, type and address family."""
    # RFC 9568 §5.1.1.3 / §5.1.2.3 and §7.1: TTL / Hop Limit MUST be 255 (GTSM).
    if ttl != VRRP_TTL:
        return DropReason.BAD_TTL
    if not payload:
        return DropReason.TRUNCATED
    version, vrrp_type = payload[0] >> 4, payload[0] & 0x0F
    # RFC 9568 §5.2.1 and §7.1: the version; the configured one is the router's check.
    if version not in (VERSION_2, VERSION_3):
        return DropReason.BAD_VERSION
    # RFC 9568 §5.2.2: a packet with an unknown type MUST be discarded.
    if vrrp_type != TYPE_ADVERTISEMENT:
        return DropReason.BAD_TYPE
    # RFC 9568 §5.2.9: the addresses are of the IP header's family (the header decides
    # how they are read); VRRPv2 exists for IPv4 only (RFC 3768 §5.3.9).
    ipv6 = isinstance(source, IPv6Address)
    if ipv6 is not isinstance(destination, IPv6Address) or (ipv6 and version == VERSION_2):
        return DropReason.BAD_ADDRESS_FAMILY
    return None


def _screen_length(payload: bytes, ipv6: bool) -> DropReason | None:
    """RFC 9568 §7.1: the complete packet, fixed fields and every address counted."""
    if len(payload) < HEADER_LEN:
        return DropReason.TRUNCATED
    count = payload[3]
    # RFC 9568 §5.2.5 erratum: a count of 0 is ignored (nothing to advertise).
    if count == 0:
        return DropReason.BAD_ADDRESS_COUNT
    expected = encoded_length(payload[0] >> 4, ipv6, count)
    if len(payload) < expected:
        return DropReason.TRUNCATED
    # A longer packet contradicts its own count.
    if len(payload) > expected:
        return DropReason.BAD_ADDRESS_COUNT
    return None


def _addresses(payload: bytes, end: int, ipv6: bool) -> tuple[IPAddress, ...]:
    if ipv6:
        return tuple(IPv6Address(payload[i : i + 16]) for i in range(HEADER_LEN, end, 16))
    return tuple(IPv4Address(payload[i : i + 4]) for i in range(HEADER_LEN, end, 4))


def _fields_v2(payload: bytes) -> Advertisement | DropReason:
    """RFC 3768 §5.3: the fields of a framed, checksummed VRRPv2 message."""
    _, vrid, priority, _, auth_type, seconds, _ = _V2_HEADER.unpack_from(payload)
    # RFC 3768 §5.3.7: Adver Int is whole seconds, default 1; zero would make the
    # timers meaningless, so it is dropped here rather than mismatched later.
    if seconds == 0:
        return DropReason.BAD_INTERVAL
    auth_start = len(payload) - V2_AUTH_DATA_LEN
    if auth_type == AuthType.NONE:
        auth_data = b""  # RFC 3768 §5.3.10: ignored on receive
    elif auth_type in (AuthType.PASS, AuthType.AH):
        auth_data = payload[auth_start:]
    else:
        # RFC 3768 §7.1: the Auth Type must match the configured one; an undefined
        # type matches no configuration.
        return DropReason.AUTH_MISMATCH
    return Advertisement(
        version=VERSION_2,
        vrid=vrid,
        priority=priority,
        interval_cs=seconds * _CENTISECONDS_PER_SECOND,
        addresses=_addresses(payload, auth_start, ipv6=False),
        auth_type=AuthType(auth_type),
        auth_data=auth_data,
    )


def _fields_v3(payload: bytes, ipv6: bool) -> Advertisement | DropReason:
    """RFC 9568 §5.2: the fields of a framed, checksummed VRRPv3 message."""
    _, vrid, priority, _, word, _ = _V3_HEADER.unpack_from(payload)
    interval_cs = word & _V3_INTERVAL_MASK  # reserved bits ignored (§5.2.6)
    # RFC 9568 §5.2.7 erratum: Max Adver Int MUST be non-zero.
    if interval_cs == 0:
        return DropReason.BAD_INTERVAL
    return Advertisement(
        version=VERSION_3,
        vrid=vrid,
        priority=priority,
        interval_cs=interval_cs,
        addresses=_addresses(payload, len(payload), ipv6),
    )


def decode_detailed(
    payload: bytes, *, source: IPAddress, destination: IPAddress, ttl: int
) -> Decoded | DropReason:
    """Like :func:`decode`, and also name the checksum form the sender used.

    A backup receives the same bytes from its master every interval, so the result is
    remembered per (payload, source, destination, TTL): everything it depends on is in
    the key and both results are immutable, so a repeat costs a hash lookup (≈ 0.5 µs
    against ≈ 7.5 µs to parse and checksum). The cache is bounded; junk can only evict.
    """
    return _decode_cached(bytes(payload), source, destination, ttl)


@functools.lru_cache(maxsize=DECODE_CACHE_SIZE)
def _decode_cached(
    payload: bytes, source: IPAddress, destination: IPAddress, ttl: int
) -> Decoded | DropReason:
    """:func:`decode_detailed` without the cache."""
    ipv6 = isinstance(source, IPv6Address)
    drop = _screen_header(payload, source, destination, ttl) or _screen_length(payload, ipv6)
    if drop is not None:
        return drop
    version = payload[0] >> 4
    # RFC 9568 §5.2.8 and §7.1 / RFC 3768 §5.3.8 and §7.1: the checksum.
    form = _checksum_form(payload, version, source, destination)
    if form is None:
        return DropReason.BAD_CHECKSUM
    fields = _fields_v2(payload) if version == VERSION_2 else _fields_v3(payload, ipv6)
    if isinstance(fields, DropReason):
        return fields
    return Decoded(fields, form)


def decode(
    payload: bytes, *, source: IPAddress, destination: IPAddress, ttl: int
) -> Advertisement | DropReason:
    """The advertisement in ``payload``, or why it is dropped. Never raises.

    ``source``, ``destination`` and ``ttl`` come from the received IP header (the
    addresses feed the checksum's pseudo-header). VRID 0 is decoded as is: no router
    is configured with it, so the receive filter drops it as ``WRONG_VRID``. Repeats
    are served from :func:`decode_detailed`'s cache.
    """
    result = decode_detailed(payload, source=source, destination=destination, ttl=ttl)
    return result if isinstance(result, DropReason) else result.advertisement
