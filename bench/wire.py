"""Advertisement lateness on the wire, read from a pcap taken on the bridge.

A master's advertisements for one virtual router should leave every
Master_Adver_Interval (RFC 9568 §6.4.3); what the other nodes see is the spacing of
consecutive frames of that router on the wire. For each router (source, group, VRID),
the **lateness** of a frame is its distance from the previous one minus the interval
(negative when early); a **gap** is a spacing longer than 1.5 × the interval: a backup
with a Master_Down_Interval of 3 intervals is then one more late frame away from a
spurious takeover.

The pcap is parsed here (classic libpcap format, Ethernet, IPv4, VRRP) rather than
with tshark: a 60 s window at 1,000 routers is 60,000 frames, which tshark takes
longer to print than this takes to read. Pure arithmetic, no namespaces.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from itertools import pairwise
from pathlib import Path

from gaps import percentile

_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_ETHERTYPE_IPV4 = 0x0800
_PROTO_VRRP = 112


@dataclass(frozen=True, slots=True)
class Advert:
    """One VRRP frame seen on the bridge."""

    at: float  # wall clock, seconds
    source: IPv4Address
    group: IPv4Address
    vrid: int
    priority: int


def read_adverts(pcap: Path) -> Iterator[Advert]:
    """Every IPv4 VRRP frame of ``pcap`` in capture order."""
    data = pcap.read_bytes()
    if len(data) < 24:
        return
    magic_le = struct.unpack_from("<I", data)[0]
    endian = "<" if magic_le in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS) else ">"
    magic = struct.unpack_from(endian + "I", data)[0]
    scale = 1e-9 if magic == _PCAP_MAGIC_NS else 1e-6
    offset = 24
    record = struct.Struct(endian + "IIII")
    while offset + record.size <= len(data):
        seconds, fraction, captured, _length = record.unpack_from(data, offset)
        offset += record.size
        frame = data[offset : offset + captured]
        offset += captured
        if len(frame) < 14 + 20 + 4 or struct.unpack_from("!H", frame, 12)[0] != _ETHERTYPE_IPV4:
            continue
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        if ip[9] != _PROTO_VRRP or len(ip) < header + 4:
            continue
        yield Advert(
            at=seconds + fraction * scale,
            source=IPv4Address(ip[12:16]),
            group=IPv4Address(ip[16:20]),
            vrid=ip[header + 1],
            priority=ip[header + 2],
        )


@dataclass(frozen=True)
class Lateness:
    """Lateness of one sender's advertisements over a window (seconds)."""

    frames: int
    routers: int
    p50: float
    p99: float
    worst: float
    gaps: int  # spacings > 1.5 × interval

    def cells(self) -> tuple[str, str, str]:
        """p50 / p99 / max in milliseconds, for the table."""
        return tuple(f"{value * 1000:.1f}" for value in (self.p50, self.p99, self.worst))  # type: ignore[return-value]


def lateness(adverts: Iterable[Advert], source: IPv4Address, interval: float) -> Lateness | None:
    """Lateness of ``source``'s advertisements at normal priority; None without two frames of a router."""
    times: dict[tuple[IPv4Address, int], list[float]] = defaultdict(list)
    for advert in adverts:
        if advert.source == source and advert.priority != 0:
            times[(advert.group, advert.vrid)].append(advert.at)
    late: list[float] = []
    for series in times.values():
        series.sort()
        late.extend(b - a - interval for a, b in pairwise(series))
    if not late:
        return None
    return Lateness(
        frames=sum(len(s) for s in times.values()),
        routers=len(times),
        p50=percentile(late, 0.5),
        p99=percentile(late, 0.99),
        worst=max(late),
        gaps=sum(value > 0.5 * interval for value in late),
    )


def senders(adverts: Sequence[Advert]) -> set[IPv4Address]:
    """The source addresses seen (to notice a backup that advertised)."""
    return {advert.source for advert in adverts}
