"""Raw IP-protocol-112 sockets: VRRP advertisements in and out of one interface.

This adapter moves bytes, not VRRP semantics: the codec encodes and decodes the
payload, the router decides. What it owns are the Linux socket rules VRRP depends on:

* RFC 9568 §5.1.1.3 / §5.1.2.3 (RFC 3768 §5.2.3): TTL / Hop Limit 255 on send, for
  multicast and unicast alike; and since §7.1 makes receivers discard anything else,
  every received packet reports the TTL / Hop Limit it arrived with.
* RFC 9568 §5.1.1.1 / §5.1.2.1: the IPv4 source is the interface's primary address,
  the IPv6 source its link-local address. The caller chooses it (it needs it for the
  checksum anyway) and every send pins it with ``IP_PKTINFO`` / ``IPV6_PKTINFO``, so
  the kernel's source selection never substitutes a VIP.
* Isolation by multicast group (vrrp-facts §3.8): the socket joins its group on its
  interface, binds to the group, and turns ``IP_MULTICAST_ALL`` /
  ``IPV6_MULTICAST_ALL`` off, so groups that *other* sockets on the host joined do not
  leak in. The destination of every packet is still reported, because the caller must
  filter by group and VRID in userspace (one socket serves every VirtualIP sharing the
  group).
* Multicast loopback is off: a speaker never hears its own advertisements.
* A classic BPF program (``SO_ATTACH_FILTER``) on every socket keeps in the kernel
  what the socket did not ask for — another group's packets, or any multicast on a
  unicast socket — so Python never wakes up for them (an unbound IPv6 raw socket
  would otherwise read every VRRP multicast the host accepts). Once the socket is told
  its VRIDs (:meth:`VrrpSocket.set_vrids`), the program also drops what RFC 9568 §7.1
  would make the receiver discard anyway — a TTL / Hop Limit other than 255 — and any
  VRID nobody on this socket runs: under a flood of such packets (issue 10) the
  receive buffer then holds only packets that may matter, and Python reads nothing
  else. What it lets through is still checked in userspace: the filter saves work, it
  is not the rule. The price: what the kernel drops is counted nowhere in Python, so
  ``wrong_vrid`` / ``bad_ttl`` drops only show packets that got past the filter
  (none, on a filtered socket); a socket never told its VRIDs keeps the unfiltered path.
* The receive buffer is raised to :data:`RECEIVE_BUFFER_BYTES` so a stalled event loop
  (a burst of work, a busy node) does not cost the master's advertisement.
* The kernel stamps each packet with its arrival time (``SO_TIMESTAMPNS``,
  :attr:`VrrpSocket.arrived`): RFC 9568 §6.4.2 counts Master_Down_Interval from when an
  advertisement *arrived*, which can be a little before the process reads it.

Per packet the hot path avoids what does not change: the ancillary data and the
socket address of each (source, destination) pair are built once, the receive
buffer is allocated once (``recvmsg_into``), and the address objects of the few
peers and groups a segment carries are reused instead of parsed again. A backup
receives the same bytes from its master every interval (issue 15: the backup's CPU),
so an IPv4 packet byte-identical to one seen before — same source, destination and
VRRP payload, TTL 255, no IP options — is answered with the very `Received` object
built the first time (or skipped again, if it was not for this socket): one dict
lookup instead of a parse, an allocation and address lookups. The IP header's other
fields (identification, header checksum) change per packet and say nothing the
caller uses, so they are not part of the key; a packet with any other TTL, options or
a length that does not match takes the full path.

IPv4 raw sockets deliver the IP header, which is parsed for TTL, source and
destination and stripped; IPv6 raw sockets never deliver it, so hop limit and
destination come from ``IPV6_RECVHOPLIMIT`` / ``IPV6_RECVPKTINFO`` ancillary data.

Sockets are non-blocking: register :meth:`VrrpSocket.fileno` with
``loop.add_reader`` and call :meth:`VrrpSocket.receive` until it returns ``None``,
or await :meth:`VrrpSocket.receive_async`.
"""

from __future__ import annotations

import asyncio
import ctypes
import socket
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final

