"""keepalived's FAULT state: give up the VIP while a check, the link or the arbiter says so."""

from __future__ import annotations

import pytest

from keepvip.speaker.vrrp.actions import (
    RemoveAddresses,
    SendAdvertisement,
    StateChanged,
)
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import FAULT_TRANSITIONS, FaultReason, State, TransitionReason
from tests.unit.wire import VIP, VRID, Wire, config

EXACT = 1e-9


def master_and_backup() -> Wire:
    wire = Wire()
    wire.add("a", config(1, 200))
    wire.add("b", config(2, 100))
    wire.start()
    wire.run_until(10.5)
    assert wire.masters() == ["a"]
    return wire


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (FaultReason.CHECK_FAILED, TransitionReason.FAULT_CHECK),
        (FaultReason.LINK_DOWN, TransitionReason.FAULT_LINK),
        (FaultReason.ARBITER_LOST, TransitionReason.FAULT_ARBITER),
        (FaultReason.ADDRESS_BIND_FAILED, TransitionReason.FAULT_ADDRESS_BIND),  # issue 15
        (FaultReason.ROUTER_FAILED, TransitionReason.FAULT_ROUTER),
    ],
)
def test_a_master_entering_fault_sends_priority_zero_and_releases_the_vip(
    fault: FaultReason, reason: TransitionReason
) -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)
    assert router.state is State.MASTER

    actions = router.enter_fault(fault, 1.0)

    assert actions == [
        StateChanged(State.MASTER, State.FAULT, reason),
        SendAdvertisement(Advertisement(3, VRID, 0, 100, (VIP,))),
        RemoveAddresses((VIP,)),
    ]
    assert router.next_deadline is None  # stops advertising


def test_the_backup_takes_over_skew_time_after_the_master_faults() -> None:
    wire = master_and_backup()

    wire.enter_fault("a", FaultReason.CHECK_FAILED, "web")
    takeover = wire.run_until_state("b", State.MASTER, limit=5)

    assert takeover == pytest.approx(10.5 + 156 / 256, abs=EXACT)
    assert wire.holders() == ["b"]
    wire.run_for(30)
    assert wire.router("a").state is State.FAULT  # no adverts, no elections while faulty
    assert wire.masters() == ["b"]


def test_after_a_failed_bind_the_backup_takes_over_and_the_master_preempts_once_it_clears() -> None:
    """Issue 15: a master that cannot bind its VIPs lets the backup take over, then retries.

    The adapter enters the fault when the kernel refuses the bind and clears it after a
    backoff; the router then rejoins as BACKUP and, with the higher priority, pre-empts.
    """
    wire = master_and_backup()

    wire.enter_fault("a", FaultReason.ADDRESS_BIND_FAILED)
    takeover = wire.run_until_state("b", State.MASTER, limit=5)
    assert takeover == pytest.approx(10.5 + 156 / 256, abs=EXACT)  # Skew_Time of b (§6.1)
    wire.run_for(10)
    assert wire.holders() == ["b"]

    wire.leave_fault("a", FaultReason.ADDRESS_BIND_FAILED)
    assert wire.router("a").state is State.BACKUP
    wire.run_for(10)
    assert wire.masters() == ["a"]
    assert wire.holders() == ["a"]


def test_every_fault_reason_has_its_transition_reason() -> None:
    assert set(FAULT_TRANSITIONS) == set(FaultReason)


def test_a_backup_in_fault_never_takes_over() -> None:
    wire = master_and_backup()
    wire.enter_fault("b", FaultReason.LINK_DOWN)
    assert wire.last_transition("b").reason is TransitionReason.FAULT_LINK
    assert wire.nodes["b"].actions[-1][1] == StateChanged(
        State.BACKUP, State.FAULT, TransitionReason.FAULT_LINK
    )  # a backup has nothing to send or remove
    wire.crash("a")
    wire.run_for(60)
    assert wire.masters() == []
    assert wire.router("b").next_deadline is None


def test_leaving_fault_returns_to_backup_and_preempts_per_priority() -> None:
    wire = master_and_backup()
    wire.enter_fault("a", FaultReason.CHECK_FAILED, "web")
    wire.run_for(10)
    assert wire.masters() == ["b"]

    wire.leave_fault("a", FaultReason.CHECK_FAILED, "web")

    assert wire.last_transition("a").new is State.BACKUP
    assert wire.last_transition("a").reason is TransitionReason.FAULT_CLEARED
    wire.run_for(10)
    assert wire.masters() == ["a"]  # priority 200 with pre-emption takes the VIP back
    assert wire.holders() == ["a"]


def test_fault_lasts_until_every_reason_has_cleared() -> None:
    wire = master_and_backup()
    wire.enter_fault("a", FaultReason.LINK_DOWN)
    wire.enter_fault("a", FaultReason.ARBITER_LOST)
    wire.enter_fault("a", FaultReason.CHECK_FAILED, "web")
    wire.enter_fault("a", FaultReason.CHECK_FAILED, "db")
    assert len(wire.transitions_of("a")) == 3  # startup, master, fault: one entry only

    for reason, detail in [
        (FaultReason.LINK_DOWN, ""),
        (FaultReason.CHECK_FAILED, "web"),
        (FaultReason.ARBITER_LOST, ""),
    ]:
        wire.leave_fault("a", reason, detail)
        assert wire.router("a").state is State.FAULT

    wire.leave_fault("a", FaultReason.CHECK_FAILED, "db")
    assert wire.router("a").state is State.BACKUP
    assert wire.router("a").faults == frozenset()


def test_leaving_a_fault_that_was_never_entered_changes_nothing() -> None:
    wire = master_and_backup()
    wire.leave_fault("a", FaultReason.LINK_DOWN)
    assert wire.router("a").state is State.MASTER


def test_a_router_with_a_fault_before_startup_starts_in_fault() -> None:
    router = VirtualRouter(config(1))
    assert router.enter_fault(FaultReason.LINK_DOWN, 0.0) == []

    actions = router.start(0.0)

    assert actions == [
        StateChanged(State.INITIALIZE, State.FAULT, TransitionReason.FAULT_LINK),
        RemoveAddresses((VIP,)),
    ]
    assert router.next_deadline is None
    assert router.leave_fault(FaultReason.LINK_DOWN, 1.0) == [
        StateChanged(State.FAULT, State.BACKUP, TransitionReason.FAULT_CLEARED)
    ]
    assert router.next_deadline == pytest.approx(1.0 + 3.609375)


def test_the_address_owner_leaving_fault_becomes_master_at_once() -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)
    router.enter_fault(FaultReason.ARBITER_LOST, 1.0)

    actions = router.leave_fault(FaultReason.ARBITER_LOST, 2.0)

    assert actions[0] == StateChanged(State.FAULT, State.MASTER, TransitionReason.ADDRESS_OWNER)
    assert router.state is State.MASTER


def test_a_priority_change_during_fault_applies_after_it() -> None:
    wire = master_and_backup()
    wire.enter_fault("b", FaultReason.CHECK_FAILED, "web")
    wire.set_priority("b", 250)
    assert wire.router("b").state is State.FAULT
    wire.leave_fault("b", FaultReason.CHECK_FAILED, "web")
    wire.run_for(10)
    assert wire.masters() == ["b"]
