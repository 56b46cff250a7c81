"""Adding and removing VIPs with rtnetlink, idempotently and marked as keepvip's.

The router decides *whether* a node holds a VIP; this module makes the kernel agree,
as many times as it is asked, without surprises:

* ``ensure_present`` / ``ensure_absent`` converge instead of failing on "File exists"
  or "Cannot assign requested address", so a repeated transition is harmless.
* Every address keepvip adds carries :data:`~keepvip.speaker.net.marks.KEEPVIP_ADDRESS_PROTO`
  in ``IFA_PROTO``. An address with the same IP that keepvip did not add (an operator's
  static address, an address owner in the RFC 9568 §1.2 sense) is reported as
  ``FOREIGN`` and never touched: keepvip only removes what it added.
* ``remove_leftovers`` removes every marked address, which is what a speaker does at
  start after a crash (DESIGN.md "On start, the speaker removes VIPs it owns from a
  previous run").
* IPv6 VIPs are added with ``IFA_F_NODAD``: the address is usable at once instead of
  after a second of duplicate address detection, and the VRRP election has already
  decided that no one else holds it (keepalived does the same).

All functions take an open ``pyroute2.AsyncIPRoute`` (see :mod:`.interfaces`).
"""

from __future__ import annotations

import enum
import errno
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from socket import AF_INET, AF_INET6
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from keepvip.speaker.net.interfaces import (
    IFA_F_NODAD,
    InterfaceAddress,
    interface_index,
    interface_names,
    list_addresses,
)
from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO

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


async def ensure_present(ipr: Any, ifname: str, vip: IPInterface) -> AddResult:
    """Make ``vip`` (address and prefix) present on ``ifname``, marked as keepvip's."""
    ifindex = await interface_index(ipr, ifname)
    existing = await _same_ip(ipr, ifindex, vip)
    if existing:
        return AddResult.ALREADY_PRESENT if existing[0].is_keepvip else AddResult.FOREIGN
    request: dict[str, Any] = {
        "index": ifindex,
        "address": str(vip.ip),
        "prefixlen": vip.network.prefixlen,
        "proto": KEEPVIP_ADDRESS_PROTO,
    }
    if isinstance(vip, IPv6Interface):
        request["flags"] = IFA_F_NODAD
    try:
        await ipr.addr("add", **request)
    except NetlinkError as error:
        if error.code != errno.EEXIST:
            raise
        return await ensure_present(ipr, ifname, vip)  # lost a race: classify what is there
    return AddResult.ADDED


async def ensure_absent(ipr: Any, ifname: str, vip: IPInterface) -> RemoveResult:
    """Make ``vip``'s address absent from ``ifname`` if keepvip added it (any prefix)."""
    ifindex = await interface_index(ipr, ifname)
    existing = await _same_ip(ipr, ifindex, vip)
    ours = [entry for entry in existing if entry.is_keepvip]
    if not ours:
        return RemoveResult.FOREIGN if existing else RemoveResult.ALREADY_ABSENT
    removed = False
    for entry in ours:
        removed |= await _delete(ipr, entry)
    return RemoveResult.REMOVED if removed else RemoveResult.ALREADY_ABSENT


async def marked_addresses(ipr: Any, ifname: str | None = None) -> list[tuple[str, IPInterface]]:
    """Every address carrying keepvip's mark, as ``(ifname, address/prefix)``."""
    names = await interface_names(ipr)
    ifindex = None if ifname is None else await interface_index(ipr, ifname)
    return [
        (names.get(entry.ifindex, str(entry.ifindex)), _as_interface(entry))
        for entry in await list_addresses(ipr, ifindex)
        if entry.is_keepvip
    ]


async def remove_leftovers(ipr: Any, ifname: str | None = None) -> list[tuple[str, IPInterface]]:
    """Remove every keepvip-marked address (on ``ifname``, or everywhere); return them.

    Called once at speaker start, before any router runs: whatever carries the mark
    then was left by an earlier run that could not clean up (SIGKILL, OOM, node crash).
    """
    names = await interface_names(ipr)
    ifindex = None if ifname is None else await interface_index(ipr, ifname)
    removed: list[tuple[str, IPInterface]] = []
    for entry in await list_addresses(ipr, ifindex):
        if entry.is_keepvip and await _delete(ipr, entry):
            removed.append((names.get(entry.ifindex, str(entry.ifindex)), _as_interface(entry)))
    return removed


async def _same_ip(ipr: Any, ifindex: int, vip: IPInterface) -> list[InterfaceAddress]:
    return [entry for entry in await list_addresses(ipr, ifindex) if entry.address == vip.ip]


async def _delete(ipr: Any, entry: InterfaceAddress) -> bool:
    """Delete one address; ``False`` if it was already gone."""
    try:
        await ipr.addr(
            "del",
            index=entry.ifindex,
            address=str(entry.address),
            prefixlen=entry.prefixlen,
            family=AF_INET if entry.address.version == 4 else AF_INET6,
        )
    except NetlinkError as error:
        if error.code in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
            return False
        raise
    return True


def _as_interface(entry: InterfaceAddress) -> IPInterface:
    return ip_interface(f"{entry.address}/{entry.prefixlen}")
