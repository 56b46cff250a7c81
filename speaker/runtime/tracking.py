"""Tracked interfaces (``spec.trackInterfaces``, keepalived ``track_interface``).

keepalived.conf(5), ``track_interface``: an interface listed without a weight puts the
instance in FAULT while it is down; with a weight, the priority is increased by the
weight while the interface is up (positive weights) or decreased by its absolute value
while it is down (negative weights). That is exactly how a health check's weight acts
with "up" read as "passing" (keepvip.speaker.checks.tracker), so a weighted tracked
interface becomes one more `CheckState` fed to `effective_priority` with the checks: the
sum and the 1..254 clamp are computed once, over both. A weight-0 interface is not a
check: its being down is its own `FaultReason.INTERFACE_DOWN` (detail: the interface
name), so logs, metrics and status say "tracked interface down", not "check failed".

"Up" is the VRRP interface's rule (``IFF_UP`` and ``IFF_RUNNING``, see
keepvip.speaker.net.links), and an interface the node does not have counts as down:
a node missing the uplink a VirtualIP depends on must not take its VIP.

`tracking_verdict` is pure; `InterfaceTracking` keeps the link states (seeded with
netlink reads when a router starts, then fed by the speaker's link events) and the
weight-0 faults each router was last told, and applies verdicts through the router's
existing inputs (`RouterRunner.set_checks`, `RouterRunner.set_fault`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from keepvip.api.model import TrackedInterface
from keepvip.speaker.checks.tracker import CheckState, CheckStatus
from keepvip.speaker.net.interfaces import is_link_up
from keepvip.speaker.vrrp.state import FaultReason

log = logging.getLogger("keepvip.speaker.tracking")

CHECK_PREFIX: Final = "interface/"
"""Names of tracked-interface weights among the check states: no DNS-label check name has a '/'."""


@dataclass(frozen=True)
class TrackingVerdict:
    """What the tracked interfaces say right now."""

    weighted: tuple[CheckState, ...]
    """The weighted interfaces as check states (up = passing): added to the health checks."""
    down: frozenset[str]
    """The weight-0 interfaces that are down: each a FAULT of its own."""


def tracking_verdict(tracked: Sequence[TrackedInterface], up: Mapping[str, bool]) -> TrackingVerdict:
    """The verdict of ``tracked`` given which links are up (an unknown link is down)."""
    weighted: list[CheckState] = []
    down: set[str] = set()
    for entry in tracked:
        is_up = up.get(entry.name, False)
        if entry.weight == 0:
            if not is_up:
                down.add(entry.name)
            continue
        status = CheckStatus.PASSING if is_up else CheckStatus.FAILING
        weighted.append(CheckState(name=CHECK_PREFIX + entry.name, weight=entry.weight, status=status))
    return TrackingVerdict(tuple(weighted), frozenset(down))


class TrackingTarget(Protocol):
    """The router inputs a verdict is applied through (RouterRunner has them)."""

    def set_fault(self, reason: FaultReason, active: bool, detail: str = "") -> None: ...


class InterfaceTracking:
    """Link states of the tracked interfaces, and the weight-0 faults each router holds."""

    def __init__(self, ipr: Any) -> None:
        self._ipr = ipr
        self._up: dict[str, bool] = {}
        self._held: dict[str, frozenset[str]] = {}  # VirtualIP name -> interfaces faulted

    async def read(self, names: Iterable[str]) -> None:
        """Seed the link state of ``names`` from netlink (before a router starts)."""
        for name in names:
            try:
                self._up[name] = await is_link_up(self._ipr, name)
            except LookupError:
                self._up[name] = False  # not on this node: down

    def link_changed(self, ifname: str, up: bool) -> bool:
        """Record a link event; True when the link is one a router tracks and it changed."""
        known = ifname in self._up
        changed = known and self._up[ifname] != up
        if known:
            self._up[ifname] = up
        return changed

    def verdict(self, tracked: Sequence[TrackedInterface]) -> TrackingVerdict:
        """The current verdict for these tracked interfaces."""
        return tracking_verdict(tracked, self._up)

    def apply_faults(
        self, virtualip: str, tracked: Sequence[TrackedInterface], target: TrackingTarget
    ) -> None:
        """Tell the router which weight-0 interfaces are down now (and which recovered or are gone)."""
        down = self.verdict(tracked).down
        held = self._held.get(virtualip, frozenset())
        for name in sorted(down - held):
            log.warning("tracked interface %s is down", name,
                        extra={"virtualip": virtualip, "interface": name})  # fmt: skip
            target.set_fault(FaultReason.INTERFACE_DOWN, True, name)
        for name in sorted(held - down):
            log.info("tracked interface %s is up (or no longer tracked)", name,
                     extra={"virtualip": virtualip, "interface": name})  # fmt: skip
            target.set_fault(FaultReason.INTERFACE_DOWN, False, name)
        self._held[virtualip] = down

    def forget(self, virtualip: str) -> None:
        """The router stopped: its faults went with it."""
        self._held.pop(virtualip, None)
