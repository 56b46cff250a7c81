"""Address adds and deletes on a netlink socket of their own: small structs, many in flight.

Why not pyroute2 for these two requests: at a takeover of a thousand VIPs, each add
through pyroute2's ``AsyncIPRoute`` cost ~0.5 ms of CPU (message classes, tags, queues
and events per request) and went through the socket's one-at-a-time line
(:mod:`.netlink`): the last of 1,000 routers became MASTER 0.6 s after its timer fired,
and a 1,000-VIP start missed Master_Down_Interval + 1 s by that much (issue 15). An
``RTM_NEWADDR`` is a 16-byte header, an 8-byte ``ifaddrmsg`` and four attributes: built
with ``struct`` (:mod:`.address_messages`), it costs a few microseconds, and since the
kernel answers each request on the socket in order with its sequence number, many can be
in flight at once (up to :data:`IN_FLIGHT`, so the answers never overflow the socket's
receive buffer).
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
import weakref
from typing import Any, Final
from weakref import WeakKeyDictionary

from pyroute2.netlink.exceptions import NetlinkError

from keepvip.speaker.net.address_messages import (
    NETLINK_ROUTE,
    RTM_DELADDR,
    RTM_NEWADDR,
    address_message,
    answers,
)
from keepvip.speaker.net.netlink import REQUEST_TIMEOUT, NetlinkTimeout

IN_FLIGHT: Final = 64
"""Requests awaiting their answer at once. An answer (``NLMSG_ERROR``, 36 bytes) takes
about 1 KiB of receive buffer in the kernel's accounting: 64 stay far below the default."""

_RECV_BUFFER: Final = 1 << 16


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
