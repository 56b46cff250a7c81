"""One raw socket per (interface, family, destination), shared by the routers using it.

Received packets are decoded once (the codec returns an `Advertisement` or a named
`DropReason`) and handed to the router that owns the (VRID, destination) pair; packets
no router wants are dropped and counted by reason (``wrong_vrid`` is keepalived's
``log_unknown_vrids``: the sign of another VRRP domain on the segment). Nothing here
decides anything about VRRP.

Each socket's kernel filter is kept equal to the VRIDs subscribed on it (re-attached
on every change), so packets for other VRIDs, or with a TTL / Hop Limit other than
255 (RFC 9568 §7.1), are dropped by the kernel and never reach Python (issue 10: a
flood of them used to crowd out the master's advertisements). ``wrong_vrid`` and
``bad_ttl`` therefore count only what got past the filter: a packet queued before
its VRID was unsubscribed, say; the rest is invisible to the speaker's metrics.

Per packet (issue 15: a backup's CPU is this path, once per advertisement heard):
the socket hands back the same `Received` object for byte-identical bytes, and the
pool remembers what the codec said about that object (by identity, bounded), so a
repeated advertisement is neither parsed nor checksummed again — the codec ran once
on exactly these bytes, and its verdict (an `Advertisement` or a `DropReason`) is a
pure function of them. The routers a batch of packets reached are served once, right
after the batch (their ``flush``), instead of one loop callback per packet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keepvip.speaker.logs import RateLimiter
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import Received, VrrpSocket
from keepvip.speaker.vrrp.advertisement import Advertisement, IPAddress
from keepvip.speaker.vrrp.checksum import ChecksumForm
from keepvip.speaker.vrrp.codec import Decoded, decode_detailed
from keepvip.speaker.vrrp.drops import DropReason

log = logging.getLogger("keepvip.speaker.sockets")

READ_BATCH = 256
"""Packets one readable callback reads before it returns to the event loop.