from keepvip.inet import IPAddress
from keepvip.speaker.net.vrrp_send import IP_PKTINFO, Ancillary, Target, send_target, set_send_options
from keepvip.speaker.vrrp.constants import IPPROTO_VRRP, VRRP_TTL

# <linux/in.h>, <linux/in6.h>: not all exported by Python's socket module (IP_PKTINFO: vrrp_send).
IP_MULTICAST_ALL: Final = 49
IPV6_MULTICAST_ALL: Final = 29
# <asm-generic/socket.h>, <linux/filter.h>
SO_ATTACH_FILTER: Final = 26
SO_TIMESTAMPNS: Final = 35  # <asm-generic/socket.h> SO_TIMESTAMPNS_OLD; also the cmsg type SCM_TIMESTAMPNS
SO_RCVBUFFORCE: Final = 33
SO_MEMINFO: Final = 55  # u32[SK_MEMINFO_VARS]: [0] receive queue bytes, [1] receive buffer
_MEMINFO: Final = struct.Struct("=9I")
_SKF_NET_OFF: Final = -0x100000  # loads relative to the network (IP) header
_BPF_LD_W_ABS: Final = 0x20
_BPF_LD_B_ABS: Final = 0x30
_BPF_LD_B_IND: Final = 0x50
_BPF_LDX_B_MSH: Final = 0xB1  # X = 4 * (byte[k] & 0xf): the IPv4 header length
_BPF_ALU_AND_K: Final = 0x54
_BPF_JEQ_K: Final = 0x15
_BPF_RET_K: Final = 0x06
_BPF_MAX_JUMP: Final = 255  # jt / jf are one byte
_IPV4_TTL: Final = 8  # offset in the IPv4 header
_IPV6_HOP_LIMIT: Final = 7  # offset in the IPv6 header
_VRRP_VRID: Final = 1  # offset in the VRRP header (RFC 9568 §5.2.3)
_VRRP_PRIORITY: Final = 2  # offset in the VRRP header (RFC 9568 §5.2.4; RFC 3768 §5.3.4 alike)
MAX_SPLIT_VRIDS: Final = _BPF_MAX_JUMP - 6
"""VRIDs a priority-splitting filter holds (`socket_filter`): its priority blocks lengthen the jumps."""

RECEIVE_BUFFER_BYTES: Final = 1 << 20
"""SO_RCVBUF of every VRRP socket: 1 MiB instead of the kernel's ~208 KiB default.

A queued raw packet costs its skb's truesize (about 1-2 KiB on veth and most NICs), so
the default holds a few hundred packets: under the issue-10 flood (~17,000 adverts/s
for our VRID still pass the filter) that is ~10-20 ms of event-loop stall before the
kernel drops whatever comes next, the master's advertisement included. 1 MiB buys
~50-100 ms, longer than the stalls a loaded node shows, for 1 MiB of kernel memory per
socket (one socket per interface, family and group, not per VirtualIP). It is set with
``SO_RCVBUFFORCE`` (the speaker has CAP_NET_ADMIN), so ``net.core.rmem_max`` does not
cap it; without the capability ``SO_RCVBUF`` gets what ``rmem_max`` allows.
"""
_ACCEPT: Final = 0xFFFFFFFF
_DROP: Final = 0

# Large enough for any advertisement: v2 with 255 addresses is 1044 bytes, v3 over
# IPv6 is bounded by the MTU; 64 KiB also swallows jumbo garbage without truncation.
_RECV_BUFFER: Final = 65535
_TIMESPEC: Final = struct.Struct("=qq")  # SCM_TIMESTAMPNS: struct timespec, 64-bit time_t (else ignored)
_ANCILLARY_BUFFER: Final = (
    socket.CMSG_SPACE(20) + socket.CMSG_SPACE(4) + socket.CMSG_SPACE(_TIMESPEC.size) + 64
)
_IPV4_MIN_HEADER: Final = 20
_IPV4_DESTINATION: Final = 16  # offset in the IPv4 header
_IPV6_DESTINATION: Final = 24  # offset in the IPv6 header
_CACHED_ADDRESSES: Final = 4096  # distinct peers and groups remembered; a segment has a few
_CACHED_PACKETS: Final = 4096
"""Distinct IPv4 packets a socket remembers (:meth:`VrrpSocket.receive`): a segment's
routers send one set of bytes each until their priority changes, so a few per router
(1,000 VIPs of one group fit); a flood of distinct junk only clears and refills it."""
_IPV4_PLAIN: Final = 0x45  # version 4, header length 20: no options
_KEY_START: Final = 12  # source, destination, then the payload: all a cached packet depends on


