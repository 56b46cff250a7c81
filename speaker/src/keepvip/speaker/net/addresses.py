"""Adding and removing VIPs with rtnetlink, idempotently and marked as keepvip's.

The router decides *whether* a node holds a VIP; this module makes the kernel agree,
as many times as it is asked, without surprises:

* ``ensure_present`` / ``ensure_absent`` converge instead of failing on "File exists"
  or "Cannot assign requested address", so a repeated transition is harmless.
* Every address keepvip adds carries its mark: :data:`~keepvip.speaker.net.marks.KEEPVIP_ADDRESS_PROTO`
  in ``IFA_PROTO``, or on kernels that drop it (< 6.3) a state file entry plus the
  IPv4 label (:mod:`.ownership` decides which; each function takes it, default
  ``proto``). An address with the same IP that keepvip did not add (an operator's
  static address, an address owner in the RFC 9568 §1.2 sense) is reported as
  ``FOREIGN`` and never touched: keepvip only removes what it added.
* ``remove_leftovers`` removes every marked address, which is what a speaker does at
  start after a crash (DESIGN.md "On start, the speaker removes VIPs it owns from a
  previous run").
* IPv6 VIPs are added with ``IFA_F_NODAD``: the address is usable at once instead of
  after a second of duplicate address detection, and the VRRP election has already
  decided that no one else holds it (keepalived does the same).

Cost at scale (issue 15): an add does not list the interface's addresses first. It
asks the kernel, and only the kernel's ``EEXIST`` ("this address is already here")
leads to a look at what is there. A remove must know whose address it is (the kernel
deletes by address and prefix, whatever the mark): an address added (or found marked)
through the same socket is remembered and deleted at once; any other is looked up,
and every remove that asks while a listing of that interface is queued or being read
shares that listing (:func:`_addresses_on`). A takeover or release of a thousand VIPs
costs a handful of dumps at most, not one dump per VIP (which made the work grow with
the square of the VIPs).

One consequence of asking the kernel first: for IPv4 the kernel refuses only the same
address *and* prefix, so a VIP whose address someone configured with another prefix
is added next to theirs (marked as keepvip's) instead of being reported ``FOREIGN``;
their address is never touched, and removing the VIP removes only keepvip's copy.
For IPv6 the kernel refuses the same address with any prefix, as before.

All functions take an open ``pyroute2.AsyncIPRoute`` (see :mod:`.interfaces`); listings
go through the socket's ordered line in :mod:`.netlink`, adds and deletes through a lean
socket of their own with many requests in flight (:mod:`.address_requests`). Errors from the
kernel other than the ones classified here propagate as pyroute2's ``NetlinkError``,
and a request the kernel does not answer as :class:`.netlink.NetlinkTimeout`.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import logging
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from socket import AF_INET, AF_INET6
from typing import Any
from weakref import WeakKeyDictionary

from pyroute2.netlink.exceptions import NetlinkError

from keepvip.inet import IPAddress
from keepvip.speaker.net import address_requests
from keepvip.speaker.net.interfaces import (
    IFA_F_NODAD,
    InterfaceAddress,
    forget_interface,
    interface_index,
    interface_names,
    list_addresses,
)
from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO
from keepvip.speaker.net.ownership import Marker, Ownership
from keepvip.speaker.net.state_file import OwnedAddress

log = logging.getLogger("keepvip.speaker.addresses")
PROTO_ONLY = Ownership(Marker.PROTO, None)

IPInterface = IPv4Interface | IPv6Interface


class AddResult(enum.Enum):
    """What :func:`ensure_present` found and did."""

    ADDED = "added"
    ALREADY_PRESENT = "already_present"  # keepvip's own address was already there
    FOREIGN = "foreign"  # the IP is configured, but not by keepvip: left alone


class RemoveResult(enum.Enum):
    """What :func:`ensure_absent` found and did."""

    REMOVED = "removed"
    ALREADY_ABSENT = "already_absent"
    FOREIGN = "foreign"  # the IP is configured, but not by keepvip: left alone


async def ensure_present(
    ipr: Any, ifname: str, vip: IPInterface, ownership: Ownership = PROTO_ONLY
) -> AddResult:
    """Make ``vip`` (address and prefix) present on ``ifname``, marked as keepvip's."""
    try:
        return await _ensure_present(ipr, ifname, vip, ownership)
    except NetlinkError as error:
        if error.code != errno.ENODEV:
            raise
        forget_interface(ifname)  # the remembered index is stale (interface re-created): ask again
        return await _ensure_present(ipr, ifname, vip, ownership)


