"""rtnetlink address messages in bytes: the requests keepvip sends and the answers it reads.

Pure ``struct`` work, importing nothing but the standard library's ``socket``, ``struct``
and ``ipaddress``, so that two very different callers share one encoding:

* :mod:`.address_requests`, the speaker's asyncio socket for adds and deletes with many
  requests in flight (issue 15: a few microseconds per request instead of pyroute2's
  ~0.5 ms);
* :mod:`.early_sweep`, which deletes a killed speaker's VIPs before the new process has
  imported asyncio or pyroute2 (issue 14, fifth pass), so it cannot import the former.

The layouts are the kernel's: ``struct nlmsghdr`` (<linux/netlink.h>), ``struct
ifaddrmsg`` and ``struct rtattr`` (<linux/if_addr.h>, <linux/rtnetlink.h>), in host byte
order, each attribute padded to 4 bytes (``RTA_ALIGN``).
"""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, ip_address
from typing import Final

# <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_addr.h>
NETLINK_ROUTE: Final = 0
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
RTM_NEWADDR: Final = 20
RTM_DELADDR: Final = 21
RTM_GETADDR: Final = 22
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
NLM_F_EXCL: Final = 0x200
NLM_F_DUMP: Final = 0x300
NLM_F_CREATE: Final = 0x400
IFA_ADDRESS: Final = 1
IFA_LOCAL: Final = 2
IFA_LABEL: Final = 3
IFA_FLAGS: Final = 8
IFA_PROTO: Final = 11

NLMSGHDR: Final = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
IFADDRMSG: Final = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, ifindex
RTATTR: Final = struct.Struct("=HH")  # length, type
ERRNO: Final = struct.Struct("=i")  # an NLMSG_ERROR's first field: 0 or minus the errno


def attribute(kind: int, payload: bytes) -> bytes:
    """One ``rtattr`` with its payload, padded to 4 bytes."""
    length = RTATTR.size + len(payload)
    return RTATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def address_message(
    kind: int,
    seq: int,
    *,
    index: int,
    address: str,
    prefixlen: int,
    flags: int = 0,
    proto: int | None = None,
    label: str | None = None,
) -> bytes:
    """One ``RTM_NEWADDR`` (create, exclusive) or ``RTM_DELADDR`` request, acknowledged."""
    ip = ip_address(address)
    family = socket.AF_INET if isinstance(ip, IPv4Address) else socket.AF_INET6
    body = IFADDRMSG.pack(family, prefixlen, flags & 0xFF, 0, index)
    body += attribute(IFA_LOCAL, ip.packed) + attribute(IFA_ADDRESS, ip.packed)
    if kind == RTM_NEWADDR:
        if label:
            body += attribute(IFA_LABEL, label.encode() + b"\0")
        if flags:
            body += attribute(IFA_FLAGS, struct.pack("=I", flags))
        if proto is not None:
            body += attribute(IFA_PROTO, bytes([proto]))
    request_flags = NLM_F_REQUEST | NLM_F_ACK
    if kind == RTM_NEWADDR:
        request_flags |= NLM_F_CREATE | NLM_F_EXCL
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, request_flags, seq, 0) + body


def dump_request(seq: int) -> bytes:
    """An ``RTM_GETADDR`` dump of every address of every family (``ip addr show``)."""
    header = NLMSGHDR.pack(NLMSGHDR.size + IFADDRMSG.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    return header + IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)


def messages(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, sequence number, payload) of every netlink message in ``data``; stops at a
    malformed one."""
    found = []
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind, _, seq, _ = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            break
        found.append((kind, seq, data[offset + NLMSGHDR.size : offset + length]))
        offset += (length + 3) & ~3
    return found


def answers(data: bytes) -> list[tuple[int, int]]:
    """(sequence number, errno) of every acknowledgement in ``data`` (errno 0: done)."""
    return [
        (seq, -ERRNO.unpack_from(payload)[0])
        for kind, seq, payload in messages(data)
        if kind == NLMSG_ERROR and len(payload) >= ERRNO.size
    ]


def attributes(payload: bytes, offset: int) -> dict[int, bytes]:
    """The ``rtattr``s of a message payload from ``offset`` on, by type (the last of a type wins)."""
    found: dict[int, bytes] = {}
    while offset + RTATTR.size <= len(payload):
        length, kind = RTATTR.unpack_from(payload, offset)
        if length < RTATTR.size:
            break
        found[kind] = payload[offset + RTATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found