@dataclass(frozen=True, slots=True)
class Received:
    """One packet as it arrived: the VRRP payload and what the IP layer said about it.

    ``ttl`` is the IPv4 TTL or IPv6 Hop Limit (RFC 9568 §7.1 requires 255);
    ``destination`` is the group or unicast address the packet was sent to, for the
    caller's group filter; ``ifindex`` is the interface it came in on.
    """

    payload: bytes
    source: IPAddress
    destination: IPAddress
    ttl: int
    ifindex: int


class VrrpSocket:
    """A non-blocking raw protocol-112 socket bound to one interface and one family.

    Open it with :meth:`multicast` (receives only the given group) or :meth:`unicast`
    (receives only unicast packets to this host's addresses on the interface). Either
    kind can send to any destination: a group or unicast peers.
    """

    def __init__(self, sock: socket.socket, *, ifname: str, ifindex: int, group: IPAddress | None) -> None:
        self._sock = sock
        self.ifname = ifname
        self.ifindex = ifindex
        self.group = group
        self.family = sock.family
        self.filtered = 0
        """Packets read and skipped: not for this socket's group / not unicast, or unparsable."""
        self.arrived: float | None = None
        """When the kernel received the packet `receive` returned last (``CLOCK_REALTIME``
        seconds, ``SO_TIMESTAMPNS``); ``None`` if the kernel gave no time. The kernel
        switches receive stamping on in a deferred work item when the first socket of the
        host asks for it: a packet that arrived before that is stamped when it is read
        (what the speaker counted from before)."""
        self._buffer = bytearray(_RECV_BUFFER)
        self._buffers = [self._buffer]
        self._view = memoryview(self._buffer)
        self._seen: dict[bytes, Received | None] = {}  # IPv4: packet key -> what it was
        self._targets: dict[tuple[IPAddress, IPAddress], Target] = {}

    # -- opening -------------------------------------------------------------------

    @classmethod
    def multicast(
        cls, ifname: str, group: IPAddress, *, receive_buffer: int = RECEIVE_BUFFER_BYTES
    ) -> VrrpSocket:
        """Open a socket that receives advertisements sent to ``group`` on ``ifname``."""
        if not group.is_multicast:
            raise ValueError(f"{group} is not a multicast group")
        ifindex = socket.if_nametoindex(ifname)
        sock = _open_raw(group.version, ifname, ifindex, receive_buffer)
        try:
            if isinstance(group, IPv4Address):
                mreqn = struct.pack("4s4si", group.packed, b"\0\0\0\0", ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                # Binding to the group makes the kernel deliver only packets sent to it.
                sock.bind((str(group), 0))
            else:
                mreq = struct.pack("16si", group.packed, ifindex)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
                sock.bind((str(group), 0, 0, ifindex))
            attach_filter(sock, socket_filter(group.version, group))
        except BaseException:
            sock.close()
            raise
        return cls(sock, ifname=ifname, ifindex=ifindex, group=group)

    @classmethod
    def unicast(cls, ifname: str, version: int, *, receive_buffer: int = RECEIVE_BUFFER_BYTES) -> VrrpSocket:
        """Open a socket for unicast peers (``version`` 4 or 6) on ``ifname``.

        It joins no group and receives no multicast, only packets addressed to this
        host arriving on ``ifname``: for IPv4 the kernel filters (``IP_MULTICAST_ALL``
        off), for IPv6 :meth:`receive` skips multicast destinations itself.
        """
        if version not in (4, 6):
            raise ValueError(f"IP version must be 4 or 6, not {version}")
        ifindex = socket.if_nametoindex(ifname)
        sock = _open_raw(version, ifname, ifindex, receive_buffer)
        try:
            attach_filter(sock, socket_filter(version, None))
        except BaseException:
            sock.close()
            raise
        return cls(sock, ifname=ifname, ifindex=ifindex, group=None)

    def set_vrids(
        self,
        vrids: frozenset[int] | None,
        *,
        zero_only: frozenset[int] = frozenset(),
        above_zero_only: frozenset[int] = frozenset(),
    ) -> None:
        """Let only TTL / Hop Limit 255 and these VRIDs through, in the kernel; ``None``: any.

        ``zero_only`` VRIDs pass only at priority 0, ``above_zero_only`` ones only above it
        (`socket_filter`). Called again whenever the sets change: ``SO_ATTACH_FILTER`` swaps
        the program atomically, and packets already queued stay queued (the caller still
        checks their VRID). An empty set drops every advertisement.
        """
        program = socket_filter(self._version, self.group, vrids, zero_only=zero_only,
                                above_zero_only=above_zero_only)  # fmt: skip
        attach_filter(self._sock, program)

    # -- the asyncio-facing surface ------------------------------------------------

    def fileno(self) -> int:
        """The descriptor to register with ``loop.add_reader``."""
        return self._sock.fileno()

    def queue_fill(self) -> float | None:
        """The share of the receive buffer queued packets hold now (``SO_MEMINFO``), or
        ``None`` where the kernel does not tell (before Linux 4.12)."""
        try:
            info = _MEMINFO.unpack(self._sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO.size))
        except (OSError, struct.error):
            return None
        queued, capacity = info[0], info[1]
        return queued / capacity if capacity else None

    def close(self) -> None:
        """Close the socket (leaving its group). Safe to call twice."""
        self._sock.close()

    def __enter__(self) -> VrrpSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------

    def send(self, payload: bytes, *, source: IPAddress, destination: IPAddress) -> None:
        """Send one advertisement from ``source`` to ``destination`` (group or peer).

        ``source`` must be an address of this interface (the primary IPv4 address or
        the IPv6 link-local address, RFC 9568 §5.1.1.1 / §5.1.2.1); it is pinned per
        packet with ``IP_PKTINFO`` / ``IPV6_PKTINFO``. Raises ``OSError`` as the kernel
        reports it, e.g. ``ENETDOWN`` when the link is down or ``EAGAIN`` when the send
        buffer is full; the caller counts and carries on.
        """
        target = self._targets.get((source, destination))
        if target is None:
            target = self._target(source, destination)
        self._sock.sendmsg([payload], *target)

    def _target(self, source: IPAddress, destination: IPAddress) -> Target:
        """Ancillary data and address for (``source``, ``destination``), built once and remembered."""
        if isinstance(source, IPv4Address) and isinstance(destination, IPv4Address):
            self._check_family(4, source, destination)
            family = socket.AF_INET
        elif isinstance(source, IPv6Address) and isinstance(destination, IPv6Address):
            self._check_family(6, source, destination)
            family = socket.AF_INET6
        else:
            self._check_family(0, source, destination)
            raise AssertionError("unreachable: mixed families are refused above")
        if len(self._targets) >= _CACHED_ADDRESSES:
            self._targets.clear()
        target = self._targets[(source, destination)] = send_target(
            family, self.ifindex, source.packed, destination.packed
        )
        return target

    def _check_family(self, version: int, source: IPAddress, destination: IPAddress) -> None:
        if version != self._version:
            raise ValueError(f"source {source} and destination {destination} must both be IPv{self._version}")

    # -- receiving -----------------------------------------------------------------

    def receive(self) -> Received | None:
        """Read the next packet meant for this socket, or ``None`` when none is waiting.

        Packets the kernel delivers although this socket did not ask for them are
        skipped and counted in :attr:`filtered`: an unbound IPv6 raw socket receives
        every multicast the host accepts, whatever ``IPV6_MULTICAST_ALL`` says (the
        kernel's ``raw_v6_match`` only consults it for bound sockets).

        An IPv4 packet byte-identical to one read before (see the module docstring)
        returns the same `Received` object as then: callers may remember what they
        derived from it by identity.
        """
        view = self._view
        ipv4 = self.family == socket.AF_INET
        seen = self._seen
        while True:
            try:
                size, ancillary, _flags, address = self._sock.recvmsg_into(self._buffers, _ANCILLARY_BUFFER)
            except BlockingIOError:
                return None
            self.arrived = None
            for level, kind, value in ancillary:
                if kind == SO_TIMESTAMPNS and level == socket.SOL_SOCKET and len(value) == _TIMESPEC.size:
                    seconds, nanoseconds = _TIMESPEC.unpack(value)
                    self.arrived = seconds + nanoseconds * 1e-9
            key = None
            if ipv4 and size > _IPV4_MIN_HEADER and view[0] == _IPV4_PLAIN and view[_IPV4_TTL] == VRRP_TTL \
                    and (view[2] << 8 | view[3]) == size:  # fmt: skip
                key = bytes(view[_KEY_START:size])
                if key in seen:
                    known = seen[key]
                    if known is not None:
                        return known
                    self.filtered += 1
                    continue
            data = bytes(view[:size])
            if ipv4:
                packet = _parse_ipv4(data, ancillary, default_ifindex=self.ifindex)
            else:
                packet = _parse_ipv6(data, ancillary, address, default_ifindex=self.ifindex)
            wanted = packet if packet is not None and self._wanted(packet.destination) else None
            if key is not None:
                if len(seen) >= _CACHED_PACKETS:
                    seen.clear()
                seen[key] = wanted
            if wanted is not None:
                return wanted
            self.filtered += 1

    def _wanted(self, destination: IPAddress) -> bool:
        if self.group is None:
            return not destination.is_multicast
        return destination == self.group

    async def receive_async(self) -> Received:
        """Wait for the next packet without blocking the event loop."""
        loop = asyncio.get_running_loop()
        while True:
            packet = self.receive()
            if packet is not None:
                return packet
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.fileno(), _set_once, ready)
            try:
                await ready
            finally:
                loop.remove_reader(self.fileno())

    @property
    def _version(self) -> int:
        return 4 if self.family == socket.AF_INET else 6


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _open_raw(version: int, ifname: str, ifindex: int, receive_buffer: int) -> socket.socket:
    """A raw protocol-112 socket with every option VRRP needs set, not yet bound."""
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    sock = socket.socket(family, socket.SOCK_RAW, IPPROTO_VRRP)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        set_send_options(sock, family)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
            mreqn = struct.pack("4s4si", b"\0\0\0\0", b"\0\0\0\0", ifindex)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)  # ifindex of received packets
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # each packet's arrival time
        _raise_receive_buffer(sock, receive_buffer)
    except BaseException:
        sock.close()
        raise
    return sock


