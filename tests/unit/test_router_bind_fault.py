"""The core's side of "MASTER only with its VIPs bound" (issue 15).

When the adapter cannot bind a new master's VIPs it enters FAULT with
`FaultReason.ADDRESS_BIND_FAILED` (and with `ROUTER_FAILED` when its task failed): the
core must then do what it does for any fault — priority 0 so the backup takes over
after Skew_Time (RFC 9568 §6.4.3), VIPs released, no adverts — and rejoin the election
when the adapter clears the fault after its backoff.
"""

from __future__ import annotations

import pytest

from keepvip.speaker.vrrp.actions import RemoveAddresses, SendAdvertisement, StateChanged
from keepvip.speaker.vrrp.advertisement import Advertisement
from keepvip.speaker.vrrp.router import VirtualRouter
from keepvip.speaker.vrrp.state import FAULT_TRANSITIONS, FaultReason, State, TransitionReason
from tests.unit.wire import VIP, VRID, Wire, config

EXACT = 1e-9


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (FaultReason.ADDRESS_BIND_FAILED, TransitionReason.FAULT_ADDRESS_BIND),
        (FaultReason.ROUTER_FAILED, TransitionReason.FAULT_ROUTER),
    ],
)
def test_a_master_that_cannot_hold_its_vips_sends_priority_zero_and_releases_them(
    fault: FaultReason, reason: TransitionReason
) -> None:
    router = VirtualRouter(config(1, 255))
    router.start(0.0)

    actions = router.enter_fault(fault, 1.0)

    assert actions == [
        StateChanged(State.MASTER, State.FAULT, reason),
        SendAdvertisement(Advertisement(3, VRID, 0, 100, (VIP,))),
        RemoveAddresses((VIP,)),
    ]
    assert router.next_deadline is None


def test_every_fault_reason_has_its_transition_reason() -> None:
    assert set(FAULT_TRANSITIONS) == set(FaultReason)


def test_the_backup_takes_over_after_a_failed_bind_and_the_master_preempts_once_the_fault_clears() -> None:
    wire = Wire()
    wire.add("a", config(1, 200))
    wire.add("b", config(2, 100))
    wire.start()
    wire.run_until(10.5)
    assert wire.masters() == ["a"]

    wire.enter_fault("a", FaultReason.ADDRESS_BIND_FAILED)
    takeover = wire.run_until_state("b", State.MASTER, limit=5)
    assert takeover == pytest.approx(10.5 + 156 / 256, abs=EXACT)  # Skew_Time of b (§6.1)
    wire.run_for(10)
    assert wire.holders() == ["b"]  # a stays out while the fault holds

    wire.leave_fault("a", FaultReason.ADDRESS_BIND_FAILED)  # the adapter's backoff elapsed
    assert wire.router("a").state is State.BACKUP
    wire.run_for(10)
    assert wire.masters() == ["a"]  # a rejoined, pre-empted, and binds again
    assert wire.holders() == ["a"]
