"""Link state events from rtnetlink: the speaker's "link down = FAULT" input.

DESIGN.md puts a router in FAULT when its VRRP interface goes down (keepalived's
interface tracking): it must stop advertising and release the VIP at once, not after
a failed send. The kernel announces every link change on the ``RTNLGRP_LINK``
multicast group; this module subscribes to it and turns the stream into
``LinkEvent(ifname, ifindex, up)`` values, emitted only when ``up`` actually changes
(the kernel also reports MTU, address and statistics changes, which are not news).

"Up" is ``IFF_UP`` and ``IFF_RUNNING``: administratively up *and* operationally up
(carrier present, RFC 2863 operstate UP or UNKNOWN), so both ``ip link set eth0 down``
and a pulled cable count as down.

Plain stdlib netlink: the messages are small fixed C structs, and a blocking-free
socket plugs straight into ``loop.add_reader``.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from keepvip.speaker.net.interfaces import forget_interface

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if.h>, <linux/if_link.h>
NETLINK_ROUTE: Final = 0
RTMGRP_LINK: Final = 0x1
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
RTM_NEWLINK: Final = 16
RTM_DELLINK: Final = 17
RTM_GETLINK: Final = 18
NLM_F_REQUEST: Final = 0x1
NLM_F_DUMP: Final = 0x300
IFLA_IFNAME: Final = 3
IFF_UP: Final = 0x1
IFF_RUNNING: Final = 0x40

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")
_RECV_BUFFER: Final = 1 << 16


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """The interface ``ifname`` (index ``ifindex``) just went up or down."""

    ifname: str
    ifindex: int
    up: bool


@dataclass(frozen=True, slots=True)
class LinkState:
    """One link as a dump or an event reports it."""

    ifindex: int
    ifname: str
    up: bool


class LinkMonitor:
    """Subscribes to link changes; yields a :class:`LinkEvent` when a link goes up or down.

    On open it reads every link's current state (see :meth:`is_up`) so that the first
    events are real changes. Use it as an async iterator, or register :meth:`fileno`
    with ``loop.add_reader`` and call :meth:`read_events`. Create it in the network
    namespace to watch (netlink sockets belong to the namespace they were made in).
    If the kernel drops events because the socket buffer overflowed (``ENOBUFS``),
    the monitor re-reads every link and reports the differences, so no change is lost.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        # A second socket for full re-reads, made now so that it is in this namespace too.
        self._dump_sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self._queue: list[LinkEvent] = []
        try:
            self._sock.setblocking(False)
            self._sock.bind((0, RTMGRP_LINK))  # subscribe first: no change slips between
            self._dump_sock.bind((0, 0))
            self._links = {link.ifindex: link for link in dump_links(self._dump_sock)}
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno()

    def is_up(self, ifname: str) -> bool | None:
        """The last known state of ``ifname``; ``None`` if no such interface is known."""
        for link in self._links.values():
            if link.ifname == ifname:
                return link.up
        return None

    def read_events(self) -> list[LinkEvent]:
        """Every up/down change queued on the socket, oldest first; never blocks."""
        events: list[LinkEvent] = []
        while True:
            try:
                data = self._sock.recv(_RECV_BUFFER)
            except BlockingIOError:
                return events
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                events.extend(self._resync())
                continue
            for kind, link in parse_link_messages(data):
                event = self._apply(kind, link)
                if event is not None:
                    events.append(event)

    def _apply(self, kind: int, link: LinkState) -> LinkEvent | None:
        before = self._links.get(link.ifindex)
        if kind == RTM_DELLINK or before is None or before.ifname != link.ifname:
            forget_interface(link.ifname, link.ifindex)  # a name's index is remembered: no more
        if kind == RTM_DELLINK:
            self._links.pop(link.ifindex, None)
            gone = LinkEvent(link.ifname, link.ifindex, up=False)
            return gone if before is not None and before.up else None
        self._links[link.ifindex] = link
        if before is None or before.up != link.up:
            return LinkEvent(link.ifname, link.ifindex, link.up)
        return None

    def _resync(self) -> list[LinkEvent]:
        current = {link.ifindex: link for link in dump_links(self._dump_sock)}
        events = [
            LinkEvent(link.ifname, link.ifindex, up=False)
            for index, link in self._links.items()
            if index not in current and link.up
        ]
        for link in current.values():
            event = self._apply(RTM_NEWLINK, link)
            if event is not None:
                events.append(event)
        self._links = current
        return events

    def __aiter__(self) -> LinkMonitor:
        return self

    async def __anext__(self) -> LinkEvent:
        """The next up/down change, waiting for it without blocking the event loop."""
        loop = asyncio.get_running_loop()
        while not self._queue:
            self._queue.extend(self.read_events())
            if self._queue:
                break
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.fileno(), _set_once, ready)
            try:
                await ready
            finally:
                loop.remove_reader(self.fileno())
        return self._queue.pop(0)

    def close(self) -> None:
        self._sock.close()
        self._dump_sock.close()

    def __enter__(self) -> LinkMonitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def dump_links(sock: socket.socket | None = None) -> list[LinkState]:
    """Every link with its up state (one blocking RTM_GETLINK dump).

    Over ``sock`` (a blocking, bound NETLINK_ROUTE socket) if given, else over a new
    socket in the calling thread's network namespace.
    """
    if sock is None:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE) as fresh:
            fresh.bind((0, 0))
            return dump_links(fresh)
    request = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(request), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    sock.send(header + request)
    links: list[LinkState] = []
    while True:
        data = sock.recv(_RECV_BUFFER)
        for kind, link in parse_link_messages(data):
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                return links
            links.append(link)


def parse_link_messages(data: bytes) -> Iterator[tuple[int, LinkState]]:
    """``(message type, link)`` for each netlink message in ``data``.

    ``RTM_NEWLINK``/``RTM_DELLINK`` carry a parsed link; ``NLMSG_DONE`` and
    ``NLMSG_ERROR`` are passed through with an empty link so a dump can end; other
    types are skipped.
    """
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return
        body = data[offset + _NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            yield kind, LinkState(0, "", up=False)
        elif kind in (RTM_NEWLINK, RTM_DELLINK) and len(body) >= _IFINFOMSG.size:
            _family, _type, ifindex, flags, _change = _IFINFOMSG.unpack_from(body)
            up = bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
            yield kind, LinkState(ifindex, _ifname(body[_IFINFOMSG.size :]) or str(ifindex), up)


def _ifname(attributes: bytes) -> str | None:
    offset = 0
    while offset + _RTATTR.size <= len(attributes):
        length, kind = _RTATTR.unpack_from(attributes, offset)
        if length < _RTATTR.size:
            return None
        if kind == IFLA_IFNAME:
            raw = attributes[offset + _RTATTR.size : offset + length]
            return raw.split(b"\0", 1)[0].decode(errors="replace")
        offset += (length + 3) & ~3
    return None