def _raise_receive_buffer(sock: socket.socket, size: int) -> None:
    """``size`` bytes (:data:`RECEIVE_BUFFER_BYTES` unless told), forced past ``rmem_max`` when
    the capability allows."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


_ADDRESSES: dict[bytes | str, IPAddress] = {}


def _address(key: bytes | str) -> IPAddress:
    """The address object for packed bytes or text, reused: a segment has a few senders and groups."""
    found = _ADDRESSES.get(key)
    if found is None:
        if len(_ADDRESSES) >= _CACHED_ADDRESSES:
            _ADDRESSES.clear()
        found = _ADDRESSES[key] = ip_address(key)
    return found


# -- kernel socket filters ---------------------------------------------------------------

Instruction = tuple[int, int, int, int]  # struct sock_filter: code, jt, jf, k


def _load(size: int, offset: int) -> Instruction:
    """Load from the IP header, wherever the socket's data starts (``SKF_NET_OFF``)."""
    return (size, 0, 0, (_SKF_NET_OFF + offset) & 0xFFFFFFFF)


def _require(value: int) -> list[Instruction]:
    """Go on if the accumulator equals ``value``, else drop right here.

    Each check drops locally instead of jumping to one shared ``ret 0``: jump offsets
    are one byte, and the VRID list after the checks may be 255 long.
    """
    return [(_BPF_JEQ_K, 1, 0, value), (_BPF_RET_K, 0, 0, _DROP)]


