"""Address adds and deletes on a netlink socket of their own: small structs, many in flight.

Why not pyroute2 for these two requests: at a takeover of a thousand VIPs, each add
through pyroute2's ``AsyncIPRoute`` cost ~0.5 ms of CPU (message classes, tags, queues
and events per request) and went through the socket's one-at-a-time line
(:mod:`.netlink`): the last of 1,000 routers became MASTER 0.6 s after its timer fired,
and a 1,000-VIP start missed Master_Down_Interval + 1 s by that much (issue 15). An
``RTM_NEWADDR`` is a 16-byte header, an 8-byte ``ifaddrmsg`` and four attributes: built
here with ``struct``, it costs a few microseconds, and since the kernel answers each
request on the socket in order with its sequence number, many can be in flight at once
(up to :data:`IN_FLIGHT`, so the answers never overflow the socket's receive buffer).
Dumps stay on pyroute2's socket and its line: only they meet ``EBUSY``.

Errors are raised as pyroute2's ``NetlinkError`` with the kernel's errno, exactly as
pyroute2 raised them, so :mod:`.addresses` classifies them the same way; a request
without an answer within :data:`~.netlink.REQUEST_TIMEOUT` raises
:class:`~.netlink.NetlinkTimeout`.

The socket is opened at the first request for a given pyroute2 socket ``ipr`` (so in
the same network namespace, since the speaker and the tests make their requests where
they opened ``ipr``) and closed when ``ipr`` is garbage-collected or :func:`close` is called.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import weakref
from ipaddress import IPv4Address, ip_address
from typing import Any, Final
from weakref import WeakKeyDictionary

from pyroute2.netlink.exceptions import NetlinkError

from keepvip.speaker.net.netlink import REQUEST_TIMEOUT, NetlinkTimeout

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_addr.h>
NETLINK_ROUTE: Final = 0
NLMSG_ERROR: Final = 2
RTM_NEWADDR: Final = 20
RTM_DELADDR: Final = 21
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLM_F_EXCL: Final = 0x200
NLM_F_CREATE: Final = 0x400
IFA_ADDRESS: Final = 1
IFA_LOCAL: Final = 2
IFA_LABEL: Final = 3
IFA_FLAGS: Final = 8
IFA_PROTO: Final = 11

IN_FLIGHT: Final = 64
"""Requests awaiting their answer at once. An answer (``NLMSG_ERROR``, 36 bytes) takes
about 1 KiB of receive buffer in the kernel's accounting: 64 stay far below the default."""

_NLMSGHDR = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")
_RECV_BUFFER: Final = 1 << 16


def _attribute(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def address_message(
    kind: int,
    seq: int,
    *,
    index: int,
    address: str,
    prefixlen: int,
    flags: int = 0,
    proto: int | None = None,
    label: str | None = None,
) -> bytes:
    """One ``RTM_NEWADDR`` (create, exclusive) or ``RTM_DELADDR`` request, acknowledged."""
    ip = ip_address(address)
    family = socket.AF_INET if isinstance(ip, IPv4Address) else socket.AF_INET6
    body = _IFADDRMSG.pack(family, prefixlen, flags & 0xFF, 0, index)
    body += _attribute(IFA_LOCAL, ip.packed) + _attribute(IFA_ADDRESS, ip.packed)
    if kind == RTM_NEWADDR:
        if label:
            body += _attribute(IFA_LABEL, label.encode() + b"\0")
        if flags:
            body += _attribute(IFA_FLAGS, struct.pack("=I", flags))
        if proto is not None:
            body += _attribute(IFA_PROTO, bytes([proto]))
    request_flags = NLM_F_REQUEST | NLM_F_ACK
    if kind == RTM_NEWADDR:
        request_flags |= NLM_F_CREATE | NLM_F_EXCL
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, request_flags, seq, 0) + body


def answers(data: bytes) -> list[tuple[int, int]]:
    """(sequence number, errno) of every acknowledgement in ``data`` (errno 0: done)."""
    found: list[tuple[int, int]] = []
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, seq, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        if kind == NLMSG_ERROR and length >= _NLMSGHDR.size + _ERRNO.size:
            (code,) = _ERRNO.unpack_from(data, offset + _NLMSGHDR.size)
            found.append((seq, -code))
        offset += (length + 3) & ~3
    return found


class AddressRequests:
    """A non-blocking NETLINK_ROUTE socket with answers matched to requests by sequence number."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self._loop: asyncio.AbstractEventLoop | None = None

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionResetError(errno.ECONNRESET, "netlink socket closed"))
        self._waiting.clear()

    async def request(self, kind: int, what: str, **fields: Any) -> None:
        """Send one request and wait for the kernel's answer; ``NetlinkError`` if it refused."""
        async with self._slots:
            loop = asyncio.get_running_loop()
            if self._loop is not loop:
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.remove_reader(self._sock.fileno())
                self._loop = loop
                loop.add_reader(self._sock.fileno(), self._readable)
            self._seq = self._seq % 0xFFFFFFFF + 1
            seq = self._seq
            future: asyncio.Future[None] = loop.create_future()
            self._waiting[seq] = future
            try:
                self._sock.send(address_message(kind, seq, **fields))
                try:
                    await asyncio.wait_for(asyncio.shield(future), REQUEST_TIMEOUT)
                except TimeoutError as error:
                    raise NetlinkTimeout(
                        f"{what}: no answer from the kernel in {REQUEST_TIMEOUT:.0f} s"
                    ) from error
            finally:
                self._waiting.pop(seq, None)

    def _readable(self) -> None:
        while True:
            try:
                data = self._sock.recv(_RECV_BUFFER)
            except BlockingIOError:
                return
            except OSError:  # ENOBUFS: answers lost; their requests time out (bounded by IN_FLIGHT)
                return
            for seq, code in answers(data):
                future = self._waiting.get(seq)
                if future is None or future.done():
                    continue
                if code:
                    future.set_exception(NetlinkError(code, errno.errorcode.get(code, str(code))))
                else:
                    future.set_result(None)


_sockets: WeakKeyDictionary[Any, AddressRequests] = WeakKeyDictionary()


def _for(ipr: Any) -> AddressRequests:
    requests = _sockets.get(ipr)
    if requests is None:
        requests = _sockets[ipr] = AddressRequests()
        weakref.finalize(ipr, requests.close)
    return requests


async def add(ipr: Any, what: str, **fields: Any) -> None:
    """``ip addr add`` (exclusive: ``EEXIST`` if the address and prefix are there)."""
    await _for(ipr).request(RTM_NEWADDR, what, **fields)


async def delete(ipr: Any, what: str, **fields: Any) -> None:
    """``ip addr del`` (``EADDRNOTAVAIL`` if it is not there)."""
    fields.pop("family", None)  # implied by the address
    await _for(ipr).request(RTM_DELADDR, what, **fields)


def close(ipr: Any) -> None:
    """Close the socket opened for ``ipr``, if any (the speaker's stop; tests)."""
    requests = _sockets.pop(ipr, None)
    if requests is not None:
        requests.close()
