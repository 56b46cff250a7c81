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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from keepvip.speaker.logs import RateLimiter
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.vrrp_socket import Received, VrrpSocket
from keepvip.speaker.vrrp.advertisement import Advertisement, IPAddress
from keepvip.speaker.vrrp.codec import decode_detailed
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

# (ifname, family, group or None for unicast)
SocketKey = tuple[str, int, IPAddress | None]
Deliver = Callable[[Advertisement, Received], None]


@dataclass
class _Subscription:
    name: str
    vrid: int
    deliver: Deliver


class _SharedSocket:
    def __init__(self, sock: VrrpSocket) -> None:
        self.sock = sock
        self.subscriptions: dict[int, _Subscription] = {}


class SocketPool:
    """Opens, shares and closes raw VRRP sockets; dispatches packets by VRID."""

    def __init__(self, metrics: SpeakerMetrics) -> None:
        self._metrics = metrics
        self._sockets: dict[SocketKey, _SharedSocket] = {}
        self._log = RateLimiter()

    def subscribe(
        self,
        key: SocketKey,
        *,
        name: str,
        vrid: int,
        deliver: Deliver,
    ) -> VrrpSocket:
        """Receive the advertisements for ``vrid`` on ``key``; returns the socket to send with."""
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
        shared.subscriptions[vrid] = _Subscription(name, vrid, deliver)
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
        """
        self._readable(key)

    def _readable(self, key: SocketKey) -> None:
        shared = self._sockets.get(key)
        if shared is None:
            return
        for _ in range(READ_BATCH):
            packet = shared.sock.receive()
            if packet is None:
                return
            self._dispatch(key, shared, packet)

    def _drop(self, key: SocketKey, reason: DropReason, source: IPAddress, name: str = "") -> None:
        self._metrics.advert_dropped.labels(name, key[0], reason.value).inc()
        if self._log.allow((reason.value, str(source)), time.monotonic()):
            log.warning("VRRP packet from %s on %s dropped: %s", source, key[0], reason.value,
                        extra={"virtualip": name, "reason": reason.value})  # fmt: skip

    def _dispatch(self, key: SocketKey, shared: _SharedSocket, packet: Received) -> None:
        decoded = decode_detailed(packet.payload, source=packet.source, destination=packet.destination,
                                  ttl=packet.ttl)  # fmt: skip
        if isinstance(decoded, DropReason):
            self._drop(key, decoded, packet.source)
            return
        self._metrics.advert_checksum_form.labels(key[0], decoded.checksum_form.value).inc()
        subscription = shared.subscriptions.get(decoded.advertisement.vrid)
        if subscription is None:
            self._drop(key, DropReason.WRONG_VRID, packet.source)
            return
        subscription.deliver(decoded.advertisement, packet)