def _destination_checks(version: int, group: IPAddress | None) -> list[Instruction]:
    """The destination is ``group`` (32 bits at a time), or not multicast for ``None``."""
    base = _IPV4_DESTINATION if version == 4 else _IPV6_DESTINATION
    if group is None:
        if version == 4:  # 224.0.0.0/4
            return [_load(_BPF_LD_B_ABS, base), (_BPF_ALU_AND_K, 0, 0, 0xF0), (_BPF_JEQ_K, 0, 1, 0xE0),
                    (_BPF_RET_K, 0, 0, _DROP)]  # fmt: skip
        return [_load(_BPF_LD_B_ABS, base), (_BPF_JEQ_K, 0, 1, 0xFF), (_BPF_RET_K, 0, 0, _DROP)]  # ff00::/8
    words = struct.unpack(f"!{len(group.packed) // 4}I", group.packed)
    program: list[Instruction] = []
    for index, word in enumerate(words):
        program += [_load(_BPF_LD_W_ABS, base + 4 * index), *_require(word)]
    return program


def _vrid_checks(
    version: int,
    vrids: frozenset[int],
    zero_only: frozenset[int] = frozenset(),
    above_zero_only: frozenset[int] = frozenset(),
) -> list[Instruction]:
    """Accept a VRID in ``vrids`` at any priority, one in ``zero_only`` at priority 0 only, one
    in ``above_zero_only`` at priority 1-255 only; drop any other. One compare per VRID.

    IPv4 raw sockets see the IP header, whose length varies (options), so X = IHL * 4
    and the VRID is loaded at X + 1 (the priority at X + 2); IPv6 raw sockets' data starts
    at the VRRP header (extension headers already consumed), so the VRID is byte 1 of it.
    Jumps count the instructions they skip in one byte: the compares jump forward past the
    rest, so all 255 VRIDs fit without priority blocks and `MAX_SPLIT_VRIDS` with them.
    """
    if version == 4:
        load = [(_BPF_LDX_B_MSH, 0, 0, _SKF_NET_OFF & 0xFFFFFFFF), _load(_BPF_LD_B_IND, _VRRP_VRID)]
        priority = _load(_BPF_LD_B_IND, _VRRP_PRIORITY)
    else:
        load = [(_BPF_LD_B_ABS, 0, 0, _VRRP_VRID)]
        priority = (_BPF_LD_B_ABS, 0, 0, _VRRP_PRIORITY)
    ordered = sorted(vrids)
    if not zero_only and not above_zero_only:
        compares = [(_BPF_JEQ_K, len(ordered) - index, 0, vrid) for index, vrid in enumerate(ordered)]
        return [*load, *compares, (_BPF_RET_K, 0, 0, _DROP), (_BPF_RET_K, 0, 0, _ACCEPT)]
    # Layout after the n compares: drop (n), the priority-0 block (n+1..n+3), the
    # priority-above-0 block (n+4..n+6), accept (n+7). A jump from compare i lands at
    # i + 1 + jt.
    groups = [(vrid, 7) for vrid in ordered] + [(vrid, 1) for vrid in sorted(zero_only)]
    groups += [(vrid, 4) for vrid in sorted(above_zero_only)]
    n = len(groups)
    if n + 6 > _BPF_MAX_JUMP:
        raise ValueError(f"at most {MAX_SPLIT_VRIDS} VRIDs fit a filter that tests priorities, not {n}")
    compares = [(_BPF_JEQ_K, n + to - (index + 1), 0, vrid) for index, (vrid, to) in enumerate(groups)]
    return [
        *load,
        *compares,
        (_BPF_RET_K, 0, 0, _DROP),
        priority, (_BPF_JEQ_K, 4, 0, 0), (_BPF_RET_K, 0, 0, _DROP),  # zero_only: accept priority 0
        priority, (_BPF_JEQ_K, 0, 1, 0), (_BPF_RET_K, 0, 0, _DROP),  # above_zero_only: drop priority 0
        (_BPF_RET_K, 0, 0, _ACCEPT),
    ]  # fmt: skip


