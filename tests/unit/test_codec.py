"""The VRRP codec, rule by rule (RFC 3768 §5 and §7.1, RFC 9568 §5 and §7.1).

Packets here are built by hand from the RFC layouts with ``struct`` and checksummed by
the textbook RFC 1071 word loop below, independently of the codec's own arithmetic.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest

from keepvip.speaker.vrrp import codec
from keepvip.speaker.vrrp.advertisement import Advertisement, IPAddress
from keepvip.speaker.vrrp.checksum import ChecksumForm, internet_checksum, pseudo_header
from keepvip.speaker.vrrp.codec import (
    MAX_ADDRESSES,
    decode,
    decode_detailed,
    encode,
    encoded_length,
)
from keepvip.speaker.vrrp.constants import AuthType, ChecksumMode
from keepvip.speaker.vrrp.drops import DropReason

SRC4 = IPv4Address("198.18.0.1")
GROUP4 = IPv4Address("224.0.0.18")
PEER4 = IPv4Address("198.18.0.2")
VIP4 = IPv4Address("198.18.0.100")
SRC6 = IPv6Address("fe80::1")
GROUP6 = IPv6Address("ff02::12")
VIP6 = IPv6Address("2001:db8::100")


def ref_checksum(data: bytes) -> int:
    """RFC 1071 §4.1, word by word with end-around carry: the reference algorithm."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ref_pseudo4(src: IPv4Address, dst: IPv4Address, length: int) -> bytes:
    return src.packed + dst.packed + struct.pack("!BBH", 0, 112, length)


def ref_pseudo6(src: IPv6Address, dst: IPv6Address, length: int) -> bytes:
    return src.packed + dst.packed + struct.pack("!IxxxB", length, 112)


def with_checksum(message: bytes, prefix: bytes = b"") -> bytes:
    """``message`` with its checksum field (bytes 6..7) set over ``prefix + message``."""
    zeroed = message[:6] + b"\x00\x00" + message[8:]
    value = ref_checksum(prefix + zeroed)
    return zeroed[:6] + struct.pack("!H", value) + zeroed[8:]


def raw_v2(
    *,
    vrid: int = 51,
    priority: int = 100,
    seconds: int = 1,
    addresses: tuple[IPv4Address, ...] = (VIP4,),
    auth_type: int = 0,
    auth_data: bytes = bytes(8),
    version_type: int = 0x21,
    count: int | None = None,
) -> bytes:
    """A VRRPv2 message (RFC 3768 §5.1) with a correct message-only checksum."""
    n = len(addresses) if count is None else count
    header = struct.pack("!BBBBBBH", version_type, vrid, priority, n, auth_type, seconds, 0)
    body = b"".join(a.packed for a in addresses) + auth_data
    return with_checksum(header + body)


def raw_v3(
    *,
    vrid: int = 51,
    priority: int = 100,
    word: int = 100,
    addresses: tuple[IPAddress, ...] = (VIP4,),
    src: IPAddress = SRC4,
    dst: IPAddress = GROUP4,
    pseudo: bool = True,
    version_type: int = 0x31,
) -> bytes:
    """A VRRPv3 message (RFC 9568 §5.1); ``word`` is rsvd(4) + Max Adver Int(12)."""
    header = struct.pack("!BBBBHH", version_type, vrid, priority, len(addresses), word, 0)
    message = header + b"".join(a.packed for a in addresses)
    if not pseudo:
        return with_checksum(message)
    if isinstance(src, IPv6Address) and isinstance(dst, IPv6Address):
        return with_checksum(message, ref_pseudo6(src, dst, len(message)))
    assert isinstance(src, IPv4Address)
    assert isinstance(dst, IPv4Address)
    return with_checksum(message, ref_pseudo4(src, dst, len(message)))


def adv_v2(**changes: object) -> Advertisement:
    fields: dict[str, object] = {
        "version": 2,
        "vrid": 51,
        "priority": 100,
        "interval_cs": 100,
        "addresses": (VIP4,),
    }
    fields.update(changes)
    return Advertisement(**fields)  # type: ignore[arg-type]


