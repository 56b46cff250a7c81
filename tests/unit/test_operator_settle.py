"""Settling: a takeover seen half-way is not news; what lasts is, once; stale entries are Unknown.

Most tests play a story through the status stage (``aggregate_status``): the speakers'
entries change at given (monotonic) times, the operator re-derives at those times and
on its periodic re-checks, and the story's Events and status are what the operator
would post and patch. ``Recorder`` stands in for the API server only to record those
calls; the cluster tier runs the same stage against a real one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from ipaddress import IPv4Address
from typing import Any, TypeVar

import pytest

from keepvip.api.model import NodeStatus, VirtualIPStatus
from keepvip.operator.allocation import LedgerEntry, Pair, decode_ledger, encode_entry
from keepvip.operator.handlers import node_is_ready, recheck_interval
from keepvip.operator.kube import Kube, LedgerChanges, ObjectRef
from keepvip.operator.reconcile import Context, aggregate_status, reconcile_spec
from keepvip.operator.settings import OperatorSettings
from keepvip.operator.settle import (
    Settling,
    first_master_hold,
    first_sight,
    settle,
)
from keepvip.operator.status import (
    EventSpec,
    Observation,
    SpecOutcome,
    Unheard,
    build_status,
    operator_fields,
    view_from_status,
)

PAIR = Pair(IPv4Address("224.0.0.201"), 17)
OK = SpecOutcome(PAIR, generation=1)
T0 = "2026-01-01T00:00:00Z"
GRACE = 2.0
T = TypeVar("T")


class Recorder(Kube):
    """The API calls of the status and spec stages, recorded (the ledger kept in memory)."""

    def __init__(self) -> None:
        super().__init__(OperatorSettings())
        self.patches: list[dict[str, Any]] = []
        self.events: list[EventSpec] = []
        self.ledger: dict[str, str] = {"u-1": encode_entry(LedgerEntry("ingress", PAIR))}

    def patch_virtualip_status(self, name: str, fields: Mapping[str, Any]) -> None:
        assert name == "ingress"
        self.patches.append(dict(fields))

    def post_event(self, ref: ObjectRef, event: EventSpec) -> None:
        assert ref == ObjectRef("ingress", "u-1")
        self.events.append(event)

    def update_ledger(self, decide: Callable[[dict[str, LedgerEntry]], tuple[LedgerChanges, T]]) -> T:
        changes, result = decide(decode_ledger(self.ledger))
        for uid, encoded in changes.items():
            if encoded is None:
                self.ledger.pop(uid, None)
            else:
                self.ledger[uid] = encoded
        return result


class Story:
    """One VirtualIP as the operator sees it through the watch: entries, status, time."""

    def __init__(self, *, settle_seconds: float = GRACE, lagging: bool = False,
                 stored: VirtualIPStatus | None = None, kube: Recorder | None = None) -> None:
        self.now = 0.0
        self.kube = kube or Recorder()
        settings = OperatorSettings.model_validate({"status": {"settleSeconds": settle_seconds}})
        self.ctx = Context(settings, self.kube, clock=lambda: T0, monotonic=lambda: self.now)
        self.lagging = lagging  # the watch body never shows the operator's own patches
        self.entries: dict[str, str] = {}
        self.readiness: dict[str, bool] | None = None
        self.stored = operator_fields(stored or build_status(OK, Observation.of([]), None, T0))

    def body(self) -> dict[str, Any]:
        nodes = [{"node": node, "state": state} for node, state in self.entries.items()]
        return {"metadata": {"name": "ingress", "uid": "u-1", "generation": 1},
                "spec": {"addresses": ["198.18.0.100/24"]},
                "status": {**self.stored, "nodes": nodes}}

    def at(self, t: float, **states: str) -> Story:
        """At time ``t`` these speakers report these states (node_a= → node-a)."""
        self.now = t
        self.entries.update({n.replace("_", "-"): s for n, s in states.items()})
        return self.derive()

    def tick(self, t: float, copied: dict[str, Any] | None = None) -> Story:
        """The periodic re-check at time ``t``, nothing reported; ``copied``: the body it
        copied before it got the VirtualIP's lock (default the current one)."""
        self.now = t
        return self.derive(copied if copied is not None else self.body(), recheck=True)

    def derive(self, body: dict[str, Any] | None = None, *, recheck: bool = False) -> Story:
        before = len(self.kube.patches)
        aggregate_status(self.ctx, body if body is not None else self.body(), self.readiness, recheck=recheck)
        if not self.lagging and len(self.kube.patches) > before:
            self.stored = self.kube.patches[-1]
        return self

    @property
    def told(self) -> list[str]:
        return [f"{e.reason} {e.message}" for e in self.kube.events]

    @property
    def status(self) -> VirtualIPStatus:
        return VirtualIPStatus.model_validate(self.stored)

    def condition(self, kind: str) -> tuple[str, str | None, str | None]:
        found = next(c for c in self.status.conditions if c.type == kind)
        return found.status, found.reason, found.message


