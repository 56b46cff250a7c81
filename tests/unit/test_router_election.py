"""Elections, pre-emption and failover timing, on the in-memory wire.

Times are exact: the wire's clock jumps from event to event, so a takeover happens at
the instant the RFC formula says. With a 1 s interval the numbers are dyadic
(3.609375 = 3 + 156/256), so they are exact in binary floating point too.
"""

from __future__ import annotations

import pytest

from keepvip.speaker.vrrp.state import State, TransitionReason
from keepvip.speaker.vrrp.timers import master_down_interval, skew_time
from tests.unit.wire import VIP, Wire, config, host

EXACT = 1e-9


def two_routers(
    a_priority: int = 200, b_priority: int = 100, latency: float = 0.0, **b_overrides: object
) -> Wire:
    wire = Wire(latency=latency)
    wire.add("a", config(1, a_priority))
    wire.add("b", config(2, b_priority, **b_overrides))
    return wire


# --------------------------------------------------------------------------- election


def test_highest_priority_becomes_master_after_its_own_master_down_interval() -> None:
    wire = two_routers(a_priority=200, b_priority=100)
    wire.start()

    became_master = wire.run_until_state("a", State.MASTER, limit=10)

    # RFC 9568 §6.4.1/§6.4.2: both start as backup; the higher priority has the shorter
    # Master_Down_Interval (3 s + (256-200)/256 s), fires first and its advertisement
    # keeps the other one backup.
    assert became_master == pytest.approx(3.21875, abs=EXACT)
    assert wire.last_transition("a").reason is TransitionReason.MASTER_DOWN_TIMER
    wire.run_for(60)
    assert wire.masters() == ["a"]
    assert wire.holders() == ["a"]
    assert wire.router("b").state is State.BACKUP
    assert wire.router("b").master_address == host(1)
    assert wire.router("b").master_priority == 200


def test_three_routers_elect_the_highest_priority() -> None:
    wire = Wire()
    wire.add("low", config(1, 50))
    wire.add("high", config(2, 150))
    wire.add("mid", config(3, 100))
    wire.start()
    wire.run_for(30)
    assert wire.masters() == ["high"]
    assert wire.holders() == ["high"]
    assert [t.node for t in wire.transitions if t.new is State.MASTER] == ["high"]


def test_a_backup_treats_an_equal_priority_advertisement_as_valid() -> None:
    # RFC 9568 §6.4.2: "priority >= local" resets the Master_Down_Timer; the address
    # tie-break applies only to a master (acassen/keepalived#1440).
    wire = two_routers(a_priority=100, b_priority=100)
    wire.start()
    wire.run_for(30)
    # a's timer fires first (same instant, added first) and its advert reaches b
    # before b's own timer is served: b stays backup although its address is higher.
    assert wire.masters() == ["a"]
    assert wire.router("b").state is State.BACKUP


def test_equal_priority_masters_keep_the_one_with_the_higher_primary_address() -> None:
    wire = two_routers(a_priority=100, b_priority=100, latency=0.001)
    wire.start()

    wire.run_for(30)

    # Both timers expire at 3.609375 s before either advert arrives: two masters, then
    # RFC 9568 §6.4.3's tie-break on the primary address (198.18.0.2 > 198.18.0.1).
    assert [(t.node, t.new) for t in wire.transitions if t.new is State.MASTER] == [
        ("a", State.MASTER),
        ("b", State.MASTER),
    ]
    demotion = wire.last_transition("a")
    assert (demotion.old, demotion.new) == (State.MASTER, State.BACKUP)
    assert demotion.reason is TransitionReason.EQUAL_PRIORITY_HIGHER_ADDRESS
    assert demotion.time == pytest.approx(3.609375 + 0.001, abs=EXACT)
    assert wire.masters() == ["b"]
    assert wire.holders() == ["b"]


def test_the_address_tie_break_compares_addresses_as_unsigned_integers() -> None:
    # 198.18.0.10 > 198.18.0.9 as integers, although "10" < "9" as strings.
    wire = Wire(latency=0.001)
    wire.add("nine", config(9, 100))
    wire.add("ten", config(10, 100))
    wire.start()
    wire.run_for(30)
    assert wire.masters() == ["ten"]


