"""The VRRP sockets' classic BPF program, run by a small cBPF interpreter on sample packets.

The interpreter follows the kernel's semantics for the instructions the program uses
(``net/core/filter.c``): absolute and indirect loads relative to where the socket's
data starts, ``SKF_NET_OFF`` loads relative to the IP header, a load outside the packet
drops it, and jumps count the instructions skipped. Where the data starts is the one
difference between families the kernel imposes: at the IP header for IPv4 raw sockets,
after it (at the VRRP header) for IPv6. The live counterpart, with real sockets in
namespaces, is tests/netns/test_net_vrrp_socket.py.

Packets are built by scapy, an encoder independent of keepvip's codec.
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRPv3

from keepvip.inet import VRRP_GROUP_V4 as GROUP4
from keepvip.inet import VRRP_GROUP_V6 as GROUP6
from keepvip.inet import IPAddress
from keepvip.speaker.net.vrrp_socket import MAX_SPLIT_VRIDS, Instruction, socket_filter

SKF_NET_OFF = -0x100000
OTHER_GROUP4 = IPv4Address("224.0.0.19")
SOURCE4 = IPv4Address("198.18.0.7")
SOURCE6 = IPv6Address("fe80::7")
PEER4 = IPv4Address("198.18.0.1")
PEER6 = IPv6Address("2001:db8::1")


def run(program: list[Instruction], packet: bytes, data_start: int) -> int:
    """What the kernel's filter returns for ``packet`` (0: dropped, else bytes kept)."""

    def load(offset: int, size: int) -> int | None:
        offset = offset - (1 << 32) if offset >= 1 << 31 else offset  # k is a u32
        # SKF_NET_OFF loads count from the network header, i.e. byte 0 of `packet`:
        at = offset - SKF_NET_OFF if SKF_NET_OFF <= offset < 0 else data_start + offset
        if at < 0 or at + size > len(packet):
            return None
        return int.from_bytes(packet[at : at + size], "big")

    a = x = 0
    pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x06:  # ret k
            return k
        if code in (0x20, 0x30, 0x50):  # ld w abs, ld b abs, ld b ind
            size = 4 if code == 0x20 else 1
            value = load(k + (x if code == 0x50 else 0), size)
            if value is None:
                return 0
            a = value
        elif code == 0xB1:  # ldx b msh: X = 4 * (byte[k] & 0xf)
            value = load(k, 1)
            if value is None:
                return 0
            x = 4 * (value & 0x0F)
        elif code == 0x54:  # and k
            a &= k
        elif code == 0x15:  # jeq k
            pc += jt if a == k else jf
        else:
            raise AssertionError(f"instruction {code:#x} not interpreted")


def advert(
    destination: IPAddress, *, vrid: int = 51, priority: int = 100, ttl: int = 255, options: bool = False
) -> tuple[bytes, int]:
    """A VRRPv3 advertisement as the raw socket sees it: (bytes from the IP header, data start)."""
    vrrp = VRRPv3(vrid=vrid, priority=priority, ipcount=1)
    if isinstance(destination, IPv4Address):
        ip = IP(src=str(SOURCE4), dst=str(destination), ttl=ttl, proto=112,
                options=[b"\x94\x04\x00\x00"] if options else [])  # fmt: skip
        return raw(ip / vrrp), 0
    return raw(IPv6(src=str(SOURCE6), dst=str(destination), hlim=ttl) / vrrp), 40


def accepted(program: list[Instruction], sample: tuple[bytes, int]) -> bool:
    return run(program, *sample) != 0


@pytest.mark.parametrize(("group", "other"), [(GROUP4, OTHER_GROUP4), (GROUP6, IPv6Address("ff02::1:12"))],
                         ids=["ipv4", "ipv6"])  # fmt: skip
def test_a_group_socket_keeps_ttl_255_and_its_vrids_only(group: IPAddress, other: IPAddress) -> None:
    program = socket_filter(group.version, group, frozenset({51, 52, 200}))

    for vrid in (51, 52, 200):
        assert accepted(program, advert(group, vrid=vrid)), vrid
    assert not accepted(program, advert(group, vrid=50))  # a VRID nobody here runs
    assert not accepted(program, advert(group, vrid=53))
    assert not accepted(program, advert(group, ttl=254))  # RFC 9568 §7.1: from off the link
    assert not accepted(program, advert(group, ttl=1))
    assert not accepted(program, advert(other))  # another group's packet


