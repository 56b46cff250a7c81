"""Allocation of (multicastGroup, vrid) pairs: unique, stable, pins honoured, exhaustion named."""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

import pytest

from keepvip.api.parse import parse_virtualip
from keepvip.inet import VRRP_GROUP_V4 as STANDARD_GROUP_V4
from keepvip.inet import VRRP_GROUP_V6 as STANDARD_GROUP_V6
from keepvip.operator.allocation import (
    Allocated,
    LedgerEntry,
    Pair,
    Pool,
    Refused,
    Request,
    allocate,
    decode_ledger,
    encode_entry,
    pool_usage,
    stale_uids,
)
from keepvip.operator.problems import Problem
from keepvip.operator.settings import AllocationSettings

DEFAULT_POOL = Pool.from_settings(AllocationSettings())


def small_pool(groups: int = 2, vrids: int = 3) -> Pool:
    last_group = f"224.0.0.{200 + groups - 1}"
    return Pool.from_settings(
        AllocationSettings(vrid_first=1, vrid_last=vrids, ipv4_groups=(f"224.0.0.200-{last_group}",))
    )


def request(name: str, address: str = "", **kwargs: Any) -> Request:
    family = ip_address(address).version if address else 4
    return Request(uid=f"uid-{name}", name=name, family=family, seed=address or name, **kwargs)


def record(ledger: dict[str, LedgerEntry], req: Request, decision: Allocated | Refused) -> Pair:
    assert isinstance(decision, Allocated), decision
    ledger[req.uid] = LedgerEntry(req.name, decision.pair)
    return decision.pair


def test_default_ipv4_pool_is_the_unassigned_part_of_the_local_network_control_block() -> None:
    groups = DEFAULT_POOL.groups(4)
    assert groups[0] == IPv4Address("224.0.0.200")
    assert groups[-1] == IPv4Address("224.0.0.249")
    assert STANDARD_GROUP_V4 not in groups
    # IANA assignments near the range stay out: 224.0.0.150 (Ramp Altitude CDN), .251 mDNS, .252 LLMNR.
    assert not {IPv4Address(a) for a in ("224.0.0.150", "224.0.0.251", "224.0.0.252")} & set(groups)


def test_default_ipv6_pool_uses_link_local_group_ids_from_the_dynamic_range() -> None:
    groups = DEFAULT_POOL.groups(6)
    assert len(groups) == 256
    assert STANDARD_GROUP_V6 not in groups
    for group in groups:
        assert group.packed[:2] == b"\xff\x02"  # permanent flag 0, link-local scope
        assert int.from_bytes(group.packed[12:], "big") >= 0x8000_0000  # RFC 3307 §4.3 dynamic group id


def test_pool_sizes_count_groups_times_vrids() -> None:
    assert DEFAULT_POOL.size(4) == 50 * 255
    assert DEFAULT_POOL.size(6) == 256 * 255


def test_a_new_virtualip_gets_a_pair_from_the_pool_of_its_family() -> None:
    v4 = allocate(request("a", "198.18.0.100"), {}, DEFAULT_POOL)
    v6 = allocate(request("b", "2001:db8::100"), {}, DEFAULT_POOL)
    assert isinstance(v4, Allocated)
    assert v4.is_new
    assert v4.pair in DEFAULT_POOL
    assert v4.pair.family == 4
    assert isinstance(v6, Allocated)
    assert v6.pair in DEFAULT_POOL
    assert isinstance(v6.pair.group, IPv6Address)


def test_the_first_choice_depends_on_the_address_so_two_clusters_rarely_collide() -> None:
    firsts = {allocate(request(f"vip{i}", f"198.18.0.{i}"), {}, DEFAULT_POOL) for i in range(1, 41)}
    pairs = {d.pair for d in firsts if isinstance(d, Allocated)}
    assert len(pairs) > 35  # 40 empty ledgers (40 clusters), nearly 40 different pairs


def test_the_same_request_on_the_same_ledger_gets_the_same_pair() -> None:
    req = request("a", "198.18.0.100")
    assert allocate(req, {}, DEFAULT_POOL) == allocate(req, {}, DEFAULT_POOL)


