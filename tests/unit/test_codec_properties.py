"""Properties of the codec over generated input (hypothesis).

Decoding faces the network, so it is held to "never raises, whatever the bytes";
encoding and decoding are inverse on every valid advertisement; and damage to a valid
packet (truncation, extension, a flipped bit) is always noticed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from keepvip.speaker.vrrp.advertisement import Advertisement, IPAddress
from keepvip.speaker.vrrp.checksum import ChecksumForm, internet_checksum
from keepvip.speaker.vrrp.codec import decode, decode_detailed, encode
from keepvip.speaker.vrrp.constants import AuthType, ChecksumMode
from keepvip.speaker.vrrp.drops import DropReason


def _padded(password: bytes) -> bytes:
    """The 8-byte v2 Authentication Data field as it travels (RFC 3768 §5.3.10)."""
    return password.ljust(8, b"\x00")

LAN4 = IPv4Network("198.18.0.0/15")
LAN6 = IPv6Network("2001:db8::/32")
LINK_LOCAL = IPv6Network("fe80::/64")
GROUP4 = IPv4Address("224.0.0.18")
GROUP6 = IPv6Address("ff02::12")


@dataclass(frozen=True)
class Sent:
    """An advertisement, its IP header addresses and the v3/IPv4 checksum mode."""

    adv: Advertisement
    source: IPAddress
    destination: IPAddress
    mode: ChecksumMode

    def payload(self) -> bytes:
        return encode(
            self.adv, source=self.source, destination=self.destination, checksum=self.mode
        )


def ref_residue(data: bytes) -> int:
    """The one's-complement sum of 16-bit words, word by word (RFC 1071 §4.1)."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


ipv4s = st.ip_addresses(network=LAN4)
ipv6s = st.ip_addresses(network=LAN6) | st.ip_addresses(network=LINK_LOCAL)


@st.composite
def sent_advertisements(draw: st.DrawFn) -> Sent:
    version = draw(st.sampled_from([2, 3]))
    ipv6 = version == 3 and draw(st.booleans())
    addresses = st.lists(ipv6s if ipv6 else ipv4s, min_size=1, max_size=255 if not ipv6 else 90)
    common = {
        "version": version,
        "vrid": draw(st.integers(1, 255)),
        "priority": draw(st.integers(0, 255)),
        "addresses": tuple(draw(addresses)),
    }
    source: IPAddress
    destination: IPAddress
    if ipv6:
        source = draw(st.ip_addresses(network=LINK_LOCAL))
        destination = draw(st.just(GROUP6) | st.ip_addresses(network=LINK_LOCAL))
    else:
        source = draw(ipv4s)
        destination = draw(st.just(GROUP4) | ipv4s)
    if version == 3:
        adv = Advertisement(interval_cs=draw(st.integers(1, 4095)), **common)  # type: ignore[arg-type]
    else:
        auth_type = draw(st.sampled_from([AuthType.NONE, AuthType.PASS]))
        password = draw(st.binary(max_size=8))
        adv = Advertisement(
            interval_cs=100 * draw(st.integers(1, 255)),
            auth_type=auth_type,
            auth_data=_padded(password) if auth_type is AuthType.PASS else b"",
            **common,  # type: ignore[arg-type]
        )
    return Sent(adv, source, destination, draw(st.sampled_from(ChecksumMode)))


any_source = st.ip_addresses(v=4) | st.ip_addresses(v=6)


@settings(max_examples=200, deadline=None)
@given(sent_advertisements())
def test_decode_inverts_encode_for_every_valid_advertisement(sent: Sent) -> None:
    result = decode_detailed(
        sent.payload(), source=sent.source, destination=sent.destination, ttl=255
    )
    assert not isinstance(result, DropReason)
    assert result.advertisement == sent.adv
    if sent.adv.version == 2:
        assert result.checksum_form is ChecksumForm.MESSAGE
    elif isinstance(sent.source, IPv6Address):
        assert result.checksum_form is ChecksumForm.IPV6_PSEUDO_HEADER
    elif sent.mode is ChecksumMode.PSEUDO_HEADER:
        assert result.checksum_form is ChecksumForm.IPV4_PSEUDO_HEADER
    elif pseudo4_residue(sent, len(sent.payload())) == 0:
        # A pseudo-header summing to zero makes both forms one; decode names the first.
        assert result.checksum_form is ChecksumForm.IPV4_PSEUDO_HEADER
    else:
        assert result.checksum_form is ChecksumForm.MESSAGE


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=600),
    source=any_source,
    destination=any_source,
    ttl=st.integers(-1, 300),
)
def test_decode_never_raises_on_arbitrary_bytes(
    payload: bytes, source: IPAddress, destination: IPAddress, ttl: int
) -> None:
    result = decode(payload, source=source, destination=destination, ttl=ttl)
    assert isinstance(result, Advertisement | DropReason)


