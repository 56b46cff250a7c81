"""Sync groups: which members the group holds in FAULT, and the coordinator applying it."""

from __future__ import annotations

from keepvip.speaker.runtime.sync_groups import Member, SyncGroups, SyncHold, sync_holds
from keepvip.speaker.vrrp.state import FaultReason, State

MASTER, BACKUP, FAULT = State.MASTER, State.BACKUP, State.FAULT


def member(name: str, state: State, *, own_fault: bool = False, lost_master: bool = False) -> Member:
    return Member(name=name, state=state, own_fault=own_fault, lost_master=lost_master)


FREE = SyncHold()


def in_fault(cause: str) -> SyncHold:
    return SyncHold(fault=cause)


def not_master(cause: str) -> SyncHold:
    return SyncHold(master=cause)


def test_a_healthy_group_holds_nobody() -> None:
    assert sync_holds([member("a", MASTER), member("b", MASTER)]) == {"a": FREE, "b": FREE}
    assert sync_holds([member("a", BACKUP), member("b", BACKUP)]) == {"a": FREE, "b": FREE}


def test_a_member_in_fault_holds_every_other_member_in_fault() -> None:
    holds = sync_holds([member("a", FAULT, own_fault=True), member("b", MASTER), member("c", BACKUP)])
    assert holds == {"a": FREE, "b": in_fault("a"), "c": in_fault("a")}


def test_a_member_held_by_the_group_holds_nobody_so_a_hold_never_feeds_itself() -> None:
    # b is in FAULT only because the group holds it (no fault of its own): a is free.
    assert sync_holds([member("a", BACKUP), member("b", FAULT)]) == {"a": FREE, "b": FREE}


def test_two_members_in_fault_hold_each_other_until_one_recovers() -> None:
    both = [member("a", FAULT, own_fault=True), member("b", FAULT, own_fault=True)]
    assert sync_holds(both) == {"a": in_fault("b"), "b": in_fault("a")}
    one = [member("a", FAULT), member("b", FAULT, own_fault=True)]
    assert sync_holds(one) == {"a": in_fault("b"), "b": FREE}
    # Both recovered (the faults they hold are the group's only): all released, no deadlock.
    assert sync_holds([member("a", FAULT), member("b", FAULT)]) == {"a": FREE, "b": FREE}


def test_a_member_that_lost_master_holds_the_others_out_of_master() -> None:
    holds = sync_holds([member("a", BACKUP, lost_master=True), member("b", MASTER), member("c", BACKUP)])
    assert holds == {"a": FREE, "b": not_master("a"), "c": not_master("a")}


def test_members_that_lost_master_together_hold_nobody() -> None:
    both = [member("a", BACKUP, lost_master=True), member("b", BACKUP, lost_master=True)]
    assert sync_holds(both) == {"a": FREE, "b": FREE}


def test_a_fault_holds_in_fault_and_a_lost_election_only_the_healthy() -> None:
    holds = sync_holds([member("a", BACKUP, lost_master=True), member("b", FAULT, own_fault=True),
                        member("c", MASTER)])  # fmt: skip
    assert holds == {"a": in_fault("b"), "b": FREE, "c": SyncHold(fault="b", master="a")}


class Router:
    """A router as the coordinator sees it; set_fault applies at once, like the runner's inbox."""

    def __init__(self, state: State = BACKUP) -> None:
        self.state = state
        self._faults: set[FaultReason] = set()
        self.told: list[bool] = []
        self.held: list[bool] = []

    @property
    def faults(self) -> frozenset[FaultReason]:
        return frozenset(self._faults)

    def set_fault(self, reason: FaultReason, active: bool, detail: str = "") -> None:
        assert reason is FaultReason.SYNC_GROUP
        assert detail == ""
        self.told.append(active)
        (self._faults.add if active else self._faults.discard)(reason)

    def hold_master(self, held: bool) -> None:
        self.held.append(held)


def test_the_coordinator_holds_and_releases_the_group_of_a_faulted_member() -> None:
    groups = SyncGroups()
    web, api, other = Router(MASTER), Router(MASTER), Router(MASTER)
    groups.join("web", "edge", web)
    groups.join("api", "edge", api)
    groups.join("solo", None, other)
    web._faults.add(FaultReason.CHECK_FAILED)
    web.state = FAULT
    groups.reported("web", "fault_check")
    assert api.told == [True]
    assert web.told == []
    assert other.told == []
    api.state = FAULT
    groups.reported("api", "fault_sync_group")
    assert api.told == [True]  # held already: not told again
    web._faults.clear()
    groups.reported("web", "")  # its fault cleared (on_faults), before any move
    assert api.told == [True, False]


def test_the_coordinator_follows_a_lost_election_until_the_member_wins_again() -> None:
    groups = SyncGroups()
    web, api = Router(MASTER), Router(MASTER)
    groups.join("web", "edge", web)
    groups.join("api", "edge", api)
    web.state = BACKUP
    groups.reported("web", "higher_priority_seen")
    assert api.held == [True]
    assert api.told == []  # a lost election is no FAULT
    api.state = BACKUP
    groups.reported("api", "sync_group_backup")  # stepping down for the group is not losing
    assert api.held == [True]
    assert web.held == []
    web.state = MASTER
    groups.reported("web", "preempt")
    assert api.held == [True, False]


def test_leaving_the_group_releases_what_the_leaver_held_and_its_own_hold() -> None:
    groups = SyncGroups()
    web, api = Router(FAULT), Router(MASTER)
    web._faults.add(FaultReason.LINK_DOWN)
    groups.join("web", "edge", web)
    groups.join("api", "edge", api)
    assert api.told == [True]
    groups.leave("web")
    assert api.told == [True, False]
    groups.join("web", "edge", web)
    assert api.told == [True, False, True]
    groups.join("api", None, api)  # api's VirtualIP left the group: its hold goes
    assert api.told[-1] is False