async def _ensure_present(ipr: Any, ifname: str, vip: IPInterface, ownership: Ownership) -> AddResult:
    ifindex = await interface_index(ipr, ifname)
    request: dict[str, Any] = {
        "index": ifindex,
        "address": str(vip.ip),
        "prefixlen": vip.network.prefixlen,
        **ownership.attributes(vip, ifname),
    }
    if isinstance(vip, IPv6Interface):
        request["flags"] = IFA_F_NODAD
    await ownership.will_add(ifname, vip)
    try:
        await address_requests.add(ipr, f"add {vip}", **request)
    except NetlinkError as error:
        if error.code != errno.EEXIST:
            await ownership.not_added(ifname, vip)
            raise
        existing = await _same_ip(ipr, ifindex, vip)
        if not existing:
            return await _ensure_present(ipr, ifname, vip, ownership)  # removed since the kernel said EEXIST
        exact = [entry for entry in existing if entry.prefixlen == vip.network.prefixlen]
        found = (exact or existing)[0]
        if not ownership.owns(found, ifname):
            await ownership.not_added(ifname, vip)
            return AddResult.FOREIGN
        _remember(ipr, found)
        return AddResult.ALREADY_PRESENT
    await _record_added(ipr, ifindex, ifname, vip, ownership)
    return AddResult.ADDED


async def _record_added(ipr: Any, ifindex: int, ifname: str, vip: IPInterface, ownership: Ownership) -> None:
    """Note a VIP the kernel just added: in memory, in the state file, and (once) read it back."""
    mark = KEEPVIP_ADDRESS_PROTO if ownership.marker is Marker.PROTO else 0
    entry = InterfaceAddress(ifindex, vip.ip, vip.network.prefixlen, 0, mark)
    _remember(ipr, entry)
    try:
        await ownership.added(ifname, vip)
    except OSError:
        await _delete(ipr, entry)  # an IPv6 VIP nobody could find after a restart: not added after all
        raise
    if ownership.unverified:
        listed = [found for found in await _same_ip(ipr, ifindex, vip) if found.prefixlen == entry.prefixlen]
        if listed:
            await ownership.checked(listed[0].proto == KEEPVIP_ADDRESS_PROTO, ifname, vip)


async def ensure_absent(
    ipr: Any, ifname: str, vip: IPInterface, ownership: Ownership = PROTO_ONLY
) -> RemoveResult:
    """Make ``vip``'s address absent from ``ifname`` if keepvip added it (any prefix)."""
    ifindex = await interface_index(ipr, ifname)
    ours = _recall(ipr, ifindex, vip)
    if not ours:  # not added through this socket: look whose it is
        existing = await _same_ip(ipr, ifindex, vip)
        ours = [entry for entry in existing if ownership.owns(entry, ifname)]
        if not ours:
            return RemoveResult.FOREIGN if existing else RemoveResult.ALREADY_ABSENT
    removed = False
    for entry in ours:
        removed |= await _delete(ipr, entry)
        await ownership.removed(ifname, _as_interface(entry))
    return RemoveResult.REMOVED if removed else RemoveResult.ALREADY_ABSENT


async def marked_addresses(
    ipr: Any, ifname: str | None = None, ownership: Ownership = PROTO_ONLY
) -> list[tuple[str, IPInterface]]:
    """Every address carrying keepvip's mark, as ``(ifname, address/prefix)``."""
    names = await interface_names(ipr)
    ifindex = None if ifname is None else await interface_index(ipr, ifname)
    found = [
        (names.get(entry.ifindex, str(entry.ifindex)), entry) for entry in await list_addresses(ipr, ifindex)
    ]
    return [(name, _as_interface(entry)) for name, entry in found if ownership.owns(entry, name)]


async def remove_leftovers(
    ipr: Any, ifname: str | None = None, ownership: Ownership = PROTO_ONLY
) -> list[tuple[str, IPInterface]]:
    """Remove every keepvip-marked address (on ``ifname``, or everywhere); return them.

    Called once at speaker start, before any router runs: whatever carries the mark
    then was left by an earlier run that could not clean up (SIGKILL, OOM, node crash).
    Addresses marked with ``IFA_PROTO`` go whatever the marker in use (an earlier run may
    have used it); then those the state file names, if they still look like ours
    (:func:`_recorded_leftovers`). Also called at stop, for what no router released.
    """
    names = await interface_names(ipr)
    ifindex = None if ifname is None else await interface_index(ipr, ifname)
    listing = await list_addresses(ipr, ifindex)
    removed: list[tuple[str, IPInterface]] = []
    for entry in listing:
        if entry.is_keepvip and await _delete(ipr, entry):
            removed.append((names.get(entry.ifindex, str(entry.ifindex)), _as_interface(entry)))
    if ifname is None:  # the state file is per node, not per interface
        removed += await _recorded_leftovers(ipr, ownership, names, [e for e in listing if not e.is_keepvip])
    return removed


