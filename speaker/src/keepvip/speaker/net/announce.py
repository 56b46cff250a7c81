"""Gratuitous ARP and unsolicited Neighbour Advertisements: telling the LAN who holds a VIP.

keepvip answers for a VIP with the node's own MAC (as keepalived does by default,
vrrp-facts §3.6), so when the VIP moves, clients and switches learn the new MAC only
from these announcements (RFC 9568 §6.4.1: a new master sends them for each VIP).

Frame builders are pure functions over bytes and addresses, unit-testable without a
network; :class:`Announcer` sends them through one ``AF_PACKET`` socket per interface,
which needs no IP address on the interface and fixes every header field itself.
Repetition (5 at once, 5 more after 5 s, periodic refresh; vrrp-facts §3.7) is the
caller's schedule: this module sends what it is asked to, once.
"""

from __future__ import annotations

import socket
import struct
from ipaddress import IPv4Address, IPv6Address
from typing import Final

from keepvip.speaker.vrrp.checksum import internet_checksum, pseudo_header

# Ethernet, <linux/if_ether.h>
ETH_P_IP: Final = 0x0800
ETH_P_ARP: Final = 0x0806
ETH_P_IPV6: Final = 0x86DD
BROADCAST_MAC: Final = b"\xff" * 6

# ARP, RFC 826
ARP_HTYPE_ETHERNET: Final = 1
ARP_OP_REQUEST: Final = 1
ARP_OP_REPLY: Final = 2

# ICMPv6 Neighbour Advertisement, RFC 4861 §4.4
IPPROTO_ICMPV6: Final = 58
ICMPV6_NEIGHBOR_ADVERTISEMENT: Final = 136
NA_FLAG_ROUTER: Final = 0x80000000
NA_FLAG_SOLICITED: Final = 0x40000000
NA_FLAG_OVERRIDE: Final = 0x20000000
ND_OPT_TARGET_LINK_LAYER_ADDRESS: Final = 2
ALL_NODES: Final = IPv6Address("ff02::1")
ND_HOP_LIMIT: Final = 255  # RFC 4861 §7.1.2: receivers drop NAs with any other hop limit


def parse_mac(mac: str | bytes) -> bytes:
    """``"02:00:5e:10:00:01"`` (or 6 raw bytes) as 6 bytes."""
    raw = mac if isinstance(mac, bytes) else bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not an Ethernet MAC address: {mac!r}")
    return raw


def _garp(op: int, mac: str | bytes, address: IPv4Address) -> bytes:
    """An ARP packet whose sender and target protocol address are both ``address``.

    Target hardware address is broadcast, as keepalived and MetalLB send it; RFC 5227
    §2.3 notes receivers ignore it.
    """
    sender = parse_mac(mac)
    ethernet = BROADCAST_MAC + sender + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", ARP_HTYPE_ETHERNET, ETH_P_IP, 6, 4, op)
    arp += sender + address.packed + BROADCAST_MAC + address.packed
    return ethernet + arp


def build_garp_request(mac: str | bytes, address: IPv4Address) -> bytes:
    """Gratuitous ARP, request form (RFC 5227 §3 "ARP Announcement"; keepalived's form)."""
    return _garp(ARP_OP_REQUEST, mac, address)


def build_garp_reply(mac: str | bytes, address: IPv4Address) -> bytes:
    """Gratuitous ARP, reply form (RFC 5944 §4.6; MetalLB sends both forms for old stacks)."""
    return _garp(ARP_OP_REPLY, mac, address)


def build_unsolicited_na(
    mac: str | bytes,
    target: IPv6Address,
    *,
    source: IPv6Address | None = None,
    router: bool = False,
) -> bytes:
    """An unsolicited Neighbour Advertisement for ``target`` (RFC 4861 §7.2.6).

    Sent to all-nodes ff02::1 with Override set and Solicited clear (a multicast NA
    must not claim to be solicited, §7.2.4), carrying the Target Link-Layer Address
    option so receivers update their cache to ``mac``; hop limit 255 (§7.1.2).
    ``source`` defaults to the target itself, as keepalived and Linux send it.
    ``router`` sets the R flag, for a VIP that is a default gateway (RFC 9568 §6.4.1).
    """
    sender = parse_mac(mac)
    src = target if source is None else source
    flags = NA_FLAG_OVERRIDE | (NA_FLAG_ROUTER if router else 0)
    option = struct.pack("!BB", ND_OPT_TARGET_LINK_LAYER_ADDRESS, 1) + sender
    body = struct.pack("!I", flags) + target.packed + option
    checksum = icmpv6_checksum(
        src, ALL_NODES, struct.pack("!BBH", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, 0) + body
    )
    icmp = struct.pack("!BBH", ICMPV6_NEIGHBOR_ADVERTISEMENT, 0, checksum) + body
    ipv6 = struct.pack("!IHBB", 6 << 28, len(icmp), IPPROTO_ICMPV6, ND_HOP_LIMIT)
    ipv6 += src.packed + ALL_NODES.packed
    ethernet = multicast_mac(ALL_NODES) + sender + struct.pack("!H", ETH_P_IPV6)
    return ethernet + ipv6 + icmp


def multicast_mac(group: IPv6Address) -> bytes:
    """RFC 2464 §7: 33:33 followed by the group's last 32 bits."""
    return b"\x33\x33" + group.packed[-4:]


def icmpv6_checksum(source: IPv6Address, destination: IPv6Address, message: bytes) -> int:
    """RFC 4443 §2.3: one's-complement sum over the RFC 8200 §8.1 pseudo-header and message."""
    return internet_checksum(pseudo_header(source, destination, len(message), IPPROTO_ICMPV6) + message)


class Announcer:
    """Sends announcement frames on one interface through an ``AF_PACKET`` socket.

    The socket is bound with protocol 0, so it never receives anything: it is a
    transmit-only handle. Non-blocking; a send error (link down: ``ENETDOWN``) is
    raised for the caller to count.
    """

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self._sock.setblocking(False)
            self._sock.bind((ifname, 0))
        except BaseException:
            self._sock.close()
            raise

    @property
    def mac(self) -> bytes:
        """The interface's current MAC address, from the bound socket's own address."""
        address: bytes = self._sock.getsockname()[4]
        return address[:6]

    def send(self, frame: bytes) -> None:
        """Send one complete Ethernet frame as built by the ``build_*`` functions."""
        self._sock.send(frame)

    def announce(self, address: IPv4Address | IPv6Address, *, router: bool = False) -> int:
        """Announce ``address`` with this interface's MAC once; return frames sent.

        IPv4: a gratuitous ARP request and a gratuitous ARP reply. IPv6: one
        unsolicited Neighbour Advertisement with the Override flag (and the Router
        flag if ``router``).
        """
        mac = self.mac
        if isinstance(address, IPv4Address):
            frames = [build_garp_request(mac, address), build_garp_reply(mac, address)]
        else:
            frames = [build_unsolicited_na(mac, address, router=router)]
        for frame in frames:
            self.send(frame)
        return len(frames)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Announcer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