def socket_filter(
    version: int,
    group: IPAddress | None,
    vrids: frozenset[int] | None = None,
    *,
    zero_only: frozenset[int] = frozenset(),
    above_zero_only: frozenset[int] = frozenset(),
) -> list[Instruction]:
    """The classic BPF program a VRRP socket runs on each packet before queueing it.

    Always: the destination is the socket's ``group`` (or, for ``group`` ``None``, any
    unicast address). With ``vrids`` (the set the socket's routers run) also: the TTL /
    Hop Limit is 255 (RFC 9568 §7.1: anything else comes from off the link) and the
    VRID is one of ``vrids``, or one of ``zero_only`` with priority 0, or one of
    ``above_zero_only`` with a priority above 0 (a socket pair that splits a backup's
    advertisements by urgency, `keepvip.speaker.runtime.sockets`). A pure function:
    tests interpret it on sample packets.
    """
    if version not in (4, 6):
        raise ValueError(f"IP version must be 4 or 6, not {version}")
    every = (vrids or frozenset()) | zero_only | above_zero_only
    if vrids is None and every:
        raise ValueError("priority-split VRIDs need the any-priority set too (frozenset() for none)")
    if not all(1 <= vrid <= _BPF_MAX_JUMP for vrid in every):
        raise ValueError(f"VRIDs must be 1..255, not {sorted(every)}")
    program = _destination_checks(version, group)
    if vrids is None:
        return [*program, (_BPF_RET_K, 0, 0, _ACCEPT)]
    hop_limit = _IPV4_TTL if version == 4 else _IPV6_HOP_LIMIT
    return [
        *program, _load(_BPF_LD_B_ABS, hop_limit), *_require(VRRP_TTL),
        *_vrid_checks(version, vrids, zero_only, above_zero_only),
    ]  # fmt: skip