def elected() -> Story:
    """node-a MASTER, node-b and node-c BACKUP, told once."""
    story = Story().at(0.0, node_a="BACKUP", node_b="BACKUP", node_c="BACKUP").at(3.0, node_a="MASTER")
    assert story.told == []  # the first master is told once it has held a quarter of a second
    assert story.tick(3.2).told == []
    assert story.tick(3.3).told == ["MasterChanged (none) → node-a"]
    return story


# --- takeovers seen half-way ------------------------------------------------------------


def test_a_takeover_seen_through_a_moment_without_master_is_one_master_change() -> None:
    story = elected().at(10.0, node_a="BACKUP")  # old master reports first
    assert story.status.master == "node-a"
    story.tick(11.0).at(11.2, node_b="MASTER")
    assert story.told[1:] == ["MasterChanged node-a → node-b"]
    assert (story.status.master, story.status.state) == ("node-b", "Ready")


def test_a_takeover_seen_through_a_moment_with_two_masters_is_no_split_brain() -> None:
    story = elected().at(10.0, node_b="MASTER")  # new master reports first
    assert story.status.state == "Ready"
    assert story.condition("SplitBrain")[0] == "False"
    story.at(10.3, node_a="BACKUP")
    assert story.told[1:] == ["MasterChanged node-a → node-b"]


def test_a_failover_and_back_tells_exactly_two_changes() -> None:
    story = elected()
    story.at(10.0, node_a="BACKUP").at(10.4, node_b="MASTER")
    story.at(20.0, node_a="MASTER").tick(20.5).at(21.0, node_b="BACKUP").tick(25.0)
    assert story.told == ["MasterChanged (none) → node-a", "MasterChanged node-a → node-b",
                          "MasterChanged node-b → node-a"]


def test_a_recheck_that_copied_the_body_before_a_takeover_does_not_tell_it_again() -> None:
    story = elected()
    copied = story.body()  # the periodic re-check copies the body (node-a MASTER) ...
    story.at(10.0, node_a="BACKUP", node_b="MASTER")  # ... a watch event tells the takeover ...
    story.tick(10.1, copied=copied)  # ... and the re-check gets the lock only now
    assert story.told == ["MasterChanged (none) → node-a", "MasterChanged node-a → node-b"]
    assert story.status.master == "node-b"


def test_the_same_change_seen_again_in_a_lagging_watch_body_is_told_once() -> None:
    story = Story(lagging=True).at(0.0, node_a="MASTER", node_b="BACKUP").tick(1.0)
    story.at(10.0, node_b="MASTER", node_a="BACKUP").derive().tick(11.0)  # the body keeps the old master
    assert story.told == ["MasterChanged (none) → node-a", "MasterChanged node-a → node-b"]


