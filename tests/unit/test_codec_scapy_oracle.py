"""scapy's VRRP layers as an independent oracle for the codec, byte for byte.

scapy (``scapy.layers.vrrp``) is a separate implementation of RFC 3768 (``VRRP``) and
RFC 5798 (``VRRPv3``), and it computes the VRRPv3 checksum with the pseudo-header of
whichever IP layer it sits on (``in4_chksum`` / ``in6_chksum``), exactly as keepalived
and tcpdump do. Every check runs both ways: our bytes equal scapy's, scapy's bytes
decode to the same advertisement, and scapy dissects our bytes into the same fields.
For the RFC 9568 message-only form scapy has no layer option, so the oracle is scapy's
generic ``checksum()`` over the message with the checksum field zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Packet, Raw
from scapy.utils import checksum as scapy_checksum

from keepvip.speaker.vrrp.advertisement import Advertisement, IPAddress
from keepvip.speaker.vrrp.checksum import ChecksumForm
from keepvip.speaker.vrrp.codec import decode, decode_detailed, encode
from keepvip.speaker.vrrp.constants import AuthType, ChecksumMode
from keepvip.speaker.vrrp.drops import DropReason


def _padded(password: bytes) -> bytes:
    """The 8-byte v2 Authentication Data field as it travels (RFC 3768 §5.3.10)."""
    return password.ljust(8, b"\x00")

SRC4 = IPv4Address("198.18.0.1")
GROUP4 = IPv4Address("224.0.0.18")
PEER4 = IPv4Address("198.19.255.254")
SRC6 = IPv6Address("fe80::1")
GROUP6 = IPv6Address("ff02::12")
PEER6 = IPv6Address("fe80::2")


@dataclass(frozen=True)
class Case:
    """One advertisement and the IP header it travels in."""

    adv: Advertisement
    source: IPAddress
    destination: IPAddress


def v4(*hosts: int) -> tuple[IPv4Address, ...]:
    return tuple(IPv4Address(0xC6120000 + h) for h in hosts)  # 198.18.0.0/15


def v6(*hosts: int) -> tuple[IPv6Address, ...]:
    return tuple(IPv6Address(0x20010DB8 << 96 | h) for h in hosts)  # 2001:db8::/32


CASES = {
    "v2-none": Case(Advertisement(2, 51, 100, 100, v4(100)), SRC4, GROUP4),
    "v2-pass": Case(
        Advertisement(2, 1, 254, 300, v4(100, 101), AuthType.PASS, _padded(b"k33pv1p")),
        SRC4,
        GROUP4,
    ),
    "v2-pass-8-bytes-owner": Case(
        Advertisement(2, 255, 255, 25500, v4(1), AuthType.PASS, b"12345678"), SRC4, PEER4
    ),
    "v2-leaving-many": Case(Advertisement(2, 7, 0, 100, v4(*range(1, 21))), SRC4, GROUP4),
    "v3-ipv4": Case(Advertisement(3, 51, 100, 100, v4(100)), SRC4, GROUP4),
    "v3-ipv4-unicast-many": Case(
        Advertisement(3, 200, 150, 4095, v4(*range(10, 30))), SRC4, PEER4
    ),
    "v3-ipv4-fast": Case(Advertisement(3, 1, 0, 1, v4(5, 6, 7)), SRC4, GROUP4),
    "v3-ipv6": Case(Advertisement(3, 51, 100, 100, (SRC6, *v6(100))), SRC6, GROUP6),
    "v3-ipv6-unicast-many": Case(
        Advertisement(3, 255, 255, 25, (SRC6, *v6(*range(1, 40)))), SRC6, PEER6
    ),
}


def scapy_ip(case: Case) -> Packet:
    if isinstance(case.source, IPv6Address):
        return IPv6(src=str(case.source), dst=str(case.destination), hlim=255)
    return IP(src=str(case.source), dst=str(case.destination), ttl=255)


def scapy_vrrp(adv: Advertisement) -> Packet:
    """The scapy layer for ``adv``, checksum left for scapy to compute."""
    addresses = [str(a) for a in adv.addresses]
    if adv.version == 3:
        return VRRPv3(
            vrid=adv.vrid, priority=adv.priority, adv=adv.interval_cs, addrlist=addresses
        )
    # scapy splits the 8 bytes of Authentication Data into two 32-bit fields.
    auth = adv.auth_data.ljust(8, b"\x00")
    return VRRP(
        vrid=adv.vrid,
        priority=adv.priority,
        adv=adv.interval_cs // 100,
        authtype=int(adv.auth_type),
        addrlist=addresses,
        auth1=int.from_bytes(auth[:4], "big"),
        auth2=int.from_bytes(auth[4:], "big"),
    )


def scapy_wire(case: Case) -> bytes:
    """The whole IP datagram as scapy builds it."""
    return bytes(scapy_ip(case) / scapy_vrrp(case.adv))


def split_wire(wire: bytes) -> tuple[Packet, bytes]:
    """Dissect ``wire`` with scapy: the IP layer and the bytes after its header."""
    if wire[0] >> 4 == 6:
        return IPv6(wire), wire[40:]
    parsed = IP(wire)
    return parsed, wire[parsed.ihl * 4 :]


def our_wire(case: Case, mode: ChecksumMode = ChecksumMode.PSEUDO_HEADER) -> bytes:
    payload = encode(case.adv, source=case.source, destination=case.destination, checksum=mode)
    ip = scapy_ip(case)
    if isinstance(ip, IP):
        ip.proto = 112
    else:
        ip.nh = 112
    return bytes(ip / Raw(payload))


def assert_scapy_fields(layer: Packet, adv: Advertisement) -> None:
    assert layer.vrid == adv.vrid
    assert layer.priority == adv.priority
    assert layer.ipcount == len(adv.addresses)
    assert [str(a) for a in layer.addrlist] == [str(a) for a in adv.addresses]
    if adv.version == 3:
        assert isinstance(layer, VRRPv3)
        assert (layer.version, layer.type, layer.res) == (3, 1, 0)
        assert layer.adv == adv.interval_cs
    else:
        assert isinstance(layer, VRRP)
        assert (layer.version, layer.type) == (2, 1)
        assert layer.adv * 100 == adv.interval_cs
        assert layer.authtype == adv.auth_type
        auth = layer.auth1.to_bytes(4, "big") + layer.auth2.to_bytes(4, "big")
        assert auth == adv.auth_data.ljust(8, b"\x00")


@pytest.mark.parametrize("name", CASES)
def test_our_encoding_equals_scapys_byte_for_byte(name: str) -> None:
    case = CASES[name]
    _, scapy_payload = split_wire(scapy_wire(case))
    ours = encode(case.adv, source=case.source, destination=case.destination)
    assert ours == scapy_payload


@pytest.mark.parametrize("name", CASES)
def test_scapy_built_packets_decode_to_the_same_advertisement(name: str) -> None:
    case = CASES[name]
    ip, payload = split_wire(scapy_wire(case))
    ttl = ip.hlim if isinstance(ip, IPv6) else ip.ttl
    source, destination = type(case.source)(ip.src), type(case.source)(ip.dst)
    result = decode_detailed(payload, source=source, destination=destination, ttl=ttl)
    assert not isinstance(result, DropReason)
    assert result.advertisement == case.adv
    expected_form = {
        (2, False): ChecksumForm.MESSAGE,
        (3, False): ChecksumForm.IPV4_PSEUDO_HEADER,
        (3, True): ChecksumForm.IPV6_PSEUDO_HEADER,
    }[(case.adv.version, isinstance(source, IPv6Address))]
    assert result.checksum_form is expected_form


@pytest.mark.parametrize("name", CASES)
def test_scapy_dissects_our_packets_into_the_same_fields(name: str) -> None:
    case = CASES[name]
    ip, _ = split_wire(our_wire(case))
    layer = ip[VRRPv3] if case.adv.version == 3 else ip[VRRP]
    assert_scapy_fields(layer, case.adv)
    # scapy recomputes the checksum when the field is cleared: it must agree with ours.
    sent = layer.chksum
    layer.chksum = None
    rebuilt = bytes(ip)
    _, rebuilt_payload = split_wire(rebuilt)
    assert int.from_bytes(rebuilt_payload[6:8], "big") == sent


def rfc9568_oracle(case: Case) -> bytes:
    """scapy's VRRPv3 bytes with the checksum over the message alone (RFC 9568 §5.2.8)."""
    layer = scapy_vrrp(case.adv)
    layer.chksum = 0
    _, zeroed = split_wire(bytes(scapy_ip(case) / layer))
    value = scapy_checksum(zeroed)
    return zeroed[:6] + value.to_bytes(2, "big") + zeroed[8:]