def adv_v3(**changes: object) -> Advertisement:
    fields: dict[str, object] = {
        "version": 3,
        "vrid": 51,
        "priority": 100,
        "interval_cs": 100,
        "addresses": (VIP4,),
    }
    fields.update(changes)
    return Advertisement(**fields)  # type: ignore[arg-type]


def decode4(payload: bytes, ttl: int = 255) -> Advertisement | DropReason:
    return decode(payload, source=SRC4, destination=GROUP4, ttl=ttl)


def decode6(payload: bytes, ttl: int = 255) -> Advertisement | DropReason:
    return decode(payload, source=SRC6, destination=GROUP6, ttl=ttl)


# ------------------------------------------------------------ the checksum itself


def test_internet_checksum_matches_the_rfc1071_worked_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is 220d.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


def test_internet_checksum_pads_an_odd_length_with_a_zero_byte() -> None:
    assert internet_checksum(b"\x12") == ref_checksum(b"\x12\x00") == 0xEDFF


def test_internet_checksum_of_data_summing_to_all_ones_is_zero_not_ffff() -> None:
    assert internet_checksum(b"\xff\xff") == 0
    assert internet_checksum(b"\x80\x00\x7f\xff") == 0


def test_pseudo_headers_follow_the_ipv4_and_rfc8200_layouts() -> None:
    assert pseudo_header(SRC4, GROUP4, 12) == ref_pseudo4(SRC4, GROUP4, 12)
    assert pseudo_header(SRC6, GROUP6, 24) == ref_pseudo6(SRC6, GROUP6, 24)
    assert len(pseudo_header(SRC6, GROUP6, 24)) == 40


def test_pseudo_header_refuses_mixed_families() -> None:
    with pytest.raises(ValueError, match="one family"):
        pseudo_header(SRC4, GROUP6, 12)


# ------------------------------------------------------------ encode: known answers


def test_v2_encode_matches_the_hand_computed_known_answer() -> None:
    # 21 33 64 01 | 00 01 cksum | c6 12 00 64 | 8 zero bytes of auth data.
    # Words 2133+6401+0001+c612+0064 = 4bac (end-around carry); ~4bac = b453.
    expected = bytes.fromhex("21336401" "0001b453" "c6120064" "0000000000000000")
    assert encode(adv_v2(), source=SRC4, destination=GROUP4) == expected


def test_v3_ipv4_pseudo_header_encode_matches_the_hand_computed_known_answer() -> None:
    # Pseudo-header c612 0001 e000 0012 0070 000c sums to a6a2; the message 3133 6401
    # 0064 0000 c612 0064 to 5c0f; a6a2+5c0f = 02b2 after the carry; ~02b2 = fd4d.
    expected = bytes.fromhex("31336401" "0064fd4d" "c6120064")
    assert encode(adv_v3(), source=SRC4, destination=GROUP4) == expected


def test_v3_ipv4_rfc9568_encode_sums_the_message_alone() -> None:
    # RFC 9568 §5.2.8: only the VRRP message; ~5c0f = a3f0.
    expected = bytes.fromhex("31336401" "0064a3f0" "c6120064")
    payload = encode(adv_v3(), source=SRC4, destination=GROUP4, checksum=ChecksumMode.RFC9568)
    assert payload == expected


def test_v3_ipv6_encode_includes_the_ipv6_pseudo_header() -> None:
    adv = adv_v3(addresses=(SRC6, VIP6))
    expected = raw_v3(addresses=(SRC6, VIP6), src=SRC6, dst=GROUP6)
    assert encode(adv, source=SRC6, destination=GROUP6) == expected
    assert len(expected) == 8 + 2 * 16


def test_v3_ipv6_uses_the_pseudo_header_whatever_the_ipv4_checksum_mode() -> None:
    adv = adv_v3(addresses=(VIP6,))
    plain = encode(adv, source=SRC6, destination=GROUP6, checksum=ChecksumMode.RFC9568)
    assert plain == encode(adv, source=SRC6, destination=GROUP6)


