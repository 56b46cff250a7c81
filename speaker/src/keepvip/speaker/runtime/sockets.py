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

Each key has a second socket, read on a schedule instead of when readable (issue 14: a
backup's wake-ups, `LAZY_INTERVALS`): the kernel filters split the VRIDs between the two,
the routers in BACKUP (above priority 0) on the lazy one, everything else on the prompt
one, and the routers tell the pool when they change state (`SocketPool.set_lazy`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keepvip.speaker.logs import RateLimiter
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import MAX_SPLIT_VRIDS, Received, VrrpSocket
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


def arrival_time(stamp: float | None, *, now: float, wall_now: float, earliest: float | None = None) -> float:
    """A packet's arrival on the loop's clock: its kernel stamp, within `ARRIVAL_WINDOW` before ``now``.

    ``stamp`` is the kernel's wall-clock time of arrival (``None``: the kernel gave none),
    ``now`` and ``wall_now`` the loop's and the wall clock's readings at the read.
    ``earliest`` replaces the window for a socket read on a schedule (`LAZY_INTERVALS`):
    the loop time at which its queue was last read empty, before which nothing still
    queued can have arrived.
    """
    if stamp is None:
        return now
    floor = now - ARRIVAL_WINDOW if earliest is None else earliest
    return min(now, max(now - (wall_now - stamp), floor))


LAZY_INTERVALS = 1.0
"""How late, in the followed master's advertisement intervals, a backup's socket is read.

Issue 14 (a backup's CPU; keepalived's backup costs 6-13 µs per advertisement): a backup
woken by every burst of its masters' advertisements paid an event-loop turn, a gather
timer and two reader registrations per burst, about two per interval with two masters
on the segment. Its advertisements have one effect, the reset of a Master_Down timer
that is Master_Down_Interval (three intervals and Skew_Time) away, and RFC 9568 §6.4.2
counts it from the arrival, which the kernel stamps. So the advertisements of routers
in BACKUP go to a second socket that the pool reads on a schedule, once per interval,
and before any Master_Down timer decides (`SocketPool.read_pending`); every packet
still counts from its kernel stamp. What must not wait stays on the prompt socket, by
the kernel filter: every advertisement for a router that is not BACKUP (a master must
yield to a higher priority at once), and priority 0 (RFC 9568 §6.4.2: a backup then
takes over after Skew_Time, not Master_Down_Interval).

One interval, not more: under a flood that overflows the queue between two reads
(`LAZY_QUEUE_SHARE`), the master's advertisements of that interval are lost, the read
sees the queue filled and the pool goes back to prompt reads; the master's next
advertisement, one interval later, still comes before Master_Down_Interval has passed
since the last one heard (2 intervals < 3 intervals + Skew_Time).
"""

LAZY_RECEIVE_BUFFER_BYTES = 4 << 20
"""SO_RCVBUF of a lazily read socket: 4 MiB, four times `vrrp_socket.RECEIVE_BUFFER_BYTES`."""

LAZY_QUEUE_SHARE = 0.25
"""The fill of a lazy socket's receive buffer, seen at a read, that sends its routers back to
prompt reads for `LAZY_SUSPEND_SECONDS` (a flood, or more routers than one interval's
advertisements fit): a quarter, so the next interval's packets still fit while the pool
switches."""

LAZY_SUSPEND_SECONDS = 30.0
"""How long a socket whose lazy queue filled stays prompt before it tries again."""

LAZY_READ_LIMIT = 8192
"""Packets one read of a lazy socket takes at most (a flood must not hold the loop); a read
that stops there did not empty the queue, and the socket goes back to prompt reads."""

LAZY_PACKET_BYTES = 2048
"""A queued advertisement's estimated cost in the receive buffer (its skb's truesize), for
the schedule: a lazy socket is read at least once per `LAZY_QUEUE_SHARE` of its buffer."""

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
        # Lazy reads (`LAZY_INTERVALS`): the VRIDs in BACKUP, each with its master's interval (s).
        self.lazy: dict[int, float] = {}
        self.lazy_sock: VrrpSocket | None = None  # open while the filters split
        self.prompt_any: frozenset[int] = frozenset()  # VRIDs the prompt socket passes at any priority
        self.lazy_vrids: frozenset[int] = frozenset()  # VRIDs the lazy socket passes (priority > 0)
        self.lazy_read: asyncio.TimerHandle | None = None  # the next scheduled read of lazy_sock
        self.lazy_emptied = -math.inf  # loop time of the last read that emptied lazy_sock
        self.suspended_until = -math.inf  # lazy reads off until then (a queue filled)
        self.refilter: asyncio.Handle | None = None  # a filter change scheduled for this turn's end


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
            shared.lazy_sock = self._open_lazy(key)
            shared.loop.add_reader(shared.fd, self._readable, shared)
        if vrid in shared.subscriptions and shared.subscriptions[vrid].name != name:
            raise ValueError(f"VRID {vrid} on {key} is already used by {shared.subscriptions[vrid].name}")
        new = vrid not in shared.subscriptions
        shared.subscriptions[vrid] = _Subscription(name, vrid, deliver, flush)
        if new:
            self._refilter(shared)
        return shared.sock

    def unsubscribe(self, key: SocketKey, vrid: int) -> None:
        """Stop delivering ``vrid``; the socket closes with its last subscriber."""
        shared = self._sockets.get(key)
        if shared is None:
            return
        if shared.subscriptions.pop(vrid, None) is None:
            return
        shared.lazy.pop(vrid, None)
        if not shared.subscriptions:
            self._close(key)
        else:
            self._refilter(shared)

    def set_lazy(self, key: SocketKey, vrid: int, interval: float | None) -> None:
        """Read ``vrid``'s advertisements on a schedule, or at once (``interval`` ``None``).

        A router in BACKUP tells its master's advertisement interval (seconds): its
        advertisements above priority 0 are then read at most `LAZY_INTERVALS` of it after
        they arrive, counted from their kernel stamps, and always before its Master_Down
        timer decides (`read_pending`). Any other state reads at once. The kernel filters
        change at the end of the loop's turn, once for every router that changed in it
        (a failover moves many at once).
        """
        shared = self._sockets.get(key)
        if shared is None or vrid not in shared.subscriptions:
            return
        before = shared.lazy.get(vrid)
        if interval is None:
            shared.lazy.pop(vrid, None)
        else:
            shared.lazy[vrid] = interval
        if (before is None) != (interval is None):
            if shared.refilter is None:
                shared.refilter = shared.loop.call_soon(self._refilter_scheduled, shared)
        elif interval is not None and before is not None and interval < before:
            self._schedule_lazy(shared)

    def _refilter_scheduled(self, shared: _SharedSocket) -> None:
        shared.refilter = None
        if shared.open:
            self._refilter(shared)

    def _refilter(self, shared: _SharedSocket, *, serve: bool = False) -> None:
        """Make the kernel filters match the subscriptions and which of them read lazily.

        While the sets change, a packet may be queued on both sockets (delivered twice:
        the second copy of an advertisement changes nothing), never on neither: each
        step widens a filter before the next narrows the other. ``serve``: as for
        `_read_lazy`, when what waits on the lazy socket is delivered.
        """
        if shared.refilter is not None:
            shared.refilter.cancel()
            shared.refilter = None
        everything = frozenset(shared.subscriptions)
        lazy = frozenset(shared.lazy)
        lazy_sock = shared.lazy_sock
        split = bool(lazy) and len(everything) <= MAX_SPLIT_VRIDS
        split = split and shared.loop.time() >= shared.suspended_until
        if not split or lazy_sock is None:
            shared.sock.set_vrids(everything)
            shared.prompt_any = everything
            self._unsplit(shared, serve=serve)
            return
        prompt = everything - lazy
        if not shared.lazy_vrids:  # the lazy socket passed nothing until now: nothing older waits
            _discard(lazy_sock)
            shared.lazy_emptied = shared.loop.time()
        widened = shared.prompt_any | prompt
        shared.sock.set_vrids(widened, zero_only=everything - widened)
        lazy_sock.set_vrids(frozenset(), above_zero_only=lazy)
        shared.sock.set_vrids(prompt, zero_only=lazy)
        moved_out = shared.lazy_vrids - lazy
        shared.prompt_any, shared.lazy_vrids = prompt, lazy
        if moved_out:  # what waits for them on the lazy socket is theirs now
            for subscription in self._read_lazy(shared, guard=False):
                shared.loop.call_soon(subscription.flush)
        self._schedule_lazy(shared)

    @staticmethod
    def _open_lazy(key: SocketKey) -> VrrpSocket | None:
        """The lazy socket of ``key``, passing nothing until the filters split; ``None`` (logged)
        if the kernel refuses it: every advertisement is then read at once.

        Opened with the prompt one (in the same network namespace, at the same moment), not
        at the first split: a router's state change is no time to meet a refusal.
        """
        ifname, family, group = key
        sock: VrrpSocket | None = None
        try:
            if group is not None:
                sock = VrrpSocket.multicast(ifname, group, receive_buffer=LAZY_RECEIVE_BUFFER_BYTES)
            else:
                sock = VrrpSocket.unicast(ifname, family, receive_buffer=LAZY_RECEIVE_BUFFER_BYTES)
            sock.set_vrids(frozenset())
            _discard(sock)  # queued before the filter: copies of the prompt socket's
        except OSError as error:
            if sock is not None:
                sock.close()
            log.warning("no lazily read VRRP socket on %s (%s): every advertisement is read at once",
                        ifname, error)  # fmt: skip
            return None
        return sock

    def _unsplit(self, shared: _SharedSocket, *, serve: bool = False) -> None:
        """Back to the prompt socket alone: deliver what waits on the lazy one, which then passes nothing."""
        if shared.lazy_read is not None:
            shared.lazy_read.cancel()
            shared.lazy_read = None
        if shared.lazy_sock is None or not shared.lazy_vrids:
            return
        shared.lazy_sock.set_vrids(frozenset())
        shared.lazy_vrids = frozenset()
        if shared.open:
            for subscription in self._read_lazy(shared, guard=False, serve=serve):
                shared.loop.call_soon(subscription.flush)
        _discard(shared.lazy_sock)  # past the read limit (a flood): stale by the next split

    def _schedule_lazy(self, shared: _SharedSocket) -> None:
        """The next read of the lazy socket: one interval of its fastest master after the last,
        sooner if its routers' advertisements would fill `LAZY_QUEUE_SHARE` of the queue."""
        if shared.lazy_sock is None or not shared.lazy_vrids or not shared.lazy:
            return
        intervals = shared.lazy.values()
        rate = sum(1 / interval for interval in intervals if interval > 0)
        period = LAZY_INTERVALS * min(intervals)
        if rate > 0:
            period = min(period, LAZY_QUEUE_SHARE * LAZY_RECEIVE_BUFFER_BYTES / LAZY_PACKET_BYTES / rate)
        when = max(shared.lazy_emptied, shared.loop.time() - period) + period
        handle = shared.lazy_read
        if handle is not None:
            if handle.when() <= when:
                return
            handle.cancel()
        shared.lazy_read = shared.loop.call_at(when, self._lazy_due, shared)

    def _lazy_due(self, shared: _SharedSocket) -> None:
        """The scheduled read: deliver what the backups' masters sent, serve, plan the next."""
        shared.lazy_read = None
        if not shared.open or shared.lazy_sock is None:
            return
        reached = self._read_lazy(shared, guard=True, serve=True)
        self._schedule_lazy(shared)
        for subscription in reached:
            subscription.flush()

    def _read_lazy(self, shared: _SharedSocket, *, guard: bool, serve: bool = False) -> list[_Subscription]:
        """Read the lazy socket empty, each packet at its kernel stamp; the subscriptions reached.

        With ``guard``, a queue found filled to `LAZY_QUEUE_SHARE` (a flood, or more
        advertisements than the schedule expected) sends the socket's routers back to
        prompt reads for `LAZY_SUSPEND_SECONDS`. With ``serve`` (the loop's own callback,
        no router on the stack), the routers reached are served after every `READ_BATCH`
        packets, as the prompt socket's reader is: a flood read in one go filled their
        inboxes (bench/flood.py, 100,000/s: 11,483 ``inbox_full`` on the backup).
        """
        sock = shared.lazy_sock
        if sock is None:
            return []
        fill = sock.queue_fill() if guard else None
        reached: dict[_Subscription, None] = {}
        earliest, now = shared.lazy_emptied, shared.loop.time()
        count = 0
        emptied = False
        for _ in range(LAZY_READ_LIMIT // READ_BATCH):
            batch, read = self._read_batch(shared, sock, earliest=earliest, lazily=True)
            count += read
            if serve:
                for subscription in batch:
                    subscription.flush()
            else:
                reached.update(batch)
            if read < READ_BATCH:
                emptied = True
                break
        if emptied:
            shared.lazy_emptied = now
        self._count_forms(shared)
        if guard:
            if fill is None:  # the kernel does not say: estimate it from what was read
                fill = count * LAZY_PACKET_BYTES / LAZY_RECEIVE_BUFFER_BYTES
            if fill >= LAZY_QUEUE_SHARE or not emptied:
                log.warning("VRRP socket on %s: %d advertisements (%.0f %% of its queue) between two "
                            "scheduled reads; reading at once for %.0f s", shared.ifname, count,
                            100 * fill, LAZY_SUSPEND_SECONDS)  # fmt: skip
                shared.suspended_until = now + LAZY_SUSPEND_SECONDS
                shared.loop.call_at(shared.suspended_until, self._refilter_scheduled, shared)
                self._refilter(shared, serve=serve)
        return list(reached)

    def close(self) -> None:
        """Close every socket."""
        for key in list(self._sockets):
            self._close(key)

    def _close(self, key: SocketKey) -> None:
        shared = self._sockets.pop(key)
        shared.open = False
        if shared.gathering is not None:
            shared.gathering.cancel()
        if shared.refilter is not None:
            shared.refilter.cancel()
        if shared.lazy_read is not None:
            shared.lazy_read.cancel()
        if shared.lazy_sock is not None:
            shared.lazy_sock.close()
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
        reached = self._read_lazy(shared, guard=False)  # first: they arrived before the prompt ones
        reached += self._read(shared)[0]
        for subscription in dict.fromkeys(reached):
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
        reached, count = self._read_batch(shared, shared.sock)
        self._count_forms(shared)
        return list(reached), count == READ_BATCH

    def _read_batch(
        self, shared: _SharedSocket, sock: VrrpSocket, *, earliest: float | None = None, lazily: bool = False
    ) -> tuple[dict[_Subscription, None], int]:
        """Read and deliver up to `READ_BATCH` packets of ``sock`` (the prompt or the lazy one):
        the subscriptions reached, in the order first reached, and how many packets were read.
        ``earliest`` as in `arrival_time`."""
        reached: dict[_Subscription, None] = {}
        receive = sock.receive
        now, wall_now = shared.loop.time(), time.time()
        for index in range(READ_BATCH):
            packet = receive()
            if packet is None:
                return reached, index
            arrived = arrival_time(sock.arrived, now=now, wall_now=wall_now, earliest=earliest)
            subscription = self._dispatch(shared, packet, arrived, lazily=lazily)
            if subscription is not None:
                reached[subscription] = None
        return reached, READ_BATCH

    def _drop(self, key: SocketKey, reason: DropReason, source: IPAddress, name: str = "") -> None:
        self._metrics.advert_dropped.labels(name, key[0], reason.value).inc()
        if self._log.allow((reason.value, str(source)), time.monotonic()):
            log.warning("VRRP packet from %s on %s dropped: %s", source, key[0], reason.value,
                        extra={"virtualip": name, "reason": reason.value})  # fmt: skip

    def _dispatch(
        self, shared: _SharedSocket, packet: Received, arrived: float, *, lazily: bool = False
    ) -> _Subscription | None:
        """Decode (or recall the decoding of this very packet object) and deliver; who got it.

        An advertisement the prompt socket read for a VRID read lazily (priority 0, or a copy
        while the filters change) goes after what waits on the lazy socket, which arrived
        before it: read the other way round, the master's last advertisements before its
        priority 0 reset the Master_Down timer that priority 0 had just set to Skew_Time
        (RFC 9568 §6.4.2), and a graceful handover took Master_Down_Interval.
        """
        memo = shared.decoded.get(id(packet))
        if memo is None or memo[0] is not packet:
            memo = self._decode(shared, packet)
        decoded = memo[1]
        if isinstance(decoded, DropReason):
            self._drop(shared.key, decoded, packet.source)
            return None
        memo[2][0] += 1  # its checksum form's tally, this batch
        advertisement = decoded.advertisement
        if not lazily and advertisement.vrid in shared.lazy_vrids:
            for earlier in self._read_lazy(shared, guard=False):
                shared.loop.call_soon(earlier.flush)  # delivered now, before this one; served with it
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


def _discard(sock: VrrpSocket) -> None:
    """Empty a socket whose filter passes nothing now: what it holds must never be delivered."""
    while sock.receive() is not None:
        pass