def attach_filter(sock: socket.socket, program: list[Instruction]) -> None:
    """``SO_ATTACH_FILTER``: the kernel runs ``program`` on every packet before queueing it."""
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _parse_ipv4(data: bytes, ancillary: Ancillary, *, default_ifindex: int) -> Received | None:
    """Split what an IPv4 raw socket delivers (header + payload) into a :class:`Received`."""
    if len(data) < _IPV4_MIN_HEADER:
        return None
    header_length = (data[0] & 0x0F) * 4
    total_length = struct.unpack_from("!H", data, 2)[0]
    if header_length < _IPV4_MIN_HEADER or len(data) < header_length:
        return None
    ifindex = default_ifindex
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 4:
            ifindex = struct.unpack_from("i", value)[0]
    return Received(
        payload=data[header_length : max(header_length, min(total_length, len(data)))],
        source=_address(data[12:16]),
        destination=_address(data[16:20]),
        ttl=data[8],
        ifindex=ifindex,
    )


def _parse_ipv6(
    data: bytes, ancillary: Ancillary, address: object, *, default_ifindex: int
) -> Received | None:
    """Build a :class:`Received` from an IPv6 payload and its ancillary data."""
    hop_limit: int | None = None
    destination: IPv6Address | None = None
    ifindex = default_ifindex
    for level, kind, value in ancillary:
        if level != socket.IPPROTO_IPV6:
            continue
        if kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
            hop_limit = struct.unpack_from("i", value)[0]
        elif kind == socket.IPV6_PKTINFO and len(value) >= 20:
            found = _address(value[:16])
            destination = found if isinstance(found, IPv6Address) else None
            ifindex = struct.unpack_from("i", value, 16)[0]
    if hop_limit is None or destination is None or not isinstance(address, tuple):
        return None  # both options are set at open; a kernel without them is unsupported
    source = _address(str(address[0]).split("%", 1)[0])
    if not isinstance(source, IPv6Address):
        return None
    return Received(payload=data, source=source, destination=destination, ttl=hop_limit, ifindex=ifindex)


__all__ = ["IPAddress", "Received", "VrrpSocket"]