def test_the_spec_stage_and_the_status_stage_tell_a_change_once_between_them() -> None:
    story = elected().at(10.0, node_a="BACKUP", node_b="MASTER")
    reconcile_spec(story.ctx, story.body(), None, {})  # e.g. resume: the spec stage publishes too
    assert story.told.count("MasterChanged node-a → node-b") == 1


# --- what lasts is news, once -----------------------------------------------------------


def test_two_masters_that_last_the_grace_period_are_a_split_brain_naming_the_newcomer() -> None:
    story = elected().at(10.0, node_b="MASTER").tick(11.0)
    assert story.told == ["MasterChanged (none) → node-a"]
    story.tick(12.0)  # the re-check adopts it without any new report
    assert story.status.state == "SplitBrain"
    assert story.condition("SplitBrain")[:2] == ("True", "MultipleMasters")
    assert story.told[1:] == ["MasterChanged node-a → node-b", "SplitBrain MASTER on node-a, node-b"]
    story.tick(13.0).tick(20.0)
    assert len(story.told) == 3  # the name sticks while the split lasts: no flip-flop
    story.at(21.0, node_a="BACKUP")
    assert (story.status.state, len(story.told)) == ("Ready", 3)


def test_no_master_for_the_grace_period_is_told_then() -> None:
    story = elected().at(10.0, node_a="FAULT").tick(11.9)
    assert story.status.master == "node-a"
    after = story.tick(12.0).status
    assert (after.master, after.state) == (None, "Pending")
    assert story.told[1:] == ["MasterChanged node-a → (none)"]


def test_a_master_without_backup_is_degraded_only_once_it_lasts() -> None:
    story = elected().at(10.0, node_b="FAULT", node_c="FAULT").tick(11.0)
    assert story.status.state == "Ready"
    story.tick(12.5)
    assert story.status.state == "Degraded"
    assert story.told[1:] == ["Degraded the master has no backup"]


def test_a_new_single_master_is_named_at_once_and_its_missing_backup_told_once_it_lasts() -> None:
    story = Story().at(0.0, node_a="MASTER", node_b="BACKUP").tick(1.0)
    story.at(10.0, node_a="FAULT", node_b="MASTER")  # two nodes: nobody is left as backup
    assert (story.status.master, story.status.state) == ("node-b", "Ready")
    assert story.condition("Degraded")[:2] == ("False", "BackupPending")
    assert story.told[1:] == ["MasterChanged node-a → node-b"]
    story.tick(12.0)
    assert story.status.state == "Degraded"
    assert story.told[2:] == ["Degraded the master has no backup"]


def test_a_first_master_reported_before_its_backups_is_not_degraded() -> None:
    story = Story().at(0.0, node_a="MASTER").at(0.05, node_b="BACKUP", node_c="BACKUP").tick(5.0)
    assert story.told == ["MasterChanged (none) → node-a"]
    assert story.status.state == "Ready"


def test_an_election_through_a_lower_priority_node_tells_only_the_master_that_held() -> None:
    # The first backup whose Master_Down timer fires takes over; the higher-priority
    # node pre-empts it within milliseconds (the demo's start, as the speakers logged it).
    story = Story().at(0.0, node_a="BACKUP", node_b="BACKUP", node_c="BACKUP")
    story.at(0.33, node_b="MASTER").at(0.35, node_a="MASTER").at(0.36, node_b="BACKUP")
    assert story.status.master == "node-a"
    assert story.told == []
    story.tick(1.0).tick(2.0).tick(2.4)
    assert story.told == ["MasterChanged (none) → node-a"]


def test_a_first_master_that_held_is_told_when_it_is_replaced_before_any_check() -> None:
    story = Story().at(0.0, node_a="MASTER", node_b="BACKUP").at(0.6, node_a="BACKUP", node_b="MASTER")
    assert story.told == ["MasterChanged (none) → node-a", "MasterChanged node-a → node-b"]


