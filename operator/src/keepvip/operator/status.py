"""The operator's part of a VirtualIP's status, derived from what the speakers report.

Speakers own ``status.nodes`` (one server-side-apply field manager per node); the
operator owns everything else in status: the allocated pair, ``master``, the summary
``state``, its settled reading of the nodes (``settled``) and the conditions. What the
operator needs to go on after a restart it reads back from typed fields (``master``,
``settled``, the Allocated and InvalidSpec reasons); condition messages are free text
for people and are never parsed. Everything here is pure: the same inputs always give
the same status, and a condition keeps its ``lastTransitionTime`` while its status
does not change, so re-deriving after the operator's own patch changes nothing and the
watch does not loop.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from keepvip.api.model import Condition, NodeStatus, SettledView, VirtualIPStatus, VrrpState
from keepvip.api.phase import Phase
from keepvip.operator.allocation import Pair
from keepvip.operator.problems import Problem
from keepvip.operator.serviceref import ServiceOutcome, ServiceRefReason


class ConditionType(enum.StrEnum):
    """The condition types the operator writes."""

    READY = "Ready"
    ALLOCATED = "Allocated"
    DEGRADED = "Degraded"
    SPLIT_BRAIN = "SplitBrain"
    CONFLICT = "Conflict"
    INVALID_SPEC = "InvalidSpec"
    SERVICE_PUBLISHED = "ServicePublished"  # only with spec.serviceRef (keepvip.operator.serviceref)


_CONFLICTS = (Problem.PAIR_IN_USE, Problem.ADDRESS_IN_USE)
_PROBLEMS = {problem.value for problem in Problem}
_SERVICE_REASONS = {reason.value for reason in ServiceRefReason}


@dataclass(frozen=True)
class SpecOutcome:
    """What the spec stage (parse, conflicts, allocation) concluded for one generation."""

    pair: Pair | None
    problem: Problem | None = None
    message: str = ""
    generation: int | None = None
    service: ServiceOutcome | None = None  # spec.serviceRef's outcome; None without one


@dataclass(frozen=True)
class Unheard:
    """A speaker's entry the operator does not trust: its node is not Ready (or gone).

    A node cut off from the network cannot update its entry, so the entry keeps saying
    what it said last (often MASTER, although the node's arbiter has put it in FAULT
    long since). Kubernetes marks such a node NotReady after the node-monitor grace
    period; from then on the entry counts as Unknown, neither master nor backup.
    """

    node: str
    state: str
    why: str  # "node NotReady" | "no Node object"

    def __str__(self) -> str:
        return f"{self.node}: last reported {self.state}, {self.why}"


@dataclass(frozen=True)
class Observation:
    """What the speakers' entries say: who is master, who backs it up, whom we ignore."""

    masters: tuple[str, ...]
    backups: tuple[str, ...]
    unheard: tuple[Unheard, ...] = ()
    preferred: str | None = None
    """Which of several masters ``status.master`` names (see :mod:`keepvip.operator.settle`);
    None: the first by name."""
    backups_pending: bool = False
    """A master without backup for less than the grace period: not Degraded yet."""

    @classmethod
    def of(cls, nodes: Sequence[NodeStatus], readiness: Mapping[str, bool] | None = None) -> Observation:
        """Read the speakers' entries (sorted by node name, so the result is stable).

        ``readiness`` maps node name to whether its Node is Ready; entries of nodes that
        are not Ready, or absent from it, are set aside as :class:`Unheard`. None trusts
        every entry.
        """
        ordered = sorted(nodes, key=lambda n: n.node)
        trusted = [n for n in ordered if readiness is None or readiness.get(n.node, False)]
        unheard = tuple(
            Unheard(n.node, n.state.value, "node NotReady" if n.node in readiness else "no Node object")
            for n in ordered
            if readiness is not None and not readiness.get(n.node, False)
        )
        return cls(
            masters=tuple(n.node for n in trusted if n.state is VrrpState.MASTER),
            backups=tuple(n.node for n in trusted if n.state is VrrpState.BACKUP),
            unheard=unheard,
        )

    @property
    def master(self) -> str | None:
        """The node holding the VIP; with a split brain the preferred one, else the first by name."""
        if self.preferred is not None and self.preferred in self.masters:
            return self.preferred
        return self.masters[0] if self.masters else None

    @property
    def settled(self) -> bool:
        """One master and at least one backup: nothing is in flight, nothing to wait for."""
        return len(self.masters) == 1 and bool(self.backups)


