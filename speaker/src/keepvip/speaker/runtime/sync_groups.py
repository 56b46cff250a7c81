"""Sync groups (``spec.syncGroup``, keepalived ``vrrp_sync_group``): routers that move together.

keepalived.conf(5): a sync group is "a bundle of VRRP instances" synchronised so that
"transition of one instance will be reflected to other group members", and "for a SYNC
group to run reliably, it is vital that all instances in the group are MASTER or that they
are all either BACKUP or FAULT". keepvip keeps that invariant per node, with two rules,
decided by the pure `sync_holds` and applied through two router inputs: the fault input
(`FaultReason.SYNC_GROUP`) and the hold out of MASTER (`VirtualRouter.hold_master`):

1. **FAULT follows FAULT** (keepalived ``vrrp_sync_fault``): while a member holds a fault
   of its own (a failing weight-0 check, its link or a weight-0 tracked interface down,
   the arbiter lost, a refused VIP), every other member is held in FAULT too. A master
   held this way sends priority 0 first, so the other node takes the whole group after
   Skew_Time.
2. **Losing MASTER is shared** (keepalived ``vrrp_sync_backup``): while a member is
   BACKUP because it lost MASTER to another node's advertisement (a higher priority, or
   the tie-break), the members that did not lose are held out of MASTER: a master among
   them steps down (``sync_group_backup``, priority 0 first, so the other node takes the
   group's other half after Skew_Time), and a backup among them does not take over when
   its Master_Down_Timer fires (keepalived's ``vrrp_sync_can_goto_master``), so it
   cannot pre-empt back for half of the group. The hold ends when the member is MASTER
   again (or faults, rule 1).

A member held by the group does not hold the others (it has no fault of its own, and a
member that stepped down for the group did not lose an election), so a hold never feeds
itself, and two members that lost MASTER at once hold nobody.
Members are the routers of this node with the same ``spec.syncGroup``; each node decides
alone, and VRRP between the nodes does the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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


@dataclass(frozen=True)
class SyncHold:
    """What the group holds one member to, naming the member that causes each hold."""

    fault: str | None = None
    """Rule 1: held in FAULT because this member is in FAULT."""
    master: str | None = None
    """Rule 2: held out of MASTER because this member lost MASTER."""


def sync_holds(members: Sequence[Member]) -> dict[str, SyncHold]:
    """For each member of one group on this node: what the group holds it to."""
    faulted = sorted(m.name for m in members if m.own_fault)
    lost = sorted(m.name for m in members if m.lost_master and not m.own_fault)
    holds: dict[str, SyncHold] = {}
    for member in members:
        fault = next((name for name in faulted if name != member.name), None)
        master = None
        if not member.lost_master and not member.own_fault:
            master = next((name for name in lost if name != member.name), None)
        holds[member.name] = SyncHold(fault, master)
    return holds


class GroupMember(Protocol):
    """What the coordinator reads from and tells a router (RouterRunner has it)."""

    @property
    def state(self) -> State: ...
    @property
    def faults(self) -> frozenset[FaultReason]: ...
    def set_fault(self, reason: FaultReason, active: bool, detail: str = "") -> None: ...
    def hold_master(self, held: bool) -> None: ...


@dataclass
class _Joined:
    group: str
    router: GroupMember
    reason: str = ""  # the last transition reason reported
    hold: SyncHold = SyncHold()  # what the router was last told


class SyncGroups:
    """This node's sync groups: re-decides a group whenever one of its members changes."""

    def __init__(self) -> None:
        self._members: dict[str, _Joined] = {}

    def join(self, virtualip: str, group: str | None, router: GroupMember) -> None:
        """``virtualip`` runs ``router`` in ``group`` (None: in none); replaces an earlier join."""
        old = self._members.pop(virtualip, None)
        if old is not None:
            self._tell(virtualip, old.group, old, SyncHold())
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
        for name, hold in sync_holds(members).items():
            self._tell(name, group, joined[name], hold)

    @staticmethod
    def _tell(name: str, group: str, entry: _Joined, hold: SyncHold) -> None:
        """Tell the router what changed in its hold (nothing when nothing did)."""
        extra = {"virtualip": name, "sync_group": group}
        if (hold.fault is not None) != (entry.hold.fault is not None):
            if hold.fault is not None:
                log.warning("sync group %s: %s is in FAULT, so is this one", group, hold.fault, extra=extra)
            else:
                log.info("sync group %s: no other member in FAULT", group, extra=extra)
            entry.router.set_fault(FaultReason.SYNC_GROUP, hold.fault is not None, "")
        if (hold.master is not None) != (entry.hold.master is not None):
            if hold.master is not None:
                log.warning("sync group %s: %s lost MASTER, this one may not be MASTER", group,
                            hold.master, extra=extra)  # fmt: skip
            else:
                log.info("sync group %s: may be MASTER again", group, extra=extra)
            entry.router.hold_master(hold.master is not None)
        entry.hold = hold