def test_many_virtualips_get_distinct_pairs_and_distinct_vrids_while_vrids_last() -> None:
    ledger: dict[str, LedgerEntry] = {}
    pairs = [record(ledger, r, allocate(r, ledger, DEFAULT_POOL))
             for r in (request(f"vip{i}", f"198.18.{i // 250}.{i % 250 + 1}") for i in range(255))]
    assert len(set(pairs)) == 255
    assert len({p.vrid for p in pairs}) == 255  # every VRID used once before any is reused


def test_an_existing_ledger_entry_is_kept_across_restarts() -> None:
    req = request("a", "198.18.0.100")
    held = Pair(IPv4Address("224.0.0.233"), 42)
    decision = allocate(req, {req.uid: LedgerEntry("a", held)}, DEFAULT_POOL)
    assert decision == Allocated(held, is_new=False)


def test_an_existing_entry_outside_a_shrunk_pool_is_still_kept() -> None:
    req = request("a", "198.18.0.100")
    held = Pair(IPv4Address("224.0.0.249"), 255)
    decision = allocate(req, {req.uid: LedgerEntry("a", held)}, small_pool())
    assert decision == Allocated(held, is_new=False)


def test_pinned_vrid_and_group_are_honoured_even_outside_the_pool() -> None:
    req = request("a", "198.18.0.100", vrid=51, group=STANDARD_GROUP_V4)
    assert allocate(req, {}, small_pool()) == Allocated(Pair(STANDARD_GROUP_V4, 51), is_new=True)


def test_a_pinned_pair_held_by_another_virtualip_is_refused_naming_the_holder() -> None:
    ledger = {"uid-x": LedgerEntry("x", Pair(STANDARD_GROUP_V4, 51))}
    decision = allocate(request("a", "198.18.0.100", vrid=51, group=STANDARD_GROUP_V4), ledger, DEFAULT_POOL)
    assert isinstance(decision, Refused)
    assert decision.problem is Problem.PAIR_IN_USE
    assert decision.message.startswith("spec.vrrp.vrid:")
    assert "'x'" in decision.message


def test_a_pinned_vrid_gets_a_group_that_does_not_use_it_yet() -> None:
    ledger: dict[str, LedgerEntry] = {}
    first = record(ledger, r1 := request("a", "198.18.0.1", vrid=7), allocate(r1, ledger, DEFAULT_POOL))
    second = record(ledger, r2 := request("b", "198.18.0.2", vrid=7), allocate(r2, ledger, DEFAULT_POOL))
    assert first.vrid == second.vrid == 7
    assert first.group != second.group


def test_a_pinned_group_gets_free_vrids_inside_that_group() -> None:
    ledger: dict[str, LedgerEntry] = {}
    group = IPv4Address("224.0.0.18")
    pairs = [record(ledger, r, allocate(r, ledger, small_pool(vrids=3)))
             for r in (request(f"v{i}", f"198.18.0.{i}", group=group) for i in range(3))]
    assert {p.group for p in pairs} == {group}
    assert sorted(p.vrid for p in pairs) == [1, 2, 3]


def test_a_changed_pin_moves_the_virtualip_to_a_pair_that_satisfies_it() -> None:
    req = request("a", "198.18.0.100", vrid=9)
    ledger = {req.uid: LedgerEntry("a", Pair(IPv4Address("224.0.0.210"), 3))}
    decision = allocate(req, ledger, DEFAULT_POOL)
    assert isinstance(decision, Allocated)
    assert decision.is_new
    assert decision.pair.vrid == 9


def test_the_pair_recorded_in_status_is_readopted_when_the_ledger_lost_it() -> None:
    recorded = Pair(IPv4Address("224.0.0.222"), 77)
    decision = allocate(request("a", "198.18.0.100", recorded=recorded), {}, DEFAULT_POOL)
    assert decision == Allocated(recorded, is_new=True)


def test_a_recorded_pair_that_someone_else_now_holds_is_not_readopted() -> None:
    recorded = Pair(IPv4Address("224.0.0.222"), 77)
    ledger = {"uid-x": LedgerEntry("x", recorded)}
    decision = allocate(request("a", "198.18.0.100", recorded=recorded), ledger, DEFAULT_POOL)
    assert isinstance(decision, Allocated)
    assert decision.pair != recorded


def test_automatic_choices_avoid_pairs_other_virtualips_pin() -> None:
    pool = small_pool(groups=1, vrids=2)
    pinned = Pair(IPv4Address("224.0.0.200"), 1)
    decision = allocate(request("a", "198.18.0.1"), {}, pool, reserved={pinned: "pinner"})
    assert decision == Allocated(Pair(IPv4Address("224.0.0.200"), 2), is_new=True)


