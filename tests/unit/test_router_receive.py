"""What one router does with each kind of received advertisement (RFC 9568 §6.4, §7.1)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address

import pytest

from keepvip.speaker.vrrp.actions import (
    Action,
    Announce,
    ConfigMismatch,
    Dropped,
    RemoveAddresses,
    SendAdvertisement,
    StateChanged,
)
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.constants import AuthType
from keepvip.speaker.vrrp.drops import DropReason
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import FaultReason, State, TransitionReason
from keepvip.speaker.vrrp.timers import master_down_interval
from tests.unit.wire import VIP, VRID, Wire, config, host

PEER = host(9)
T0 = 100.0


def advert(priority: int = 100, **overrides: object) -> Advertisement:
    fields: dict[str, object] = {
        "version": 3,
        "vrid": VRID,
        "priority": priority,
        "interval_cs": 100,
        "addresses": (VIP,),
    }
    fields.update(overrides)
    return Advertisement(**fields)  # type: ignore[arg-type]


def backup(priority: int = 100, **overrides: object) -> VirtualRouter:
    router = VirtualRouter(config(1, priority, **overrides))
    router.start(T0)
    assert router.state is State.BACKUP
    return router


def master(priority: int = 100, **overrides: object) -> VirtualRouter:
    router = backup(priority, **overrides)
    router.handle_timer(due(router))
    assert router.state is State.MASTER
    return router


def due(router: VirtualRouter) -> float:
    deadline = router.next_deadline
    assert deadline is not None
    return deadline


def drops(actions: list[Action]) -> list[DropReason]:
    return [a.reason for a in actions if isinstance(a, Dropped)]


def sent(actions: list[Action]) -> list[Advertisement]:
    return [a.advertisement for a in actions if isinstance(a, SendAdvertisement)]


# ---------------------------------------------------------------- §7.1 receive checks


@pytest.mark.parametrize(
    ("bad_advert", "source", "reason"),
    [
        (advert(vrid=VRID + 1), PEER, DropReason.WRONG_VRID),
        (advert(version=2), PEER, DropReason.BAD_VERSION),
        (advert(), host(1), DropReason.OWN_PACKET),
        (advert(), IPv6Address("fe80::9"), DropReason.BAD_ADDRESS_FAMILY),
        (advert(addresses=(IPv6Address("2001:db8::1"),)), PEER, DropReason.BAD_ADDRESS_FAMILY),
    ],
    ids=["wrong-vrid", "other-version", "own-packet", "source-family", "address-family"],
)
def test_a_failed_receive_check_drops_the_advert_and_changes_nothing(
    bad_advert: Advertisement, source: IPv4Address | IPv6Address, reason: DropReason
) -> None:
    router = backup()
    deadline = router.next_deadline

    actions = router.receive(bad_advert, source, T0 + 1)

    assert actions == [Dropped(reason, source)]
    assert router.next_deadline == deadline
    assert router.master_address is None


def test_the_address_owner_drops_every_advert() -> None:
    owner = VirtualRouter(config(1, 255))
    owner.start(T0)
    for priority in (0, 100, 254, 255):
        # RFC 9568 §7.1: MUST verify that the local router is not the address owner.
        assert owner.receive(advert(priority), PEER, T0 + 1) == [Dropped(DropReason.OWNER, PEER)]
    assert owner.state is State.MASTER


def test_v2_drops_an_advert_with_another_auth_type() -> None:
    router = backup(version=2, auth_type=AuthType.PASS, auth_data=b"secret")
    no_auth = advert(version=2, auth_type=AuthType.NONE, auth_data=bytes(8))
    assert drops(router.receive(no_auth, PEER, T0 + 1)) == [DropReason.AUTH_MISMATCH]


def test_v2_drops_an_advert_with_another_password() -> None:
    router = backup(version=2, auth_type=AuthType.PASS, auth_data=b"secret")
    wrong = advert(version=2, auth_type=AuthType.PASS, auth_data=b"guess\0\0\0")
    assert drops(router.receive(wrong, PEER, T0 + 1)) == [DropReason.AUTH_MISMATCH]


def test_v2_accepts_the_right_password_in_its_nul_padded_field() -> None:
    router = backup(version=2, auth_type=AuthType.PASS, auth_data=b"secret")
    good = advert(version=2, auth_type=AuthType.PASS, auth_data=b"secret\0\0")
    assert router.receive(good, PEER, T0 + 1) == []
    assert router.master_address == PEER


def test_v2_drops_an_advert_with_another_interval() -> None:
    # RFC 3768 §7.1: MUST verify the Adver Interval equals the locally configured one.
    router = backup(version=2, interval_cs=100)
    other = advert(version=2, interval_cs=200, auth_data=bytes(8))
    assert drops(router.receive(other, PEER, T0 + 1)) == [DropReason.INTERVAL_MISMATCH]


def test_v3_processes_and_reports_an_advert_with_another_interval() -> None:
    # RFC 9568 §7.1: SHOULD verify the interval and log a mismatch, not drop it.
    router = backup(interval_cs=100)
    other = advert(interval_cs=50)
    actions = router.receive(other, PEER, T0 + 1)
    assert actions == [ConfigMismatch(DropReason.INTERVAL_MISMATCH, PEER, other)]
    assert router.master_adver_interval_cs == 50


def test_an_address_list_mismatch_is_reported_but_the_advert_counts() -> None:
    router = backup()
    other = advert(addresses=(IPv4Address("198.18.0.200"),))
    actions = router.receive(other, PEER, T0 + 1)
    assert actions == [ConfigMismatch(DropReason.ADDRESS_MISMATCH, PEER, other)]
    assert router.master_address == PEER


def test_the_address_list_order_does_not_matter() -> None:
    second = IPv4Address("198.18.0.101")
    router = backup(addresses=(VIP, second))
    assert router.receive(advert(addresses=(second, VIP)), PEER, T0 + 1) == []


def test_strict_address_check_drops_a_mismatched_list_unless_the_owner_sent_it() -> None:
    router = backup(strict_address_check=True)
    other = (IPv4Address("198.18.0.200"),)
    # RFC 3768 §7.1: drop a mismatched list unless the sender is the owner.
    actions = router.receive(advert(addresses=other), PEER, T0 + 1)
    assert actions == [Dropped(DropReason.ADDRESS_MISMATCH, PEER)]
    assert router.master_address is None
    from_owner = advert(255, addresses=other)
    assert drops(router.receive(from_owner, PEER, T0 + 1)) == []
    assert router.master_address == PEER


@pytest.mark.parametrize("state", [State.INITIALIZE, State.FAULT])
def test_adverts_are_ignored_when_not_running(state: State) -> None:
    router = VirtualRouter(config(1))
    if state is State.FAULT:
        router.enter_fault(FaultReason.LINK_DOWN, T0)
        router.start(T0)
    assert router.state is state
    assert router.receive(advert(0), PEER, T0) == []
    assert router.receive(advert(254), PEER, T0) == []
    assert router.next_deadline is None


# ----------------------------------------------------------------------- §6.4.2 backup


def test_backup_on_priority_zero_sets_master_down_to_skew_time() -> None:
    router = backup(100)
    router.receive(advert(200), PEER, T0 + 1)
    assert router.next_deadline == pytest.approx(T0 + 1 + 3.609375)

    assert router.receive(advert(0), PEER, T0 + 2) == []

    assert router.next_deadline == pytest.approx(T0 + 2 + 156 / 256)
    assert router.master_address is None


def test_backup_resets_master_down_on_a_higher_or_equal_priority_advert() -> None:
    router = backup(100)
    for priority in (100, 254):
        router.receive(advert(priority), PEER, T0 + priority)
        assert router.next_deadline == pytest.approx(T0 + priority + 3.609375)
        assert router.master_priority == priority


def test_backup_with_preempt_discards_a_lower_priority_advert() -> None:
    router = backup(100)
    deadline = router.next_deadline

    assert router.receive(advert(99), PEER, T0 + 1) == []

    assert router.next_deadline == deadline  # the timer keeps running: we will take over
    assert router.master_address is None


def test_a_lower_routers_advert_does_not_relabel_the_silent_masters_timeout_as_preemption() -> None:
    # Seen in CI (netns test_speaker_election): the master (150) arms the timer, the old
    # master (100) yields with a last advertisement of its own, the master dies.
    router = backup(120)
    master = host(8)
    router.receive(advert(150), master, T0 + 1)
    router.receive(advert(100), PEER, T0 + 1.01)

    actions = router.handle_timer(due(router))

    assert actions[0] == StateChanged(State.BACKUP, State.MASTER, TransitionReason.MASTER_DOWN_TIMER)


def test_a_lower_priority_master_heard_while_following_none_is_preempted_when_the_timer_runs_out() -> None:
    router = backup(120)
    router.receive(advert(100), PEER, T0 + 1)  # discarded (§6.4.2), and that router is pre-empted

    actions = router.handle_timer(due(router))

    assert actions[0] == StateChanged(State.BACKUP, State.MASTER, TransitionReason.PREEMPT)


def test_backup_without_preempt_accepts_a_lower_priority_advert() -> None:
    router = backup(100, preempt=False)
    router.receive(advert(1), PEER, T0 + 1)
    assert router.next_deadline == pytest.approx(T0 + 1 + 3.609375)
    assert router.master_address == PEER


def test_backup_does_not_adopt_the_interval_of_an_advert_it_discards() -> None:
    router = backup(100)
    router.receive(advert(50, interval_cs=10), PEER, T0 + 1)
    assert router.master_adver_interval_cs == 100


def test_backup_master_down_fires_advert_then_announce_then_master() -> None:
    router = backup(100)
    deadline = due(router)
    assert deadline == pytest.approx(T0 + master_down_interval(3, 100, 100))
    assert router.handle_timer(deadline - 0.001) == []

    actions = router.handle_timer(deadline)

    # RFC 9568 §6.4.2: send an ADVERTISEMENT, broadcast gratuitous ARP, set the
    # Adver_Timer, become master (the VIP is bound after the advert, before the ARP).
    assert [type(a).__name__ for a in actions] == [
        "StateChanged",
        "SendAdvertisement",
        "AddAddresses",
        "Announce",
    ]
    assert actions[0] == StateChanged(State.BACKUP, State.MASTER, TransitionReason.MASTER_DOWN_TIMER)
    assert router.next_deadline == pytest.approx(deadline + 1.0)


# ----------------------------------------------------------------------- §6.4.3 master


def test_master_advertises_every_interval() -> None:
    router = master(100, interval_cs=25)
    deadline = due(router)
    for _ in range(4):
        assert router.handle_timer(deadline - 0.001) == []
        actions = router.handle_timer(deadline)
        assert [a.priority for a in sent(actions)] == [100]
        assert due(router) == pytest.approx(deadline + 0.25)
        deadline = due(router)


def test_master_answers_priority_zero_with_an_advert_at_once() -> None:
    router = master(100)
    actions = router.receive(advert(0), PEER, 500.0)
    assert [a.priority for a in sent(actions)] == [100]
    assert router.next_deadline == pytest.approx(501.0)  # Adver_Timer reset
    assert router.state is State.MASTER


@pytest.mark.parametrize(
    ("priority", "source"),
    [(99, host(200)), (100, IPv4Address("198.18.0.0"))],
    ids=["lower-priority", "equal-priority-lower-address"],
)
def test_master_asserts_itself_against_a_losing_advert(
    priority: int, source: IPv4Address
) -> None:
    router = master(100)
    # RFC 9568 §6.4.3: discard it and send an ADVERTISEMENT immediately.
    actions = router.receive(advert(priority), source, 500.0)
    assert [a.priority for a in sent(actions)] == [100]
    assert router.state is State.MASTER


def test_master_answers_a_stream_of_losing_adverts_at_most_once_per_quarter_interval() -> None:
    # A flood of spoofed losing adverts (bench/flood.py) must not be echoed one for one:
    # an advert sent less than a quarter interval ago already asserts us (§6.4.3).
    router = master(100)
    interval = 1.0  # interval_cs=100 in `config`
    first = router.receive(advert(99), host(200), 500.0)
    assert [a.priority for a in sent(first)] == [100]
    burst = [router.receive(advert(99), host(200 + i), 500.0 + i * 0.01) for i in range(1, 24)]
    assert [a for actions in burst for a in sent(actions)] == []
    assert router.state is State.MASTER
    later = router.receive(advert(99), host(250), 500.0 + interval / 4)
    assert [a.priority for a in sent(later)] == [100]


def test_master_reannounces_its_vips_when_another_master_shows_up_at_most_once_per_down_interval() -> None:
    # A healed split brain: clients may have learnt the loser's MAC meanwhile, and our
    # own announcements ended long ago (keepalived garp_lower_prio_repeat).
    router = master(100)
    down = router.master_down_interval
    first = router.receive(advert(99), host(200), 500.0)
    assert [type(a) for a in first] == [SendAdvertisement, Announce]
    assert [a for a in first if isinstance(a, Announce)] == [Announce((VIP,))]
    again = router.receive(advert(99), host(200), 500.0 + down / 2)
    assert not [a for a in again if isinstance(a, Announce)]
    later = router.receive(advert(99), host(200), 500.0 + down * 1.01)
    assert [a for a in later if isinstance(a, Announce)] == [Announce((VIP,))]


def test_master_reannounces_its_vips_when_another_master_leaves_at_most_once_per_down_interval() -> None:
    # Only a master sends priority 0: another one held the VIPs and may have announced them,
    # and it leaves without yielding (so no losing advertisement tells us to announce).
    router = master(100)
    down = router.master_down_interval
    first = router.receive(advert(0), host(200), 500.0)
    assert [type(a) for a in first] == [SendAdvertisement, Announce]
    again = router.receive(advert(0), host(200), 500.0 + down / 2)
    assert not [a for a in again if isinstance(a, Announce)]
    assert router.state is State.MASTER


def test_master_answers_every_leaving_advert_even_right_after_its_own() -> None:
    # Unlike a losing advert, priority 0 is never left unanswered (no quarter-interval bound):
    # every backup that hears it waits only Skew_Time (§6.4.2), 8 ms here, and only the
    # master's answer puts its Master_Down_Timer back. Skipping one would hand the VIPs to a
    # backup while the master still holds them (here one of priority 254, not pre-empting).
    router = master(100)
    ticked = due(router)
    assert [a.priority for a in sent(router.handle_timer(ticked))] == [100]
    watcher = VirtualRouter(config(2, 254, preempt=False))
    watcher.start(T0)
    watcher.receive(advert(100), host(1), ticked)
    for step in range(1, 4):
        now = ticked + step * 0.001
        answer = sent(router.receive(advert(0), host(200), now))
        assert [a.priority for a in answer] == [100]
        watcher.receive(advert(0), host(200), now)
        watcher.receive(answer[0], host(1), now)
    assert watcher.next_deadline is not None
    assert watcher.next_deadline > ticked + 0.003 + 3 * 1.0  # a full Master_Down_Interval again
    assert watcher.state is State.BACKUP
    unanswered = VirtualRouter(config(2, 254, preempt=False))
    unanswered.start(T0)
    unanswered.receive(advert(100), host(1), ticked)
    unanswered.receive(advert(0), host(200), ticked + 0.001)
    assert unanswered.next_deadline == pytest.approx(ticked + 0.001 + (256 - 254) / 256)


def test_a_new_master_does_not_reannounce_right_after_its_own_announcement() -> None:
    router = backup(100)
    became = due(router)
    router.handle_timer(became)
    actions = router.receive(advert(99), host(200), became + 0.01)
    assert not [a for a in actions if isinstance(a, Announce)]


@pytest.mark.parametrize(
    ("priority", "source", "reason"),
    [
        (101, IPv4Address("198.18.0.0"), TransitionReason.HIGHER_PRIORITY_SEEN),
        (100, host(2), TransitionReason.EQUAL_PRIORITY_HIGHER_ADDRESS),
    ],
    ids=["higher-priority", "equal-priority-higher-address"],
)
def test_master_yields_to_a_winning_advert(
    priority: int, source: IPv4Address, reason: TransitionReason
) -> None:
    router = master(100)

    actions = router.receive(advert(priority, interval_cs=20), source, 500.0)

    # RFC 9568 §6.4.3: cancel Adver_Timer, adopt the interval, arm Master_Down, backup;
    # keepalived's higher_prio_send_advert: one last advert at our priority, so the
    # winner learns of the split brain and re-announces.
    assert actions == [
        StateChanged(State.MASTER, State.BACKUP, reason),
        RemoveAddresses((VIP,)),
        SendAdvertisement(advert(100)),
        ConfigMismatch(DropReason.INTERVAL_MISMATCH, source, advert(priority, interval_cs=20)),
    ]
    assert router.master_adver_interval_cs == 20
    assert router.next_deadline == pytest.approx(500.0 + master_down_interval(3, 100, 20))
    assert router.master_address == source


def test_advertisements_carry_the_configuration() -> None:
    router = master(120, interval_cs=7, addresses=(VIP, IPv4Address("198.18.0.101")))
    (adv,) = sent(router.handle_timer(due(router)))
    assert adv == Advertisement(3, VRID, 120, 7, (VIP, IPv4Address("198.18.0.101")))


def test_v2_advertisements_carry_the_nul_padded_password() -> None:
    router = master(version=2, auth_type=AuthType.PASS, auth_data=b"secret")
    (adv,) = sent(router.handle_timer(due(router)))
    assert (adv.version, adv.interval_cs) == (2, 100)
    assert (adv.auth_type, adv.auth_data) == (AuthType.PASS, b"secret\0\0")


def test_a_master_drops_its_own_looped_back_advert_instead_of_answering_it() -> None:
    # Answering it (equal priority, equal address) would send an advert per advert.
    router = master(100)
    own = sent(router.handle_timer(due(router)))[0]
    assert router.receive(replace(own), host(1), 600.0) == [
        Dropped(DropReason.OWN_PACKET, host(1))
    ]


# ------------------------------------------------- a live master's timeout is not hastened


def test_a_lower_router_with_a_shorter_interval_does_not_hasten_a_live_masters_timeout() -> None:
    # The master (200, 1 s) is alive; a lower router (150, 0.2 s) speaks once, as a yielding
    # master does. Adopting its interval would let the Master_Down_Timer run out 0.76 s later,
    # between two of the master's advertisements (tests/unit/test_router_properties.py).
    router = backup(50, preempt=False)
    router.receive(advert(200, interval_cs=100), host(3), 200.0)
    waiting = due(router)
    actions = router.receive(advert(150, interval_cs=20), host(2), 200.5)
    assert [type(a) for a in actions] == [ConfigMismatch]  # the interval is still reported (§7.1)
    assert (due(router), router.master_address, router.master_adver_interval_cs) == (waiting, host(3), 100)


def test_a_lower_router_that_leaves_the_timeout_or_pushes_it_later_is_followed_as_the_rfc_says() -> None:
    # RFC 9568 §6.4.2: any advertisement a non-pre-empting backup hears resets its timer. With one
    # interval for all (a VirtualIP's case) the rule above never applies; nor once the master's
    # wait is almost over (the lower router is then the live one).
    router = backup(50, preempt=False)
    router.receive(advert(200, interval_cs=100), host(3), 200.0)
    router.receive(advert(150, interval_cs=100), host(2), 200.5)
    assert (due(router), router.master_address) == (200.5 + master_down_interval(3, 50, 100), host(2))
    late = backup(50, preempt=False)
    late.receive(advert(200, interval_cs=100), host(3), 200.0)
    late.receive(advert(150, interval_cs=20), host(2), 203.5)
    assert (due(late), late.master_address) == (203.5 + master_down_interval(3, 50, 20), host(2))


def test_backups_with_a_shorter_interval_do_not_take_turns_under_a_slower_master() -> None:
    # Found by hypothesis (test_router_properties.py, history=[]): two non-pre-empting backups at
    # 0.2 s and a pre-empting master at 1 s. Each backup, on the other's last advertisement as it
    # yielded, took its 0.2 s interval, timed out 0.76 s later and took MASTER: 26 flaps in 10 s.
    wire = Wire()
    wire.add("n1", config(1, 50, interval_cs=20, preempt=False))
    wire.add("n2", config(2, 50, interval_cs=20, preempt=False))
    wire.add("n3", config(3, 100, interval_cs=100, preempt=True))
    wire.start()
    wire.run_for(30)
    assert wire.masters() == ["n3"]
    assert [t for t in wire.transitions if t.time > 4.0] == []