def test_the_ipv4_vrid_is_found_after_ip_options() -> None:
    program = socket_filter(4, GROUP4, frozenset({51}))

    assert accepted(program, advert(GROUP4, vrid=51, options=True))
    assert not accepted(program, advert(GROUP4, vrid=99, options=True))
    # Byte 1 after a 20-byte header is an option byte here, not the VRID:
    assert advert(GROUP4, vrid=99, options=True)[0][21] != 99


@pytest.mark.parametrize("peer", [PEER4, PEER6], ids=str)
def test_a_unicast_socket_keeps_unicast_with_ttl_255_and_its_vrids(peer: IPAddress) -> None:
    program = socket_filter(peer.version, None, frozenset({7}))
    group = GROUP4 if peer.version == 4 else GROUP6

    assert accepted(program, advert(peer, vrid=7))
    assert not accepted(program, advert(peer, vrid=8))
    assert not accepted(program, advert(peer, vrid=7, ttl=254))
    assert not accepted(program, advert(group, vrid=7))  # multicast never reaches a unicast socket


def test_without_vrids_only_the_destination_is_filtered() -> None:
    """The unfiltered path (a socket never told its VRIDs): any VRID, any TTL, for userspace to judge."""
    program = socket_filter(4, GROUP4)

    assert accepted(program, advert(GROUP4, vrid=99, ttl=254))
    assert not accepted(program, advert(OTHER_GROUP4))


def test_an_empty_vrid_set_drops_everything() -> None:
    program = socket_filter(4, GROUP4, frozenset())

    assert not accepted(program, advert(GROUP4))


@pytest.mark.parametrize("version", [4, 6])
def test_all_255_vrids_fit_the_one_byte_jumps(version: int) -> None:
    group = GROUP4 if version == 4 else GROUP6
    program = socket_filter(version, group, frozenset(range(1, 256)))

    assert all(jt <= 255 and jf <= 255 for _, jt, jf, _ in program)
    assert all(accepted(program, advert(group, vrid=vrid)) for vrid in (1, 128, 255))
    assert not accepted(program, advert(group, vrid=1, ttl=64))
    odd = socket_filter(version, group, frozenset(range(1, 256, 2)))
    assert [accepted(odd, advert(group, vrid=vrid)) for vrid in (1, 2, 253, 254, 255)] == [
        True, False, True, False, True]  # fmt: skip


def test_a_truncated_packet_is_dropped_not_read_past_its_end() -> None:
    program = socket_filter(4, GROUP4, frozenset({51}))
    packet, start = advert(GROUP4)

    assert not accepted(program, (packet[:21], start))  # the VRID byte is missing


def test_vrids_out_of_range_and_unknown_families_are_refused() -> None:
    with pytest.raises(ValueError, match=r"VRIDs must be 1\.\.255"):
        socket_filter(4, GROUP4, frozenset({0, 51}))
    with pytest.raises(ValueError, match="IP version must be 4 or 6"):
        socket_filter(5, None)


def test_every_instruction_packs_as_struct_sock_filter() -> None:
    program = socket_filter(6, GROUP6, frozenset({1, 2}))

    packed = b"".join(struct.pack("HBBI", *instruction) for instruction in program)
    assert len(packed) == 8 * len(program)


# -- priority-split socket pairs ------------------------------------------------------
#
# A backup's advertisements can be split over two sockets by urgency: the "prompt"
# socket takes the VRIDs it always serves at any priority plus the split VRIDs'
# priority-0 adverts (a master resigning: act now), the "lazy" socket the split VRIDs'
# adverts above priority 0 (a master alive: read at leisure). Together they must take
# every subscribed advert exactly once.

PRIORITIES = (0, 1, 100, 255)
SPLIT_TARGETS = [(GROUP4, GROUP4), (PEER4, None), (GROUP6, GROUP6), (PEER6, None)]
"""(where adverts are sent, the group the filters are built for: ``None`` for unicast)."""
SPLIT_IDS = ["ipv4-group", "ipv4-unicast", "ipv6-group", "ipv6-unicast"]
# What a filter passes at each of PRIORITIES:
ANY = [True] * 4
AT_ZERO = [True, False, False, False]
ABOVE_ZERO = [False, True, True, True]
NEVER = [False] * 4


def split_pair(
    version: int, group: IPAddress | None, prompt: frozenset[int], lazy: frozenset[int]
) -> tuple[list[Instruction], list[Instruction]]:
    """The two filters of a socket pair: ``prompt`` VRIDs at any priority, ``lazy`` ones split by priority."""
    return (
        socket_filter(version, group, prompt, zero_only=lazy),
        socket_filter(version, group, frozenset(), above_zero_only=lazy),
    )