def test_the_address_owner_becomes_master_at_once() -> None:
    wire = Wire()
    wire.add("backup", config(1, 254))
    wire.add("owner", config(2, 255))
    wire.start()

    # RFC 9568 §6.4.1: priority 255 sends an ADVERTISEMENT, announces, and is master.
    assert wire.router("owner").state is State.MASTER
    assert wire.last_transition("owner").reason is TransitionReason.ADDRESS_OWNER
    assert wire.last_transition("owner").time == 0.0
    assert wire.nodes["owner"].announced == [(0.0, (VIP,))]
    wire.run_for(30)
    assert wire.masters() == ["owner"]


# ------------------------------------------------------------------------ pre-emption


def test_a_higher_priority_router_that_joins_preempts_the_master() -> None:
    wire = two_routers(a_priority=100, b_priority=200)
    wire.start("a")
    wire.run_for(10)
    assert wire.masters() == ["a"]

    wire.start("b")  # at t = 10
    takeover = wire.run_until_state("b", State.MASTER, limit=10)

    # RFC 9568 §6.4.2: with Preempt_Mode, b discards a's lower-priority adverts, so its
    # Master_Down_Timer (armed at startup) runs out.
    assert takeover == pytest.approx(10 + 3.21875, abs=EXACT)
    assert wire.last_transition("b").reason is TransitionReason.PREEMPT
    wire.run_for(5)
    assert wire.last_transition("a").reason is TransitionReason.HIGHER_PRIORITY_SEEN
    assert wire.masters() == ["b"]
    assert wire.holders() == ["b"]


def test_without_preempt_a_higher_priority_router_stays_backup() -> None:
    wire = two_routers(a_priority=100, b_priority=200, preempt=False)
    wire.start("a")
    wire.run_for(10)
    wire.start("b")
    wire.run_for(120)
    assert wire.masters() == ["a"]
    assert wire.router("b").state is State.BACKUP
    assert wire.transitions_of("b") == [wire.transitions_of("b")[0]]  # only STARTUP


def test_preempt_delay_holds_preemption_for_that_long_after_startup() -> None:
    wire = two_routers(a_priority=100, b_priority=200, preempt_delay=5.0)
    wire.start("a")
    wire.run_for(10)
    wire.start("b")  # at t = 10: pre-emption on hold until t = 15

    takeover = wire.run_until_state("b", State.MASTER, limit=20)

    # a advertises at 3.609375 + k. b still accepts the one at 14.609375 (held), discards
    # from 15.609375 on, so its Master_Down_Timer expires 3.21875 s after 14.609375.
    assert takeover == pytest.approx(14.609375 + 3.21875, abs=EXACT)
    assert wire.last_transition("b").reason is TransitionReason.PREEMPT
    wire.run_for(5)
    assert wire.masters() == ["b"]


def test_preempt_delay_does_not_delay_taking_over_from_a_dead_master() -> None:
    wire = two_routers(a_priority=200, b_priority=100, preempt_delay=30.0)
    wire.start()
    wire.run_for(10)
    wire.crash("a")
    wire.run_for(10)
    assert wire.masters() == ["b"]
    assert wire.last_transition("b").reason is TransitionReason.MASTER_DOWN_TIMER


def test_preempt_delay_counts_from_when_the_lower_master_is_first_seen() -> None:
    wire = two_routers(a_priority=150, b_priority=100, preempt_delay=5.0)
    wire.start()
    wire.run_for(30)  # a is master (adverts at 3.4140625 + k); b followed it for 30 s

    wire.set_priority("b", 200)  # at t = 30, b now outranks a
    takeover = wire.run_until_state("b", State.MASTER, limit=20)

    # The first lower-priority advert (30.4140625) starts the 5 s hold, so b still
    # accepts the one at 34.4140625 and takes over Master_Down_Interval after it.
    # (Counted from startup, the hold would long have expired: takeover at 32.63.)
    assert takeover == pytest.approx(34.4140625 + 3.21875, abs=EXACT)
    assert wire.last_transition("b").reason is TransitionReason.PREEMPT