def test_a_change_between_masters_is_told_at_once_however_short_it_lasts() -> None:
    story = elected().at(10.0, node_a="BACKUP", node_b="MASTER").at(10.5, node_b="BACKUP", node_a="MASTER")
    assert story.told[1:] == ["MasterChanged node-a → node-b", "MasterChanged node-b → node-a"]


def test_with_no_grace_period_every_reading_is_told() -> None:
    story = Story(settle_seconds=0).at(0.0, node_a="MASTER", node_b="BACKUP").at(1.0, node_b="MASTER")
    assert story.status.state == "SplitBrain"


# --- a restarted operator starts from what status tells ---------------------------------


def test_a_restarted_operator_does_not_retell_a_transient_it_finds() -> None:
    first = elected()
    restarted = Story(stored=first.status)
    restarted.entries = dict(first.entries)
    restarted.at(100.0, node_a="BACKUP").tick(101.0)
    assert restarted.kube.events == []
    assert restarted.kube.patches == []
    assert restarted.status.master == "node-a"


def test_a_restarted_operator_does_not_retell_a_split_brain_already_recorded() -> None:
    split = elected().at(10.0, node_b="MASTER").tick(12.0)
    restarted = Story(stored=split.status)
    restarted.entries = dict(split.entries)
    restarted.tick(100.0).tick(103.0)
    assert restarted.kube.events == []
    assert (restarted.status.state, restarted.status.master) == ("SplitBrain", "node-b")


def test_the_view_a_status_shows_reads_back_as_written() -> None:
    for seen in (Observation(("node-a",), ("node-b", "node-c")), Observation((), ()),
                 Observation(("node-a", "node-b"), ("node-c",), preferred="node-b"),
                 Observation(("node-a",), (), backups_pending=True), Observation(("node-a",), ())):
        back = view_from_status(build_status(OK, seen, None, T0))
        assert (back.master, back.masters, back.backups, back.backups_pending) == (
            seen.master, seen.masters, seen.backups, seen.backups_pending)
    assert view_from_status(None) == Observation((), ())


def test_the_view_is_read_from_typed_fields_never_from_condition_messages() -> None:
    seen = Observation(("node-a", "node-b"), ("node-c",), preferred="node-b")
    status = build_status(OK, seen, None, T0)
    assert status.settled is not None
    assert (status.settled.masters, status.settled.backups) == (("node-a", "node-b"), ("node-c",))
    reworded = status.model_copy(
        update={"conditions": tuple(c.model_copy(update={"message": "free text"}) for c in status.conditions)}
    )
    back = view_from_status(reworded)
    assert (back.master, back.masters, back.backups) == ("node-b", seen.masters, seen.backups)
    # A status written before ``settled`` existed gives its master alone.
    older = view_from_status(status.model_copy(update={"settled": None}))
    assert (older.masters, older.backups, older.master) == (("node-b",), (), "node-b")


# --- stale entries of nodes that are not Ready ------------------------------------------


def test_a_stale_master_entry_of_a_not_ready_node_is_unknown_not_a_split_brain() -> None:
    story = elected()
    story.readiness = {"node-a": False, "node-b": True, "node-c": True}
    story.at(10.0, node_b="MASTER")  # node-a, cut off, cannot withdraw its MASTER entry
    assert (story.status.master, story.status.state) == ("node-b", "Ready")
    assert story.told[1:] == ["MasterChanged node-a → node-b"]
    story.tick(15.0)
    assert story.condition("SplitBrain")[0] == "False"
    assert story.condition("Ready")[2] == (
        "node-b holds the addresses; node-a: last reported MASTER, node NotReady")


def test_a_master_that_turns_not_ready_during_a_split_resolves_it_at_the_next_check() -> None:
    story = elected().at(10.0, node_b="MASTER").tick(12.0)
    assert story.status.state == "SplitBrain"
    story.readiness = {"node-a": False, "node-b": True, "node-c": True}
    story.tick(50.0)  # the node-monitor grace period has passed
    assert (story.status.master, story.status.state) == ("node-b", "Ready")