@dataclass(frozen=True)
class _Conditions:
    """Makes conditions that keep lastTransitionTime while their status holds."""

    previous: Sequence[Condition]
    generation: int | None
    now: str

    def make(self, kind: ConditionType, true: bool, reason: str, message: str) -> Condition:
        status = "True" if true else "False"
        before = next((c for c in self.previous if c.type == kind.value), None)
        unchanged = before is not None and before.status == status
        since = before.last_transition_time if before is not None and unchanged else self.now
        return Condition.model_validate(
            {
                "type": kind.value,
                "status": status,
                "reason": reason,
                "message": message or None,  # absent rather than empty
                "lastTransitionTime": since,
                "observedGeneration": self.generation,
            }
        )


def phase_of(outcome: SpecOutcome, seen: Observation) -> Phase:
    """The summary state: spec problems first, then what the speakers report."""
    if outcome.problem is Problem.INVALID_SPEC:
        return Phase.INVALID
    if outcome.problem in _CONFLICTS:
        return Phase.CONFLICT
    if outcome.pair is None or not seen.masters:
        return Phase.PENDING
    if len(seen.masters) > 1:
        return Phase.SPLIT_BRAIN
    if not seen.backups and not seen.backups_pending:
        return Phase.DEGRADED
    return Phase.READY


def build_status(
    outcome: SpecOutcome,
    seen: Observation,
    previous: VirtualIPStatus | None,
    now: str,
) -> VirtualIPStatus:
    """The operator's fields of status (``nodes`` is left to the speakers).

    ``seen`` is the settled view (:func:`keepvip.operator.settle.settle`), not the raw
    entries: a takeover observed half-way must not reach status.
    """
    before = previous.conditions if previous is not None else ()
    generation = outcome.generation
    phase = phase_of(outcome, seen)
    allocated = outcome.pair is not None and outcome.problem is None
    problem = outcome.problem

    make = _Conditions(before, generation, now).make
    conditions = [
        make(
            ConditionType.READY,
            phase in (Phase.READY, Phase.DEGRADED),
            _ready_reason(phase),
            _ready_message(seen),
        ),
        make(
            ConditionType.ALLOCATED,
            allocated,
            "Allocated" if allocated else (problem.value if problem else "Pending"),
            f"{outcome.pair}" if allocated else (outcome.message or "waiting for allocation"),
        ),
        make(
            ConditionType.DEGRADED,
            phase is Phase.DEGRADED,
            _degraded_reason(phase, seen),
            f"backups: {', '.join(seen.backups)}" if seen.backups else "no node is BACKUP",
        ),
        make(
            ConditionType.SPLIT_BRAIN,
            len(seen.masters) > 1,
            "MultipleMasters" if len(seen.masters) > 1 else "SingleMaster",
            f"MASTER on {', '.join(seen.masters)}" if seen.masters else "no node is MASTER",
        ),
        make(
            ConditionType.CONFLICT,
            problem in _CONFLICTS,
            problem.value if problem in _CONFLICTS and problem else "NoConflict",
            outcome.message if problem in _CONFLICTS else "",
        ),
        make(
            ConditionType.INVALID_SPEC,
            problem is Problem.INVALID_SPEC,
            "ValidationFailed" if problem is Problem.INVALID_SPEC else "Valid",
            outcome.message if problem is Problem.INVALID_SPEC else "",
        ),
    ]
    if outcome.service is not None:
        service = outcome.service
        conditions.append(
            make(ConditionType.SERVICE_PUBLISHED, service.published, service.reason.value, service.message)
        )
    return VirtualIPStatus(
        vrid=outcome.pair.vrid if outcome.pair is not None else None,
        multicast_group=str(outcome.pair.group) if outcome.pair is not None else None,
        master=seen.master,
        state=phase,
        settled=SettledView(masters=seen.masters, backups=seen.backups, backup_pending=seen.backups_pending),
        conditions=tuple(conditions),
        observed_generation=generation,
    )


