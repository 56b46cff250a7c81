"""Read-only questions about this host's interfaces, answered over rtnetlink.

The speaker needs four facts before it can run a virtual router, and they all come
from the kernel, never from configuration:

* which interface a VIP belongs on when ``spec.interface`` is absent: the one whose
  subnet holds the address (DESIGN.md, VirtualIP ``interface``);
* the interface's primary IPv4 address, the VRRP source and tie-breaker
  (RFC 9568 §5.1.1.1, §6.4.3 "higher primary IP wins");
* its IPv6 link-local address, the VRRPv3 source and the first address of an IPv6
  advertisement (RFC 9568 §5.1.2.1, §5.2.9);
* whether the link is up (down = FAULT, DESIGN.md).

All functions take an open ``pyroute2.AsyncIPRoute``. pyroute2 creates its netlink
socket lazily, in whichever network namespace the thread is in at its first request.
Every request goes through :mod:`.netlink`, which puts the socket's requests in one
ordered line (the kernel refuses a second concurrent dump on a socket with EBUSY).

The three address facts (subnet lookup, primary IPv4, link-local) are answered from a
listing at most :data:`FACTS_MAX_AGE` old. The speaker resolves its routers one after
the other when it starts, and with a thousand VIPs bound on an interface each listing
of it is a thousand messages (~40-130 ms to read and parse): a fresh listing per router
made a 1,000-VIP start take minutes (issue 15), and at 1 s the listings still took a
third of a loaded speaker's CPU. These facts are about the node's own addresses,
which keepvip does not change and which change rarely (the speaker reads them only
when it applies a configuration); keepvip's VIPs are excluded from every answer, so
the VIPs bound meanwhile do not make a listing wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_interface
from socket import AF_INET, AF_INET6
from typing import Any, Final, TypeVar
from weakref import WeakKeyDictionary

from keepvip.inet import IPAddress
from keepvip.speaker.net import netlink
from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO

_T = TypeVar("_T")

# <linux/if_addr.h> and <linux/if.h>
IFA_F_SECONDARY: Final = 0x01
IFA_F_NODAD: Final = 0x02
IFA_F_DADFAILED: Final = 0x08
IFA_F_TENTATIVE: Final = 0x40
IFF_UP: Final = 0x1
IFF_RUNNING: Final = 0x40  # the kernel's "operationally up": admin up and carrier (RFC 2863)
FACTS_MAX_AGE: Final = 5.0  # seconds a listing may answer the address facts (see above)


@dataclass(frozen=True, slots=True)
class InterfaceAddress:
    """One address as the kernel lists it (``ip addr``), with what keepvip asks of it."""

    ifindex: int
    address: IPAddress
    prefixlen: int
    flags: int
    proto: int
    label: str = ""  # IFA_LABEL, IPv4 only (keepvip's ownership witness on kernels < 6.3)

    @property
    def is_keepvip(self) -> bool:
        """Added by a keepvip speaker (this run or an earlier one)."""
        return self.proto == KEEPVIP_ADDRESS_PROTO

    @property
    def is_usable(self) -> bool:
        """Neither still in duplicate address detection nor failed it."""
        return not self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)


async def list_addresses(ipr: Any, ifindex: int | None = None) -> list[InterfaceAddress]:
    """Every IPv4 and IPv6 address, in the kernel's order, optionally of one interface.

    One dump, read to its end before anything else is sent on ``ipr`` (thousands of
    addresses are a few hundred kilobytes of messages: no limit applies here).
    """
    found: list[InterfaceAddress] = []
    for message in await netlink.dump(ipr, "addr"):
        if ifindex is not None and message["index"] != ifindex:
            continue
        if message["family"] not in (AF_INET, AF_INET6):
            continue
        flags = message.get("IFA_FLAGS")
        proto = message.get("IFA_PROTO")
        found.append(
            InterfaceAddress(
                ifindex=message["index"],
                address=ip_address(message.get("IFA_ADDRESS")),
                prefixlen=message["prefixlen"],
                flags=message["flags"] if flags is None else flags,
                proto=0 if proto is None else proto,
                label=message.get("IFA_LABEL") or "",
            )
        )
    return found


# socket -> ifindex (None: every interface) -> (loop time of the listing, the listing)
_recent: WeakKeyDictionary[Any, dict[int | None, tuple[float, list[InterfaceAddress]]]] = WeakKeyDictionary()


async def _recent_addresses(ipr: Any, ifindex: int | None = None) -> list[InterfaceAddress]:
    """:func:`list_addresses`, reusing a listing made less than FACTS_MAX_AGE ago on ``ipr``."""
    loop = asyncio.get_running_loop()
    listings = _recent.setdefault(ipr, {})
    cached = listings.get(ifindex)
    if cached is not None and loop.time() - cached[0] < FACTS_MAX_AGE:
        return cached[1]
    found = await list_addresses(ipr, ifindex)
    # Stamped when read, not when asked: behind a long line of adds, the wait for the
    # socket can itself take longer than FACTS_MAX_AGE.
    listings[ifindex] = (loop.time(), found)
    return found


# socket -> ifname -> ifindex, as the kernel last answered (see `interface_index`).
_indexes: WeakKeyDictionary[Any, dict[str, int]] = WeakKeyDictionary()


async def interface_index(ipr: Any, ifname: str) -> int:
    """The index of ``ifname``; ``LookupError`` if there is no such interface.

    Remembered per socket: every VIP added or removed needs it, and asking the kernel
    each time put one more request per VIP in the socket's line (issue 15, cost). An
    index changes only when the interface is deleted or renamed; the link monitor
    forgets it then (`forget_interface`), and an address change that meets ``ENODEV``
    forgets it and asks again (:mod:`.addresses`), so a stale index costs one retry.
    """
    known = _indexes.get(ipr)
    if known is not None:
        cached = known.get(ifname)
        if cached is not None:
            return cached
    indexes: list[int] = await netlink.request(ipr, lambda: ipr.link_lookup(ifname=ifname), "link lookup")
    if not indexes:
        raise LookupError(f"no interface named {ifname!r}")
    _indexes.setdefault(ipr, {})[ifname] = indexes[0]
    return indexes[0]


def forget_interface(ifname: str, ifindex: int | None = None) -> None:
    """Forget the remembered index of ``ifname`` (and any name for ``ifindex``), on every socket."""
    for known in _indexes.values():
        for name, index in list(known.items()):
            if name == ifname or index == ifindex:
                del known[name]


async def interface_names(ipr: Any) -> dict[int, str]:
    """ifindex -> name for every interface."""
    return {link["index"]: link.get("IFLA_IFNAME") for link in await netlink.dump(ipr, "link")}


async def interface_for(ipr: Any, address: IPAddress) -> str | None:
    """The interface whose subnet holds ``address`` (longest prefix wins), or ``None``.

    Host routes (/32, /128), link-local subnets and keepvip's own VIPs do not count:
    a VIP must land on the interface of the LAN it is reachable on, not on itself.
    """
    best: tuple[int, int] | None = None  # (prefixlen, ifindex)
    for entry in await _recent_addresses(ipr):
        if entry.address.version != address.version or entry.is_keepvip:
            continue
        if entry.prefixlen >= entry.address.max_prefixlen or entry.address.is_link_local:
            continue
        network = ip_interface(f"{entry.address}/{entry.prefixlen}").network
        if address in network and (best is None or entry.prefixlen > best[0]):
            best = (entry.prefixlen, entry.ifindex)
    if best is None:
        return None
    return (await interface_names(ipr)).get(best[1])


async def primary_ipv4(ipr: Any, ifname: str) -> IPv4Address | None:
    """The interface's primary IPv4 address: the first global, non-secondary, non-VIP one."""
    ifindex = await interface_index(ipr, ifname)
    return _first(
        entry.address
        for entry in await _recent_addresses(ipr, ifindex)
        if isinstance(entry.address, IPv4Address)
        and not entry.flags & IFA_F_SECONDARY
        and not entry.is_keepvip
        and not entry.address.is_loopback
    )


async def link_local_ipv6(ipr: Any, ifname: str) -> IPv6Address | None:
    """The interface's usable IPv6 link-local address (``None`` while DAD runs)."""
    ifindex = await interface_index(ipr, ifname)
    return _first(
        entry.address
        for entry in await _recent_addresses(ipr, ifindex)
        if isinstance(entry.address, IPv6Address) and entry.address.is_link_local and entry.is_usable
    )


async def is_link_up(ipr: Any, ifname: str) -> bool:
    """Administratively up *and* with carrier (``IFF_UP`` and ``IFF_RUNNING``)."""
    ifindex = await interface_index(ipr, ifname)
    links = await netlink.request(ipr, lambda: ipr.link("get", index=ifindex), "link get")
    flags: int = links[0]["flags"]
    return bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)


def _first(items: Iterable[_T]) -> _T | None:
    return next(iter(items), None)
