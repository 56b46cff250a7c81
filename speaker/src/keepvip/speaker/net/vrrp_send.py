"""How a VRRP advertisement leaves this node: the send options and the per-packet target.

Shared by the speaker's sockets (:mod:`.vrrp_socket`) and by its parent, which sends a
killed speaker's priority-0 advertisements (:mod:`.handover`) and must stay small: this
module imports ``socket``, ``struct`` and the VRRP constants only.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

from keepvip.speaker.vrrp.constants import VRRP_TTL

IP_PKTINFO: Final = 8  # <linux/in.h>: not exported by Python's socket module

Ancillary = list[tuple[int, int, bytes]]
Target = tuple[Ancillary, int, tuple[object, ...]]


def set_send_options(sock: socket.socket, family: int) -> None:
    """TTL / hop limit 255 (RFC 9568 §5.1.1.3, §5.1.2.3), and no copy looped back to us."""
    if family == socket.AF_INET:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, VRRP_TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, VRRP_TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, VRRP_TTL)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, VRRP_TTL)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)


def send_target(family: int, ifindex: int, source: bytes, destination: bytes) -> Target:
    """``sendmsg``'s ancillary data, flags and address for one packet: the interface and the
    source pinned with ``IP_PKTINFO`` / ``IPV6_PKTINFO`` (addresses packed, of ``family``)."""
    address = socket.inet_ntop(family, destination)
    if family == socket.AF_INET:
        pktinfo = struct.pack("i4s4s", ifindex, source, b"\0\0\0\0")
        return [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)], 0, (address, 0)
    pktinfo = struct.pack("16si", source, ifindex)
    scope = ifindex if needs_scope(destination) else 0
    return [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, pktinfo)], 0, (address, 0, 0, scope)


def needs_scope(address: bytes) -> bool:
    """An IPv6 destination that needs the interface as its scope: link-local unicast
    (fe80::/10) or multicast of link-local scope or less (RFC 4291 §2.5.6, §2.7)."""
    link_local = address[0] == 0xFE and address[1] & 0xC0 == 0x80
    return link_local or (address[0] == 0xFF and address[1] & 0x0F <= 2)
