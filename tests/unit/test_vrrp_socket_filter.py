"""The VRRP sockets' classic BPF program, run by a small cBPF interpreter on sample packets.

The interpreter follows the kernel's semantics for the instructions the program uses
(``net/core/filter.c``): absolute and indirect loads relative to where the socket's
data starts, ``SKF_NET_OFF`` loads relative to the IP header, a load outside the packet
drops it, and jumps count the instructions skipped. Where the data starts is the one
difference between families the kernel imposes: at the IP header for IPv4 raw sockets,
after it (at the VRRP header) for IPv6. The live counterpart, with real sockets in
namespaces, is tests/netns/test_net_vrrp_socket.py.

Packets are built by scapy, an encoder independent of keepvip's codec.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from scapy.compat import raw
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRPv3

from keepvip.inet import VRRP_GROUP_V4 as GROUP4
from keepvip.inet import VRRP_GROUP_V6 as GROUP6
from keepvip.inet import IPAddress
from keepvip.speaker.net.vrrp_socket import Instruction, socket_filter

SKF_NET_OFF = -0x100000
OTHER_GROUP4 = IPv4Address("224.0.0.19")
SOURCE4 = IPv4Address("198.18.0.7")
SOURCE6 = IPv6Address("fe80::7")
PEER4 = IPv4Address("198.18.0.1")
PEER6 = IPv6Address("2001:db8::1")


def run(program: list[Instruction], packet: bytes, data_start: int) -> int:
    """What the kernel's filter returns for ``packet`` (0: dropped, else bytes kept)."""

    def load(offset: int, size: int) -> int | None:
        offset = offset - (1 << 32) if offset >= 1 << 31 else offset  # k is a u32
        # SKF_NET_OFF loads count from the network header, i.e. byte 0 of `packet`:
        at = offset - SKF_NET_OFF if SKF_NET_OFF <= offset < 0 else data_start + offset
        if at < 0 or at + size > len(packet):
            return None
        return int.from_bytes(packet[at : at + size], "big")

    a = x = 0
    pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x06:  # ret k
            return k
        if code in (0x20, 0x30, 0x50):  # ld w abs, ld b abs, ld b ind
            size = 4 if code == 0x20 else 1
            value = load(k + (x if code == 0x50 else 0), size)
            if value is None:
                return 0
            a = value
        elif code == 0xB1:  # ldx b msh: X = 4 * (byte[k] & 0xf)
            value = load(k, 1)
            if value is None:
                return 0
            x = 4 * (value & 0x0F)
        elif code == 0x54:  # and k
            a &= k
        elif code == 0x15:  # jeq k
            pc += jt if a == k else jf
        else:
            raise AssertionError(f"instruction {code:#x} not interpreted")


def advert(
    destination: IPAddress, *, vrid: int = 51, ttl: int = 255, options: bool = False
) -> tuple[bytes, int]:
    """A VRRPv3 advertisement as the raw socket sees it: (bytes from the IP header, data start)."""
    vrrp = VRRPv3(vrid=vrid, priority=100, ipcount=1)
    if isinstance(destination, IPv4Address):
        ip = IP(src=str(SOURCE4), dst=str(destination), ttl=ttl, proto=112,
                options=[b"\x94\x04\x00\x00"] if options else [])  # fmt: skip
        return raw(ip / vrrp), 0
    return raw(IPv6(src=str(SOURCE6), dst=str(destination), hlim=ttl) / vrrp), 40


def accepted(program: list[Instruction], sample: tuple[bytes, int]) -> bool:
    return run(program, *sample) != 0


@pytest.mark.parametrize(("group", "other"), [(GROUP4, OTHER_GROUP4), (GROUP6, IPv6Address("ff02::1:12"))],
                         ids=["ipv4", "ipv6"])  # fmt: skip
def test_a_group_socket_keeps_ttl_255_and_its_vrids_only(group: IPAddress, other: IPAddress) -> None:
    program = socket_filter(group.version, group, frozenset({51, 52, 200}))

    for vrid in (51, 52, 200):
        assert accepted(program, advert(group, vrid=vrid)), vrid
    assert not accepted(program, advert(group, vrid=50))  # a VRID nobody here runs
    assert not accepted(program, advert(group, vrid=53))
    assert not accepted(program, advert(group, ttl=254))  # RFC 9568 §7.1: from off the link
    assert not accepted(program, advert(group, ttl=1))
    assert not accepted(program, advert(other))  # another group's packet


def test_the_ipv4_vrid_is_found_after_ip_options() -> None:
    program = socket_filter(4, GROUP4, frozenset({51}))

    assert accepted(program, advert(GROUP4, vrid=51, options=True))
    assert not accepted(program, advert(GROUP4, vrid=99, options=True))
    # Byte 1 after a 20-byte header is an option byte here, not the VRID:
    assert advert(GROUP4, vrid=99, options=True)[0][21] != 99


@pytest.mark.parametrize("peer", [PEER4, PEER6], ids=str)
def test_a_unicast_socket_keeps_unicast_with_ttl_255_and_its_vrids(peer: IPAddress) -> None:
    program = socket_filter(peer.version, None, frozenset({7}))
    group = GROUP4 if peer.version == 4 else GROUP6

    assert accepted(program, advert(peer, vrid=7))
    assert not accepted(program, advert(peer, vrid=8))
    assert not accepted(program, advert(peer, vrid=7, ttl=254))
    assert not accepted(program, advert(group, vrid=7))  # multicast never reaches a unicast socket


def test_without_vrids_only_the_destination_is_filtered() -> None:
    """The unfiltered path (a socket never told its VRIDs): any VRID, any TTL, for userspace to judge."""
    program = socket_filter(4, GROUP4)

    assert accepted(program, advert(GROUP4, vrid=99, ttl=254))
    assert not accepted(program, advert(OTHER_GROUP4))


def test_an_empty_vrid_set_drops_everything() -> None:
    program = socket_filter(4, GROUP4, frozenset())

    assert not accepted(program, advert(GROUP4))


@pytest.mark.parametrize("version", [4, 6])
def test_all_255_vrids_fit_the_one_byte_jumps(version: int) -> None:
    group = GROUP4 if version == 4 else GROUP6
    program = socket_filter(version, group, frozenset(range(1, 256)))

    assert all(jt <= 255 and jf <= 255 for _, jt, jf, _ in program)
    assert all(accepted(program, advert(group, vrid=vrid)) for vrid in (1, 128, 255))
    assert not accepted(program, advert(group, vrid=1, ttl=64))
    odd = socket_filter(version, group, frozenset(range(1, 256, 2)))
    assert [accepted(odd, advert(group, vrid=vrid)) for vrid in (1, 2, 253, 254, 255)] == [
        True, False, True, False, True]  # fmt: skip


def test_a_truncated_packet_is_dropped_not_read_past_its_end() -> None:
    program = socket_filter(4, GROUP4, frozenset({51}))
    packet, start = advert(GROUP4)

    assert not accepted(program, (packet[:21], start))  # the VRID byte is missing


def test_vrids_out_of_range_and_unknown_families_are_refused() -> None:
    with pytest.raises(ValueError, match=r"VRIDs must be 1\.\.255"):
        socket_filter(4, GROUP4, frozenset({0, 51}))
    with pytest.raises(ValueError, match="IP version must be 4 or 6"):
        socket_filter(5, None)


def test_every_instruction_packs_as_struct_sock_filter() -> None:
    program = socket_filter(6, GROUP6, frozenset({1, 2}))

    packed = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    assert len(packed) == 8 * len(program)