def test_v2_checksum_never_includes_a_pseudo_header() -> None:
    for mode in ChecksumMode:
        payload = encode(adv_v2(), source=SRC4, destination=GROUP4, checksum=mode)
        assert payload == raw_v2()


def test_v3_pseudo_header_uses_the_actual_unicast_destination() -> None:
    # keepalived >= 1.3.6: the real destination, not the multicast group.
    payload = encode(adv_v3(), source=SRC4, destination=PEER4)
    assert payload == raw_v3(dst=PEER4)
    assert payload != encode(adv_v3(), source=SRC4, destination=GROUP4)


def test_v2_pass_password_is_sent_nul_padded_to_eight_bytes() -> None:
    adv = adv_v2(auth_type=AuthType.PASS, auth_data=b"secret")
    payload = encode(adv, source=SRC4, destination=GROUP4)
    assert payload[4] == AuthType.PASS
    assert payload[-8:] == b"secret\x00\x00"
    assert payload == raw_v2(auth_type=1, auth_data=b"secret\x00\x00")


def test_v2_auth_none_sends_zero_authentication_data() -> None:
    assert encode(adv_v2(), source=SRC4, destination=GROUP4)[-8:] == bytes(8)


def test_v2_interval_is_sent_as_whole_seconds() -> None:
    payload = encode(adv_v2(interval_cs=300), source=SRC4, destination=GROUP4)
    assert payload[5] == 3


def test_v3_interval_fills_twelve_bits_and_the_reserved_bits_are_zero() -> None:
    payload = encode(adv_v3(interval_cs=4095), source=SRC4, destination=GROUP4)
    assert payload[4:6] == b"\x0f\xff"


def test_encode_writes_version_type_vrid_priority_and_count() -> None:
    adv = adv_v3(vrid=255, priority=0, addresses=(VIP4, PEER4))
    payload = encode(adv, source=SRC4, destination=GROUP4)
    assert payload[:4] == bytes((0x31, 255, 0, 2))
    assert payload[8:] == VIP4.packed + PEER4.packed


def test_encoded_length_per_version_and_family() -> None:
    assert encoded_length(2, False, 3) == 8 + 12 + 8
    assert encoded_length(3, False, 3) == 8 + 12
    assert encoded_length(3, True, 3) == 8 + 48
    # what fits a 1500-byte MTU: all 255 IPv4 addresses, 90 IPv6 ones.
    assert 20 + encoded_length(2, False, MAX_ADDRESSES) <= 1500
    assert 40 + encoded_length(3, True, 90) <= 1500 < 40 + encoded_length(3, True, 91)


def test_encoded_length_refuses_v2_over_ipv6_and_unknown_versions() -> None:
    with pytest.raises(ValueError, match="IPv4"):
        encoded_length(2, True, 1)
    with pytest.raises(ValueError, match="version"):
        encoded_length(4, False, 1)


# ------------------------------------------------------------ encode: local errors

