"""A killed speaker's Shutdown, finished by its parent: the priority-0 advertisements it owed.

When the VRRP process dies by a signal (the OOM killer, a segfault), its parent
(:mod:`keepvip.speaker.supervisor`) removes its VIPs at once. Without more, the backups
then wait out Master_Down_Interval from the dead master's last advertisement (RFC 9568
§6.4.2: 3 intervals and Skew_Time, 3.6 s at the default 1 s) while no node answers for
the VIPs. A master that stops on purpose sends priority 0 first (§6.4.3), and the backups
take over after Skew_Time. The parent does that for the child it lost: it sends the
priority-0 advertisement of every router the child was master of, then removes the VIPs.

What it sends, the child prepared: the encoded advertisement for each destination, with
the interface and the source address (:class:`Record`), kept in memory the two processes
share (:class:`Region`, an anonymous shared mapping made before the fork). The child
rewrites it whenever one of its routers becomes master or stops being master; nothing
touches a disk. A child killed in the middle of a rewrite must not leave half a table, so
the region has two halves and one byte that says which is whole: the child writes the
other half, then flips that byte (a single store: a SIGKILL lands before it or after it).
The parent reads the half the byte names, checks every length (nothing read from memory
another process wrote is trusted), and sends what is well formed.

The child packs a router's records once, when the router becomes master (:func:`pack`),
and a rewrite joins the packed pieces: 0.05 ms for 1,000 masters, against 0.54 ms when every
record was encoded at every rewrite, which made 1,000 routers taking over one after the
other half a second of CPU in the middle of a mass takeover.

The parent stays small (the supervisor's rule): this module imports ``mmap``, ``socket``
and ``struct``, the VRRP constants and :mod:`.vrrp_send` only, and builds nothing until a
child has died.
Sending never raises: a record the kernel refuses is counted and the rest go on.
"""

from __future__ import annotations

import mmap
import socket
import struct
from collections.abc import Iterable
from typing import Final, NamedTuple

from keepvip.speaker.net.vrrp_send import send_target, set_send_options
from keepvip.speaker.vrrp.constants import IPPROTO_VRRP

HALF_BYTES: Final = 2 * 1024 * 1024  # ~70,000 single-address IPv4 records; pages are only used once written
_ACTIVE: Final = 0  # offset of the byte naming the whole half (0 or 1)
_HALVES: Final = 8  # the halves start here, each with its used length first
_LENGTH: Final = struct.Struct("=I")
_RECORD: Final = struct.Struct("=iBBH")  # ifindex, source length, destination length, payload length
_ADDRESS_LENGTHS: Final = {4: socket.AF_INET, 16: socket.AF_INET6}
_MAX_PAYLOAD: Final = 1500


class Record(NamedTuple):
    """One priority-0 advertisement: where it goes and its encoded VRRP message."""

    ifindex: int
    source: bytes  # packed IPv4 (4) or IPv6 (16) address: the child's primary or link-local
    destination: bytes  # packed: the multicast group or a unicast peer, same family
    payload: bytes  # the VRRP message, checksum computed for this source and destination


class Region:
    """The shared memory the child writes its records to and the parent reads them from."""

    def __init__(self, memory: mmap.mmap) -> None:
        self._memory = memory

    @classmethod
    def create(cls) -> Region:
        """An anonymous shared mapping: made before the fork, the same pages in both processes."""
        return cls(mmap.mmap(-1, _HALVES + 2 * (_LENGTH.size + HALF_BYTES), flags=mmap.MAP_SHARED))

    def write(self, records: Iterable[Record]) -> int:
        """Make ``records`` the table; how many fitted (the rest are left out, in order)."""
        return self.write_packed(pack((record,)) for record in records)

    def write_packed(self, pieces: Iterable[bytes]) -> int:
        """Make the ``pieces`` (each from :func:`pack`) the table; how many fitted whole (the
        rest are left out, in order)."""
        fitting: list[bytes] = []
        used = 0
        for piece in pieces:
            if used + len(piece) > HALF_BYTES:
                break
            fitting.append(piece)
            used += len(piece)
        memory = self._memory
        half = 1 - memory[_ACTIVE]
        start = _HALVES + half * (_LENGTH.size + HALF_BYTES)
        _LENGTH.pack_into(memory, start, used)
        memory[start + _LENGTH.size : start + _LENGTH.size + used] = b"".join(fitting)
        memory[_ACTIVE] = half  # the one store that makes the new table the table
        return len(fitting)

    def read(self) -> tuple[list[Record], int]:
        """The table, and how many malformed entries ended the reading of it (0 or 1)."""
        memory = self._memory
        half = memory[_ACTIVE]
        if half not in (0, 1):
            return [], 1
        start = _HALVES + half * (_LENGTH.size + HALF_BYTES)
        (used,) = _LENGTH.unpack_from(memory, start)
        if used > HALF_BYTES:
            return [], 1
        offset, end = start + _LENGTH.size, start + _LENGTH.size + used
        records: list[Record] = []
        while offset < end:
            if offset + _RECORD.size > end:
                return records, 1
            ifindex, source_length, destination_length, payload_length = _RECORD.unpack_from(memory, offset)
            offset += _RECORD.size
            size = source_length + destination_length + payload_length
            if (
                ifindex <= 0
                or source_length not in _ADDRESS_LENGTHS
                or destination_length != source_length
                or not 0 < payload_length <= _MAX_PAYLOAD
                or offset + size > end
            ):
                return records, 1
            source = bytes(memory[offset : offset + source_length])
            destination = bytes(memory[offset + source_length : offset + source_length + destination_length])
            payload = bytes(memory[offset + source_length + destination_length : offset + size])
            records.append(Record(ifindex, source, destination, payload))
            offset += size
        return records, 0


def pack(records: Iterable[Record]) -> bytes:
    """``records`` as the region holds them: each a header, the two addresses, the payload."""
    return b"".join(
        _RECORD.pack(r.ifindex, len(r.source), len(r.destination), len(r.payload))
        + r.source
        + r.destination
        + r.payload
        for r in records
    )


def send(records: Iterable[Record]) -> tuple[int, list[OSError]]:
    """Send each record as the speaker sends its advertisements (TTL/hop limit 255, RFC 9568
    §5.1.1.3 / §5.1.2.3, from its source on its interface); (sent, the kernel's refusals)."""
    sockets: dict[int, socket.socket] = {}
    sent, refused = 0, []
    try:
        for record in records:
            try:
                family = _ADDRESS_LENGTHS[len(record.source)]
                sock = sockets.get(family) or sockets.setdefault(family, _open(family))
                sock.sendmsg(
                    [record.payload], *send_target(family, record.ifindex, record.source, record.destination)
                )
                sent += 1
            except OSError as error:
                refused.append(error)
    finally:
        for sock in sockets.values():
            sock.close()
    return sent, refused


def _open(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_RAW, IPPROTO_VRRP)
    try:
        set_send_options(sock, family)
    except OSError:
        sock.close()
        raise
    return sock