def one_split_filter(
    version: int, group: IPAddress | None, vrids: frozenset[int], split: str, splitted: frozenset[int]
) -> list[Instruction]:
    """The filter with ``vrids`` at any priority, ``splitted`` as ``split`` (the keyword's name)."""
    if split == "zero_only":
        return socket_filter(version, group, vrids, zero_only=splitted)
    return socket_filter(version, group, vrids, above_zero_only=splitted)


def routed(pair: tuple[list[Instruction], list[Instruction]], sample: tuple[bytes, int]) -> str:
    """Which socket of the pair queues ``sample``: "prompt", "lazy", "both" or "neither"."""
    names = {(True, False): "prompt", (False, True): "lazy", (True, True): "both", (False, False): "neither"}
    return names[accepted(pair[0], sample), accepted(pair[1], sample)]


@pytest.mark.parametrize(("destination", "group"), SPLIT_TARGETS, ids=SPLIT_IDS)
def test_a_split_pair_takes_every_subscribed_advert_exactly_once(
    destination: IPAddress, group: IPAddress | None
) -> None:
    pair = split_pair(destination.version, group, frozenset({10}), frozenset({20, 30}))

    for vrid in (10, 20, 30):
        for priority in PRIORITIES:
            assert routed(pair, advert(destination, vrid=vrid, priority=priority)) in ("prompt", "lazy"), (
                vrid, priority)  # fmt: skip


@pytest.mark.parametrize(("destination", "group"), SPLIT_TARGETS, ids=SPLIT_IDS)
def test_a_split_vrid_goes_to_the_prompt_socket_at_priority_0_only(
    destination: IPAddress, group: IPAddress | None
) -> None:
    """RFC 9568 §6.4.2: priority 0 is a master resigning, the one advert a backup must not let wait."""
    pair = split_pair(destination.version, group, frozenset({10}), frozenset({20, 30}))

    for vrid in (20, 30):
        assert [routed(pair, advert(destination, vrid=vrid, priority=p)) for p in PRIORITIES] == [
            "prompt", "lazy", "lazy", "lazy"], vrid  # fmt: skip


@pytest.mark.parametrize(("destination", "group"), SPLIT_TARGETS, ids=SPLIT_IDS)
def test_an_unsplit_vrid_goes_to_the_prompt_socket_at_every_priority(
    destination: IPAddress, group: IPAddress | None
) -> None:
    pair = split_pair(destination.version, group, frozenset({10}), frozenset({20, 30}))

    assert [routed(pair, advert(destination, vrid=10, priority=p)) for p in PRIORITIES] == ["prompt"] * 4


@pytest.mark.parametrize(("destination", "group"), SPLIT_TARGETS, ids=SPLIT_IDS)
def test_a_split_pair_drops_unknown_vrids_bad_ttls_and_foreign_destinations(
    destination: IPAddress, group: IPAddress | None
) -> None:
    pair = split_pair(destination.version, group, frozenset({10}), frozenset({20, 30}))
    foreign: IPAddress
    if group is None:  # multicast never reaches a unicast socket
        foreign = GROUP4 if destination.version == 4 else GROUP6
    else:  # another group's packet
        foreign = OTHER_GROUP4 if destination.version == 4 else IPv6Address("ff02::1:12")

    for p in PRIORITIES:
        for vrid in (9, 11, 21, 255):  # VRIDs nobody here runs
            assert routed(pair, advert(destination, vrid=vrid, priority=p)) == "neither", (vrid, p)
        for vrid in (10, 20, 30):
            for ttl in (254, 64, 1):  # RFC 9568 §7.1: from off the link
                off_link = advert(destination, vrid=vrid, priority=p, ttl=ttl)
                assert routed(pair, off_link) == "neither", (vrid, p, ttl)
            assert routed(pair, advert(foreign, vrid=vrid, priority=p)) == "neither", (vrid, p)


def test_the_ipv4_priority_is_found_after_ip_options() -> None:
    pair = split_pair(4, GROUP4, frozenset({10}), frozenset({20}))

    assert [routed(pair, advert(GROUP4, vrid=20, priority=p, options=True)) for p in PRIORITIES] == [
        "prompt", "lazy", "lazy", "lazy"]  # fmt: skip
    assert routed(pair, advert(GROUP4, vrid=10, priority=100, options=True)) == "prompt"
    # Byte 2 after a 20-byte header is an option byte (0) here, not the priority (100):
    packet, _ = advert(GROUP4, vrid=20, priority=100, options=True)
    assert (packet[22], packet[26]) == (0, 100)