INVALID_LOCAL = [
    pytest.param(adv_v2(addresses=(VIP6,)), SRC6, GROUP6, "IPv4 only", id="v2-over-ipv6"),
    pytest.param(adv_v2(interval_cs=150), SRC4, GROUP4, "whole seconds", id="v2-fraction"),
    pytest.param(adv_v2(interval_cs=0), SRC4, GROUP4, "whole seconds", id="v2-interval-0"),
    pytest.param(adv_v2(interval_cs=25600), SRC4, GROUP4, "whole seconds", id="v2-256s"),
    pytest.param(adv_v3(interval_cs=0), SRC4, GROUP4, "Max Adver Int", id="v3-interval-0"),
    pytest.param(adv_v3(interval_cs=4096), SRC4, GROUP4, "Max Adver Int", id="v3-4096cs"),
    pytest.param(adv_v3(vrid=0), SRC4, GROUP4, "VRID", id="vrid-0"),
    pytest.param(adv_v3(vrid=256), SRC4, GROUP4, "VRID", id="vrid-256"),
    pytest.param(adv_v3(priority=-1), SRC4, GROUP4, "priority", id="priority-negative"),
    pytest.param(adv_v3(priority=256), SRC4, GROUP4, "priority", id="priority-256"),
    pytest.param(adv_v3(addresses=()), SRC4, GROUP4, "at least one", id="no-address"),
    pytest.param(
        adv_v3(addresses=tuple(IPv4Address(0xC6120000 + i) for i in range(256))),
        SRC4,
        GROUP4,
        "8-bit count",
        id="256-addresses",
    ),
    pytest.param(adv_v3(addresses=(VIP4, VIP6)), SRC4, GROUP4, "one family", id="mixed"),
    pytest.param(adv_v3(addresses=(VIP6,)), SRC4, GROUP4, "one family", id="v6-in-v4"),
    pytest.param(adv_v3(), SRC4, GROUP6, "different address families", id="src-dst-mixed"),
    pytest.param(
        adv_v3(auth_type=AuthType.PASS, auth_data=b"x"), SRC4, GROUP4, "no auth", id="v3-auth"
    ),
    pytest.param(adv_v2(auth_type=AuthType.AH), SRC4, GROUP4, "NONE or PASS", id="v2-ah"),
    pytest.param(
        adv_v2(auth_type=AuthType.PASS, auth_data=b"123456789"),
        SRC4,
        GROUP4,
        "at most 8",
        id="v2-long-password",
    ),
    pytest.param(
        adv_v2(auth_data=b"secret"), SRC4, GROUP4, "only sent with auth type PASS", id="v2-none"
    ),
    pytest.param(adv_v3(version=4), SRC4, GROUP4, "version", id="version-4"),
]