async def _recorded_leftovers(
    ipr: Any, ownership: Ownership, names: dict[int, str], listing: list[InterfaceAddress]
) -> list[tuple[str, IPInterface]]:
    """Remove what the state file names, if present with its prefix and (IPv4) keepvip's label.

    An entry naming an address that is absent is simply dropped; one naming an address
    that does not look like ours is dropped with a log line, and the address is left alone.
    """
    recorded = ownership.recorded()
    if not recorded:
        await ownership.forget([])
        return []
    present = {OwnedAddress(names.get(e.ifindex, ""), _as_interface(e)): e for e in listing}
    removed: list[tuple[str, IPInterface]] = []
    for owned in recorded:
        entry = present.get(owned)
        if entry is None:
            continue
        if not ownership.witnessed(entry, owned.ifname):
            log.warning(
                "the state file names %s on %s, but it does not carry keepvip's label: left alone",
                owned.address, owned.ifname, extra={"reason": "not_ours"},
            )  # fmt: skip
        elif await _delete(ipr, entry):
            removed.append((owned.ifname, owned.address))
    await ownership.forget(recorded)
    return removed


async def _same_ip(ipr: Any, ifindex: int, vip: IPInterface) -> list[InterfaceAddress]:
    return [entry for entry in await _addresses_on(ipr, ifindex) if entry.address == vip.ip]


# socket -> (ifindex, address) -> the keepvip-marked addresses this socket added or found.
_added: WeakKeyDictionary[Any, dict[tuple[int, IPAddress], set[InterfaceAddress]]] = WeakKeyDictionary()


def _remember(ipr: Any, entry: InterfaceAddress) -> None:
    """Note a marked address that ``ipr`` added (or found in place) for a later remove.

    A release then deletes it without listing the interface first. Without this, the
    routers of a node losing a takeover one by one listed a thousand addresses per VIP
    released (issue 15: the square of the VIPs again, on the node that can least afford it).
    The one case this trusts memory over the kernel: someone deletes keepvip's address and
    configures the same address and prefix themselves before keepvip releases it.
    """
    _added.setdefault(ipr, {}).setdefault((entry.ifindex, entry.address), set()).add(entry)


def _recall(ipr: Any, ifindex: int, vip: IPInterface) -> list[InterfaceAddress]:
    """The marked addresses for ``vip`` that ``ipr`` remembers on ``ifindex``, forgotten now."""
    return sorted(_added.get(ipr, {}).pop((ifindex, vip.ip), set()), key=lambda entry: entry.prefixlen)


# (socket, ifindex) -> the listing of that interface that is queued or being read now.
_listings: dict[tuple[int, int], asyncio.Task[list[InterfaceAddress]]] = {}


async def _addresses_on(ipr: Any, ifindex: int) -> list[InterfaceAddress]:
    """The addresses of one interface, from a listing that started after this call.

    A caller that finds a listing of the same interface queued or in progress shares
    it instead of queuing another. That is safe for its own earlier changes: those
    finished before this call, and requests on a socket never overlap (:mod:`.netlink`),
    so a listing still in progress now began after they were done. The listing runs as
    its own task, so one caller giving up (cancelled) does not cancel it for the others.
    """
    key = (id(ipr), ifindex)
    listing = _listings.get(key)
    if listing is None:
        listing = asyncio.get_running_loop().create_task(list_addresses(ipr, ifindex))
        _listings[key] = listing
        listing.add_done_callback(lambda done: _forget_listing(key, done))
    return await asyncio.shield(listing)


def _forget_listing(key: tuple[int, int], done: asyncio.Task[list[InterfaceAddress]]) -> None:
    if _listings.get(key) is done:
        del _listings[key]
    if not done.cancelled():
        done.exception()  # retrieved here: the callers still waiting re-raise it themselves


async def _delete(ipr: Any, entry: InterfaceAddress) -> bool:
    """Delete one address; ``False`` if it was already gone."""
    request = {
        "index": entry.ifindex,
        "address": str(entry.address),
        "prefixlen": entry.prefixlen,
        "family": AF_INET if entry.address.version == 4 else AF_INET6,
    }
    try:
        await address_requests.delete(ipr, f"delete {entry.address}", **request)
    except NetlinkError as error:
        if error.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
            return False
        raise
    return True


def _as_interface(entry: InterfaceAddress) -> IPInterface:
    return ip_interface(f"{entry.address}/{entry.prefixlen}")
