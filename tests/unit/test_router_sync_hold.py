"""The core's hold out of MASTER (sync groups, keepalived vrrp_sync_backup / can_goto_master)."""

from __future__ import annotations

from keepvip.speaker.vrrp.actions import AddAddresses, RemoveAddresses, SendAdvertisement, StateChanged
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import State, TransitionReason
from tests.unit.wire import VIP, VRID, config, host

T0 = 100.0


def advert(priority: int) -> Advertisement:
    return Advertisement(version=3, vrid=VRID, priority=priority, interval_cs=100, addresses=(VIP,))


def backup(priority: int = 200) -> VirtualRouter:
    router = VirtualRouter(config(1, priority))
    router.start(T0)
    assert router.state is State.BACKUP
    return router


def test_a_held_master_steps_down_with_priority_zero_and_stays_in_the_election() -> None:
    router = backup()
    deadline = router.next_deadline
    assert deadline is not None
    router.handle_timer(deadline)
    assert router.state is State.MASTER
    actions = router.hold_master(True, deadline + 1)
    assert actions[0] == StateChanged(State.MASTER, State.BACKUP, TransitionReason.SYNC_GROUP_BACKUP)
    assert any(isinstance(a, SendAdvertisement) and a.advertisement.priority == 0 for a in actions)
    assert RemoveAddresses((VIP,)) in actions
    assert router.state is State.BACKUP
    assert router.next_deadline == deadline + 1 + router.master_down_interval  # a backup's timer


def test_a_held_backup_does_not_take_over_when_its_timer_fires_until_released() -> None:
    router = backup()
    assert router.hold_master(True, T0) == []  # a backup: nothing at once
    deadline = router.next_deadline
    assert deadline is not None
    assert router.handle_timer(deadline) == []
    assert router.state is State.BACKUP
    rearmed = router.next_deadline
    assert rearmed == deadline + router.master_down_interval
    assert router.hold_master(False, deadline + 0.1) == []  # released: the next expiry decides
    actions = router.handle_timer(rearmed)
    assert actions[0] == StateChanged(State.BACKUP, State.MASTER, TransitionReason.MASTER_DOWN_TIMER)
    assert AddAddresses((VIP,)) in actions


def test_a_held_backup_does_not_preempt_a_lower_master_but_still_follows_a_higher_one() -> None:
    router = backup(priority=200)
    router.hold_master(True, T0)
    router.receive(advert(100), host(2), T0 + 0.5)  # lower: pre-emption would discard it
    deadline = router.next_deadline
    assert deadline is not None
    assert router.handle_timer(deadline) == []
    assert router.state is State.BACKUP
    router.receive(advert(250), host(3), deadline + 0.1)
    assert router.master_address == host(3)  # it follows a higher master as any backup
