"""Tracked interfaces: keepalived track_interface semantics as weights and faults."""

from __future__ import annotations

import asyncio

from keepvip.api.model import TrackedInterface
from keepvip.speaker.checks.tracker import CheckState, CheckStatus, effective_priority
from keepvip.speaker.runtime.tracking import InterfaceTracking, tracking_verdict
from keepvip.speaker.vrrp.state import FaultReason


def tracked(name: str, weight: int = 0) -> TrackedInterface:
    return TrackedInterface(name=name, weight=weight)


def test_an_unweighted_interface_down_is_a_fault_and_adds_no_weight() -> None:
    verdict = tracking_verdict([tracked("eth1")], {"eth1": False})
    assert verdict.down == {"eth1"}
    assert verdict.weighted == ()
    assert tracking_verdict([tracked("eth1")], {"eth1": True}).down == frozenset()


def test_a_negative_weight_applies_while_down_and_a_positive_one_while_up() -> None:
    interfaces = [tracked("eth1", -30), tracked("eth2", 10)]
    both_up = tracking_verdict(interfaces, {"eth1": True, "eth2": True})
    assert effective_priority(100, both_up.weighted).priority == 110  # +10 while eth2 is up
    both_down = tracking_verdict(interfaces, {"eth1": False, "eth2": False})
    assert effective_priority(100, both_down.weighted).priority == 70  # -30 while eth1 is down
    assert both_down.down == frozenset()  # weighted interfaces never fault


def test_an_interface_the_node_does_not_have_counts_as_down() -> None:
    assert tracking_verdict([tracked("bond9")], {}).down == {"bond9"}
    assert effective_priority(100, tracking_verdict([tracked("bond9", -20)], {}).weighted).priority == 80


def test_interface_weights_and_check_weights_add_up_and_clamp_together() -> None:
    check = CheckState(name="web", weight=-50, status=CheckStatus.FAILING)
    verdict = tracking_verdict([tracked("eth1", -60)], {"eth1": False})
    assert effective_priority(100, (check, *verdict.weighted)).priority == 1  # 100-50-60, clamped
    up = CheckState(name="web", weight=200, status=CheckStatus.PASSING)
    verdict = tracking_verdict([tracked("eth1", 100)], {"eth1": True})
    assert effective_priority(100, (up, *verdict.weighted)).priority == 254


class Target:
    def __init__(self) -> None:
        self.calls: list[tuple[FaultReason, bool, str]] = []

    def set_fault(self, reason: FaultReason, active: bool, detail: str = "") -> None:
        self.calls.append((reason, active, detail))


def test_the_router_is_told_only_of_changes_and_a_removed_interface_clears_its_fault() -> None:
    tracking = InterfaceTracking(ipr=Links({"eth1": False, "eth2": True}))
    target = Target()
    asyncio.run(tracking.track("web", [tracked("eth1"), tracked("eth2"), tracked("bond9")]))
    tracking.apply_faults("web", target)
    assert target.calls == [
        (FaultReason.INTERFACE_DOWN, True, "bond9"),  # the node has no bond9: down
        (FaultReason.INTERFACE_DOWN, True, "eth1"),
    ]
    tracking.apply_faults("web", target)
    assert len(target.calls) == 2  # the same verdict again: nothing new
    assert tracking.link_changed("eth2", False) == ["web"]
    assert tracking.link_changed("eth2", False) == []  # no change
    assert tracking.link_changed("eth9", False) == []  # nobody tracks it
    tracking.apply_faults("web", target)
    assert target.calls[-1] == (FaultReason.INTERFACE_DOWN, True, "eth2")
    tracking.link_changed("eth1", True)
    asyncio.run(tracking.track("web", [tracked("eth1")]))  # eth2 and bond9 no longer tracked
    tracking.apply_faults("web", target)
    assert target.calls[-2:] == [
        (FaultReason.INTERFACE_DOWN, False, "bond9"),
        (FaultReason.INTERFACE_DOWN, False, "eth2"),
    ]


def test_weighted_interfaces_of_a_virtualip_are_its_extra_check_states() -> None:
    tracking = InterfaceTracking(ipr=None)
    tracking._tracked["web"] = (tracked("eth1", -30),)
    tracking._up["eth1"] = False
    (state,) = tracking.verdict("web").weighted
    assert (state.name, state.weight, state.status) == ("interface/eth1", -30, CheckStatus.FAILING)
    assert tracking.verdict("other").weighted == ()


class Links:
    """pyroute2's AsyncIPRoute as is_link_up uses it: lookup by name, flags by index."""

    def __init__(self, up: dict[str, bool]) -> None:
        self.names = list(up)
        self.up = up

    async def link_lookup(self, ifname: str) -> list[int]:
        return [self.names.index(ifname) + 1] if ifname in self.up else []

    async def link(self, command: str, index: int) -> list[dict[str, int]]:
        assert command == "get"
        return [{"flags": 0x41 if self.up[self.names[index - 1]] else 0}]