@st.composite
def checksummed_garbage(draw: st.DrawFn) -> tuple[bytes, IPAddress, IPAddress]:
    """Random VRRP-ish bytes with a checksum valid for their form: reaches every field check."""
    ipv6 = draw(st.booleans())
    source: IPAddress = draw(ipv6s if ipv6 else ipv4s)
    destination: IPAddress = GROUP6 if ipv6 else GROUP4
    version_type = draw(st.sampled_from([0x21, 0x31]) | st.integers(0, 255))
    count = draw(st.integers(0, 255) | st.integers(0, 4))
    width = 16 if ipv6 else 4
    body_len = count * width + (8 if version_type >> 4 == 2 else 0)
    body = draw(st.binary(min_size=body_len, max_size=body_len) | st.binary(max_size=80))
    fields = draw(st.binary(min_size=4, max_size=4))
    message = bytes((version_type, fields[0], fields[1], count)) + fields[2:] + b"\0\0" + body
    prefix = b""
    if draw(st.booleans()):
        if isinstance(source, IPv4Address):
            prefix = source.packed + GROUP4.packed + struct.pack("!BBH", 0, 112, len(message))
        else:
            prefix = source.packed + GROUP6.packed + struct.pack("!IxxxB", len(message), 112)
    value = ~ref_residue(prefix + message) & 0xFFFF
    return message[:6] + struct.pack("!H", value) + message[8:], source, destination


@settings(max_examples=300, deadline=None)
@given(checksummed_garbage())
def test_decode_never_raises_on_checksummed_garbage(
    packet: tuple[bytes, IPAddress, IPAddress],
) -> None:
    payload, source, destination = packet
    result = decode(payload, source=source, destination=destination, ttl=255)
    assert isinstance(result, Advertisement | DropReason)
    if isinstance(result, Advertisement):
        # Whatever got through carries exactly the header's fields.
        assert (result.version, result.vrid, result.priority) == (
            payload[0] >> 4,
            payload[1],
            payload[2],
        )
        assert len(result.addresses) == payload[3] > 0
        assert result.interval_cs >= 1


@settings(max_examples=150, deadline=None)
@given(sent=sent_advertisements(), data=st.data())
def test_every_truncation_of_a_valid_packet_is_dropped_as_truncated(
    sent: Sent, data: st.DataObject
) -> None:
    payload = sent.payload()
    cut = data.draw(st.integers(0, len(payload) - 1))
    result = decode(payload[:cut], source=sent.source, destination=sent.destination, ttl=255)
    assert result is DropReason.TRUNCATED


@settings(max_examples=100, deadline=None)
@given(sent=sent_advertisements(), extra=st.binary(min_size=1, max_size=32))
def test_bytes_after_the_counted_addresses_are_dropped(sent: Sent, extra: bytes) -> None:
    result = decode(
        sent.payload() + extra, source=sent.source, destination=sent.destination, ttl=255
    )
    assert result is DropReason.BAD_ADDRESS_COUNT


def pseudo4_residue(sent: Sent, length: int) -> int:
    """The IPv4 pseudo-header's one's-complement sum, modulo 0xFFFF."""
    prefix = sent.source.packed + sent.destination.packed + struct.pack("!BBH", 0, 112, length)
    return ref_residue(prefix) % 0xFFFF


def pseudo_header_sum_is_one_bit(sent: Sent, length: int) -> bool:
    """Whether the IPv4 pseudo-header's sum is ±2**k (mod 0xFFFF).

    Then, and only then, a single flipped bit can turn a packet valid in one v3/IPv4
    checksum form into one valid in the other: accepting both forms (as keepalived
    does) costs this much error detection.
    """
    residue = pseudo4_residue(sent, length)
    powers = {1 << k for k in range(16)}
    return residue in powers or (0xFFFF - residue) in powers


@settings(max_examples=200, deadline=None)
@given(sent=sent_advertisements(), data=st.data())
def test_a_single_flipped_bit_in_a_valid_packet_is_dropped(
    sent: Sent, data: st.DataObject
) -> None:
    payload = bytearray(sent.payload())
    if sent.adv.version == 3 and isinstance(sent.source, IPv4Address):
        assume(not pseudo_header_sum_is_one_bit(sent, len(payload)))
    bit = data.draw(st.integers(0, 8 * len(payload) - 1))
    payload[bit // 8] ^= 0x80 >> (bit % 8)
    result = decode(bytes(payload), source=sent.source, destination=sent.destination, ttl=255)
    assert isinstance(result, DropReason)


def test_a_flipped_bit_can_pass_as_the_other_v3_ipv4_checksum_form() -> None:
    # The price of accepting both forms, shown on one packet: from 198.18.217.94 to
    # 224.0.0.18 the pseudo-header sums to 0x8000, so setting the top bit of the
    # priority byte turns a valid pseudo-header-form packet into a valid
    # message-only-form packet with priority 100 + 128.
    source = IPv4Address("198.18.217.94")
    sent = Sent(
        Advertisement(3, 51, 100, 100, (IPv4Address("198.18.0.100"),)),
        source,
        GROUP4,
        ChecksumMode.PSEUDO_HEADER,
    )
    assert pseudo_header_sum_is_one_bit(sent, 12)
    payload = bytearray(sent.payload())
    payload[2] ^= 0x80
    result = decode_detailed(bytes(payload), source=source, destination=GROUP4, ttl=255)
    assert not isinstance(result, DropReason)
    assert result.advertisement.priority == 228
    assert result.checksum_form is ChecksumForm.MESSAGE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
@example(b"")
@example(b"\xff\xff")
@example(b"\x00\x00")
def test_internet_checksum_equals_the_word_by_word_algorithm(data: bytes) -> None:
    assert internet_checksum(data) == ~ref_residue(data) & 0xFFFF
