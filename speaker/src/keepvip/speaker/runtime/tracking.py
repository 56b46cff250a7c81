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
from collections.abc import Mapping, Sequence
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
    """Each router's tracked interfaces, their link states, and the weight-0 faults told.

    Keyed by VirtualIP name, so the newest list is used even while a router's task has
    not adopted its updated plan yet.
    """

    def __init__(self, ipr: Any) -> None:
        self._ipr = ipr
        self._up: dict[str, bool] = {}
        self._tracked: dict[str, tuple[TrackedInterface, ...]] = {}  # VirtualIP -> its list
        self._held: dict[str, frozenset[str]] = {}  # VirtualIP -> interfaces it was told are down

    async def track(self, virtualip: str, tracked: Sequence[TrackedInterface]) -> None:
        """``virtualip`` tracks ``tracked`` from now on; read the link states it needs."""
        self._tracked[virtualip] = tuple(tracked)
        for entry in tracked:
            try:
                self._up[entry.name] = await is_link_up(self._ipr, entry.name)
            except LookupError:
                self._up[entry.name] = False  # not on this node: down

    def link_changed(self, ifname: str, up: bool) -> list[str]:
        """Record a link event; the VirtualIPs to re-evaluate (those tracking it, if it changed)."""
        if ifname not in self._up or self._up[ifname] == up:
            return []
        self._up[ifname] = up
        return sorted(name for name, entries in self._tracked.items() if ifname in {t.name for t in entries})

    def verdict(self, virtualip: str) -> TrackingVerdict:
        """The current verdict of the interfaces ``virtualip`` tracks."""
        return tracking_verdict(self._tracked.get(virtualip, ()), self._up)

    def apply_faults(self, virtualip: str, target: TrackingTarget) -> None:
        """Tell the router which weight-0 interfaces are down now (and which recovered or are gone)."""
        down = self.verdict(virtualip).down
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
        """The router stopped: its list and its faults went with it."""
        self._tracked.pop(virtualip, None)
        self._held.pop(virtualip, None)
