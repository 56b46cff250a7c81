"""Remove the VIPs a killed speaker left behind, first thing in the new process.

A SIGKILLed (or OOM-killed) speaker cannot release its VIPs: they stay on the node while
the backup that took over holds them too, and the node keeps answering ARP for them, until
the next speaker removes them at start (:func:`.addresses.remove_leftovers`). That used
to happen after the speaker's imports, 0.3 s into the new process on a quiet host and
seconds on a loaded one: in the chaos run at 100 ms adverts (issue 14, fifth pass) these
were keepvip's longest split brains, 885 ms against keepalived's 549 ms, whose restart
takes 0.07 s. This sweep runs before anything else is imported, with nothing but
``socket`` and ``struct``: one ``RTM_GETADDR`` dump and an ``RTM_DELADDR`` for every
address carrying keepvip's ``IFA_PROTO`` mark — the same addresses ``remove_leftovers``
removes first, whatever the marker in use. What a state file names (kernels without
``IFA_PROTO``) is still removed there, later; so is anything this sweep could not do.

The speaker's parent (:mod:`keepvip.speaker.supervisor`) runs the same sweep when the VRRP
process dies by a signal, and passes the state file's entries (:class:`Recorded`): an
address it names goes too if it is present with that prefix and, for IPv4, keepvip's label,
as ``remove_leftovers`` believes the file.

It never raises: on any failure it stops and leaves the rest to ``remove_leftovers``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from ipaddress import IPv4Interface, IPv6Interface, ip_address
from typing import Final, NamedTuple

from keepvip.speaker.net.address_messages import (
    ERRNO,
    IFA_ADDRESS,
    IFA_LABEL,
    IFA_LOCAL,
    IFA_PROTO,
    IFADDRMSG,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_DELADDR,
    address_message,
    attributes,
    dump_request,
    messages,
)
from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO, address_label

TIMEOUT: Final = 2.0  # seconds for the kernel's answers; then remove_leftovers does the rest


class Leftover(NamedTuple):
    """An address a previous speaker marked as keepvip's."""

    family: int
    ifindex: int
    prefixlen: int
    address: bytes  # packed, as the kernel gave it (IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6)

    def __str__(self) -> str:
        return f"{ip_address(self.address)}/{self.prefixlen}"


class Recorded(NamedTuple):
    """An address a state file names: removed only if present exactly so (and labelled, IPv4)."""

    ifindex: int
    prefixlen: int
    address: bytes  # packed
    label: bytes | None  # the IPv4 label it must carry (NUL-terminated, as the kernel sends it)


def leftover_of(payload: bytes, recorded: frozenset[Recorded] = frozenset()) -> Leftover | None:
    """The address an ``RTM_NEWADDR`` payload describes, if it carries keepvip's mark or is
    one of ``recorded`` (with its label, for IPv4)."""
    if len(payload) < IFADDRMSG.size:
        return None
    family, prefixlen, _, _, ifindex = IFADDRMSG.unpack_from(payload)
    found = attributes(payload, IFADDRMSG.size)
    address = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
    if address is None or len(address) not in (4, 16):
        return None
    marked = found.get(IFA_PROTO) == bytes([KEEPVIP_ADDRESS_PROTO])
    label = found.get(IFA_LABEL) if len(address) == 4 else None
    if not marked and Recorded(ifindex, prefixlen, address, label) not in recorded:
        return None
    return Leftover(family, ifindex, prefixlen, address)


def recorded(entries: Iterable[tuple[str, IPv4Interface | IPv6Interface]]) -> frozenset[Recorded]:
    """The state file's (interface name, address) entries as :class:`Recorded`; entries naming
    an interface that is gone are left out."""
    found = set()
    for ifname, address in entries:
        try:
            ifindex = socket.if_nametoindex(ifname)
        except OSError:
            continue
        label = address_label(ifname).encode() + b"\0" if address.version == 4 else None
        found.add(Recorded(ifindex, address.network.prefixlen, address.ip.packed, label))
    return frozenset(found)


def delete_request(seq: int, leftover: Leftover) -> bytes:
    """An acknowledged ``RTM_DELADDR`` for exactly that address and prefix on that interface."""
    address = str(ip_address(leftover.address))
    return address_message(
        RTM_DELADDR, seq, index=leftover.ifindex, address=address, prefixlen=leftover.prefixlen
    )


def _receive_until(sock: socket.socket, done: set[int]) -> list[tuple[int, int, bytes]]:
    """Messages until each sequence number in ``done`` has ended (NLMSG_DONE or an error)."""
    found: list[tuple[int, int, bytes]] = []
    while done:
        for kind, seq, payload in messages(sock.recv(1 << 16)):
            found.append((kind, seq, payload))
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                done.discard(seq)
    return found


def sweep(also: frozenset[Recorded] = frozenset()) -> list[tuple[str, Leftover]]:
    """Delete every keepvip-marked address of this network namespace, and those of ``also``
    present as recorded; (interface, address) of each."""
    removed: list[tuple[str, Leftover]] = []
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:
            sock.settimeout(TIMEOUT)
            sock.bind((0, 0))
            sock.send(dump_request(1))
            leftovers = [
                found
                for kind, _, payload in _receive_until(sock, {1})
                if kind != NLMSG_ERROR and (found := leftover_of(payload, also)) is not None
            ]
            for seq, leftover in enumerate(leftovers, start=2):
                sock.send(delete_request(seq, leftover))
            answered = _receive_until(sock, set(range(2, 2 + len(leftovers))))
            done = {seq for kind, seq, payload in answered if kind == NLMSG_ERROR and _acknowledged(payload)}
            removed += [(_name(gone.ifindex), gone) for seq, gone in enumerate(leftovers, 2) if seq in done]
    except OSError:
        pass  # best effort: remove_leftovers, at the speaker's start, tries again
    return removed


def _acknowledged(payload: bytes) -> bool:
    """An ``NLMSG_ERROR`` whose errno is 0: the kernel did it."""
    return len(payload) >= ERRNO.size and ERRNO.unpack_from(payload)[0] == 0


def _name(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return str(ifindex)