# ------------------------------------------------------------------------ handovers


def test_a_master_shutting_down_hands_over_after_skew_time() -> None:
    wire = two_routers(a_priority=200, b_priority=100)
    wire.start()
    wire.run_until(20.5)

    wire.shutdown("a")
    takeover = wire.run_until_state("b", State.MASTER, limit=5)

    # RFC 9568 §6.4.3 shutdown sends priority 0; §6.4.2: Master_Down_Timer = Skew_Time.
    assert takeover == pytest.approx(20.5 + 156 / 256, abs=EXACT)
    assert wire.last_transition("b").reason is TransitionReason.PRIORITY_ZERO_RECEIVED
    assert wire.router("a").state is State.INITIALIZE
    assert wire.nodes["a"].sent[-1][1].priority == 0
    assert wire.holders() == ["b"]


def test_v3_priority_zero_handover_at_100ms_takes_skew_time_of_that_interval() -> None:
    wire = Wire()
    wire.add("a", config(1, 200, interval_cs=10))
    wire.add("b", config(2, 100, interval_cs=10))
    wire.start()
    wire.run_until(5.0)
    shutdown_at = wire.now

    wire.shutdown("a")
    takeover = wire.run_until_state("b", State.MASTER, limit=1)

    # RFC 9568 §6.1: Skew_Time = (256 - 100) × 10 cs / 256 = 6.09375 cs.
    assert takeover - shutdown_at == pytest.approx(0.0609375, abs=EXACT)


@pytest.mark.parametrize(
    ("version", "interval_cs", "b_master_down"),
    [(2, 100, 3.609375), (3, 100, 3.609375), (3, 10, 0.3609375)],
    ids=["v2-1s", "v3-1s", "v3-100ms"],
)
def test_a_silent_master_is_replaced_exactly_master_down_interval_after_its_last_advert(
    version: int, interval_cs: int, b_master_down: float
) -> None:
    wire = Wire()
    wire.add("a", config(1, 200, version=version, interval_cs=interval_cs))
    wire.add("b", config(2, 100, version=version, interval_cs=interval_cs))
    wire.start()
    wire.run_until(20.05)
    wire.crash("a")
    last_advert = wire.nodes["a"].sent[-1][0]

    takeover = wire.run_until_state("b", State.MASTER, limit=10)

    assert b_master_down == pytest.approx(master_down_interval(version, 100, interval_cs))
    assert takeover - last_advert == pytest.approx(b_master_down, abs=EXACT)
    assert wire.last_transition("b").reason is TransitionReason.MASTER_DOWN_TIMER
    announced_at, announced = wire.nodes["b"].announced[-1]
    assert (announced_at, announced) == (takeover, (VIP,))


def test_a_crashed_master_that_restarts_with_higher_priority_takes_back_over() -> None:
    wire = two_routers(a_priority=200, b_priority=100)
    wire.start()
    wire.run_for(10)
    wire.crash("a")
    wire.run_for(10)
    assert wire.masters() == ["b"]

    wire.restart("a")
    # The restarted process removes its stale VIP at startup, then pre-empts b.
    assert wire.nodes["a"].addresses == set()
    wire.run_for(10)
    assert wire.masters() == ["a"]
    assert wire.holders() == ["a"]


def test_a_healed_split_brain_leaves_one_master() -> None:
    wire = two_routers(a_priority=200, b_priority=100)
    wire.start()
    wire.run_for(10)
    wire.isolate("b")
    wire.run_for(10)
    assert sorted(wire.masters()) == ["a", "b"]  # each thinks the other died

    wire.heal("b")
    wire.run_for(2)

    assert wire.masters() == ["a"]
    assert wire.holders() == ["a"]
    assert wire.last_transition("b").reason is TransitionReason.HIGHER_PRIORITY_SEEN


# ------------------------------------------------------------------ interval adoption


