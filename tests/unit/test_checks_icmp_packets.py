"""ICMP echo packets: built byte for byte like scapy builds them, replies matched strictly."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest

from keepvip.speaker.checks.icmp_probe import echo_request, is_our_reply
from keepvip.speaker.vrrp.checksum import internet_checksum

PAYLOAD = bytes(range(16))


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=64))
def test_ipv4_echo_requests_match_scapy(identifier: int, sequence: int, payload: bytes) -> None:
    expected = raw(ICMP(type=8, code=0, id=identifier, seq=sequence) / payload)
    assert echo_request(4, identifier, sequence, payload) == expected


def test_ipv6_echo_requests_leave_the_checksum_to_the_kernel() -> None:
    packet = echo_request(6, 0x1234, 7, PAYLOAD)
    scapy = raw(ICMPv6EchoRequest(id=0x1234, seq=7, data=PAYLOAD, cksum=0))
    assert packet == scapy
    assert packet[:2] == bytes([128, 0])


@given(st.binary(max_size=200))
def test_a_checksummed_buffer_sums_to_zero(data: bytes) -> None:
    if len(data) % 2:
        data += b"\0"
    summed = data + struct.pack("!H", internet_checksum(data))
    assert internet_checksum(summed) == 0


def ipv4_reply(identifier: int, sequence: int, payload: bytes, kind: int = 0) -> bytes:
    return raw(
        IP(src="198.18.0.2", dst="198.18.0.1") / ICMP(type=kind, id=identifier, seq=sequence) / payload
    )


def test_our_ipv4_reply_is_recognised_behind_its_ip_header() -> None:
    assert is_our_reply(4, ipv4_reply(0x1234, 7, PAYLOAD), 0x1234, 7, PAYLOAD)


def test_an_ipv4_reply_with_options_is_recognised() -> None:
    packet = raw(
        IP(src="198.18.0.2", dst="198.18.0.1", options=b"\x01\x01\x01\x00")
        / ICMP(type=0, id=1, seq=2)
        / PAYLOAD
    )
    assert packet[0] & 0x0F == 6
    assert is_our_reply(4, packet, 1, 2, PAYLOAD)


@pytest.mark.parametrize(
    "packet",
    [
        ipv4_reply(0x1235, 7, PAYLOAD),  # another identifier
        ipv4_reply(0x1234, 8, PAYLOAD),  # another sequence
        ipv4_reply(0x1234, 7, PAYLOAD[::-1]),  # another payload
        ipv4_reply(0x1234, 7, PAYLOAD, kind=8),  # a request, not a reply
        ipv4_reply(0x1234, 7, PAYLOAD)[:24],  # truncated
    ],
)
def test_other_ipv4_packets_are_not_our_reply(packet: bytes) -> None:
    assert not is_our_reply(4, packet, 0x1234, 7, PAYLOAD)


def test_our_ipv6_reply_is_recognised_without_an_ip_header() -> None:
    reply = raw(ICMPv6EchoReply(id=9, seq=3, data=PAYLOAD))
    assert is_our_reply(6, reply, 9, 3, PAYLOAD)
    assert not is_our_reply(6, reply, 9, 4, PAYLOAD)
    assert not is_our_reply(4, reply, 9, 3, PAYLOAD)


@given(st.binary(max_size=80), st.sampled_from([4, 6]))
def test_garbage_is_never_our_reply_and_never_raises(packet: bytes, version: int) -> None:
    assert not is_our_reply(version, packet, 0x4B56, 1, b"keepvip-nonce-16")
