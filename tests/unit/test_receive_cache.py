"""The receive path's caches (issue 15) never accept a packet the full decoder refuses.

A byte-identical IPv4 advertisement is answered from the socket's cache (the same
`Received` object) and the pool's memo of its decoding; anything else goes the full
way. Here real `VrrpSocket` and `SocketPool` code reads IPv4 packets from a stand-in
for the raw socket (it hands out queued bytes as ``recvmsg_into`` does), and every
packet's fate — delivered with which advertisement, or not delivered — is compared
with the uncached decoder run on that packet alone. The sequences repeat packets,
change one byte, change the TTL, the IP identification, the source or the
destination, so cached and fresh verdicts meet on the same bytes.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import deque
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net import vrrp_socket
from keepvip.speaker.net.vrrp_socket import Received, VrrpSocket
from keepvip.speaker.runtime.sockets import SocketPool
from keepvip.speaker.vrrp import codec
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.codec import Decoded, encode

GROUP = IPv4Address("224.0.0.18")
OTHER_GROUP = IPv4Address("224.0.0.19")
SOURCES = [IPv4Address("198.18.0.1"), IPv4Address("198.18.0.2")]
KEY = ("eth0", 4, GROUP)
SUBSCRIBED = (1, 2)


class RawStandIn:
    """What `VrrpSocket` calls on its raw socket, fed from a queue of IPv4 packets."""

    family = socket.AF_INET

    def __init__(self) -> None:
        self.queue: deque[bytes] = deque()
        self._pair = socket.socketpair()  # a real descriptor for the loop's reader, never readable

    def recvmsg_into(self, buffers: list[bytearray], ancillary_size: int) -> tuple[int, list[Any], int, Any]:  # noqa: ARG002
        if not self.queue:
            raise BlockingIOError
        packet = self.queue.popleft()
        buffers[0][: len(packet)] = packet
        return len(packet), [], 0, (str(IPv4Address(packet[12:16])), 0)

    def setsockopt(self, *args: Any) -> None:
        pass

    def fileno(self) -> int:
        return self._pair[0].fileno()

    def close(self) -> None:
        for end in self._pair:
            end.close()


def ipv4(payload: bytes, source: IPv4Address, destination: IPv4Address, ttl: int, ident: int) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, ttl, 112, 0,
                         source.packed, destination.packed)  # fmt: skip
    return header + payload


def advert(vrid: int, priority: int) -> Advertisement:
    return Advertisement(version=3, vrid=vrid, priority=priority, interval_cs=100,
                         addresses=(IPv4Address("198.18.4.1"),))  # fmt: skip


def reference(packet: bytes) -> Advertisement | None:
    """What must be delivered: the uncached decoder on this packet alone, and a subscribed VRID."""
    source, destination = IPv4Address(packet[12:16]), IPv4Address(packet[16:20])
    if destination != GROUP:
        return None
    verdict = codec._decode_cached.__wrapped__(packet[20:], source, destination, packet[8])  # type: ignore[attr-defined]
    if not isinstance(verdict, Decoded) or verdict.advertisement.vrid not in SUBSCRIBED:
        return None
    return verdict.advertisement


def run(packets: list[bytes], monkeypatch: pytest.MonkeyPatch) -> list[Advertisement | None]:
    """Each packet read through the real socket and pool code: what was delivered for it."""
    raw = RawStandIn()
    lazy = RawStandIn()  # the pool's lazily read socket (it asks for a buffer): no router is lazy here

    def multicast(cls: type[VrrpSocket], ifname: str, group: Any, receive_buffer: int | None = None) -> Any:
        return cls(raw if receive_buffer is None else lazy, ifname=ifname, ifindex=2, group=group)  # type: ignore[arg-type]

    monkeypatch.setattr(VrrpSocket, "multicast", classmethod(multicast))
    got: list[Advertisement | None] = []

    def deliver(advertisement: Advertisement, _packet: Received, _arrived: float) -> None:
        got[-1] = advertisement

    async def scenario() -> None:
        pool = SocketPool(SpeakerMetrics())
        for vrid in SUBSCRIBED:
            pool.subscribe(KEY, name=f"vip-{vrid}", vrid=vrid, deliver=deliver)
        for packet in packets:
            got.append(None)
            raw.queue.append(packet)
            pool.read_pending(KEY)
        pool.close()

    asyncio.run(scenario())
    return got


def test_a_repeated_advert_is_served_from_the_caches_and_damage_is_still_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good = encode(advert(1, 150), source=SOURCES[0], destination=GROUP)
    damaged = good[:-1] + bytes([good[-1] ^ 0x01])  # the checksum no longer verifies
    packets = [
        ipv4(good, SOURCES[0], GROUP, 255, 1),
        ipv4(good, SOURCES[0], GROUP, 255, 2),  # same bytes but the IP identification: cached
        ipv4(good, SOURCES[0], GROUP, 254, 3),  # TTL 254 (RFC 9568 §7.1): refused, cached or not
        ipv4(damaged, SOURCES[0], GROUP, 255, 4),
        ipv4(good, SOURCES[1], GROUP, 255, 5),  # another source: the pseudo-header checksum fails
        ipv4(good, SOURCES[0], OTHER_GROUP, 255, 6),  # not this socket's group
        ipv4(good, SOURCES[0], GROUP, 255, 7),
    ]
    got = run(packets, monkeypatch)
    assert got == [reference(packet) for packet in packets]
    assert got == [advert(1, 150), advert(1, 150), None, None, None, None, advert(1, 150)]


def test_repeats_return_the_same_received_object_and_are_not_decoded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = RawStandIn()
    sock = VrrpSocket(raw, ifname="eth0", ifindex=2, group=GROUP)  # type: ignore[arg-type]
    payload = encode(advert(1, 150), source=SOURCES[0], destination=GROUP)
    raw.queue.extend(ipv4(payload, SOURCES[0], GROUP, 255, ident) for ident in range(3))
    first, second, third = sock.receive(), sock.receive(), sock.receive()
    assert first is second is third
    assert first == Received(payload, SOURCES[0], GROUP, 255, 2)
    decodes = 0
    real = codec.decode_detailed

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return real(*args, **kwargs)

    monkeypatch.setattr("keepvip.speaker.runtime.sockets.decode_detailed", counting)
    assert run([ipv4(payload, SOURCES[0], GROUP, 255, ident) for ident in range(50)], monkeypatch) == [
        advert(1, 150)
    ] * 50
    assert decodes == 1
    sock.close()


packet_cases = st.lists(
    st.tuples(
        st.integers(1, 3),  # VRID (3 is not subscribed)
        st.sampled_from([100, 150, 0]),  # priority
        st.integers(0, 1),  # source
        st.sampled_from([255, 255, 255, 64]),  # TTL
        st.sampled_from([GROUP, GROUP, OTHER_GROUP]),
        st.one_of(st.none(), st.tuples(st.integers(0, 15), st.integers(1, 255))),  # a byte XORed
        st.integers(0, 0xFFFF),  # IP identification
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(packet_cases)
def test_cached_verdicts_always_equal_the_full_decoders(
    cases: list[tuple[int, int, int, int, IPv4Address, tuple[int, int] | None, int]],
) -> None:
    packets = []
    for vrid, priority, source_index, ttl, destination, damage, ident in cases:
        payload = bytearray(encode(advert(vrid, priority), source=SOURCES[0], destination=GROUP))
        if damage is not None:
            index, mask = damage
            payload[index % len(payload)] ^= mask
        packets.append(ipv4(bytes(payload), SOURCES[source_index], destination, ttl, ident))
    with pytest.MonkeyPatch.context() as monkeypatch:
        got = run(packets, monkeypatch)
    assert got == [reference(packet) for packet in packets]


def test_the_socket_cache_is_bounded() -> None:
    raw = RawStandIn()
    sock = VrrpSocket(raw, ifname="eth0", ifindex=2, group=GROUP)  # type: ignore[arg-type]
    for n in range(vrrp_socket._CACHED_PACKETS + 10):
        raw.queue.append(ipv4(n.to_bytes(4, "big") * 3, SOURCES[0], GROUP, 255, n))
        sock.receive()
    assert len(sock._seen) <= vrrp_socket._CACHED_PACKETS
    sock.close()