def test_a_v3_backup_adopts_the_masters_interval_and_its_shorter_master_down() -> None:
    wire = Wire()
    wire.add("a", config(1, 200, interval_cs=20))  # master advertises every 200 ms
    wire.add("b", config(2, 100, interval_cs=100))  # b is configured for 1 s
    wire.start()
    wire.run_for(10)
    b = wire.router("b")

    # RFC 9568 §6.4.2: Master_Adver_Interval := the advert's; Skew and Master_Down recomputed.
    assert b.master_adver_interval_cs == 20
    assert b.skew_time == pytest.approx(skew_time(3, 100, 20))
    assert b.master_down_interval == pytest.approx(0.6 + 156 * 0.2 / 256)
    assert wire.nodes["b"].mismatches  # the interval mismatch is reported (§7.1 SHOULD)

    wire.crash("a")
    last_advert = wire.nodes["a"].sent[-1][0]
    takeover = wire.run_until_state("b", State.MASTER, limit=5)
    assert takeover - last_advert == pytest.approx(0.721875, abs=EXACT)
    # As master b advertises its own configured interval.
    wire.run_for(3)
    assert {advert.interval_cs for _, advert in wire.nodes["b"].sent} == {100}


def test_a_v2_backup_drops_an_advert_with_another_interval_and_both_become_master() -> None:
    wire = Wire()
    wire.add("a", config(1, 200, version=2, interval_cs=100))
    wire.add("b", config(2, 100, version=2, interval_cs=200))
    wire.start()
    wire.run_for(20)

    # RFC 3768 §7.1: the Adver Interval MUST equal ours, else discard (a misconfiguration).
    assert {d.reason.value for _, d in wire.nodes["b"].dropped} == {"interval_mismatch"}
    assert sorted(wire.masters()) == ["a", "b"]


# ------------------------------------------------------------------ effective priority


def test_a_master_whose_priority_drops_below_a_backup_is_preempted() -> None:
    wire = two_routers(a_priority=200, b_priority=150)
    wire.start()
    wire.run_until(10.5)

    wire.set_priority("a", 100)  # a failing check with weight -100
    # The master advertises its new priority at once.
    assert wire.nodes["a"].sent[-1][0] == 10.5
    assert wire.nodes["a"].sent[-1][1].priority == 100
    takeover = wire.run_until_state("b", State.MASTER, limit=10)

    # b accepted a's advert at 10.21875 (priority 200), discards from 10.5 on.
    assert takeover == pytest.approx(10.21875 + master_down_interval(3, 150, 100), abs=EXACT)
    assert wire.last_transition("b").reason is TransitionReason.PREEMPT
    wire.run_for(1)
    assert wire.masters() == ["b"]
    assert wire.last_transition("a").reason is TransitionReason.HIGHER_PRIORITY_SEEN


def test_a_master_whose_priority_drops_stays_master_when_the_backup_does_not_preempt() -> None:
    wire = two_routers(a_priority=200, b_priority=150, preempt=False)
    wire.start()
    wire.run_for(10)
    wire.set_priority("a", 100)
    wire.run_for(60)
    assert wire.masters() == ["a"]


def test_a_backup_whose_priority_rises_above_the_master_takes_over() -> None:
    wire = two_routers(a_priority=150, b_priority=100)
    wire.start()
    wire.run_until(10.5)

    wire.set_priority("b", 200)
    takeover = wire.run_until_state("b", State.MASTER, limit=10)

    # The Master_Down_Timer running at the change was armed with b's old priority;
    # RFC 9568 §6.4.2 recomputes Skew_Time only when the timer is reset.
    last_accepted = max(t for t, _ in wire.nodes["a"].sent if t <= 10.5)
    assert takeover == pytest.approx(last_accepted + master_down_interval(3, 100, 100), abs=EXACT)
    assert wire.last_transition("b").reason is TransitionReason.PREEMPT
    wire.run_for(1)
    assert wire.masters() == ["b"]


def test_a_recovered_priority_takes_the_vip_back() -> None:
    wire = two_routers(a_priority=200, b_priority=150)
    wire.start()
    wire.run_for(10)
    wire.set_priority("a", 100)
    wire.run_for(10)
    assert wire.masters() == ["b"]

    wire.set_priority("a", 200)
    wire.run_for(10)
    assert wire.masters() == ["a"]
    assert wire.holders() == ["a"]
