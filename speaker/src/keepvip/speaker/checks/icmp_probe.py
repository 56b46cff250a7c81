"""ICMP echo check (ping) for IPv4 and IPv6, on a raw socket, without blocking the loop.

Used by ``icmp`` health checks and by the arbiter (which pings the gateway). Echo
request and reply follow RFC 792 (IPv4: types 8 and 0) and RFC 4443 §4.1-4.2 (IPv6:
types 128 and 129). A raw ICMP socket receives every echo reply the host gets, so a
reply counts only if it comes from the target and carries our identifier, our
sequence number and our random payload. Kernel filters (``ICMP_FILTER`` and
RFC 3542 §3.2 ``ICMP6_FILTER``) drop every other ICMP type before it reaches us.

IPv4 raw sockets deliver the IP header (skipped using its IHL); IPv6 raw sockets
never do, and the kernel computes the ICMPv6 checksum (RFC 3542 §3.1). A socket is
opened per run and closed after it, so nothing stale is ever read and a cancelled run
leaks nothing. Raw sockets need CAP_NET_RAW, which the speaker has anyway.

``interface`` binds the socket to one device (``SO_BINDTODEVICE``): the arbiter must
reach its gateway through the VRRP interface, not around it; it is also the scope of
an IPv6 link-local target (``fe80::1%eth0``), the usual form of an IPv6 default gateway.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final

from keepvip.speaker.checks.probe import ProbeResult, Stopwatch, describe_error, format_seconds
from keepvip.speaker.vrrp.checksum import internet_checksum

ICMP_ECHO_REQUEST: Final = 8  # RFC 792
ICMP_ECHO_REPLY: Final = 0
ICMP6_ECHO_REQUEST: Final = 128  # RFC 4443 §4.1
ICMP6_ECHO_REPLY: Final = 129  # RFC 4443 §4.2

# Linux socket options not exported by the socket module.
SOL_RAW: Final = 255
ICMP_FILTER: Final = 1  # <linux/icmp.h>: bitmask of ICMP types to *drop*
ICMP6_FILTER: Final = 1  # <netinet/icmp6.h>: 256-bit mask, a set bit drops the type

_HEADER: Final = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_PAYLOAD_SIZE: Final = 16


def echo_request(version: int, identifier: int, sequence: int, payload: bytes) -> bytes:
    """An ICMP(v6) echo request; IPv4 carries its checksum, the kernel fills in IPv6's."""
    if version == 6:
        return _HEADER.pack(ICMP6_ECHO_REQUEST, 0, 0, identifier, sequence) + payload
    unsummed = _HEADER.pack(ICMP_ECHO_REQUEST, 0, 0, identifier, sequence) + payload
    checksum = internet_checksum(unsummed)
    return _HEADER.pack(ICMP_ECHO_REQUEST, 0, checksum, identifier, sequence) + payload


def is_our_reply(version: int, packet: bytes, identifier: int, sequence: int, payload: bytes) -> bool:
    """Whether ``packet`` (as read from the raw socket) is the reply to our request."""
    if version == 4:
        if len(packet) < 20:
            return False
        packet = packet[(packet[0] & 0x0F) * 4 :]
    if len(packet) < _HEADER.size:
        return False
    kind, code, _, reply_id, reply_seq = _HEADER.unpack_from(packet)
    expected = ICMP6_ECHO_REPLY if version == 6 else ICMP_ECHO_REPLY
    return (
        kind == expected
        and code == 0
        and reply_id == identifier
        and reply_seq == sequence
        and packet[_HEADER.size :] == payload
    )


def _filter_all_but_echo_reply(sock: socket.socket, version: int) -> None:
    if version == 4:
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", ~(1 << ICMP_ECHO_REPLY) & 0xFFFFFFFF))
        return
    words = [0xFFFFFFFF] * 8
    words[ICMP6_ECHO_REPLY >> 5] &= ~(1 << (ICMP6_ECHO_REPLY & 31))
    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))


def _same_host(source: str, host: IPv4Address | IPv6Address) -> bool:
    """Whether a ``recvfrom`` source (``fe80::1%eth0`` for link-local) is ``host``."""
    try:
        return ip_address(source.split("%", maxsplit=1)[0]) == ip_address(str(host).split("%", maxsplit=1)[0])
    except ValueError:
        return False


class IcmpProbe:
    """Send one echo request to ``host``; pass when the matching reply arrives in time."""

    def __init__(
        self, host: IPv4Address | IPv6Address, timeout: float, *, interface: str | None = None
    ) -> None:
        self.host = host
        self.timeout = timeout
        self.interface = interface
        self.identifier = random.getrandbits(16)
        self._sequence = itertools.count(1)

    @property
    def target(self) -> str:
        scope = f"%{self.interface}" if self.interface else ""
        return f"icmp {self.host}{scope}"

    def _destination(self) -> tuple[str, int] | tuple[str, int, int, int]:
        if self.host.version == 4:
            return (str(self.host), 0)
        scope = socket.if_nametoindex(self.interface) if self.interface and self.host.is_link_local else 0
        return (str(self.host), 0, 0, scope)

    def _open(self) -> socket.socket:
        family = socket.AF_INET6 if self.host.version == 6 else socket.AF_INET
        proto = socket.IPPROTO_ICMPV6 if self.host.version == 6 else socket.IPPROTO_ICMP
        sock = socket.socket(family, socket.SOCK_RAW, proto)
        try:
            sock.setblocking(False)
            _filter_all_but_echo_reply(sock, self.host.version)
            if self.interface:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
        except BaseException:
            sock.close()
            raise
        return sock

    async def run(self) -> ProbeResult:
        watch = Stopwatch()
        sequence = next(self._sequence) & 0xFFFF
        payload = os.urandom(_PAYLOAD_SIZE)
        version = self.host.version
        try:
            destination = self._destination()
            sock = self._open()
        except OSError as error:
            return watch.result(False, f"cannot open ICMP socket: {describe_error(error)}")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                request = echo_request(version, self.identifier, sequence, payload)
                await loop.sock_sendto(sock, request, destination)
                while True:
                    packet, source = await loop.sock_recvfrom(sock, 65535)
                    if not _same_host(source[0], self.host):
                        continue
                    if is_our_reply(version, packet, self.identifier, sequence, payload):
                        break
        except TimeoutError:
            return watch.result(False, f"no echo reply within {format_seconds(self.timeout)}")
        except OSError as error:
            return watch.result(False, describe_error(error))
        finally:
            sock.close()
        return watch.result(True, f"echo reply in {format_seconds(watch.elapsed())}")