@pytest.mark.parametrize("name", ["v3-ipv4", "v3-ipv4-unicast-many", "v3-ipv4-fast"])
def test_rfc9568_form_equals_scapys_message_only_checksum(name: str) -> None:
    case = CASES[name]
    expected = rfc9568_oracle(case)
    ours = encode(
        case.adv,
        source=case.source,
        destination=case.destination,
        checksum=ChecksumMode.RFC9568,
    )
    assert ours == expected
    result = decode_detailed(expected, source=case.source, destination=case.destination, ttl=255)
    assert not isinstance(result, DropReason)
    assert result.advertisement == case.adv
    assert result.checksum_form is ChecksumForm.MESSAGE


def test_rfc9568_form_differs_from_scapys_default_form() -> None:
    # Guards the two oracles against agreeing by accident.
    case = CASES["v3-ipv4"]
    _, pseudo_form = split_wire(scapy_wire(case))
    assert rfc9568_oracle(case) != pseudo_form


def test_scapy_packet_with_a_corrupted_checksum_is_dropped() -> None:
    case = CASES["v3-ipv6"]
    addresses = [str(a) for a in case.adv.addresses]
    ip = scapy_ip(case) / VRRPv3(vrid=51, priority=100, adv=100, chksum=0x1234, addrlist=addresses)
    _, payload = split_wire(bytes(ip))
    result = decode(payload, source=case.source, destination=case.destination, ttl=255)
    assert result is DropReason.BAD_CHECKSUM