def test_entries_of_nodes_that_are_not_ready_or_absent_count_neither_as_master_nor_backup() -> None:
    entries = [NodeStatus.model_validate({"node": n, "state": s})
               for n, s in (("a", "MASTER"), ("b", "BACKUP"), ("c", "MASTER"), ("d", "BACKUP"))]
    seen = Observation.of(entries, {"a": True, "b": False, "d": True})
    assert (seen.masters, seen.backups) == (("a",), ("d",))
    assert [str(u) for u in seen.unheard] == ["b: last reported BACKUP, node NotReady",
                                             "c: last reported MASTER, no Node object"]
    assert Observation.of(entries).masters == ("a", "c")  # no readiness known: every entry counts


def test_a_node_is_ready_only_when_its_ready_condition_is_true() -> None:
    assert node_is_ready({"conditions": [{"type": "MemoryPressure", "status": "False"},
                                         {"type": "Ready", "status": "True"}]})
    assert not node_is_ready({"conditions": [{"type": "Ready", "status": "Unknown"}]})
    assert not node_is_ready({"conditions": [{"type": "Ready", "status": "False"}]})
    assert not node_is_ready({})
    assert not node_is_ready(None)


# --- the pure rule ----------------------------------------------------------------------


A, B = Observation(("a",), ("b",)), Observation(("b",), ("a",))
NONE, BOTH = Observation((), ("a", "b")), Observation(("a", "b"), ())


def test_settled_readings_are_adopted_at_once_and_clear_the_wait() -> None:
    pending = settle(Settling(A), NONE, now=5.0, grace=GRACE)
    assert (pending.view, pending.unsettled_since) == (A, 5.0)
    adopted = settle(pending, B, now=5.5, grace=GRACE)
    assert (adopted.view, adopted.unsettled_since, adopted.master_since) == (B, None, 5.5)


@pytest.mark.parametrize("transient", [NONE, BOTH], ids=["no master", "two masters"])
def test_a_transient_keeps_the_view_until_it_has_lasted_the_grace_period(transient: Observation) -> None:
    state = settle(Settling(A), transient, now=5.0, grace=GRACE)
    state = settle(state, transient, now=6.99, grace=GRACE)
    assert state.view == A
    assert settle(state, transient, now=7.0, grace=GRACE).view.masters == transient.masters


def test_the_wait_counts_from_the_first_unsettled_reading_whatever_follows() -> None:
    state = settle(Settling(A), NONE, now=5.0, grace=GRACE)
    state = settle(state, BOTH, now=6.0, grace=GRACE)
    assert settle(state, NONE, now=7.0, grace=GRACE).view == NONE


def test_first_sight_starts_from_the_recorded_status() -> None:
    recorded = build_status(OK, A, None, T0)
    assert settle(first_sight(recorded), NONE, now=0.0, grace=GRACE).view.master == "a"
    assert first_sight(None).view == Observation((), ())


def test_the_first_master_hold_is_a_quarter_second_at_most_the_grace_period() -> None:
    assert [first_master_hold(g) for g in (0, 0.1, 2, 10)] == [0, 0.1, 0.25, 0.25]


def test_the_recheck_runs_at_half_the_grace_period_between_a_quarter_and_one_second() -> None:
    assert [recheck_interval(s) for s in (0, 1, 2, 10)] == [0.25, 0.5, 1.0, 1.0]


def test_the_grace_period_is_a_setting_of_two_seconds_by_default() -> None:
    assert OperatorSettings().status.settle_seconds == 2.0
    assert OperatorSettings.model_validate({"status": {"settleSeconds": 0.5}}).status.settle_seconds == 0.5
    with pytest.raises(ValueError, match=r"settleSeconds|settle_seconds"):
        OperatorSettings.model_validate({"status": {"settleSeconds": -1}})


def test_unheard_entries_read_as_the_condition_message_says() -> None:
    assert str(Unheard("node-a", "MASTER", "node NotReady")) == "node-a: last reported MASTER, node NotReady"
