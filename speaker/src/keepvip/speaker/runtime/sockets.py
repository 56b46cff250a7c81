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

# (ifname, family, group or None for unicast)
SocketKey = tuple[str, int, IPAddress | None]
Deliver = Callable[[Advertisement, Received], None]
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
    def __init__(self, sock: VrrpSocket) -> None:
        self.sock = sock
        self.subscriptions: dict[int, _Subscription] = {}
        # id(received) -> (received, the codec's verdict); the entry keeps the object alive
        self.decoded: dict[int, tuple[Received, Decoded | DropReason]] = {}


class SocketPool:
    """Opens, shares and closes raw VRRP sockets; dispatches packets by VRID."""

    def __init__(self, metrics: SpeakerMetrics) -> None:
        self._metrics = metrics
        self._sockets: dict[SocketKey, _SharedSocket] = {}
        self._log = RateLimiter()
        self._forms: dict[tuple[str, str], Any] = {}  # labelled counter children, resolved once

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

        ``deliver`` is called for each advertisement as it is read; ``flush`` once after
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
            shared = self._sockets[key] = _SharedSocket(sock)
            asyncio.get_running_loop().add_reader(sock.fileno(), self._readable, key)
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
        asyncio.get_running_loop().remove_reader(shared.sock.fileno())
        shared.sock.close()

    def read_pending(self, key: SocketKey) -> None:
        """Dispatch now whatever waits on ``key``'s socket, without waiting for the loop's reader.

        A router about to let its Master_Down timer decide calls this first (issue 14): after
        the process was off the CPU, the event loop may serve the router before the reader
        callback runs, and advertisements that arrived before the deadline must count.
        The caller is serving already; the others the read reached are flushed on the next
        loop turn (a flush from here would serve routers inside the caller's turn).
        """
        loop = asyncio.get_running_loop()
        for subscription in self._read(key):
            loop.call_soon(subscription.flush)

    def _readable(self, key: SocketKey) -> None:
        """The loop's reader callback: a batch of packets, then the routers it reached."""
        for subscription in self._read(key):
            subscription.flush()

    def _read(self, key: SocketKey) -> list[_Subscription]:
        """Read and deliver up to `READ_BATCH` packets; the subscriptions that got any, once each."""
        shared = self._sockets.get(key)
        if shared is None:
            return []
        reached: dict[_Subscription, None] = {}  # ordered: flushed in the order first reached
        receive = shared.sock.receive
        for _ in range(READ_BATCH):
            packet = receive()
            if packet is None:
                break
            subscription = self._dispatch(key, shared, packet)
            if subscription is not None:
                reached[subscription] = None
        return list(reached)

    def _drop(self, key: SocketKey, reason: DropReason, source: IPAddress, name: str = "") -> None:
        self._metrics.advert_dropped.labels(name, key[0], reason.value).inc()
        if self._log.allow((reason.value, str(source)), time.monotonic()):
            log.warning("VRRP packet from %s on %s dropped: %s", source, key[0], reason.value,
                        extra={"virtualip": name, "reason": reason.value})  # fmt: skip

    def _dispatch(self, key: SocketKey, shared: _SharedSocket, packet: Received) -> _Subscription | None:
        """Decode (or recall the decoding of this very packet object) and deliver; who got it."""
        memo = shared.decoded.get(id(packet))
        if memo is not None and memo[0] is packet:
            decoded = memo[1]
        else:
            decoded = decode_detailed(packet.payload, source=packet.source, destination=packet.destination,
                                      ttl=packet.ttl)  # fmt: skip
            if len(shared.decoded) >= DECODED_MEMO:
                shared.decoded.clear()
            shared.decoded[id(packet)] = (packet, decoded)
        if isinstance(decoded, DropReason):
            self._drop(key, decoded, packet.source)
            return None
        self._count_form(key[0], decoded)
        advertisement = decoded.advertisement
        subscription = shared.subscriptions.get(advertisement.vrid)
        if subscription is None:
            self._drop(key, DropReason.WRONG_VRID, packet.source)
            return None
        subscription.deliver(advertisement, packet)
        return subscription

    def _count_form(self, ifname: str, decoded: Decoded) -> None:
        counter = self._forms.get((ifname, decoded.checksum_form.value))
        if counter is None:
            form = decoded.checksum_form.value
            counter = self._forms[(ifname, form)] = self._metrics.advert_checksum_form.labels(ifname, form)
        counter.inc()