def test_scapy_packet_with_ttl_64_is_dropped() -> None:
    case = CASES["v2-none"]
    wire = bytes(IP(src=str(SRC4), dst=str(GROUP4), ttl=64) / scapy_vrrp(case.adv))
    ip, payload = split_wire(wire)
    assert decode(payload, source=SRC4, destination=GROUP4, ttl=ip.ttl) is DropReason.BAD_TTL


# ---------------------------------------------------------------- random agreement

hosts = st.integers(min_value=0, max_value=(1 << 17) - 1)  # 198.18.0.0/15
v4_addresses = st.lists(hosts, min_size=1, max_size=12).map(lambda hs: v4(*hs))
v6_addresses = st.lists(
    st.integers(min_value=0, max_value=(1 << 96) - 1), min_size=1, max_size=8
).map(lambda hs: v6(*hs))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(["v2", "v3-ipv4", "v3-ipv6"]))
    vrid = draw(st.integers(1, 255))
    priority = draw(st.integers(0, 255))
    if kind == "v3-ipv6":
        source = IPv6Address(0xFE80 << 112 | draw(st.integers(0, (1 << 64) - 1)))
        destination = draw(st.sampled_from([GROUP6, PEER6]))
        adv = Advertisement(3, vrid, priority, draw(st.integers(1, 4095)), draw(v6_addresses))
        return Case(adv, source, destination)
    source4 = v4(draw(hosts))[0]
    destination4 = draw(st.sampled_from([GROUP4, PEER4]))
    addresses = draw(v4_addresses)
    if kind == "v3-ipv4":
        return Case(
            Advertisement(3, vrid, priority, draw(st.integers(1, 4095)), addresses),
            source4,
            destination4,
        )
    auth_type = draw(st.sampled_from([AuthType.NONE, AuthType.PASS]))
    auth_data = _padded(draw(st.binary(max_size=8))) if auth_type is AuthType.PASS else b""
    seconds = draw(st.integers(1, 255))
    return Case(
        Advertisement(2, vrid, priority, seconds * 100, addresses, auth_type, auth_data),
        source4,
        destination4,
    )


@settings(max_examples=60, deadline=None)
@given(cases())
def test_random_advertisements_agree_with_scapy_both_ways(case: Case) -> None:
    _, scapy_payload = split_wire(scapy_wire(case))
    assert encode(case.adv, source=case.source, destination=case.destination) == scapy_payload
    decoded = decode(scapy_payload, source=case.source, destination=case.destination, ttl=255)
    assert decoded == case.adv
