"""The chaos judge (bench/chaos_invariants.py) on hand-made records: each invariant fires on
the situation it names and stays quiet on its look-alike, so a clean chaos report means
the run was clean, not that the judge was blind."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests" / "netns")]

from chaos_invariants import FaultWindow, Judge, Observation, cpu_wait, judge, split_windows  # noqa: E402
from chaos_observe import HoldSample, SchedSample, WireFrame  # noqa: E402
from chaos_schedule import FaultKind, VipPlan, make_plan  # noqa: E402
from gaps import Answer  # noqa: E402

VIP = VipPlan(1, 1, "198.18.0.101/24", {"node1": 200, "node2": 150, "node3": 100}, True, None)
IPS = {"node1": "198.18.0.1", "node2": "198.18.0.2", "node3": "198.18.0.3"}
MACS = {"node1": "02:00:00:00:00:01", "node2": "02:00:00:00:00:02", "node3": "02:00:00:00:00:03"}
JUDGE = Judge((VIP,), 0.1, 0.1, 0.0, IPS, MACS)


def samples(holding: dict[str, list[tuple[float, float]]], end: float) -> list[HoldSample]:
    """A reading of every node every 0.1 s; ``holding`` = node -> [(from, to)] it held the VIP."""
    found = []
    steps = round(end / 0.1)
    for step in range(steps + 1):
        at = step * 0.1
        for node in IPS:
            held = any(start <= at < stop for start, stop in holding.get(node, []))
            found.append(HoldSample(at, node, frozenset({VIP.ip} if held else set())))
    return found


def adverts(node: str, start: float, stop: float) -> list[WireFrame]:
    count = round((stop - start) / 0.1)
    return [
        WireFrame(start + i * 0.1, MACS[node], IPS[node], 1, VIP.priorities[node], None) for i in range(count)
    ]


def answers(node: str, start: float, stop: float) -> list[Answer]:
    return [Answer(start + i * 0.02, node) for i in range(round((stop - start) / 0.02))]


def observe(holding: dict[str, list[tuple[float, float]]], frames: list[WireFrame], seen: list[Answer],
            windows: list[FaultWindow]) -> Observation:  # fmt: skip
    recorded = samples(holding, 10.0)
    final = {s.node: s for s in recorded}
    return Observation(windows, recorded, {VIP.ip: seen}, frames, [], {}, (0.0, 10.0), final)


def freeze(node: str, started: float, healed: float) -> FaultWindow:
    return FaultWindow(f"#1 freeze@{node}", FaultKind.FREEZE, (node,), started, healed, 10.0)


def test_a_clean_run_has_no_violation() -> None:
    verdict = judge(
        JUDGE, observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), answers("node1", 0, 10), [])
    )
    assert verdict.violations == []


def test_split_brain_that_outlives_the_heal_breaks_invariant_1() -> None:
    holding = {"node1": [(0, 11)], "node2": [(3, 6)]}  # node2 took over during the freeze, kept it 1 s after
    frames = adverts("node1", 0, 10) + adverts("node2", 3, 6)
    verdict = judge(JUDGE, observe(holding, frames, answers("node1", 0, 10), [freeze("node1", 2.0, 5.0)]))
    assert [v.invariant for v in verdict.violations] == [1]
    assert verdict.windows
    assert verdict.windows[0].nodes == {"node1", "node2"}


def test_a_split_that_ends_within_one_interval_of_the_heal_is_allowed() -> None:
    holding = {"node1": [(0, 11)], "node2": [(3, 5.05)]}
    frames = adverts("node1", 0, 10) + adverts("node2", 3, 5.05)
    verdict = judge(JUDGE, observe(holding, frames, answers("node1", 0, 10), [freeze("node1", 2.0, 5.0)]))
    assert verdict.violations == []


def test_invariant_1_judges_the_last_reading_that_shows_two_holders_not_the_first_single_one() -> None:
    # Heal at 4.97 s; node2 is read holding at 5.1 s and not at 5.2 s. The release happened
    # in between: what is proven is 130 ms (allowed: one 100 ms interval + the release margin),
    # not the 230 ms until the reading that shows it gone.
    holding = {"node1": [(0, 11)], "node2": [(3, 5.15)]}
    frames = adverts("node1", 0, 10) + adverts("node2", 3, 5.15)
    verdict = judge(JUDGE, observe(holding, frames, answers("node1", 0, 10), [freeze("node1", 2.0, 4.97)]))
    assert verdict.violations == []
    late = {"node1": [(0, 11)], "node2": [(3, 5.25)]}  # read holding 230 ms after the heal: proven too long
    verdict = judge(JUDGE, observe(late, frames, answers("node1", 0, 10), [freeze("node1", 2.0, 4.97)]))
    assert [v.invariant for v in verdict.violations] == [1]


def test_a_long_client_gap_breaks_invariant_2() -> None:
    seen = answers("node1", 0, 4) + answers("node1", 5, 10)  # 1 s without an answer, bound ~0.5 s
    verdict = judge(JUDGE, observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, []))
    assert [v.invariant for v in verdict.violations] == [2]


def test_a_vip_held_without_adverts_breaks_invariant_3() -> None:
    holding = {"node1": [(0, 11)], "node3": [(0, 11)]}  # node3 never advertises: a stale VIP
    verdict = judge(JUDGE, observe(holding, adverts("node1", 0, 10), answers("node1", 0, 10), []))
    assert 3 in {v.invariant for v in verdict.violations}


def test_the_wrong_final_master_breaks_invariant_4() -> None:
    verdict = judge(
        JUDGE, observe({"node2": [(0, 11)]}, adverts("node2", 0, 10), answers("node2", 0, 10), [])
    )
    assert [v.invariant for v in verdict.violations] == [4]


def test_split_windows_are_read_from_the_samples() -> None:
    found = split_windows(VIP, samples({"node1": [(0, 11)], "node3": [(2, 2.5)]}, 5.0))
    assert len(found) == 1
    assert round(found[0].start, 1) == 2.0
    assert round(found[0].end, 1) == 2.5


def test_the_plan_is_a_function_of_the_seed() -> None:
    assert make_plan(7, 0.1, 20, 5) == make_plan(7, 0.1, 20, 5)
    assert make_plan(7, 0.1, 20, 5) != make_plan(8, 0.1, 20, 5)
    freezes = [f for f in make_plan(7, 0.1, 200, 5).faults if f.kind is FaultKind.FREEZE]
    assert freezes
    assert all(f.duration > 0.1 * 4 for f in freezes)  # longer than Master_Down


def test_a_gap_every_node_shared_on_its_own_address_is_the_observers_not_a_violation() -> None:
    seen = answers("node1", 0, 4) + answers("node1", 6, 10)  # 2 s without an answer
    controls = {node: answers(node, 0, 4.05) + answers(node, 5.95, 10) for node in IPS}
    base = observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, [])
    blind = Observation(**{**base.__dict__, "controls": controls})
    verdict = judge(JUDGE, blind)
    assert verdict.violations == []
    assert len(verdict.host_stalls) == 1
    lively = {node: answers(node, 0, 10) for node in IPS}  # the nodes answered: the VIP alone was gone
    assert [
        v.invariant for v in judge(JUDGE, Observation(**{**base.__dict__, "controls": lively})).violations
    ] == [2]


def test_a_gap_a_new_fault_causes_is_judged_under_that_fault_not_the_one_before() -> None:
    # The chaos run (seed 14, 100 ms): the client's last answer from 198.18.0.107 came 20 ms
    # before ``gateway@node1`` isolated the master from the client; the 2.2 s gap that fault
    # causes (bound: Master_Down + the arbiter's detection, 3.4 s) was judged as the previous
    # ``cut``'s (bound 0.4 s) because the last answer fell in that fault's span.
    cut = FaultWindow("#4 cut@node2", FaultKind.CUT, ("node2",), 1.0, 2.0, 4.0)
    gateway = FaultWindow("#5 gateway@node1", FaultKind.GATEWAY, ("node1",), 4.0, 6.0, 10.0)
    seen = answers("node1", 0, 4) + answers("node1", 6.2, 10)  # last answer at 3.98 s, next at 6.2 s
    verdict = judge(JUDGE, observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, [cut, gateway]))
    assert verdict.violations == []
    assert verdict.worst_gaps["gateway"].length > 2.0
    # A gap that had outlived its own bound before the next fault started is still a violation.
    early = answers("node1", 0, 2.5) + answers("node1", 6.2, 10)
    verdict = judge(JUDGE, observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), early, [cut, gateway]))
    assert [v.invariant for v in verdict.violations] == [2]
    assert verdict.violations[0].fault == "#4 cut@node2"


def test_a_gap_a_fault_with_a_smaller_bound_cuts_into_keeps_the_larger_bound_it_began_under() -> None:
    # A gap that began during a gateway fault (bound 3.4 s) and lasts into a freeze that
    # starts right after (bound 0.4 s): either may explain it; the daemon is not blamed for
    # the gateway fault's share.
    gateway = FaultWindow("#1 gateway@node1", FaultKind.GATEWAY, ("node1",), 1.0, 3.0, 4.0)
    frozen = FaultWindow("#2 freeze@node2", FaultKind.FREEZE, ("node2",), 4.0, 5.0, 10.0)
    seen = answers("node1", 0, 3.9) + answers("node1", 6.0, 10)  # silent from 3.88 s to 6.0 s
    verdict = judge(JUDGE, observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, [gateway, frozen]))
    assert verdict.violations == []
    assert verdict.worst_gaps["gateway"].length > 2.0


def test_a_gap_a_fault_with_an_equal_bound_cuts_into_is_that_faults() -> None:
    # The fifth pass, 1 s: ``starve@node1`` had healed 5 s before ``cut@node1`` cut node1 off
    # 2 ms after the client's last answer; both spare the same nodes (equal bounds), and the
    # gap was filed under the starve. The fault that began inside the silence caused it.
    starved = FaultWindow("#2 starve@node1", FaultKind.STARVE, ("node1",), 0.5, 1.0, 4.0)
    cut = FaultWindow("#3 cut@node1", FaultKind.CUT, ("node1",), 4.0, 5.0, 10.0)
    seen = answers("node1", 0, 4) + answers("node2", 4.3, 5.2) + answers("node1", 5.2, 10)  # silent 3.98-4.3
    holding = {"node1": [(0, 4.1), (5.1, 11)], "node2": [(4.25, 5.15)]}
    frames = adverts("node1", 0, 4) + adverts("node2", 4.2, 5.1) + adverts("node1", 5.1, 10)
    verdict = judge(JUDGE, observe(holding, frames, seen, [starved, cut]))
    assert verdict.violations == []
    assert verdict.worst_gaps["cut"].fault == "#3 cut@node1"
    assert "starve" not in verdict.worst_gaps


def test_a_gap_in_which_the_client_sent_no_probe_is_the_observers_not_the_vips() -> None:
    # Fifth pass: a 420 ms gap (bound 402 ms) while the VIP's holder answered every other probe.
    # A prober that got no CPU sends nothing; a VIP that does not answer leaves unanswered probes.
    seen = answers("node1", 0, 2) + answers("node1", 2.6, 10)  # silent from 1.98 s to 2.6 s
    quiet = observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, [])
    stalled = replace(quiet, unanswered={VIP.ip: [2.0, 2.59]})  # nothing sent between 2.0 and 2.59 s
    verdict = judge(JUDGE, stalled)
    assert verdict.violations == []
    assert "sent 198.18.0.101 no probe for 590 ms" in verdict.host_stalls[0][1]
    asked = replace(quiet, unanswered={VIP.ip: [2.0 + 0.02 * i for i in range(30)]})  # sent, unanswered
    assert [v.invariant for v in judge(JUDGE, asked).violations] == [2]
    assert [v.invariant for v in judge(JUDGE, quiet).violations] == [2]  # not recorded: judged as before


def test_a_pause_in_which_every_probe_sent_was_answered_is_no_gap() -> None:
    # Twelfth pass: the prober got no CPU for 132 ms, then sent the missed probes in a burst,
    # all answered by the holder. No request failed, so no gap enters the figures.
    seen = answers("node1", 0, 2) + [Answer(2.13, "node1")] * 5 + answers("node1", 2.14, 10)
    observed = observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, [])
    stalled = replace(observed, unanswered={VIP.ip: []})  # recorded, and none went unanswered
    assert judge(JUDGE, stalled).worst_gaps == {}
    refused = replace(stalled, unanswered={VIP.ip: [2.05]})  # one probe inside went unanswered
    assert judge(JUDGE, refused).worst_gaps["calm"].length == pytest.approx(0.15)
    assert judge(JUDGE, replace(stalled, unanswered={})).worst_gaps["calm"].length == pytest.approx(0.15)


def test_the_worst_gap_of_a_kind_is_the_one_nearest_its_bound_not_the_longest_past_it() -> None:
    # Bounds differ per VIP: a lower-priority backup's Master_Down holds a longer Skew_Time.
    low = VipPlan(2, 2, "198.18.0.102/24", {"node1": 60, "node2": 55, "node3": 50}, True, None)
    two = replace(JUDGE, vips=(VIP, low))
    near = answers("node1", 0, 2) + answers("node1", 2.22, 10)  # VIP: 240 ms
    far = answers("node1", 0, 5) + answers("node1", 5.26, 10)  # low: 280 ms, under a longer bound
    observed = observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), near, [])
    verdict = judge(two, replace(observed, answers={VIP.ip: near, low.ip: far}))
    bounds = {vip.ip: two.gap_bound(vip, None) for vip in two.vips}
    assert 0.24 / bounds[VIP.ip] < 0.28 / bounds[low.ip]  # low's gap took more of its bound ...
    assert 0.24 - bounds[VIP.ip] > 0.28 - bounds[low.ip]  # ... though it stayed further under it
    worst = verdict.worst_gaps["calm"]
    assert worst.vip == low.ip
    assert worst.share == pytest.approx(0.28 / bounds[low.ip])


def sched(node: str, waits: list[tuple[float, float]], pid: int = 100) -> list[SchedSample]:
    """``node``'s VRRP process's cumulative run-queue wait: [(time, seconds waited so far)]."""
    return [SchedSample(at, node, pid, waited) for at, waited in waits]


def test_a_double_holding_the_holders_cpu_wait_covers_is_listed_apart_from_invariant_1() -> None:
    # Heal at 5.0 s, two holders until 6.0 s (allowed 0.15 s): node2's speaker waited 0.9 s of
    # that second on a run queue (issue 14: the cut node silent for 300-550 ms after the heal).
    holding = {"node1": [(0, 11)], "node2": [(3, 6.05)]}
    frames = adverts("node1", 0, 10) + adverts("node2", 3, 6.05)
    obs = observe(holding, frames, answers("node1", 0, 10), [freeze("node1", 2.0, 5.0)])
    starved = replace(obs, sched=sched("node2", [(4.9, 1.0), (5.05, 1.05), (6.0, 1.95)]))
    verdict = judge(JUDGE, starved)
    assert verdict.violations == []
    [(violation, why)] = verdict.cpu_starved
    assert violation.invariant == 1
    assert "node2 900 ms" in violation.detail
    assert "waited 900 ms for a CPU" in why


def test_a_double_holding_longer_than_the_cpu_wait_explains_stays_a_violation() -> None:
    holding = {"node1": [(0, 11)], "node2": [(3, 6.05)]}
    frames = adverts("node1", 0, 10) + adverts("node2", 3, 6.05)
    obs = observe(holding, frames, answers("node1", 0, 10), [freeze("node1", 2.0, 5.0)])
    busy = replace(
        obs, sched=sched("node2", [(5.05, 1.0), (6.0, 1.2)]) + sched("node1", [(5.05, 0.0), (6.0, 0.1)])
    )
    verdict = judge(JUDGE, busy)
    assert [v.invariant for v in verdict.violations] == [1]
    assert verdict.cpu_starved == []


def test_cpu_wait_counts_only_what_samples_inside_the_span_prove_per_process() -> None:
    samples = sched("node1", [(0.9, 5.0), (1.1, 5.2), (1.9, 5.5)]) + sched("node1", [(2.0, 0.0)], pid=7)
    samples += sched("node1", [(2.5, 0.3)], pid=7) + sched("node2", [(1.5, 9.0), (1.6, 9.9)])
    assert cpu_wait(samples, "node1", 1.0, 3.0) == pytest.approx(0.3 + 0.3)  # pid 100 from 1.1 s, then pid 7


def test_the_verdict_sums_the_run_queue_wait_and_finds_the_worst_second() -> None:
    obs = observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), answers("node1", 0, 10), [])
    waits = sched("node1", [(1.0, 0.0), (1.5, 0.1), (2.0, 0.6), (3.0, 0.7)]) + sched(
        "node2", [(1.0, 2.0), (9.0, 2.2)]
    )
    verdict = judge(JUDGE, replace(obs, sched=waits))
    assert verdict.cpu_waits == pytest.approx((0.7 + 0.2, 0.6))


def test_a_gap_the_holders_own_address_shared_but_for_one_answer_is_the_hosts() -> None:
    # node1 answered the VIP before and after a 2 s gap; its own address answered once in the
    # middle of it and was silent for 1.9 s of it: the rest (0.1 s) fits the bound, so node1's host
    # stalled, not VRRP. The other nodes answered throughout (not a blind client).
    seen = answers("node1", 0, 4) + answers("node1", 6, 10)
    controls = {node: answers(node, 0, 10) for node in ("node2", "node3")}
    controls["node1"] = [*answers("node1", 0, 4.0), Answer(4.1, "node1"), *answers("node1", 5.9, 10)]
    base = observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, [])
    verdict = judge(JUDGE, replace(base, controls=controls))
    assert verdict.violations == []
    [(_gap, why)] = verdict.host_stalls
    assert "node1's own address went unanswered for 1900 ms" in why
    # Answered every 0.5 s through the gap: the node was there, the VIP was not (a violation).
    controls["node1"] = answers("node1", 0, 4) + [Answer(4.0 + k * 0.5, "node1") for k in range(4)]
    controls["node1"] += answers("node1", 6, 10)
    assert [v.invariant for v in judge(JUDGE, replace(base, controls=controls)).violations] == [2]


def test_a_gap_across_a_handover_that_both_holders_own_addresses_shared_is_the_hosts() -> None:
    # The VIP moved from node1 to node2 at 5 s, inside a 2 s gap (4-6 s). node1's own address was
    # silent 4-5.5 s and node2's 5-6 s: between them they cover the gap, so the two hosts stalled
    # in turn (issue 14, seventh pass). node3 answered throughout (not a blind client). node1, the
    # higher priority, takes the VIP back at 8 s.
    seen = answers("node1", 0, 4) + answers("node2", 6, 8) + answers("node1", 8, 10)
    holding = {"node1": [(0, 5), (8, 11)], "node2": [(5, 8)]}
    frames = adverts("node1", 0, 5) + adverts("node2", 5, 8) + adverts("node1", 8, 10)
    controls = {
        "node1": answers("node1", 0, 4) + answers("node1", 5.5, 10),
        "node2": answers("node2", 0, 5) + answers("node2", 6, 10),
        "node3": answers("node3", 0, 10),
    }
    base = observe(holding, frames, seen, [])
    verdict = judge(JUDGE, replace(base, controls=controls))
    assert verdict.violations == []
    [(_gap, why)] = verdict.host_stalls
    assert "node1's and node2's own addresses (the VIP moved between them) went unanswered for 2020 ms" in why
    # node2 answered on its own address throughout: 5.5-6 s, then nobody stalled, and 4.5-6 s
    # after node1's stall ended at 4.5 s the gap is VRRP's (a violation).
    controls["node1"] = answers("node1", 0, 4) + answers("node1", 4.5, 10)
    controls["node2"] = answers("node2", 0, 10)
    assert [v.invariant for v in judge(JUDGE, replace(base, controls=controls)).violations] == [2]


def test_a_holders_stall_explains_a_gap_that_ends_with_the_faulted_node_taking_over() -> None:
    # node2 held the VIP while node1's speaker was stopped (a `term`, 1-5.5 s); node2's own address
    # went silent at 4 s, and the VIP answered again only from node1 after its restart, at 6 s.
    # node1's silence would be the fault's and counts for nothing; node2's covers the gap.
    term = FaultWindow("#1 term@node1", FaultKind.TERM, ("node1",), 1.0, 5.5, 10.0)
    seen = answers("node1", 0, 1) + answers("node2", 1, 4) + answers("node1", 6, 10)
    holding = {"node2": [(1, 5.9)], "node1": [(0, 1), (5.9, 11)]}
    frames = adverts("node1", 0, 1) + adverts("node2", 1, 5.9) + adverts("node1", 5.9, 10)
    controls = {
        "node1": answers("node1", 0, 10),
        "node2": answers("node2", 0, 4) + answers("node2", 6.5, 10),
        "node3": answers("node3", 0, 10),
    }
    verdict = judge(JUDGE, replace(observe(holding, frames, seen, [term]), controls=controls))
    assert [v.invariant for v in verdict.violations] == []
    [(_gap, why)] = verdict.host_stalls
    assert "node2's own address went unanswered too" in why


def test_a_gap_a_fault_with_a_smaller_bound_starts_just_after_the_last_answer_is_filed_under_it() -> None:
    # The seventh pass, 1 s: a ``cut`` struck 14 ms after the client's last answer, 5 s after a
    # ``check`` with a larger bound had healed, and its gap was filed under the check. Here the
    # earlier fault is a gateway fault (its bound holds the arbiter's detection): the gap is
    # filed under the cut that caused it, and judged by the larger bound of the two.
    gateway = FaultWindow("#1 gateway@node1", FaultKind.GATEWAY, ("node1",), 0.5, 1.0, 4.0)
    cut = FaultWindow("#2 cut@node1", FaultKind.CUT, ("node1",), 4.0, 5.0, 10.0)
    seen = answers("node1", 0, 4.0) + answers("node1", 4.9, 10)  # last answer 3.98 s, silent to 4.9 s
    verdict = judge(JUDGE, observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, [gateway, cut]))
    assert verdict.violations == []
    gap = verdict.worst_gaps["cut"]
    assert gap.fault == "#2 cut@node1"
    assert gap.bound > 0.9  # the gateway fault's bound, not the cut's ~0.45 s
    assert "gateway" not in verdict.worst_gaps


def test_a_gap_on_a_shaped_master_that_held_the_vip_and_kept_advertising_is_the_links() -> None:
    # Seventh pass, seed 16 at 100 ms: a token bucket on the master's link dropped the client's
    # probes for 0.5 s (its own address answered some, the VIP none), while it held the VIP and
    # its advertisements kept reaching the backups, which rightly kept it master.
    shape = FaultWindow("#1 shape@node1", FaultKind.SHAPE, ("node1",), 3.9, 4.6, 10.0)
    seen = answers("node1", 0, 4.0) + answers("node1", 4.6, 10)  # silent 3.98-4.6 s, bound ~0.43 s
    controls = {node: answers(node, 0, 10) for node in IPS}
    base = replace(observe({"node1": [(0, 11)]}, adverts("node1", 0, 10), seen, [shape]), controls=controls)
    verdict = judge(JUDGE, base)
    assert verdict.violations == []
    [(_gap, why)] = verdict.host_stalls
    assert "node1's link was shaped; it held 198.18.0.101 and advertised it throughout" in why
    # Its advertisements stopped for 0.4 s: the backups should have acted.
    quiet = adverts("node1", 0, 4.0) + adverts("node1", 4.4, 10)
    assert [v.invariant for v in judge(JUDGE, replace(base, frames=quiet)).violations] == [2]
    # It advertised without the VIP on its interface (MASTER without its address): VRRP's fault.
    unbound = samples({"node1": [(0, 4.1), (4.5, 11)]}, 10.0)
    assert 2 in [v.invariant for v in judge(JUDGE, replace(base, samples=unbound)).violations]
