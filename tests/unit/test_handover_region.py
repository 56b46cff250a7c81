"""The memory a speaker shares with its parent: the priority-0 advertisements the parent sends
if the speaker is killed while master (keepvip.speaker.net.handover).

The child rewrites the table whenever one of its routers becomes or stops being master; the
parent reads it once, after the child died. A child killed in the middle of a rewrite must
leave the previous table whole, and nothing in the region is trusted by the reader.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import signal
import socket
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv6Address

import pytest

from keepvip.speaker.net import handover
from keepvip.speaker.net.handover import HALF_BYTES, Record, Region, pack
from keepvip.speaker.net.vrrp_send import send_target
from keepvip.speaker.runtime.handover_table import HandoverTable
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.codec import decode, encode

SOURCE, GROUP = IPv4Address("198.18.0.11"), IPv4Address("224.0.0.18")
SOURCE6, GROUP6 = IPv6Address("fe80::11"), IPv6Address("ff02::12")


def record(vrid: int, *, ipv6: bool = False) -> Record:
    source, group = (SOURCE6, GROUP6) if ipv6 else (SOURCE, GROUP)
    address = IPv6Address(f"2001:db8::{vrid:x}") if ipv6 else IPv4Address(f"198.18.0.{vrid}")
    leaving = Advertisement(3, vrid, 0, 100, (address,))
    return Record(2, source.packed, group.packed, encode(leaving, source=source, destination=group))


def test_a_new_region_holds_no_table() -> None:
    assert Region.create().read() == ([], 0)


def test_the_table_read_is_the_one_last_written() -> None:
    region = Region.create()
    region.write([record(1), record(2, ipv6=True)])
    region.write([record(3)])

    assert region.read() == ([record(3)], 0)


def test_what_is_read_back_decodes_as_the_priority_zero_advertisement() -> None:
    region = Region.create()
    region.write([record(7, ipv6=True)])

    (found,), _ = region.read()
    decoded = decode(found.payload, source=SOURCE6, destination=GROUP6, ttl=255)
    assert (decoded.vrid, decoded.priority, decoded.addresses) == (7, 0, (IPv6Address("2001:db8::7"),))


def test_a_table_larger_than_the_region_is_cut_at_a_whole_record() -> None:
    region = Region.create()
    many = [record(vrid % 250 + 1) for vrid in range(HALF_BYTES // 20)]

    written = region.write(many)

    assert 0 < written < len(many)
    assert region.read() == (many[:written], 0)


def test_the_region_is_shared_with_a_forked_process() -> None:
    region = Region.create()
    child = os.fork()
    if child == 0:  # the speaker: writes its table, then is killed as the OOM killer would
        region.write([record(4), record(5)])
        os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL
    assert region.read() == ([record(4), record(5)], 0)


def test_a_rewrite_cut_short_leaves_the_previous_table() -> None:
    region = Region.create()
    region.write([record(1)])

    def killed_after_two() -> Iterator[Record]:  # the write stops in the middle, as a SIGKILL would
        yield record(2)
        yield record(3)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        region.write(killed_after_two())

    assert region.read() == ([record(1)], 0)


@pytest.mark.parametrize(
    ("offset", "value", "why"),
    [
        (0, b"\x07", "the active byte names no half"),
        (8, (HALF_BYTES + 1).to_bytes(4, "little"), "the half claims more than it has"),
        (12, (0).to_bytes(4, "little"), "interface index 0"),
        (16, b"\x05", "a 5-byte source address"),
        (17, b"\x10", "source and destination of different families"),
        (18, (0).to_bytes(2, "little"), "an empty payload"),
    ],
)
def test_a_malformed_table_is_read_up_to_the_fault_and_the_fault_counted(
    offset: int, value: bytes, why: str
) -> None:
    memory = mmap.mmap(-1, 8 + 2 * (4 + HALF_BYTES), flags=mmap.MAP_SHARED)
    region = Region(memory)
    region.write([record(1), record(2)])
    region.write([record(1), record(2)])  # back in half 0, at offset 8
    memory[offset : offset + len(value)] = value

    records, malformed = region.read()

    assert malformed == 1, why
    assert records == []  # the fault is in the first record (or the header): nothing before it


def test_a_truncated_last_record_keeps_the_whole_ones() -> None:
    memory = mmap.mmap(-1, 8 + 2 * (4 + HALF_BYTES), flags=mmap.MAP_SHARED)
    region = Region(memory)
    region.write([record(1), record(2)])
    region.write([record(1), record(2)])
    used = int.from_bytes(memory[8:12], "little")
    memory[8:12] = (used - 3).to_bytes(4, "little")

    assert region.read() == ([record(1)], 1)


def test_sending_without_records_opens_nothing() -> None:
    assert handover.send([]) == (0, [])


def test_the_table_is_written_once_per_turn_of_the_loop_from_pieces_packed_once() -> None:
    region = Region.create()
    writes: list[int] = []
    original = region.write_packed

    def counting(pieces: Iterable[bytes]) -> int:
        listed = list(pieces)
        writes.append(len(listed))
        return original(listed)

    region.write_packed = counting  # type: ignore[method-assign]
    table = HandoverTable(region)

    async def scenario() -> None:
        for vrid in range(1, 101):  # 100 routers take over in one turn
            table.master(f"vip{vrid}", [record(vrid)])
        await asyncio.sleep(0)
        table.left("vip1")
        table.left("vip2")
        table.left("not-a-master")
        await asyncio.sleep(0)

    asyncio.run(scenario())

    assert writes == [100, 98]
    records, _ = region.read()
    assert sorted(r.payload for r in records) == sorted(record(v).payload for v in range(3, 101))


def test_without_a_region_the_table_writes_nothing() -> None:
    table = HandoverTable(None)

    async def scenario() -> None:
        table.master("vip1", [record(1)])
        await asyncio.sleep(0)

    asyncio.run(scenario())  # no write scheduled: a write to no region would raise
    assert not table.enabled


def test_a_router_with_several_destinations_is_one_piece_kept_or_left_out_whole() -> None:
    region = Region.create()
    peers = [record(vrid) for vrid in (1, 2, 3)]  # e.g. three unicast peers of one router
    big = [record(9)] * ((HALF_BYTES - len(pack(peers))) // len(pack([record(9)])) + 1)

    assert region.write_packed([pack(peers), pack(big)]) == 1
    assert region.read() == (peers, 0)


def test_the_send_target_pins_interface_and_source_and_scopes_link_local_destinations() -> None:
    ancillary, _, address = send_target(socket.AF_INET6, 7, SOURCE6.packed, GROUP6.packed)
    assert address == ("ff02::12", 0, 0, 7)
    assert ancillary == [
        (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, SOURCE6.packed + (7).to_bytes(4, "little"))
    ]
    _, _, global_address = send_target(socket.AF_INET6, 7, SOURCE6.packed, IPv6Address("2001:db8::1").packed)
    assert global_address == ("2001:db8::1", 0, 0, 0)
    _, _, address4 = send_target(socket.AF_INET, 7, SOURCE.packed, GROUP.packed)
    assert address4 == ("224.0.0.18", 0)
