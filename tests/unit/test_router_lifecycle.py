"""Start, shutdown, reconfiguration, the single deadline, and local-input validation."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest

from keepvip.speaker.vrrp.actions import (
    AddAddresses,
    Announce,
    RemoveAddresses,
    SendAdvertisement,
    StateChanged,
)
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.config import RouterConfig
from keepvip.speaker.vrrp.constants import AuthType
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import FaultReason, State, TransitionReason
from tests.unit.wire import VIP, VRID, Wire, config, host

SECOND_VIP = IPv4Address("198.18.0.101")


def test_a_new_router_is_in_initialize_with_no_timer() -> None:
    router = VirtualRouter(config(1))
    assert router.state is State.INITIALIZE
    assert router.next_deadline is None
    assert router.master_address is None
    assert router.handle_timer(1e9) == []


def test_startup_makes_a_backup_that_clears_stale_vips() -> None:
    router = VirtualRouter(config(1))
    actions = router.start(5.0)
    assert actions == [
        StateChanged(State.INITIALIZE, State.BACKUP, TransitionReason.STARTUP),
        RemoveAddresses((VIP,)),  # a previous run's VIP must not linger on a backup
    ]
    # RFC 9568 §6.4.1: Master_Down_Timer = Master_Down_Interval.
    assert router.next_deadline == pytest.approx(5.0 + 3.609375)


def test_startup_of_the_owner_binds_advertises_and_announces() -> None:
    router = VirtualRouter(config(1, 255))
    actions = router.start(5.0)
    assert actions == [
        StateChanged(State.INITIALIZE, State.MASTER, TransitionReason.ADDRESS_OWNER),
        SendAdvertisement(Advertisement(3, VRID, 255, 100, (VIP,))),
        AddAddresses((VIP,)),
        Announce((VIP,)),
    ]
    assert router.next_deadline == pytest.approx(6.0)
    assert router.master_address == host(1)


def test_start_twice_is_a_no_op() -> None:
    router = VirtualRouter(config(1))
    router.start(0.0)
    assert router.start(1.0) == []


def test_shutdown_of_a_master_sends_priority_zero_and_releases_the_vip() -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)

    actions = router.shutdown(3.0)

    # RFC 9568 §6.4.3: cancel the Adver_Timer, send priority 0, go to Initialize.
    assert actions == [
        StateChanged(State.MASTER, State.INITIALIZE, TransitionReason.SHUTDOWN),
        SendAdvertisement(Advertisement(3, VRID, 0, 100, (VIP,))),
        RemoveAddresses((VIP,)),
    ]
    assert router.next_deadline is None


def test_shutdown_of_a_backup_only_cancels_its_timer() -> None:
    router = VirtualRouter(config(1))
    router.start(0.0)
    # RFC 9568 §6.4.2: cancel the Master_Down_Timer, go to Initialize.
    assert router.shutdown(1.0) == [
        StateChanged(State.BACKUP, State.INITIALIZE, TransitionReason.SHUTDOWN)
    ]
    assert router.next_deadline is None
    assert router.shutdown(2.0) == []


def test_a_shut_down_router_can_start_again() -> None:
    wire = Wire()
    wire.add("a", config(1, 200))
    wire.add("b", config(2, 100))
    wire.start()
    wire.run_for(10)
    wire.shutdown("a")
    wire.run_for(10)
    wire.start("a")
    wire.run_for(10)
    assert wire.masters() == ["a"]


def test_next_deadline_follows_the_earliest_pending_timer() -> None:
    router = VirtualRouter(config(1, 100))
    router.start(0.0)
    down = router.next_deadline
    advert = Advertisement(3, VRID, 0, 100, (VIP,))
    # Priority 0 pulls the Master_Down_Timer in to Skew_Time.
    router.receive(advert, host(2), 1.0)
    pulled_in = router.next_deadline
    assert pulled_in == pytest.approx(1.0 + 156 / 256)
    assert down is not None
    assert pulled_in is not None
    assert pulled_in < down
    router.handle_timer(1.0 + 156 / 256)
    assert router.next_deadline == pytest.approx(2.0 + 156 / 256)  # now the Adver_Timer


def test_a_late_timer_call_fires_once_and_rearms_from_now() -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)
    actions = router.handle_timer(10.0)  # the adapter slept through nine intervals
    assert [type(a) for a in actions] == [SendAdvertisement]
    assert router.next_deadline == pytest.approx(11.0)


def test_a_master_reconfigured_with_new_addresses_moves_and_announces_them() -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)

    actions = router.reconfigure(config(1, 255, addresses=(SECOND_VIP,)), 0.5)

    assert actions == [
        RemoveAddresses((VIP,)),
        AddAddresses((SECOND_VIP,)),
        Announce((SECOND_VIP,)),
        SendAdvertisement(Advertisement(3, VRID, 255, 100, (SECOND_VIP,))),
    ]
    assert router.state is State.MASTER


def test_a_master_reconfigured_with_nothing_new_does_nothing() -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)
    assert router.reconfigure(config(1, 255, name="renamed"), 0.5) == []


def test_a_master_reconfigured_to_a_lower_priority_advertises_it_at_once() -> None:
    wire = Wire()
    wire.add("a", config(1, 200))
    wire.add("b", config(2, 150))
    wire.start()
    wire.run_for(10)
    wire.reconfigure("a", config(1, 100))
    assert wire.nodes["a"].sent[-1][1].priority == 100
    wire.run_for(10)
    assert wire.masters() == ["b"]


def test_a_backup_reconfigured_keeps_following_its_master() -> None:
    wire = Wire()
    wire.add("a", config(1, 200))
    wire.add("b", config(2, 100))
    wire.start()
    wire.run_for(10)
    wire.reconfigure("b", config(2, 120, preempt_delay=3.0))
    wire.run_for(30)
    assert wire.masters() == ["a"]
    assert wire.router("b").priority == 120
    assert len(wire.transitions_of("b")) == 1  # no flap


def test_a_new_vrid_restarts_the_router() -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)
    actions = router.reconfigure(config(1, 255, vrid=VRID + 1), 1.0)
    assert [a for a in actions if isinstance(a, StateChanged)] == [
        StateChanged(State.MASTER, State.INITIALIZE, TransitionReason.SHUTDOWN),
        StateChanged(State.INITIALIZE, State.MASTER, TransitionReason.ADDRESS_OWNER),
    ]
    sent = [a.advertisement for a in actions if isinstance(a, SendAdvertisement)]
    assert [(a.vrid, a.priority) for a in sent] == [(VRID, 0), (VRID + 1, 255)]


def test_reconfiguring_a_router_that_was_not_started_does_not_start_it() -> None:
    router = VirtualRouter(config(1))
    assert router.reconfigure(config(1, vrid=VRID + 1), 1.0) == []
    assert router.reconfigure(config(1, 150), 1.0) == []
    assert router.state is State.INITIALIZE
    assert (router.config.vrid, router.priority) == (VRID, 150)


def test_a_new_vrid_keeps_pending_faults() -> None:
    router = VirtualRouter(config(1))
    router.start(0.0)
    router.enter_fault(FaultReason.LINK_DOWN, 1.0)
    router.reconfigure(config(1, vrid=VRID + 1), 2.0)
    assert router.state is State.FAULT


@pytest.mark.parametrize("priority", [0, 256, -1])
def test_an_impossible_effective_priority_is_a_programming_error(priority: int) -> None:
    router = VirtualRouter(config(1))
    with pytest.raises(ValueError, match="priority"):
        router.set_effective_priority(priority, 0.0)


def test_an_unchanged_effective_priority_does_nothing() -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)
    assert router.set_effective_priority(255, 0.5) == []


def test_a_backup_that_becomes_the_owner_takes_over_at_once() -> None:
    router = VirtualRouter(config(1, 100))
    router.start(0.0)
    actions = router.set_effective_priority(255, 1.0)
    assert actions[0] == StateChanged(State.BACKUP, State.MASTER, TransitionReason.ADDRESS_OWNER)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"version": 4}, "version"),
        ({"vrid": 0}, "vrid"),
        ({"vrid": 256}, "vrid"),
        ({"priority": 0}, "priority"),
        ({"interval_cs": 0}, "interval"),
        ({"interval_cs": 4096}, "interval"),
        ({"version": 2, "interval_cs": 150}, "whole seconds"),
        ({"addresses": ()}, "non-empty"),
        ({"addresses": (IPv6Address("2001:db8::1"),)}, "one family"),
        (
            {
                "version": 2,
                "primary_address": IPv6Address("fe80::1"),
                "addresses": (IPv6Address("2001:db8::1"),),
            },
            "IPv4 only",
        ),
        ({"preempt_delay": -1.0}, "preempt_delay"),
        ({"auth_type": AuthType.PASS, "auth_data": b"x"}, "no authentication"),
        ({"version": 2, "auth_type": AuthType.PASS, "auth_data": b"123456789"}, "1..8"),
        ({"version": 2, "auth_type": AuthType.AH, "auth_data": b"x"}, "PASS"),
        ({"version": 2, "auth_data": b"x"}, "needs auth_type"),
    ],
)
def test_an_impossible_configuration_is_refused(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        config(1, **overrides)


def test_an_ipv6_v3_configuration_is_accepted() -> None:
    cfg = RouterConfig(
        vrid=1,
        addresses=(IPv6Address("fe80::100"), IPv6Address("2001:db8::100")),
        primary_address=IPv6Address("fe80::1"),
    )
    router = VirtualRouter(cfg)
    router.start(0.0)
    assert router.state is State.BACKUP


def test_states_map_to_keepalived_codes() -> None:
    assert [s.keepalived_code for s in State] == [0, 1, 2, 3]
