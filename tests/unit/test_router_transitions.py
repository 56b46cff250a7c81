"""The state machine as data: the table, the one transition function, and the inputs
that used to be decided outside the core (health-check verdicts, unicast peers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepvip.speaker.vrrp.actions import Dropped, RemoveAddresses, SendAdvertisement, StateChanged
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.drops import DropReason
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import (
    FAULT_TRANSITIONS,
    TRANSITIONS,
    FaultReason,
    InvalidTransition,
    State,
    TransitionReason,
    mermaid_diagram,
    transition,
)
from tests.unit.wire import VIP, VRID, config, host

DIAGRAM_DOC = Path(__file__).resolve().parents[2] / "docs" / "vrrp-states.md"
T0 = 100.0


def advert(priority: int = 100) -> Advertisement:
    return Advertisement(version=3, vrid=VRID, priority=priority, interval_cs=100, addresses=(VIP,))


def master(priority: int = 200, **overrides: object) -> VirtualRouter:
    router = VirtualRouter(config(1, priority, **overrides))
    router.start(T0)
    deadline = router.next_deadline
    assert deadline is not None
    router.handle_timer(deadline)
    assert router.state is State.MASTER
    return router


# ------------------------------------------------------------------ the table


def test_every_reason_leads_somewhere_and_every_state_is_reachable() -> None:
    used = {reason for moves in TRANSITIONS.values() for reason in moves}
    assert used == set(TransitionReason)
    targets = {new for moves in TRANSITIONS.values() for new in moves.values()}
    assert targets == set(State)


def test_every_fault_reason_enters_fault_from_every_running_state() -> None:
    for reason in FaultReason:
        for state in (State.INITIALIZE, State.BACKUP, State.MASTER):
            assert transition(state, FAULT_TRANSITIONS[reason]) is State.FAULT


def test_a_move_the_table_does_not_list_raises() -> None:
    with pytest.raises(InvalidTransition, match="MASTER has no transition for preempt"):
        transition(State.MASTER, TransitionReason.PREEMPT)
    with pytest.raises(InvalidTransition):
        transition(State.INITIALIZE, TransitionReason.SHUTDOWN)


def test_the_committed_state_diagram_is_drawn_from_the_table() -> None:
    diagram = mermaid_diagram()
    assert diagram in DIAGRAM_DOC.read_text(), (
        "docs/vrrp-states.md is stale: paste keepvip.speaker.vrrp.state.mermaid_diagram()"
    )
    for old, moves in TRANSITIONS.items():
        for reason, new in moves.items():
            line = next(x for x in diagram.splitlines() if x.startswith(f"    {old.value} --> {new.value}:"))
            assert reason.value in line


# ------------------------------------------------------------------ health as one input


def test_a_failing_weight_zero_check_faults_the_master_and_its_recovery_clears_it() -> None:
    router = master()
    actions = router.update_health(200, frozenset({"web"}), T0 + 10)
    assert actions[0] == StateChanged(State.MASTER, State.FAULT, TransitionReason.FAULT_CHECK)
    assert any(isinstance(a, SendAdvertisement) and a.advertisement.priority == 0 for a in actions)
    assert RemoveAddresses((VIP,)) in actions
    assert router.faults == {(FaultReason.CHECK_FAILED, "web")}
    assert router.update_health(200, frozenset({"web"}), T0 + 11) == []  # the same verdict again
    actions = router.update_health(200, frozenset(), T0 + 12)
    assert actions == [StateChanged(State.FAULT, State.BACKUP, TransitionReason.FAULT_CLEARED)]
    assert router.faults == frozenset()


def test_fault_lasts_while_any_check_fails_and_other_faults_are_left_alone() -> None:
    router = master()
    router.enter_fault(FaultReason.LINK_DOWN, T0 + 1)
    router.update_health(200, frozenset({"a", "b"}), T0 + 2)
    assert router.update_health(200, frozenset({"b"}), T0 + 3) == []
    assert router.faults == {(FaultReason.LINK_DOWN, ""), (FaultReason.CHECK_FAILED, "b")}
    assert router.update_health(200, frozenset(), T0 + 4) == []  # the link still holds it
    assert router.state is State.FAULT
    assert router.faults == {(FaultReason.LINK_DOWN, "")}


def test_a_weight_change_reaches_the_master_as_one_immediate_advertisement() -> None:
    router = master()
    actions = router.update_health(150, frozenset(), T0 + 5)
    assert [a.advertisement.priority for a in actions if isinstance(a, SendAdvertisement)] == [150]
    assert router.priority == 150


def test_health_refuses_an_impossible_priority() -> None:
    with pytest.raises(ValueError, match="priority"):
        master().update_health(0, frozenset(), T0)


# ------------------------------------------------------------------ unicast peers


def test_unicast_mode_drops_a_sender_that_is_not_a_peer() -> None:
    router = master(peers=(host(2),))
    assert router.receive(advert(250), host(3), T0 + 1) == [Dropped(DropReason.FOREIGN_SENDER, host(3))]
    assert router.state is State.MASTER
    actions = router.receive(advert(250), host(2), T0 + 1)
    assert actions[0] == StateChanged(State.MASTER, State.BACKUP, TransitionReason.HIGHER_PRIORITY_SEEN)


def test_multicast_mode_hears_any_sender() -> None:
    router = master()
    actions = router.receive(advert(250), host(3), T0 + 1)
    assert router.state is State.BACKUP
    assert not any(isinstance(a, Dropped) for a in actions)


def test_peers_must_be_of_the_primary_address_family() -> None:
    from ipaddress import IPv6Address

    with pytest.raises(ValueError, match="peers"):
        config(1, peers=(IPv6Address("2001:db8::2"),))