def _degraded_reason(phase: Phase, seen: Observation) -> str:
    if phase is Phase.DEGRADED:
        return "NoBackup"
    if seen.backups:
        return "Redundant"
    return "BackupPending" if seen.master and seen.backups_pending else "NoMaster"


def _ready_message(seen: Observation) -> str:
    holder = f"{seen.master} holds the addresses" if seen.master else "no node holds the addresses"
    return "; ".join([holder, *(str(u) for u in seen.unheard)])


def _ready_reason(phase: Phase) -> str:
    return {
        Phase.READY: "MasterElected",
        Phase.DEGRADED: "MasterElected",
        Phase.PENDING: "NoMaster",
        Phase.SPLIT_BRAIN: "SplitBrain",
        Phase.CONFLICT: "Conflict",
        Phase.INVALID: "InvalidSpec",
    }[phase]


def outcome_from_status(status: VirtualIPStatus | None) -> SpecOutcome | None:
    """The spec stage's last conclusion as status records it; None before its first run.

    Lets the speakers' status updates be aggregated without redoing the spec stage.
    """
    if status is None or status.observed_generation is None:
        return None
    pair = None
    if status.vrid is not None and status.multicast_group:
        pair = Pair(ip_address(status.multicast_group), status.vrid)
    allocated = next((c for c in status.conditions if c.type == ConditionType.ALLOCATED.value), None)
    invalid = next((c for c in status.conditions if c.type == ConditionType.INVALID_SPEC.value), None)
    problem: Problem | None = None
    message = ""
    if invalid is not None and invalid.status == "True":
        problem, message = Problem.INVALID_SPEC, invalid.message or ""
    elif allocated is not None and allocated.status == "False" and allocated.reason in _PROBLEMS:
        problem, message = Problem(allocated.reason), allocated.message or ""
    published = next((c for c in status.conditions if c.type == ConditionType.SERVICE_PUBLISHED.value), None)
    service = None
    if published is not None and published.reason in _SERVICE_REASONS:
        service = ServiceOutcome(ServiceRefReason(published.reason), published.message or "")
    return SpecOutcome(pair, problem, message, status.observed_generation, service)


def view_from_status(status: VirtualIPStatus | None) -> Observation:
    """The settled view a status records (``master`` and ``settled``), as :func:`build_status` wrote it.

    What the operator starts from when it first sees a VirtualIP (after a restart), so
    that a takeover in flight at that moment does not flip the recorded story. A status
    without ``settled`` (none written yet) gives its ``master`` alone.
    """
    if status is None:
        return Observation((), ())
    if status.settled is None:
        return Observation((status.master,) if status.master else (), (), preferred=status.master)
    settled = status.settled
    return Observation(
        settled.masters, settled.backups, preferred=status.master, backups_pending=settled.backup_pending
    )


def operator_fields(status: VirtualIPStatus) -> dict[str, object]:
    """The part of status the operator writes, as a merge patch (camelCase, nulls clear)."""
    body = status.model_dump(mode="json", by_alias=True, exclude={"nodes", "conditions"})
    body["conditions"] = [
        c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in status.conditions
    ]
    return body


@dataclass(frozen=True)
class EventSpec:
    """A Kubernetes Event to post about a VirtualIP."""

    type: str  # Normal | Warning
    reason: str
    message: str


def master_changed(old: str | None, new: str | None) -> EventSpec:
    """The ``MasterChanged`` event: ``node-a → node-b``, ``(none)`` for no master."""
    return EventSpec("Normal", "MasterChanged", f"{old or '(none)'} → {new or '(none)'}")


def transition_events(previous: VirtualIPStatus | None, current: VirtualIPStatus) -> list[EventSpec]:
    """Warnings when the state turns SplitBrain or Degraded (master changes: :func:`master_changed`)."""
    events: list[EventSpec] = []
    old_state = previous.state if previous is not None else None
    if current.state != old_state:
        if current.state is Phase.SPLIT_BRAIN:
            split = next(c for c in current.conditions if c.type == ConditionType.SPLIT_BRAIN.value)
            events.append(EventSpec("Warning", "SplitBrain", split.message or "several masters"))
        elif current.state is Phase.DEGRADED:
            events.append(EventSpec("Warning", "Degraded", "the master has no backup"))
    return events