def test_the_split_filter_is_the_plain_one_when_no_vrid_is_split() -> None:
    """Empty split sets change nothing: the program is the one without keyword arguments."""
    for version, group in ((4, GROUP4), (6, None)):
        plain = socket_filter(version, group, frozenset({1, 7, 255}))
        assert socket_filter(version, group, frozenset({1, 7, 255}), zero_only=frozenset(),
                             above_zero_only=frozenset()) == plain  # fmt: skip


@pytest.mark.parametrize(("version", "group"), [(4, GROUP4), (6, GROUP6)], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("split", ["zero_only", "above_zero_only"])
def test_max_split_vrids_fit_the_one_byte_jumps(version: int, group: IPAddress, split: str) -> None:
    anywhere, splitted = frozenset(range(1, 125)), frozenset(range(125, 250))
    assert len(anywhere) + len(splitted) == MAX_SPLIT_VRIDS
    program = one_split_filter(version, group, anywhere, split, splitted)
    at_zero = split == "zero_only"

    assert all(0 <= jt <= 255 and 0 <= jf <= 255 for _, jt, jf, _ in program)

    def passes(vrid: int) -> list[bool]:
        return [accepted(program, advert(group, vrid=vrid, priority=p)) for p in PRIORITIES]

    for vrid in (1, 124):  # first and last of the any-priority set
        assert passes(vrid) == [True] * 4, vrid
    for vrid in (125, 249):  # first and last of the split set
        assert passes(vrid) == [at_zero, not at_zero, not at_zero, not at_zero], vrid
    for vrid in (250, 255):  # subscribed nowhere
        assert passes(vrid) == [False] * 4, vrid
    assert not accepted(program, advert(group, vrid=1, ttl=254))


@pytest.mark.parametrize(("version", "group"), [(4, GROUP4), (6, GROUP6)], ids=["ipv4", "ipv6"])
def test_max_split_vrids_fit_over_all_three_sets(version: int, group: IPAddress) -> None:
    anywhere, zero, above = frozenset(range(1, 84)), frozenset(range(84, 167)), frozenset(range(167, 250))
    assert len(anywhere | zero | above) == MAX_SPLIT_VRIDS
    program = socket_filter(version, group, anywhere, zero_only=zero, above_zero_only=above)

    assert all(0 <= jt <= 255 and 0 <= jf <= 255 for _, jt, jf, _ in program)
    expected = {1: ANY, 83: ANY, 84: AT_ZERO, 166: AT_ZERO, 167: ABOVE_ZERO, 249: ABOVE_ZERO, 250: NEVER}
    for vrid, passes in expected.items():
        assert [accepted(program, advert(group, vrid=vrid, priority=p)) for p in PRIORITIES] == passes, vrid


@pytest.mark.parametrize("version", [4, 6])
def test_more_than_max_split_vrids_are_refused(version: int) -> None:
    too_many = MAX_SPLIT_VRIDS + 1
    with pytest.raises(ValueError, match=f"at most {MAX_SPLIT_VRIDS} VRIDs"):
        socket_filter(version, None, frozenset(range(1, 125)), zero_only=frozenset(range(125, 251)))
    with pytest.raises(ValueError, match=f"at most {MAX_SPLIT_VRIDS} VRIDs"):
        socket_filter(version, None, frozenset(range(1, 125)), above_zero_only=frozenset(range(125, 251)))
    with pytest.raises(ValueError, match=f"at most {MAX_SPLIT_VRIDS} VRIDs"):  # split sets alone count too
        socket_filter(version, None, frozenset(), zero_only=frozenset(range(1, too_many + 1)))
    with pytest.raises(ValueError, match=f"at most {MAX_SPLIT_VRIDS} VRIDs"):
        socket_filter(version, None, frozenset(), above_zero_only=frozenset(range(1, too_many + 1)))
    # Without split sets all 255 still fit (test_all_255_vrids_fit_the_one_byte_jumps):
    socket_filter(version, None, frozenset(range(1, 256)))


def test_split_sets_without_the_any_priority_set_are_refused() -> None:
    """``vrids=None`` is the unfiltered path: it takes any VRID, so a split there would mean nothing."""
    with pytest.raises(ValueError, match="any-priority set"):
        socket_filter(4, GROUP4, zero_only=frozenset({20}))
    with pytest.raises(ValueError, match="any-priority set"):
        socket_filter(6, None, None, above_zero_only=frozenset({20}))
    # Empty split sets are no split: the unfiltered path stays open.
    unfiltered = socket_filter(4, GROUP4, None, zero_only=frozenset(), above_zero_only=frozenset())
    assert unfiltered == socket_filter(4, GROUP4)


@pytest.mark.parametrize("vrid", [0, 256, -1])
@pytest.mark.parametrize("split", ["zero_only", "above_zero_only"])
def test_split_vrids_out_of_range_are_refused(vrid: int, split: str) -> None:
    with pytest.raises(ValueError, match=r"VRIDs must be 1\.\.255"):
        one_split_filter(4, GROUP4, frozenset({10}), split, frozenset({20, vrid}))


@st.composite
def split_subscriptions(draw: st.DrawFn) -> tuple[frozenset[int], frozenset[int]]:
    """Disjoint (prompt, lazy) VRID sets, together at most `MAX_SPLIT_VRIDS`."""
    vrids = draw(st.lists(st.integers(1, 255), unique=True, max_size=MAX_SPLIT_VRIDS))
    cut = draw(st.integers(0, len(vrids)))
    return frozenset(vrids[:cut]), frozenset(vrids[cut:])


def some_vrid(data: st.DataObject, *sets: frozenset[int]) -> int:
    """Mostly a VRID of ``sets`` (a random one rarely is), sometimes any."""
    subscribed = sorted(frozenset().union(*sets))
    return data.draw(st.sampled_from(subscribed) | st.integers(1, 255) if subscribed else st.integers(1, 255))


@settings(max_examples=200, deadline=None)
@given(
    subscriptions=split_subscriptions(),
    target=st.sampled_from(SPLIT_TARGETS),
    priority=st.sampled_from([0, 1, 255]) | st.integers(0, 255),
    options=st.booleans(),
    data=st.data(),
)
def test_a_split_pair_routes_any_advert_to_exactly_one_socket_if_subscribed(
    subscriptions: tuple[frozenset[int], frozenset[int]],
    target: tuple[IPAddress, IPAddress | None],
    priority: int,
    options: bool,
    data: st.DataObject,
) -> None:
    prompt, lazy = subscriptions
    destination, group = target
    vrid = some_vrid(data, prompt, lazy)
    pair = split_pair(destination.version, group, prompt, lazy)
    options = options and destination.version == 4

    where = routed(pair, advert(destination, vrid=vrid, priority=priority, options=options))

    if vrid in prompt or (vrid in lazy and priority == 0):
        assert where == "prompt"
    elif vrid in lazy:
        assert where == "lazy"
    else:
        assert where == "neither"


@st.composite
def three_sets(draw: st.DrawFn) -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
    """Disjoint (any-priority, zero_only, above_zero_only) VRID sets, together at most `MAX_SPLIT_VRIDS`."""
    vrids = draw(st.lists(st.integers(1, 255), unique=True, max_size=MAX_SPLIT_VRIDS))
    first = draw(st.integers(0, len(vrids)))
    second = draw(st.integers(first, len(vrids)))
    return frozenset(vrids[:first]), frozenset(vrids[first:second]), frozenset(vrids[second:])


@settings(max_examples=200, deadline=None)
@given(
    sets=three_sets(),
    version=st.sampled_from([4, 6]),
    priority=st.sampled_from([0, 1, 255]) | st.integers(0, 255),
    ttl=st.sampled_from([255, 255, 254, 1]),
    data=st.data(),
)
def test_one_split_filter_passes_exactly_what_its_three_sets_say(
    sets: tuple[frozenset[int], frozenset[int], frozenset[int]],
    version: int,
    priority: int,
    ttl: int,
    data: st.DataObject,
) -> None:
    anywhere, zero, above = sets
    vrid = some_vrid(data, *sets)
    group = GROUP4 if version == 4 else GROUP6
    program = socket_filter(version, group, anywhere, zero_only=zero, above_zero_only=above)

    expected = ttl == 255 and (
        vrid in anywhere or (vrid in zero and priority == 0) or (vrid in above and priority > 0)
    )
    assert all(0 <= jt <= 255 and 0 <= jf <= 255 for _, jt, jf, _ in program)
    assert accepted(program, advert(group, vrid=vrid, priority=priority, ttl=ttl)) == expected
