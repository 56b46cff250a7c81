"""How this speaker tells the addresses it added from everyone else's, on any kernel.

keepvip only ever removes addresses it added (:mod:`.addresses`), and at start it
removes the ones a killed predecessor left (DESIGN.md). Both need a mark that survives
the process. There are two, and :class:`Ownership` holds the one in use:

* ``proto`` -- ``IFA_PROTO`` on the address (:mod:`.marks`). The kernel keeps it with
  the address, so it cannot drift from what is configured. Linux >= 6.3 only: older
  kernels (Debian 12's 6.1, Ubuntu 22.04's 5.15, RHEL 9's 5.14) accept the attribute
  and drop it silently.
* ``state-file`` -- a list on disk of the addresses this node's speaker added
  (:mod:`.state_file`, a hostPath in the DaemonSet), plus, for IPv4, the address label
  ``<ifname>:kv`` (``IFA_LABEL``) as a second witness: at start an address is removed
  only if the file names it, it is present with that prefix, and (IPv4) it carries the
  label. IPv6 has no label, so there the file alone vouches; that is why an IPv6 VIP is
  written down only after the kernel added it, while an IPv4 one is written down first
  (a speaker killed in between leaves, at worst, an entry the label check refuses).

Choosing (``--ownership-marker``, default ``auto``). There is no way to ask the kernel
whether it keeps ``IFA_PROTO`` without setting it on some address, and adding a probe
address to the host (on loopback or on a VRRP interface) is itself an intrusion with a
crash window of its own. So ``auto`` decides from the kernel release first: below 6.3
(or unparsable) it is the state file, which works everywhere. From 6.3 it is ``proto``,
checked on the first VIP the speaker adds anyway: its listing is read back once, and
until then the addresses added are also remembered (in memory: a kernel of 6.3 or later
writes nothing to disk, and needs no state directory). If the read-back shows no
``IFA_PROTO`` (a kernel that reports 6.3 without the feature), the speaker switches to
the state file for good, writes down the addresses already added, and logs it.
A release check alone would trust the version string; a read-back alone would leave
the first VIPs unrecorded on an old kernel.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import re
from collections.abc import Awaitable
from ipaddress import ip_interface
from pathlib import Path
from typing import Any, Final

from keepvip.speaker.net import state_file
from keepvip.speaker.net.interfaces import InterfaceAddress
from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO, address_label
from keepvip.speaker.net.state_file import IPInterface, OwnedAddress

log = logging.getLogger("keepvip.speaker.ownership")

PROTO_SINCE: Final = (6, 3)  # Linux release that keeps IFA_PROTO on addresses
DEFAULT_STATE_DIR: Final = Path("/var/lib/keepvip")


class Marker(enum.Enum):
    """The ownership mark in use; the ``marker`` log field."""

    PROTO = "proto"
    STATE_FILE = "state-file"


MARKER_CHOICES: Final = ("auto", Marker.PROTO.value, Marker.STATE_FILE.value)


def kernel_release() -> str:
    return os.uname().release


def keeps_proto(release: str) -> bool | None:
    """Whether a kernel of ``release`` keeps ``IFA_PROTO`` (``None``: not a Linux release)."""
    match = re.match(r"(\d+)\.(\d+)", release)
    if match is None:
        return None
    return (int(match[1]), int(match[2])) >= PROTO_SINCE


class Ownership:
    """The mark this speaker puts on its addresses, and the record of them on disk.

    Without a state directory it is ``proto`` alone (the library default, and tests of it).
    """

    def __init__(self, marker: Marker, state_dir: Path | None, *, unverified: bool = False) -> None:
        if state_dir is None and (marker is Marker.STATE_FILE or unverified):
            raise ValueError("the state-file marker needs a state directory")
        self.marker = marker
        self.path = Path(os.devnull) if state_dir is None else state_dir / state_file.FILE_NAME
        self._stateless = state_dir is None
        self.unverified = unverified and marker is Marker.PROTO  # remembering its VIPs too until checked
        self._owned: set[OwnedAddress] = set()
        self._changes = 0  # changes made to the record in memory ...
        self._written = 0  # ... and how many of them the file on disk holds
        self._writer: asyncio.Task[None] | None = None

    @classmethod
    def choose(cls, choice: str, state_dir: Path, release: str | None = None) -> Ownership:
        """The ownership for ``--ownership-marker`` ``choice``, logged with the reason."""
        release = kernel_release() if release is None else release
        if choice != "auto":
            ownership = cls(Marker(choice), state_dir)
            reason = "forced by --ownership-marker"
        elif keeps_proto(release):
            ownership = cls(Marker.PROTO, state_dir, unverified=True)
            reason = f"kernel {release} keeps IFA_PROTO; checked on the first VIP added"
        else:
            ownership = cls(Marker.STATE_FILE, state_dir)
            reason = f"kernel {release} drops IFA_PROTO (needs 6.3)"
        where = f" in {ownership.path} and the IPv4 label" if ownership.needs_state_dir else ""
        log.info("ownership marker: %s%s (%s)", ownership.marker.value, where, reason,
                 extra={"marker": ownership.marker.value})  # fmt: skip
        return ownership

    @property
    def recording(self) -> bool:
        """Whether this speaker keeps a list of the addresses it added (in memory at least)."""
        return self.marker is Marker.STATE_FILE or self.unverified

    @property
    def needs_state_dir(self) -> bool:
        """Whether the list is written to the state file (the state-file marker)."""
        return self.marker is Marker.STATE_FILE

    # ------------------------------------------------------------------ the marks

    def attributes(self, vip: IPInterface, ifname: str) -> dict[str, Any]:
        """What an ``RTM_NEWADDR`` for ``vip`` carries to mark it as keepvip's."""
        marks: dict[str, Any] = {}
        if self.marker is Marker.PROTO:
            marks["proto"] = KEEPVIP_ADDRESS_PROTO
        if vip.version == 4:  # harmless with proto too, and it covers a negative read-back
            marks["label"] = address_label(ifname)
        return marks

    def owns(self, entry: InterfaceAddress, ifname: str) -> bool:
        """Whether ``entry`` (listed on ``ifname``) is an address this speaker added."""
        if self.marker is Marker.PROTO and entry.is_keepvip:
            return True
        return self.recording and self.witnessed(entry, ifname)

    def witnessed(self, entry: InterfaceAddress, ifname: str) -> bool:
        """The state file names ``entry`` and, for IPv4, it carries keepvip's label."""
        owned = OwnedAddress(ifname, ip_interface(f"{entry.address}/{entry.prefixlen}"))
        labelled = entry.address.version == 6 or entry.label == address_label(ifname)
        return owned in self._owned and labelled

    # ------------------------------------------------------------------ the record
    #
    # Every change waits until the record holding it is on disk, but concurrent changes
    # share one write: a takeover of a thousand VIPs writes the file a few times, not a
    # thousand (each write is a whole-file rewrite with two fsyncs, ~3 ms at 1,000 VIPs).
    # The write runs in a thread, so the routers keep talking to the kernel meanwhile.

    async def will_add(self, ifname: str, vip: IPInterface) -> None:
        """Before an add: write an IPv4 VIP down (its label guards a kill right after)."""
        if self.recording and vip.version == 4:
            await self._change(OwnedAddress(ifname, vip), add=True)

    async def added(self, ifname: str, vip: IPInterface) -> None:
        """After the kernel added ``vip``: write an IPv6 VIP down (no label to guard it earlier)."""
        if self.recording and vip.version == 6:
            await self._change(OwnedAddress(ifname, vip), add=True)

    async def not_added(self, ifname: str, vip: IPInterface) -> None:
        """The add did not happen (someone else's address, or an error): forget the intent."""
        if self.recording:
            await self._logged(self._change(OwnedAddress(ifname, vip), add=False))

    async def removed(self, ifname: str, vip: IPInterface) -> None:
        """After the kernel deleted ``vip``; a failed write is only logged (an absent address is harmless)."""
        if self.recording:
            await self._logged(self._change(OwnedAddress(ifname, vip), add=False))

    async def checked(self, kept: bool, ifname: str, vip: IPInterface) -> None:
        """The read-back of the first VIP added: did the kernel keep ``IFA_PROTO``?"""
        if not self.unverified:
            return
        self.unverified = False
        if kept:
            log.info(
                "ownership marker: proto (the kernel kept IFA_PROTO on %s)", vip, extra={"marker": "proto"}
            )
            self._owned.clear()
            return
        self.marker = Marker.STATE_FILE
        log.warning(
            "ownership marker: state-file in %s and the IPv4 label: the kernel dropped IFA_PROTO on %s (%s)",
            self.path, vip, ifname, extra={"marker": self.marker.value},
        )  # fmt: skip
        await self._logged(self._persisted())  # what was added before the read-back

    def recorded(self) -> list[OwnedAddress]:
        """What the state file names now (read again: at start, a predecessor's record)."""
        if self._stateless:
            return []
        self._owned = set(state_file.load(self.path))
        return sorted(self._owned, key=OwnedAddress.sort_key)

    async def forget(self, entries: list[OwnedAddress]) -> None:
        """Drop ``entries`` from the record (removed, gone, or refused as not ours)."""
        if self._stateless:
            return
        if self._owned.intersection(entries) or (not self.needs_state_dir and self.path.exists()):
            self._owned.difference_update(entries)
            await self._logged(self._persisted())

    async def _change(self, entry: OwnedAddress, *, add: bool) -> None:
        """Apply one change in memory and wait until it is on disk; undone if the write fails."""
        if (entry in self._owned) == add:
            return
        (self._owned.add if add else self._owned.discard)(entry)
        if not self.needs_state_dir:
            return  # remembered in memory until the read-back (see the module doc)
        try:
            await self._persisted()
        except OSError:
            (self._owned.discard if add else self._owned.add)(entry)
            raise

    async def _persisted(self) -> None:
        """Return once the record, as it is now, is on disk (one shared write at a time)."""
        self._changes += 1
        target = self._changes
        while self._written < target:
            if self._writer is None or self._writer.done():
                self._writer = asyncio.get_running_loop().create_task(self._write())
                self._writer.add_done_callback(_retrieve)
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        changes, snapshot = self._changes, frozenset(self._owned)
        await asyncio.to_thread(_save, self.path, snapshot)
        self._written = changes

    async def _logged(self, write: Awaitable[None]) -> None:
        try:
            await write
        except OSError as error:
            log.error("state file %s: could not write it: %s", self.path, error)


def _save(path: Path, entries: frozenset[OwnedAddress]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state_file.save(path, set(entries))


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved here: the waiters re-raise it themselves
