"""Sync groups (``spec.syncGroup``, keepalived ``vrrp_sync_group``): routers that move together.

keepalived.conf(5): a sync group is "a bundle of VRRP instances" synchronised so that
"transition of one instance will be reflected to other group members", and "for a SYNC
group to run reliably, it is vital that all instances in the group are MASTER or that they
are all either BACKUP or FAULT". keepvip keeps that invariant per node, with two rules,
decided by the pure `sync_holds` and applied through the routers' existing fault input
(`FaultReason.SYNC_GROUP`):

1. **FAULT follows FAULT** (keepalived ``vrrp_sync_fault``): while a member holds a fault
   of its own (a failing weight-0 check, its link or a weight-0 tracked interface down,
   the arbiter lost, a refused VIP), every other member is held in FAULT too. A master
   held this way sends priority 0 first, so the other node takes the whole group after
   Skew_Time.
2. **Losing MASTER is shared** (keepalived ``vrrp_sync_backup``): while a member is
   BACKUP because it lost MASTER to another node's advertisement (a higher priority, or
   the tie-break), the members that did not lose are held in FAULT: a master among them
   hands its VIPs over (priority 0), and a backup among them cannot pre-empt back for the
   group's other half. This is keepalived's "become MASTER only if every member wants
   to" gate seen from the losing side; the hold ends when the member wins MASTER again
   (or faults, rule 1), then the Initialize rules apply. keepvip shows a held member as
   FAULT with reason ``fault_sync_group``, where keepalived shows BACKUP.

A member held by the group does not hold the others (it has no fault of its own), so a
hold never feeds itself, and two members that lost MASTER at once hold nobody.
Members are the routers of this node with the same ``spec.syncGroup``; each node decides
alone, and VRRP between the nodes does the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from keepvip.speaker.vrrp.state import FaultReason, State, TransitionReason

log = logging.getLogger("keepvip.speaker.sync")

LOST_MASTER = frozenset({TransitionReason.HIGHER_PRIORITY_SEEN.value,
                         TransitionReason.EQUAL_PRIORITY_HIGHER_ADDRESS.value})  # fmt: skip
"""Transition reasons (their values, as reports carry them) by which a MASTER lost an election."""


@dataclass(frozen=True)
class Member:
    """One router of a sync group, as the decision needs it."""

    name: str
    state: State
    own_fault: bool
    """A fault other than the sync group's holds the router (it is in, or will enter, FAULT)."""
    lost_master: bool
    """BACKUP because it lost MASTER to another node's advertisement."""


def sync_holds(members: Sequence[Member]) -> dict[str, str | None]:
    """For each member: the member whose state holds it in FAULT (rule 1 before 2), or None."""
    faulted = sorted(m.name for m in members if m.own_fault)
    lost = sorted(m.name for m in members if m.lost_master and not m.own_fault)
    holds: dict[str, str | None] = {}
    for member in members:
        cause = next((name for name in faulted if name != member.name), None)
        if cause is None and not member.lost_master and not member.own_fault:
            cause = next((name for name in lost if name != member.name), None)
        holds[member.name] = cause
    return holds


class GroupMember(Protocol):
    """What the coordinator reads from and tells a router (RouterRunner has it)."""

    @property
    def state(self) -> State: ...
    @property
    def faults(self) -> frozenset[FaultReason]: ...
    def set_fault(self, reason: FaultReason, active: bool, detail: str = "") -> None: ...


@dataclass
class _Joined:
    group: str
    router: GroupMember
    reason: str = ""  # the last transition reason reported
    held: bool = False  # what the router was last told


class SyncGroups:
    """This node's sync groups: re-decides a group whenever one of its members changes."""

    def __init__(self, on_hold: Callable[[str, str, str | None], None] | None = None) -> None:
        self._members: dict[str, _Joined] = {}
        self._on_hold = on_hold  # (virtualip, group, cause or None): for logs and tests

    def join(self, virtualip: str, group: str | None, router: GroupMember) -> None:
        """``virtualip`` runs ``router`` in ``group`` (None: in none); replaces an earlier join."""
        old = self._members.pop(virtualip, None)
        if old is not None and old.held:
            router.set_fault(FaultReason.SYNC_GROUP, False, "")
        if old is not None:
            self._decide(old.group)
        if group is not None:
            self._members[virtualip] = _Joined(group, router)
            self._decide(group)

    def leave(self, virtualip: str) -> None:
        """The router stopped; the rest of its group is decided again without it."""
        old = self._members.pop(virtualip, None)
        if old is not None:
            self._decide(old.group)

    def reported(self, virtualip: str, reason: str) -> None:
        """A member moved (``reason``: the transition's reason value) or its faults changed."""
        joined = self._members.get(virtualip)
        if joined is None:
            return
        if reason:
            joined.reason = reason
        self._decide(joined.group)

    def _decide(self, group: str) -> None:
        joined = {name: j for name, j in self._members.items() if j.group == group}
        members = [
            Member(
                name=name,
                state=j.router.state,
                own_fault=bool(j.router.faults - {FaultReason.SYNC_GROUP}),
                lost_master=j.router.state is State.BACKUP and j.reason in LOST_MASTER,
            )
            for name, j in sorted(joined.items())
        ]
        for name, cause in sync_holds(members).items():
            entry = joined[name]
            if (cause is not None) == entry.held:
                continue
            entry.held = cause is not None
            extra = {"virtualip": name, "sync_group": group}
            if cause is not None:
                log.warning("held in FAULT by sync group %s: %s", group, cause, extra=extra)
            else:
                log.info("released by sync group %s", group, extra=extra)
            entry.router.set_fault(FaultReason.SYNC_GROUP, entry.held, "")
            if self._on_hold is not None:
                self._on_hold(name, group, cause)
