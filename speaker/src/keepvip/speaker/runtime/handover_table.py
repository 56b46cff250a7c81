"""The child's side of :mod:`keepvip.speaker.net.handover`: what its parent sends if it is killed.

Each router that is MASTER (its VIPs bound) has its priority-0 advertisements here, one per
destination, packed once when it became master (about 30 bytes a router); a router that
stops being master is taken out. The table is written to the shared region once per turn
of the event loop, however many routers changed in it, and a write joins the packed pieces.
Until that write the region still holds the table from before the turn; a child killed in
between costs at most one router's handover, or one needless priority 0 that the router's
new master answers (RFC 9568 §6.4.3).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from keepvip.speaker.net.handover import Record, Region, pack

log = logging.getLogger("keepvip.speaker.handover")


class HandoverTable:
    """The masters' priority-0 records by VirtualIP name; a no-op without a region (no supervisor)."""

    def __init__(self, region: Region | None) -> None:
        self._region = region
        self._packed: dict[str, bytes] = {}  # per VirtualIP, its records as the region holds them
        self._scheduled = False
        self._told_full = False

    @property
    def enabled(self) -> bool:
        """A parent reads the region (the speaker runs supervised): records are worth building."""
        return self._region is not None

    def master(self, name: str, records: Iterable[Record]) -> None:
        """``name``'s router is master (again, or with a new configuration): these are its records."""
        if self._region is not None:
            self._packed[name] = pack(records)
            self._schedule()

    def left(self, name: str) -> None:
        """``name``'s router is no longer master, or stopped."""
        if self._packed.pop(name, None) is not None:
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the table to the region now."""
        self._scheduled = False
        if self._region is None:
            return
        written = self._region.write_packed(self._packed.values())
        if written < len(self._packed) and not self._told_full:
            self._told_full = True
            log.warning("the handover region holds the priority-0 advertisements of %d of %d masters: "
                        "the rest are not sent if this process is killed",
                        written, len(self._packed))  # fmt: skip