@pytest.mark.parametrize(("adv", "source", "destination", "message"), INVALID_LOCAL)
def test_encode_rejects_invalid_local_input_with_a_clear_message(
    adv: Advertisement, source: IPAddress, destination: IPAddress, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode(adv, source=source, destination=destination)


def test_encode_accepts_the_boundary_values() -> None:
    for adv in (
        adv_v3(vrid=1, priority=0, interval_cs=1),
        adv_v3(vrid=255, priority=255, interval_cs=4095),
        adv_v2(interval_cs=25500, auth_type=AuthType.PASS, auth_data=b"12345678"),
        adv_v3(addresses=tuple(IPv4Address(0xC6120000 + i) for i in range(255))),
    ):
        assert decode4(encode(adv, source=SRC4, destination=GROUP4)) == adv


def test_encode_pads_a_v2_password_to_eight_bytes_and_refuses_a_longer_one() -> None:
    adv = adv_v2(auth_type=AuthType.PASS, auth_data=b"abc")
    assert encode(adv, source=SRC4, destination=GROUP4)[-8:] == b"abc" + bytes(5)
    with pytest.raises(ValueError, match="at most 8"):
        encode(adv_v2(auth_type=AuthType.PASS, auth_data=b"123456789"), source=SRC4, destination=GROUP4)


# ------------------------------------------------------------ decode: known answers


def test_decodes_a_hand_built_v2_advertisement() -> None:
    payload = bytes.fromhex("21336401" "0001b453" "c6120064" "0000000000000000")
    assert decode4(payload) == adv_v2()


def test_decodes_a_hand_built_v2_pass_advertisement_keeping_the_eight_byte_field() -> None:
    payload = raw_v2(auth_type=1, auth_data=b"secret\x00\x00", seconds=3, priority=255)
    assert decode4(payload) == adv_v2(
        auth_type=AuthType.PASS, auth_data=b"secret\x00\x00", interval_cs=300, priority=255
    )


def test_decodes_a_hand_built_v3_ipv6_advertisement() -> None:
    payload = raw_v3(addresses=(SRC6, VIP6), src=SRC6, dst=GROUP6, word=25, vrid=7)
    assert decode6(payload) == adv_v3(addresses=(SRC6, VIP6), interval_cs=25, vrid=7)


def test_v3_ipv4_accepts_the_pseudo_header_form_and_says_so() -> None:
    result = decode_detailed(raw_v3(), source=SRC4, destination=GROUP4, ttl=255)
    assert not isinstance(result, DropReason)
    assert result.advertisement == adv_v3()
    assert result.checksum_form is ChecksumForm.IPV4_PSEUDO_HEADER


def test_v3_ipv4_accepts_the_rfc9568_message_only_form_and_says_so() -> None:
    result = decode_detailed(raw_v3(pseudo=False), source=SRC4, destination=GROUP4, ttl=255)
    assert not isinstance(result, DropReason)
    assert result.advertisement == adv_v3()
    assert result.checksum_form is ChecksumForm.MESSAGE


def test_v2_and_v3_ipv6_report_their_only_checksum_form() -> None:
    v2 = decode_detailed(raw_v2(), source=SRC4, destination=GROUP4, ttl=255)
    v6 = decode_detailed(
        raw_v3(addresses=(VIP6,), src=SRC6, dst=GROUP6), source=SRC6, destination=GROUP6, ttl=255
    )
    assert not isinstance(v2, DropReason)
    assert not isinstance(v6, DropReason)
    assert v2.checksum_form is ChecksumForm.MESSAGE
    assert v6.checksum_form is ChecksumForm.IPV6_PSEUDO_HEADER


def test_v3_reserved_bits_are_ignored_on_receive() -> None:
    assert decode4(raw_v3(word=0xF000 | 100)) == adv_v3()


def test_v2_authentication_data_is_ignored_when_auth_type_is_none() -> None:
    assert decode4(raw_v2(auth_data=b"garbage!")) == adv_v2()


def test_v2_ah_is_decoded_so_the_auth_check_can_reject_it() -> None:
    result = decode4(raw_v2(auth_type=2, auth_data=b"ahdata!!"))
    assert isinstance(result, Advertisement)
    assert result.auth_type is AuthType.AH


def test_priority_zero_and_owner_priority_are_decoded_as_sent() -> None:
    for priority in (0, 255):
        assert decode4(raw_v3(priority=priority)) == adv_v3(priority=priority)


def test_vrid_zero_is_decoded_and_left_to_the_receive_filter() -> None:
    # No router is configured with VRID 0, so the router drops it as WRONG_VRID.
    result = decode4(raw_v3(vrid=0))
    assert isinstance(result, Advertisement)
    assert result.vrid == 0


# ------------------------------------------------------------ decode: drops


@pytest.mark.parametrize("ttl", [0, 1, 64, 128, 254, 256])
def test_ttl_or_hop_limit_other_than_255_is_dropped(ttl: int) -> None:
    assert decode4(raw_v3(), ttl=ttl) is DropReason.BAD_TTL
    v6 = raw_v3(addresses=(VIP6,), src=SRC6, dst=GROUP6)
    assert decode6(v6, ttl=ttl) is DropReason.BAD_TTL


def test_ttl_is_checked_before_anything_else() -> None:
    assert decode4(b"", ttl=1) is DropReason.BAD_TTL
    assert decode4(b"\xff" * 3, ttl=64) is DropReason.BAD_TTL


@pytest.mark.parametrize("version", [0, 1, 4, 15])
def test_versions_other_than_2_and_3_are_dropped(version: int) -> None:
    payload = raw_v3(version_type=(version << 4) | 1)
    assert decode4(payload) is DropReason.BAD_VERSION


@pytest.mark.parametrize("vrrp_type", [0, 2, 3, 15])
def test_types_other_than_advertisement_are_dropped(vrrp_type: int) -> None:
    assert decode4(raw_v3(version_type=0x30 | vrrp_type)) is DropReason.BAD_TYPE
    assert decode4(raw_v2(version_type=0x20 | vrrp_type)) is DropReason.BAD_TYPE


def test_empty_payload_is_truncated() -> None:
    assert decode4(b"") is DropReason.TRUNCATED


@pytest.mark.parametrize("length", [1, 4, 7])
def test_payload_shorter_than_the_fixed_header_is_truncated(length: int) -> None:
    assert decode4(raw_v3()[:length]) is DropReason.TRUNCATED


def test_payload_missing_announced_addresses_is_truncated() -> None:
    v3 = raw_v3(addresses=(VIP4, PEER4))
    assert decode4(v3[:-1]) is DropReason.TRUNCATED
    assert decode4(v3[:-4]) is DropReason.TRUNCATED


def test_v2_payload_missing_authentication_data_is_truncated() -> None:
    assert decode4(raw_v2()[:-8]) is DropReason.TRUNCATED
    assert decode4(raw_v2()[:-1]) is DropReason.TRUNCATED


def test_address_count_zero_is_dropped() -> None:
    # RFC 9568 errata: a count of 0 MUST be ignored.
    assert decode4(raw_v3(addresses=())) is DropReason.BAD_ADDRESS_COUNT
    assert decode4(raw_v2(addresses=())) is DropReason.BAD_ADDRESS_COUNT


def test_payload_longer_than_its_count_says_is_dropped() -> None:
    extra = raw_v3(addresses=(VIP4, PEER4))
    one_claimed = extra[:3] + b"\x01" + extra[4:]
    assert decode4(one_claimed) is DropReason.BAD_ADDRESS_COUNT
    assert decode4(raw_v2() + b"\x00\x00\x00\x00") is DropReason.BAD_ADDRESS_COUNT


def test_addresses_are_framed_by_the_ip_header_family() -> None:
    # An IPv4-sized v3 message arriving over IPv6 is read as IPv6: one 16-byte
    # address is announced and only 4 bytes are there.
    assert decode6(raw_v3(addresses=(VIP4,))) is DropReason.TRUNCATED
    # And an IPv6-sized message over IPv4 contradicts its count.
    ipv6_over_v4 = raw_v3(addresses=(VIP6,), src=SRC6, dst=GROUP6)
    assert decode4(ipv6_over_v4) is DropReason.BAD_ADDRESS_COUNT


def test_v2_over_ipv6_is_dropped_as_the_wrong_family() -> None:
    assert decode6(raw_v2(addresses=(VIP4,) * 4)) is DropReason.BAD_ADDRESS_FAMILY


def test_source_and_destination_of_different_families_are_dropped_not_raised() -> None:
    result = decode(raw_v3(), source=SRC4, destination=GROUP6, ttl=255)
    assert result is DropReason.BAD_ADDRESS_FAMILY


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(raw_v2(), id="v2"),
        pytest.param(raw_v3(), id="v3-ipv4-pseudo"),
        pytest.param(raw_v3(pseudo=False), id="v3-ipv4-rfc9568"),
    ],
)
def test_a_wrong_checksum_is_dropped_over_ipv4(payload: bytes) -> None:
    corrupted = payload[:6] + bytes((payload[6] ^ 0x01,)) + payload[7:]
    assert decode4(corrupted) is DropReason.BAD_CHECKSUM


