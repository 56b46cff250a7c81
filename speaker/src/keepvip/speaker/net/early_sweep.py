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

It never raises: on any failure it stops and leaves the rest to ``remove_leftovers``.
"""

from __future__ import annotations

import socket
import struct
from ipaddress import ip_address
from typing import Final, NamedTuple

from keepvip.speaker.net.marks import KEEPVIP_ADDRESS_PROTO

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_addr.h>
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
RTM_DELADDR: Final = 21
RTM_GETADDR: Final = 22
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLM_F_DUMP: Final = 0x300
IFA_ADDRESS: Final = 1
IFA_LOCAL: Final = 2
IFA_PROTO: Final = 11
TIMEOUT: Final = 2.0  # seconds for the kernel's answers; then remove_leftovers does the rest

_HEADER = struct.Struct("=IHHII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
_ERRNO = struct.Struct("=i")


class Leftover(NamedTuple):
    """An address a previous speaker marked as keepvip's."""

    family: int
    ifindex: int
    prefixlen: int
    address: bytes  # packed, as the kernel gave it (IFA_LOCAL for IPv4, IFA_ADDRESS for IPv6)

    def __str__(self) -> str:
        return f"{ip_address(self.address)}/{self.prefixlen}"


def _messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, sequence, payload) of every netlink message in ``data``."""
    found = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, seq, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size or offset + length > len(data):
            break
        found.append((kind, seq, data[offset + _HEADER.size : offset + length]))
        offset += (length + 3) & ~3
    return found


def leftover_of(payload: bytes) -> Leftover | None:
    """The address an ``RTM_NEWADDR`` payload describes, if it carries keepvip's mark."""
    if len(payload) < _IFADDRMSG.size:
        return None
    family, prefixlen, _, _, ifindex = _IFADDRMSG.unpack_from(payload)
    attributes: dict[int, bytes] = {}
    offset = _IFADDRMSG.size
    while offset + _RTATTR.size <= len(payload):
        length, kind = _RTATTR.unpack_from(payload, offset)
        if length < _RTATTR.size:
            break
        attributes[kind] = payload[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    if attributes.get(IFA_PROTO) != bytes([KEEPVIP_ADDRESS_PROTO]):
        return None
    address = attributes.get(IFA_LOCAL) or attributes.get(IFA_ADDRESS)
    if address is None or len(address) not in (4, 16):
        return None
    return Leftover(family, ifindex, prefixlen, address)


def _attribute(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def delete_request(seq: int, leftover: Leftover) -> bytes:
    """An acknowledged ``RTM_DELADDR`` for exactly that address and prefix on that interface."""
    body = _IFADDRMSG.pack(leftover.family, leftover.prefixlen, 0, 0, leftover.ifindex)
    body += _attribute(IFA_LOCAL, leftover.address) + _attribute(IFA_ADDRESS, leftover.address)
    return _HEADER.pack(_HEADER.size + len(body), RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def _receive_until(sock: socket.socket, done: set[int]) -> list[tuple[int, int, bytes]]:
    """Messages until each sequence number in ``done`` has ended (NLMSG_DONE or an error)."""
    found: list[tuple[int, int, bytes]] = []
    while done:
        for kind, seq, payload in _messages(sock.recv(1 << 16)):
            found.append((kind, seq, payload))
            if kind in (NLMSG_DONE, NLMSG_ERROR):
                done.discard(seq)
    return found


def sweep() -> list[tuple[str, Leftover]]:
    """Delete every keepvip-marked address of this network namespace; (interface, address) of each."""
    removed: list[tuple[str, Leftover]] = []
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) as sock:
            sock.settimeout(TIMEOUT)
            sock.bind((0, 0))
            dump = _HEADER.pack(_HEADER.size + _IFADDRMSG.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
            sock.send(dump + _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))
            leftovers = [
                found
                for kind, _, payload in _receive_until(sock, {1})
                if kind != NLMSG_ERROR and (found := leftover_of(payload)) is not None
            ]
            for seq, leftover in enumerate(leftovers, start=2):
                sock.send(delete_request(seq, leftover))
            answers = _receive_until(sock, set(range(2, 2 + len(leftovers))))
            done = {seq for kind, seq, payload in answers if kind == NLMSG_ERROR and _acknowledged(payload)}
            removed += [(_name(gone.ifindex), gone) for seq, gone in enumerate(leftovers, 2) if seq in done]
    except OSError:
        pass  # best effort: remove_leftovers, at the speaker's start, tries again
    return removed


def _acknowledged(payload: bytes) -> bool:
    """An ``NLMSG_ERROR`` whose errno is 0: the kernel did it."""
    return len(payload) >= _ERRNO.size and _ERRNO.unpack_from(payload)[0] == 0


def _name(ifindex: int) -> str:
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return str(ifindex)