Issue 10: reading until the socket was empty need not end under a flood the speaker
decodes more slowly than it arrives; meanwhile the routers' inboxes are not served
and their timers do not run (in one flood run a backup went MASTER and stayed so for
33 s, the master's advertisements unread). The reader is level-triggered: if packets remain, the
loop calls back on its next turn, after the callbacks already scheduled (the routers'
``_serve``). 256 keeps the per-turn overhead (one epoll wait) under 1 % of the reads.
"""

DECODED_MEMO = 4096
"""Received packets whose decoding a socket remembers (by identity; see the module docstring)."""

GATHER_SECONDS = 0.001
"""How long a quiet socket waits, once readable, before it is read (issue 15: a backup's CPU).

A master sends its routers' advertisements in bursts (all the routers due at one timer
grid point), and the backup's process, woken by the first packet, used to read one or
two, serve them and sleep again: an event-loop wake-up (``epoll_wait``, the loop's turn,
a final ``EAGAIN`` read) per packet, most of a backup's cost per advertisement. Waiting
1 ms after the socket becomes readable lets the burst arrive and be read in one batch.
1 ms is nothing next to what decides anything here: Skew_Time and Master_Down_Interval
(≥ 36 ms at the fastest VRRPv3 interval, 10 ms), and a backup whose Master_Down timer is
due reads the socket first anyway (`SocketPool.read_pending`). A batch that filled
`READ_BATCH` (a flood) is followed at once by the next, never after a pause: the pause
must not let the receive buffer overflow.
"""

ARRIVAL_WINDOW = 0.005
"""How far before its read a packet's kernel arrival time is believed (seconds).

The pool hands every advertisement over with the time it arrived, as the kernel stamped
it: a burst is read `GATHER_SECONDS` after the socket became readable, and the routers
are served after that, so a Master_Down deadline counted from the read came about a
millisecond late (issue 14, takeover figures: keepvip's first advertisement after the
deadline 3.0 ms at the median against keepalived's 1.0). The kernel's stamp is wall-clock
time (``CLOCK_REALTIME``), converted to the loop's clock at the read; the window bounds
what a step of the wall clock between arrival and read can do to a deadline, and keeps a
stalled process's backlog counted as read (as before) rather than as long overdue.
"""


def arrival_time(stamp: float | None, *, now: float, wall_now: float) -> float:
    """A packet's arrival on the loop's clock: its kernel stamp, within `ARRIVAL_WINDOW` before ``now``.

    ``stamp`` is the kernel's wall-clock time of arrival (``None``: the kernel gave none),
    ``now`` and ``wall_now`` the loop's and the wall clock's readings at the read.
    """
    if stamp is None:
        return now
    return min(now, max(now - (wall_now - stamp), now - ARRIVAL_WINDOW))


# (ifname, family, group or None for unicast)
SocketKey = tuple[str, int, IPAddress | None]
Deliver = Callable[[Advertisement, Received, float], None]  # ..., when it arrived (loop time)
Flush = Callable[[], None]


def _no_flush() -> None:
    pass


@dataclass(eq=False)  # identity: a batch collects the subscriptions it reached in a dict
class _Subscription:
    name: str
    vrid: int
    deliver: Deliver
    flush: Flush = _no_flush  # after a batch that delivered to it: serve what it got


class _SharedSocket:
    """One socket and its subscribers; the loop's callbacks get this object, not its key
    (a key holds an address object, whose hash is computed in Python on every lookup)."""

    def __init__(self, key: SocketKey, sock: VrrpSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.key = key
        self.ifname = key[0]
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop
        self.open = True
        self.subscriptions: dict[int, _Subscription] = {}
        # id(received) -> (received, the codec's verdict, its form's tally); the entry keeps
        # the object alive. The tally (one per checksum form, shared) is resolved when the
        # packet is decoded, so a repeated advert is counted without hashing its form (an
        # enum, hashed in Python: two calls per advert).
        self.decoded: dict[int, tuple[Received, Decoded | DropReason, list[int]]] = {}
        self.gathering: asyncio.TimerHandle | None = None  # readable: read after GATHER_SECONDS
        self.listening: str | None = "gather"  # the reader callback registered: gather, at once, none
        self.forms: dict[ChecksumForm, list[int]] = {}  # well-formed adverts per checksum form, this batch


class SocketPool:
    """Opens, shares and closes raw VRRP sockets; dispatches packets by VRID."""

    def __init__(self, metrics: SpeakerMetrics) -> None:
        self._metrics = metrics
        self._sockets: dict[SocketKey, _SharedSocket] = {}
        self._log = RateLimiter()
        self._forms: dict[tuple[str, ChecksumForm], Any] = {}  # labelled counter children, resolved once

    def subscribe(
        self,
        key: SocketKey,
        *,
        name: str,
        vrid: int,
        deliver: Deliver,
        flush: Flush = _no_flush,
    ) -> VrrpSocket:
        """Receive the advertisements for ``vrid`` on ``key``; returns the socket to send with.

        ``deliver`` is called for each advertisement as it is read, with the loop time
        it arrived at (`arrival_time`); ``flush`` once after
        a batch of reads that delivered any (from the loop's reader callback: the
        subscriber serves its inputs there; after `read_pending`, on the next loop turn).
        """
        shared = self._sockets.get(key)
        if shared is None:
            ifname, family, group = key
            if group is not None:
                sock = VrrpSocket.multicast(ifname, group)
            else:
                sock = VrrpSocket.unicast(ifname, family)
            shared = self._sockets[key] = _SharedSocket(key, sock, asyncio.get_running_loop())
            shared.loop.add_reader(shared.fd, self._readable, shared)
        if vrid in shared.subscriptions and shared.subscriptions[vrid].name != name:
            raise ValueError(f"VRID {vrid} on {key} is already used by {shared.subscriptions[vrid].name}")
        new = vrid not in shared.subscriptions
        shared.subscriptions[vrid] = _Subscription(name, vrid, deliver, flush)
        if new:
            shared.sock.set_vrids(frozenset(shared.subscriptions))
        return shared.sock

    def unsubscribe(self, key: SocketKey, vrid: int) -> None:
        """Stop delivering ``vrid``; the socket closes with its last subscriber."""
        shared = self._sockets.get(key)
        if shared is None:
            return
        if shared.subscriptions.pop(vrid, None) is None:
            return
        if not shared.subscriptions:
            self._close(key)
        else:
            shared.sock.set_vrids(frozenset(shared.subscriptions))

    def close(self) -> None:
        """Close every socket."""
        for key in list(self._sockets):
            self._close(key)

    def _close(self, key: SocketKey) -> None:
        shared = self._sockets.pop(key)
        shared.open = False
        if shared.gathering is not None:
            shared.gathering.cancel()
        shared.loop.remove_reader(shared.fd)
        shared.sock.close()

    def read_pending(self, key: SocketKey) -> None:
        """Dispatch now whatever waits on ``key``'s socket, without waiting for the loop's reader.

        A router about to let its Master_Down timer decide calls this first (issue 14): after
        the process was off the CPU, the event loop may serve the router before the reader
        callback runs, and advertisements that arrived before the deadline must count.
        The caller is serving already; the others the read reached are flushed on the next
        loop turn (a flush from here would serve routers inside the caller's turn).
        """
        shared = self._sockets.get(key)
        if shared is None:
            return
        for subscription in self._read(shared)[0]:
            shared.loop.call_soon(subscription.flush)

    def _readable(self, shared: _SharedSocket) -> None:
        """The loop's reader callback: gather the burst that is arriving (`GATHER_SECONDS`).

        A socket with one router is read at once: one advert per interval, nothing to gather.
        """
        if not shared.open or shared.gathering is not None:
            return
        if len(shared.subscriptions) < 2:  # one router: one advert per interval, no burst to gather
            self._gathered(shared)
            return
        loop = shared.loop
        loop.remove_reader(shared.fd)  # level-triggered: it would wake the loop until read
        shared.listening = None
        shared.gathering = loop.call_later(GATHER_SECONDS, self._gathered, shared)

    def _gathered(self, shared: _SharedSocket) -> None:
        """Read a batch of packets, listen again, then serve the routers the batch reached."""
        if not shared.open:
            return
        shared.gathering = None
        reached, full = self._read(shared)
        # After a full batch more may wait (a flood): straight to the next turn, no pause.
        listen = "at once" if full else "gather"
        if shared.listening != listen:
            shared.loop.add_reader(shared.fd, self._gathered if full else self._readable, shared)
            shared.listening = listen
        for subscription in reached:
            subscription.flush()

    def _read(self, shared: _SharedSocket) -> tuple[list[_Subscription], bool]:
        """Read and deliver up to `READ_BATCH` packets: the subscriptions that got any (once
        each), and whether the batch was full (more may be waiting)."""
        reached: dict[_Subscription, None] = {}  # ordered: flushed in the order first reached
        sock = shared.sock
        receive = sock.receive
        now, wall_now = shared.loop.time(), time.time()
        full = True
        for _ in range(READ_BATCH):
            packet = receive()
            if packet is None:
                full = False
                break
            arrived = arrival_time(sock.arrived, now=now, wall_now=wall_now)
            subscription = self._dispatch(shared, packet, arrived)
            if subscription is not None:
                reached[subscription] = None
        self._count_forms(shared)
        return list(reached), full

    def _drop(self, key: SocketKey, reason: DropReason, source: IPAddress, name: str = "") -> None:
        self._metrics.advert_dropped.labels(name, key[0], reason.value).inc()
        if self._log.allow((reason.value, str(source)), time.monotonic()):
            log.warning("VRRP packet from %s on %s dropped: %s", source, key[0], reason.value,
                        extra={"virtualip": name, "reason": reason.value})  # fmt: skip

    def _dispatch(self, shared: _SharedSocket, packet: Received, arrived: float) -> _Subscription | None:
        """Decode (or recall the decoding of this very packet object) and deliver; who got it."""
        memo = shared.decoded.get(id(packet))
        if memo is None or memo[0] is not packet:
            memo = self._decode(shared, packet)
        decoded = memo[1]
        if isinstance(decoded, DropReason):
            self._drop(shared.key, decoded, packet.source)
            return None
        memo[2][0] += 1  # its checksum form's tally, this batch
        advertisement = decoded.advertisement
        subscription = shared.subscriptions.get(advertisement.vrid)
        if subscription is None:
            self._drop(shared.key, DropReason.WRONG_VRID, packet.source)
            return None
        subscription.deliver(advertisement, packet, arrived)
        return subscription

    @staticmethod
    def _decode(shared: _SharedSocket, packet: Received) -> tuple[Received, Decoded | DropReason, list[int]]:
        """The codec's verdict on ``packet``, remembered (with its form's tally) by identity."""
        decoded = decode_detailed(packet.payload, source=packet.source, destination=packet.destination,
                                  ttl=packet.ttl)  # fmt: skip
        form = None if isinstance(decoded, DropReason) else decoded.checksum_form
        tally = [0] if form is None else shared.forms.setdefault(form, [0])
        if len(shared.decoded) >= DECODED_MEMO:
            shared.decoded.clear()
        memo = shared.decoded[id(packet)] = (packet, decoded, tally)
        return memo

    def _count_forms(self, shared: _SharedSocket) -> None:
        """The batch's checksum forms into the metric: one increment per form and batch."""
        for form, tally in shared.forms.items():
            count = tally[0]
            if not count:
                continue
            counter = self._forms.get((shared.ifname, form))
            if counter is None:
                counter = self._metrics.advert_checksum_form.labels(shared.ifname, form.value)
                self._forms[(shared.ifname, form)] = counter
            counter.inc(count)
            tally[0] = 0
