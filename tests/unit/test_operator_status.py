"""Status derivation: master, state, conditions, transitions, events."""

from __future__ import annotations

from ipaddress import IPv4Address

from keepvip.api.model import NodeStatus, VirtualIPStatus
from keepvip.api.phase import Phase
from keepvip.operator.allocation import Pair
from keepvip.operator.problems import Problem
from keepvip.operator.status import (
    EventSpec,
    Observation,
    SpecOutcome,
    build_status,
    master_changed,
    operator_fields,
    outcome_from_status,
    transition_events,
)

PAIR = Pair(IPv4Address("224.0.0.201"), 17)
OK = SpecOutcome(PAIR, generation=3)
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"


def nodes(**states: str) -> list[NodeStatus]:
    return [NodeStatus.model_validate({"node": n.replace("_", "-"), "state": s}) for n, s in states.items()]


def view(**states: str) -> Observation:
    return Observation.of(nodes(**states))


NOBODY = Observation.of([])


def condition(status: VirtualIPStatus, kind: str) -> tuple[str, str | None]:
    found = next(c for c in status.conditions if c.type == kind)
    return found.status, found.reason


def test_one_master_and_a_backup_is_ready() -> None:
    status = build_status(OK, view(node_a="MASTER", node_b="BACKUP"), None, T0)
    assert (status.master, status.state) == ("node-a", "Ready")
    assert condition(status, "Ready") == ("True", "MasterElected")
    assert condition(status, "Degraded") == ("False", "Redundant")
    assert condition(status, "SplitBrain") == ("False", "SingleMaster")
    assert (status.vrid, status.multicast_group) == (17, "224.0.0.201")


def test_a_master_without_backup_is_degraded_but_ready() -> None:
    status = build_status(OK, view(node_a="MASTER", node_b="FAULT"), None, T0)
    assert status.state == "Degraded"
    assert condition(status, "Degraded") == ("True", "NoBackup")
    assert condition(status, "Ready")[0] == "True"


def test_two_masters_are_a_split_brain_naming_both() -> None:
    status = build_status(OK, view(node_b="MASTER", node_a="MASTER", node_c="BACKUP"), None, T0)
    assert status.state == "SplitBrain"
    assert status.master == "node-a"
    split = next(c for c in status.conditions if c.type == "SplitBrain")
    assert (split.status, split.reason) == ("True", "MultipleMasters")
    assert split.message == "MASTER on node-a, node-b"
    assert condition(status, "Ready") == ("False", "SplitBrain")


def test_no_master_yet_is_pending() -> None:
    status = build_status(OK, view(node_a="BACKUP", node_b="INITIALIZE"), None, T0)
    assert (status.master, status.state) == (None, "Pending")
    assert condition(status, "Ready") == ("False", "NoMaster")
    assert condition(status, "Allocated") == ("True", "Allocated")


def test_exhausted_pool_is_allocated_false_with_the_reason() -> None:
    outcome = SpecOutcome(None, Problem.POOL_EXHAUSTED, "the IPv4 pool (6 pairs) is exhausted", 1)
    status = build_status(outcome, NOBODY, None, T0)
    assert status.state == "Pending"
    allocated = next(c for c in status.conditions if c.type == "Allocated")
    assert (allocated.status, allocated.reason) == ("False", "PoolExhausted")
    assert allocated.message == "the IPv4 pool (6 pairs) is exhausted"
    assert status.vrid is None
    assert status.multicast_group is None


def test_a_pair_conflict_is_state_conflict_with_the_conflict_condition() -> None:
    outcome = SpecOutcome(None, Problem.PAIR_IN_USE, "spec.vrrp.vrid: ... used by VirtualIP 'x'", 1)
    status = build_status(outcome, NOBODY, None, T0)
    assert status.state == "Conflict"
    assert condition(status, "Conflict") == ("True", "PairInUse")
    assert condition(status, "Allocated") == ("False", "PairInUse")