def test_exhaustion_is_a_named_refusal_not_an_exception() -> None:
    pool = small_pool(groups=2, vrids=3)
    ledger: dict[str, LedgerEntry] = {}
    for i in range(6):
        record(ledger, r := request(f"v{i}", f"198.18.0.{i}"), allocate(r, ledger, pool))
    decision = allocate(request("late", "198.18.0.99"), ledger, pool)
    assert isinstance(decision, Refused)
    assert decision.problem is Problem.POOL_EXHAUSTED
    assert "6 pairs" in decision.message


def test_exhaustion_with_a_pinned_vrid_names_the_vrid_field() -> None:
    pool = small_pool(groups=1, vrids=3)
    ledger = {"uid-x": LedgerEntry("x", Pair(IPv4Address("224.0.0.200"), 2))}
    decision = allocate(request("a", "198.18.0.1", vrid=2), ledger, pool)
    assert isinstance(decision, Refused)
    assert decision.message.startswith("spec.vrrp.vrid:")


def test_interleaved_allocations_from_stale_reads_are_caught_by_compare_and_swap() -> None:
    """Simulate N handlers racing on a CAS ledger: each decides on what it read; a write
    succeeds only if nobody wrote since that read, else it re-reads and decides again."""
    rng = random.Random(7)  # noqa: S311 - a reproducible schedule, not a secret
    store: dict[str, LedgerEntry] = {}
    version = 0
    pending = [request(f"vip{i}", f"198.18.0.{i + 1}") for i in range(50)]
    reads: dict[str, tuple[int, dict[str, LedgerEntry]]] = {}
    conflicts = 0
    while pending:
        req = rng.choice(pending)
        if req.uid not in reads or rng.random() < 0.5:
            reads[req.uid] = (version, dict(store))  # (re-)read
            continue
        read_version, snapshot = reads.pop(req.uid)
        decision = allocate(req, snapshot, DEFAULT_POOL)
        assert isinstance(decision, Allocated)
        if read_version != version:
            conflicts += 1  # 409: the write is refused, the handler re-reads
            continue
        store[req.uid] = LedgerEntry(req.name, decision.pair)
        version += 1
        pending.remove(req)
    assert conflicts > 0  # the simulation did race
    assert len({entry.pair for entry in store.values()}) == 50


def test_request_from_a_virtualip_resolves_standard_and_reads_status() -> None:
    vip = parse_virtualip({
        "metadata": {"name": "web", "uid": "u1"},
        "spec": {"addresses": ["2001:db8::5/64"], "vrrp": {"multicastGroup": "standard", "vrid": 9}},
        "status": {"vrid": 9, "multicastGroup": "ff02::12"},
    })
    req = Request.from_virtualip(vip)
    assert (req.uid, req.family, req.vrid, req.group) == ("u1", 6, 9, STANDARD_GROUP_V6)
    assert req.recorded == Pair(STANDARD_GROUP_V6, 9)
    assert req.seed == "2001:db8::5"


def test_the_ledger_round_trips_through_configmap_data_and_skips_garbage() -> None:
    entry = LedgerEntry("web", Pair(IPv4Address("224.0.0.201"), 12))
    data = {"u1": encode_entry(entry), "u2": "not json", "u3": '{"name": "x"}'}
    assert decode_ledger(data) == {"u1": entry}


def test_stale_entries_are_those_without_a_live_virtualip() -> None:
    ledger = {u: LedgerEntry(u, Pair(IPv4Address("224.0.0.200"), i)) for i, u in enumerate(("a", "b"), 1)}
    assert stale_uids(ledger, {"a"}) == {"b"}


@pytest.mark.parametrize(("family", "expected"), [(4, (50 * 255, 1)), (6, (256 * 255, 0))])
def test_pool_usage_counts_only_pairs_inside_the_pool(family: int, expected: tuple[int, int]) -> None:
    ledger = {
        "in": LedgerEntry("in", Pair(IPv4Address("224.0.0.200"), 1)),
        "pinned-outside": LedgerEntry("out", Pair(STANDARD_GROUP_V4, 51)),
    }
    assert pool_usage(ledger, DEFAULT_POOL, family) == expected
