"""One ordered line to the kernel for every rtnetlink request the speaker makes.

Why this exists: the speaker shares one ``pyroute2.AsyncIPRoute`` between all its
routers, and the kernel runs **at most one dump per netlink socket**: a second
``RTM_GETADDR`` / ``RTM_GETLINK`` dump asked while one is still being read is refused
with ``EBUSY`` (``netlink_dump_start`` in net/netlink/af_netlink.c). When a node takes
over a hundred VIPs at once, a hundred routers asked for a dump at the same moment and
84 of 100 got ``EBUSY`` (issue 15); pyroute2 raises that as ``NetlinkError``, not
``OSError``, and the routers died silently after logging MASTER.

So every request on a socket goes through that socket's FIFO lock (asyncio wakes
waiters in arrival order): one request, or one whole dump, is on the wire at a time,
in the order the routers asked. Each request also has a deadline, so a kernel that
never answers fails that request instead of hanging every router behind it.

A dump that still meets ``EBUSY`` (a dump cut short by a timeout is still running in
the kernel until it is read to its end) is retried a few times after a short pause.

The functions take the socket as ``Any``: pyroute2 ships no type information.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar
from weakref import WeakKeyDictionary

from pyroute2.netlink.exceptions import NetlinkError

_T = TypeVar("_T")

REQUEST_TIMEOUT: Final = 10.0  # seconds for one request's answer (the kernel answers in µs)
DUMP_TIMEOUT: Final = 30.0  # seconds for a whole dump (thousands of addresses take ~0.1 s)
BUSY_RETRIES: Final = 5
BUSY_PAUSE: Final = 0.05  # seconds, doubled after each EBUSY

_locks: WeakKeyDictionary[Any, asyncio.Lock] = WeakKeyDictionary()


class NetlinkTimeout(TimeoutError):
    """The kernel did not answer a request within its deadline."""


@asynccontextmanager
async def exclusive(ipr: Any) -> AsyncIterator[None]:
    """Hold ``ipr``'s request line: nothing else is sent on this socket meanwhile."""
    lock = _locks.get(ipr)
    if lock is None:
        lock = _locks[ipr] = asyncio.Lock()
    async with lock:
        yield


async def request(ipr: Any, call: Callable[[], Awaitable[_T]], what: str) -> _T:
    """Run ``call()`` (one netlink request on ``ipr``) alone on the socket, with a deadline."""
    async with exclusive(ipr):
        try:
            return await asyncio.wait_for(call(), REQUEST_TIMEOUT)
        except TimeoutError as error:
            raise NetlinkTimeout(f"{what}: no answer from the kernel in {REQUEST_TIMEOUT:.0f} s") from error


async def dump(ipr: Any, kind: str) -> list[Any]:
    """Every message of an ``addr`` or ``link`` dump, read to its end alone on the socket."""

    async def collect() -> list[Any]:
        return [message async for message in await getattr(ipr, kind)("dump")]

    pause = BUSY_PAUSE
    for attempt in range(BUSY_RETRIES + 1):
        async with exclusive(ipr):
            try:
                return await asyncio.wait_for(collect(), DUMP_TIMEOUT)
            except TimeoutError as error:
                raise NetlinkTimeout(f"{kind} dump: not finished in {DUMP_TIMEOUT:.0f} s") from error
            except NetlinkError as error:
                if error.code != errno.EBUSY or attempt == BUSY_RETRIES:
                    raise
        await asyncio.sleep(pause)
        pause *= 2
    raise AssertionError("unreachable")  # pragma: no cover
