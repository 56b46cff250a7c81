"""A backup's shortcut for its master's repeated advertisement changes nothing (issue 15).

`VirtualRouter.receive` skips its checks when handed the very advertisement object it
last followed, from the same source object, with configuration, priority and state
unchanged. Two routers get the same random history: one receives the pooled objects
(so repeats are identical objects and take the shortcut), the other fresh equal copies
of them (never the shortcut). Every step's actions and the routers' observable state
must be the same; a history on the old code path is the reference.
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import FaultReason, State
from tests.unit.wire import VIP, config

SOURCES = [IPv4Address("198.18.0.2"), IPv4Address("198.18.0.3")]
ADVERTS = [
    Advertisement(version=3, vrid=51, priority=priority, interval_cs=interval, addresses=addresses)
    for priority in (150, 100, 0, 50, 255)
    for interval in (100, 50)
    for addresses in ((VIP,), (VIP, IPv4Address("198.18.9.9")))
]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), st.integers(0, len(ADVERTS) - 1), st.integers(0, 1)),
        st.tuples(st.just("receive"), st.integers(0, 3), st.integers(0, 1)),  # the common ones, often
        st.tuples(st.just("advance"), st.floats(0.0, 5.0, allow_nan=False), st.just(0)),
        st.tuples(st.just("priority"), st.sampled_from([1, 99, 100, 150, 200, 255]), st.just(0)),
        st.tuples(st.sampled_from(["fault", "clear", "hold", "release"]), st.just(0), st.just(0)),
        st.tuples(st.just("reconfigure"), st.sampled_from([0.0, 2.0]), st.integers(0, 1)),
    ),
    max_size=60,
)


def observe(router: VirtualRouter) -> tuple[object, ...]:
    return (router.state, router.priority, router.next_deadline, router.master_address,
            router.master_priority, router.master_adver_interval_cs, router.faults)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(steps, st.booleans(), st.sampled_from([0.0, 1.5]))
def test_the_shortcut_and_the_full_path_act_alike(
    history: list[tuple[str, float, int]], preempt: bool, preempt_delay: float
) -> None:
    base = config(1, 100, preempt=preempt, preempt_delay=preempt_delay)
    shortcut, reference = VirtualRouter(base), VirtualRouter(base)
    now = 0.0
    assert shortcut.start(now) == reference.start(now)
    for kind, value, extra in history:
        if kind == "advance":
            now += value
            got, want = shortcut.handle_timer(now), reference.handle_timer(now)
        elif kind == "receive":
            advert, source = ADVERTS[int(value)], SOURCES[extra]
            got = shortcut.receive(advert, source, now)
            want = reference.receive(dataclasses.replace(advert), ip_address(str(source)), now)
        elif kind == "priority":
            got = shortcut.set_effective_priority(int(value), now)
            want = reference.set_effective_priority(int(value), now)
        elif kind in ("fault", "clear"):
            method = "enter_fault" if kind == "fault" else "leave_fault"
            got = getattr(shortcut, method)(FaultReason.CHECK_FAILED, now)
            want = getattr(reference, method)(FaultReason.CHECK_FAILED, now)
        elif kind in ("hold", "release"):
            got = shortcut.hold_master(kind == "hold", now)
            want = reference.hold_master(kind == "hold", now)
        else:
            changed = config(1, 100, preempt=bool(extra), preempt_delay=value)
            got = shortcut.reconfigure(changed, now, shortcut.priority)
            want = reference.reconfigure(changed, now, reference.priority)
        assert got == want, (kind, value, extra)
        assert observe(shortcut) == observe(reference)


def test_a_backup_following_its_master_takes_the_shortcut_and_still_takes_over_on_silence() -> None:
    router = VirtualRouter(config(1, 100))
    router.start(0.0)
    advert, master = ADVERTS[0], SOURCES[0]  # priority 150, the configured addresses
    assert advert.priority == 150
    assert advert.addresses == (VIP,)
    assert router.receive(advert, master, 1.0) == []
    assert router._repeat is not None  # the shortcut is primed
    for heard in range(2, 10):
        assert router.receive(advert, master, float(heard)) == []
        assert router.next_deadline == heard + router.master_down_interval
    assert router.state is State.BACKUP
    assert router.handle_timer(9.0 + router.master_down_interval)[0].new is State.MASTER  # type: ignore[attr-defined]


def test_the_shortcut_is_forgotten_when_the_state_changes() -> None:
    """BACKUP → FAULT → BACKUP: the master must be learnt again (the full path), not assumed."""
    router = VirtualRouter(config(1, 100))
    router.start(0.0)
    advert, master = ADVERTS[0], SOURCES[0]
    router.receive(advert, master, 1.0)
    router.enter_fault(FaultReason.CHECK_FAILED, 2.0)
    router.leave_fault(FaultReason.CHECK_FAILED, 3.0)
    assert router.master_address is None
    router.receive(advert, master, 4.0)
    assert router.master_address == master