def test_a_wrong_checksum_is_dropped_over_ipv6() -> None:
    payload = bytearray(raw_v3(addresses=(VIP6,), src=SRC6, dst=GROUP6))
    payload[7] ^= 0x80
    assert decode6(bytes(payload)) is DropReason.BAD_CHECKSUM


def test_v3_ipv6_requires_the_pseudo_header() -> None:
    message_only = raw_v3(addresses=(VIP6,), src=SRC6, dst=GROUP6, pseudo=False)
    assert decode6(message_only) is DropReason.BAD_CHECKSUM


def test_v2_rejects_a_checksum_computed_with_a_pseudo_header() -> None:
    message = raw_v2()
    pseudo_form = with_checksum(message, ref_pseudo4(SRC4, GROUP4, len(message)))
    assert decode4(pseudo_form) is DropReason.BAD_CHECKSUM


def test_v3_pseudo_header_checksum_must_use_the_actual_destination() -> None:
    # keepalived < 1.3.6 summed the multicast group for unicast adverts
    # ("old_unicast_checksum"); keepvip does not accept that form.
    sent_to_peer_summed_for_group = raw_v3(dst=GROUP4)
    result = decode(sent_to_peer_summed_for_group, source=SRC4, destination=PEER4, ttl=255)
    assert result is DropReason.BAD_CHECKSUM