def test_an_invalid_spec_is_state_invalid_with_the_field_in_the_message() -> None:
    outcome = SpecOutcome(None, Problem.INVALID_SPEC, "spec.priority: must be at most 254", 2)
    status = build_status(outcome, view(node_a="MASTER"), None, T0)
    assert status.state == "Invalid"
    invalid = next(c for c in status.conditions if c.type == "InvalidSpec")
    assert (invalid.status, invalid.message) == ("True", "spec.priority: must be at most 254")
    assert condition(status, "Ready") == ("False", "InvalidSpec")


def test_every_condition_carries_the_observed_generation() -> None:
    status = build_status(OK, NOBODY, None, T0)
    assert status.observed_generation == 3
    assert {c.observed_generation for c in status.conditions} == {3}
    assert {c.type for c in status.conditions} == {
        "Ready", "Allocated", "Degraded", "SplitBrain", "Conflict", "InvalidSpec",
    }


def test_transition_time_is_kept_while_a_condition_holds_and_moves_when_it_flips() -> None:
    first = build_status(OK, view(node_a="MASTER", node_b="BACKUP"), None, T0)
    same = build_status(OK, view(node_a="MASTER", node_b="BACKUP"), first, T1)
    assert same == first  # re-deriving changes nothing: no patch, no watch loop
    flipped = build_status(OK, view(node_a="MASTER", node_b="FAULT"), first, T1)
    times = {c.type: c.last_transition_time for c in flipped.conditions}
    assert times["Degraded"] == T1
    assert times["Ready"] == T0


def test_status_round_trips_the_spec_outcome_so_speaker_updates_need_no_reallocation() -> None:
    for outcome in (OK, SpecOutcome(None, Problem.POOL_EXHAUSTED, "exhausted", 4),
                    SpecOutcome(PAIR, Problem.INVALID_SPEC, "spec.priority: bad", 5)):
        assert outcome_from_status(build_status(outcome, NOBODY, None, T0)) == outcome


def test_before_the_spec_stage_ran_there_is_no_outcome() -> None:
    assert outcome_from_status(None) is None
    speakers_only = VirtualIPStatus.model_validate({"nodes": [{"node": "a", "state": "MASTER"}]})
    assert outcome_from_status(speakers_only) is None


def test_a_master_change_is_an_event_naming_both_nodes_or_none() -> None:
    assert master_changed("node-a", "node-b") == EventSpec("Normal", "MasterChanged", "node-a → node-b")
    assert master_changed(None, "node-a").message == "(none) → node-a"
    assert master_changed("node-a", None).message == "node-a → (none)"


def test_state_events_leave_master_changes_to_the_settling() -> None:
    before = build_status(OK, view(node_a="MASTER", node_b="BACKUP"), None, T0)
    after = build_status(OK, view(node_a="BACKUP", node_b="MASTER"), before, T1)
    assert transition_events(before, after) == []


def test_a_master_losing_its_last_backup_is_a_degraded_warning() -> None:
    before = build_status(OK, view(node_a="MASTER", node_b="BACKUP"), None, T0)
    after = build_status(OK, view(node_a="MASTER", node_b="FAULT"), before, T1)
    assert transition_events(before, after) == [EventSpec("Warning", "Degraded", "the master has no backup")]


def test_entering_split_brain_is_a_warning_event() -> None:
    before = build_status(OK, view(node_a="MASTER", node_b="BACKUP"), None, T0)
    after = build_status(OK, view(node_a="MASTER", node_b="MASTER"), before, T1)
    assert EventSpec("Warning", "SplitBrain", "MASTER on node-a, node-b") in transition_events(before, after)


def test_no_change_no_event() -> None:
    before = build_status(OK, view(node_a="MASTER", node_b="BACKUP"), None, T0)
    again = build_status(OK, view(node_a="MASTER", node_b="BACKUP"), before, T1)
    assert transition_events(before, again) == []


def test_the_status_patch_never_touches_the_speakers_nodes_and_clears_with_null() -> None:
    fields = operator_fields(build_status(OK, NOBODY, None, T0))
    assert "nodes" not in fields
    assert fields["master"] is None  # a merge patch null removes a stale master
    assert all(None not in c.values() for c in fields["conditions"])  # type: ignore[attr-defined]


def test_phase_values_are_the_printer_column_words() -> None:
    assert [p.value for p in Phase] == ["Pending", "Ready", "Degraded", "SplitBrain", "Conflict", "Invalid"]
