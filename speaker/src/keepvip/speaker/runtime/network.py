"""The node's network as the routers use it: VIPs via netlink, announcements via AF_PACKET.

Implements `NodeNetwork` for real Linux: address changes go through the idempotent,
marked ``ensure_present`` / ``ensure_absent`` of :mod:`keepvip.speaker.net.addresses`;
announcements follow keepalived's counts (vrrp-facts §3.7) — 5 rounds when the node
becomes master, 5 more after ``garp_master_delay`` (5 s), then an optional periodic
refresh while it is still master — but the first 5 are spread over 2.2 s instead of
sent back to back. Linux ignores a gratuitous ARP for an entry updated less than
``locktime`` (1 s) before: when a VIP moves twice within a second (a pre-emption, then
a handover), a back-to-back burst lands entirely inside that window and the clients keep
the old MAC until the second burst, 5 s later (measured by ``keepvip demo``: 5.2 s of
silence). MetalLB repeats every 1.1 s for the same reason. Each round is a gratuitous
ARP request and reply per IPv4 VIP, or an unsolicited Neighbour Advertisement with the
Override flag per IPv6 VIP.

Errors: whatever the kernel or pyroute2 answers to an address change (pyroute2's
``NetlinkError`` is *not* an ``OSError``; an interface that vanished is a
``LookupError``; a request the kernel never answered times out) leaves this class as
:class:`AddressChangeFailed`, an ``OSError``, which is the one failure the routers
handle (issue 15: a ``NetlinkError`` escaping here ended a router's task silently).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from typing import Any, Final

from pyroute2.netlink.exceptions import NetlinkError

from keepvip.api.model import IPInterface
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.net.addresses import PROTO_ONLY, AddResult, RemoveResult, ensure_absent, ensure_present
from keepvip.speaker.net.announce import Announcer
from keepvip.speaker.net.ownership import Ownership
from keepvip.speaker.vrrp.advertisement import IPAddress

log = logging.getLogger("keepvip.speaker.network")

# Offsets of the first 5 rounds: quick ones for the usual case, later ones past the
# 1 s ARP locktime of Linux clients.
FIRST_ROUNDS: Final = (0.0, 0.2, 0.5, 1.1, 2.2)
BURST: Final = 5  # keepalived garp_master_repeat
SECOND_BURST_DELAY: Final = 5.0  # keepalived garp_master_delay


class AddressChangeFailed(OSError):
    """The kernel refused, or did not answer, an address change (``errno`` says why)."""


@contextlib.contextmanager
def _address_change(what: str) -> Iterator[None]:
    try:
        yield
    except NetlinkError as error:
        raise AddressChangeFailed(error.code, f"{what}: {error}") from error
    except LookupError as error:
        raise AddressChangeFailed(errno.ENODEV, f"{what}: {error}") from error
    except OSError as error:  # includes netlink.NetlinkTimeout (a TimeoutError)
        raise AddressChangeFailed(error.errno or errno.EIO, f"{what}: {error}") from error


class LinuxNetwork:
    """VIPs and announcements on this host (one per speaker process)."""

    def __init__(
        self,
        ipr: Any,
        metrics: SpeakerMetrics,
        refresh_interval: float = 0.0,
        ownership: Ownership = PROTO_ONLY,
    ) -> None:
        self._ipr = ipr
        self._ownership = ownership
        self._metrics = metrics
        self._refresh = refresh_interval
        self._announcers: dict[str, Announcer] = {}
        self._schedules: dict[str, asyncio.Task[None]] = {}

    async def add_address(self, ifname: str, vip: IPInterface) -> None:
        """Bind the VIP (marked as keepvip's); an address someone else configured is left alone."""
        with _address_change(f"adding {vip} to {ifname}"):
            result = await ensure_present(self._ipr, ifname, vip, self._ownership)
        if result is AddResult.FOREIGN:
            log.warning("%s is already configured on %s by someone else; leaving it", vip, ifname)

    async def remove_address(self, ifname: str, vip: IPInterface) -> None:
        """Unbind the VIP if keepvip bound it."""
        with _address_change(f"removing {vip} from {ifname}"):
            result = await ensure_absent(self._ipr, ifname, vip, self._ownership)
        if result is RemoveResult.FOREIGN:
            log.warning("%s on %s was not added by keepvip; leaving it", vip, ifname)

    def announce(
        self,
        name: str,
        ifname: str,
        addresses: tuple[IPAddress, ...],
        still_master: Callable[[], bool],
    ) -> None:
        """Start (or restart) the announcement schedule of VirtualIP ``name``.

        ``still_master`` is asked before every round but the first, which is part of
        becoming master: a round must not tell the clients to come to a node that a
        higher priority's advertisement, already arrived, is about to make release the
        VIP (see `RouterRunner.still_master`). When it says no, the schedule ends.
        """
        self.cancel_announcements(name)
        self._schedules[name] = asyncio.get_running_loop().create_task(
            self._schedule(name, ifname, addresses, still_master), name=f"announce-{name}"
        )

    def cancel_announcements(self, name: str) -> None:
        """Stop announcing (the node is no longer master)."""
        task = self._schedules.pop(name, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        """Cancel every schedule and close the AF_PACKET sockets."""
        tasks = list(self._schedules.values())
        self._schedules.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for announcer in self._announcers.values():
            announcer.close()
        self._announcers.clear()

    async def _schedule(
        self, name: str, ifname: str, addresses: tuple[IPAddress, ...], still_master: Callable[[], bool]
    ) -> None:
        elapsed = 0.0
        for offset in FIRST_ROUNDS:
            await asyncio.sleep(offset - elapsed)
            elapsed = offset
            if offset and not still_master():
                return
            self._round(name, ifname, addresses)
        await asyncio.sleep(SECOND_BURST_DELAY - elapsed)
        if not still_master():
            return
        self._burst(name, ifname, addresses)
        while self._refresh > 0:
            await asyncio.sleep(self._refresh)
            if not still_master():
                return
            self._round(name, ifname, addresses)

    def _burst(self, name: str, ifname: str, addresses: tuple[IPAddress, ...]) -> None:
        for _ in range(BURST):
            self._round(name, ifname, addresses)

    def _round(self, name: str, ifname: str, addresses: tuple[IPAddress, ...]) -> None:
        try:
            announcer = self._announcers.get(ifname)
            if announcer is None:
                announcer = self._announcers[ifname] = Announcer(ifname)
            for address in addresses:
                frames = announcer.announce(address)
                ipv4 = isinstance(address, IPv4Address)
                (self._metrics.garp_sent if ipv4 else self._metrics.na_sent).labels(name).inc(frames)
        except OSError as error:
            log.warning("announcing %s on %s failed: %s", name, ifname, error, extra={"virtualip": name})