def test_v3_zero_max_adver_int_is_dropped() -> None:
    # RFC 9568 erratum: Max Adver Int MUST be non-zero; reserved bits do not count.
    assert decode4(raw_v3(word=0)) is DropReason.BAD_INTERVAL
    assert decode4(raw_v3(word=0xF000)) is DropReason.BAD_INTERVAL


def test_v2_zero_advertisement_interval_is_dropped() -> None:
    assert decode4(raw_v2(seconds=0)) is DropReason.BAD_INTERVAL


@pytest.mark.parametrize("auth_type", [3, 7, 255])
def test_v2_undefined_auth_types_are_dropped(auth_type: int) -> None:
    assert decode4(raw_v2(auth_type=auth_type)) is DropReason.AUTH_MISMATCH


def test_checks_run_in_rfc9568_7_1_order() -> None:
    bad_checksum_and_interval = raw_v3(word=0)[:6] + b"\x00\x00" + raw_v3(word=0)[8:]
    assert decode4(bad_checksum_and_interval) is DropReason.BAD_CHECKSUM
    truncated_with_bad_type = raw_v3(version_type=0x32)[:5]
    assert decode4(truncated_with_bad_type) is DropReason.BAD_TYPE
    bad_version_and_checksum = b"\x41" + raw_v3()[1:6] + b"\x00\x00" + raw_v3()[8:]
    assert decode4(bad_version_and_checksum) is DropReason.BAD_VERSION


def test_decode_reads_addresses_in_order() -> None:
    addresses = tuple(IPv4Address(f"198.18.1.{i}") for i in (5, 1, 4, 2, 3))
    assert decode4(raw_v2(addresses=addresses)) == adv_v2(addresses=addresses)


def test_a_repeated_advertisement_is_encoded_once_and_a_changed_one_again() -> None:
    """Encoding is remembered per input (a master repeats itself); any change re-encodes."""
    source, group = IPv4Address("198.18.0.1"), IPv4Address("224.0.0.18")
    adv = Advertisement(version=3, vrid=7, priority=150, interval_cs=100,
                        addresses=(IPv4Address("198.18.4.7"),))  # fmt: skip
    first = encode(adv, source=source, destination=group)
    hits = codec._encode_cached.cache_info().hits
    again = encode(adv, source=source, destination=group)
    assert again is first
    assert codec._encode_cached.cache_info().hits == hits + 1

    lowered = encode(Advertisement(version=3, vrid=7, priority=0, interval_cs=100,
                                   addresses=adv.addresses), source=source, destination=group)  # fmt: skip
    other_form = encode(adv, source=source, destination=group, checksum=ChecksumMode.RFC9568)
    assert lowered[2] == 0
    assert lowered != first
    assert other_form[:6] == first[:6]
    assert other_form[6:8] != first[6:8]  # the checksum differs, the message does not
    assert decode(first, source=source, destination=group, ttl=255) == adv


def test_a_repeated_packet_is_decoded_once_and_a_changed_one_again() -> None:
    """The receive side's cache: same bytes and header → the same result; any change → decoded anew."""
    source, group = IPv4Address("198.18.0.1"), IPv4Address("224.0.0.18")
    adv = Advertisement(version=3, vrid=9, priority=150, interval_cs=100,
                        addresses=(IPv4Address("198.18.4.9"),))  # fmt: skip
    payload = encode(adv, source=source, destination=group)
    first = decode_detailed(payload, source=source, destination=group, ttl=255)
    hits = codec._decode_cached.cache_info().hits
    assert decode_detailed(bytearray(payload), source=source, destination=group, ttl=255) is first
    assert codec._decode_cached.cache_info().hits == hits + 1

    assert decode(payload, source=source, destination=group, ttl=255) == adv
    assert decode(payload, source=source, destination=group, ttl=254) is DropReason.BAD_TTL
    corrupted = payload[:2] + bytes([payload[2] ^ 1]) + payload[3:]
    assert decode(corrupted, source=source, destination=group, ttl=255) is DropReason.BAD_CHECKSUM
    assert (
        decode(payload, source=IPv4Address("198.18.0.2"), destination=group, ttl=255)
        is DropReason.BAD_CHECKSUM
    )
