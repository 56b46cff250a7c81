"""What the user sees (pure): the Service's status and Events, and the pool's status.

``status.loadBalancer.ingress`` is written when the address is allocated, not when a
node is elected, so ``kubectl get svc`` shows the EXTERNAL-IP at once and external-dns
can publish it; whether it is announced yet is the ``keepvip.io/Announced`` condition.
Conditions follow ``metav1.Condition`` (Service ``status.conditions`` exists since
Kubernetes 1.20); a condition's ``lastTransitionTime`` changes only with its status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from keepvip.api.pool import FamilyUsage, ReleasedAddress, VirtualIPPoolStatus
from keepvip.api.timestamps import rfc3339
from keepvip.inet import IPAddress
from keepvip.operator.lb.plan import Outcome, Release
from keepvip.operator.lb.pools import PoolView
from keepvip.operator.lb.reasons import (
    ALLOCATED_CONDITION,
    ANNOUNCED_CONDITION,
    Allocation,
    Announcement,
    EventReason,
)
from keepvip.operator.lb.records import Record
from keepvip.operator.lb.service import LbService

OUR_CONDITIONS = (ALLOCATED_CONDITION, ANNOUNCED_CONDITION)


@dataclass(frozen=True)
class ServiceEvent:
    """An Event to post on the Service."""

    type: str
    reason: EventReason
    message: str


def ingress(addresses: Sequence[IPAddress], ip_mode: str, server_knows_ip_mode: bool) -> list[dict[str, Any]]:
    """``status.loadBalancer.ingress`` (``ipMode`` only where the API server has the field, 1.29+)."""
    return [{"ip": str(a), **({"ipMode": ip_mode} if server_knows_ip_mode else {})} for a in addresses]


def _announced(
    service: LbService, outcome: Outcome, records: Mapping[IPAddress, Record], ready: bool | None
) -> tuple[bool, Announcement, str]:
    if not outcome.addresses:
        return False, Announcement.NOT_ALLOCATED, "no address is allocated"
    held: list[str] = []
    for address in outcome.addresses:
        record = records.get(address)
        if record is not None and record.master:
            held.append(f"{address} on {record.master}")
            continue
        if not service.local and ready is False and not service.announce_without_endpoints:
            return (
                False,
                Announcement.NO_READY_ENDPOINTS,
                f"{address} is withdrawn: the Service has no ready endpoint (externalTrafficPolicy Cluster)",
            )
        nodes = record.nodes if record is not None else ()
        if service.local and nodes and all(n.state == "FAULT" for n in nodes):
            return (
                False,
                Announcement.NO_LOCAL_ENDPOINTS,
                (
                    f"{address} is released: no node has a ready local endpoint "
                    f"(kube-proxy healthCheckNodePort {service.health_check_node_port} fails on every node)"
                ),
            )
        return False, Announcement.ELECTING, f"{address}: waiting for the speakers to elect a holder"
    return True, Announcement.HELD, ", ".join(held)


def _condition(  # noqa: PLR0917 - the fields of one metav1.Condition
    kind: str,
    status: bool,
    reason: str,
    message: str,
    old: Mapping[str, Any] | None,
    now: str,
    generation: int | None,
) -> dict[str, Any]:
    text = "True" if status else "False"
    since = old.get("lastTransitionTime") if old and old.get("status") == text else None
    condition: dict[str, Any] = {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def service_status(
    *,
    service: LbService,
    outcome: Outcome,
    records: Mapping[IPAddress, Record],
    ready: bool | None,
    server_knows_ip_mode: bool,
    now: str,
) -> dict[str, Any]:
    """The Service's wanted ``status``: ingress and conditions (others' conditions kept)."""
    old = {c.get("type"): c for c in service.conditions}
    if outcome.failure is not None:
        allocated = (False, outcome.failure[0].value, outcome.failure[1])
    else:
        allocated = (True, Allocation.ALLOCATED.value, ", ".join(str(a) for a in outcome.addresses))
    held, reason, message = _announced(service, outcome, records, ready)
    ours = [
        _condition(ALLOCATED_CONDITION, *allocated, old.get(ALLOCATED_CONDITION), now, service.generation),
        _condition(
            ANNOUNCED_CONDITION,
            held,
            reason.value,
            message,
            old.get(ANNOUNCED_CONDITION),
            now,
            service.generation,
        ),
    ]
    others = [dict(c) for c in service.conditions if c.get("type") not in OUR_CONDITIONS]
    return {
        "loadBalancer": {"ingress": ingress(outcome.addresses, service.ip_mode, server_knows_ip_mode)},
        "conditions": others + ours,
    }


def service_events(service: LbService, outcome: Outcome, wanted: Mapping[str, Any]) -> list[ServiceEvent]:
    """MetalLB's Events for what changed since the Service's current status."""
    events: list[ServiceEvent] = []
    if outcome.new:
        shown = ", ".join(f'"{a}"' for a in outcome.new)
        events.append(ServiceEvent("Normal", EventReason.IP_ALLOCATED, f"Assigned IP [{shown}]"))
    old = {c.get("type"): c for c in service.conditions}
    new = {c["type"]: c for c in wanted["conditions"]}
    before, after = old.get(ALLOCATED_CONDITION) or {}, new[ALLOCATED_CONDITION]
    if after["status"] == "False" and (before.get("reason"), before.get("message")) != (
        after["reason"],
        after["message"],
    ):
        events.append(
            ServiceEvent("Warning", EventReason.ALLOCATION_FAILED, f"{after['reason']}: {after['message']}")
        )
    gone = [a for a in service.ingress if a not in outcome.addresses]
    if gone:
        shown = ", ".join(str(a) for a in gone)
        events.append(ServiceEvent("Normal", EventReason.CLEAR_ASSIGNMENT, f"Released [{shown}]"))
    before, after = old.get(ANNOUNCED_CONDITION) or {}, new[ANNOUNCED_CONDITION]
    if after["status"] == "True" and before.get("message") != after["message"]:
        events.append(
            ServiceEvent("Normal", EventReason.NODE_ASSIGNED, f"announcing {after['message']} (VRRP)")
        )
    return events


def pool_status(
    *,
    view: PoolView,
    held: Sequence[IPAddress],
    releases: Sequence[Release],
    others: Sequence[PoolView],
    now: datetime,
    default_delay: timedelta,
    previous: VirtualIPPoolStatus | None,
) -> VirtualIPPoolStatus:
    """Usage per family, orphans, resting addresses, Ready and Conflict.

    ``held``: the addresses of the pool's records after this pass.
    """
    inside = [a for a in held if a in view]
    usage: dict[int, FamilyUsage] = {}
    for family in sorted(view.pool.spec.families()):
        total = view.size(family)
        assigned = sum(1 for a in inside if a.version == family)
        usage[family] = FamilyUsage(total=total, assigned=assigned, available=max(0, total - assigned))
    delay = view.reuse_delay(default_delay)
    kept = [
        entry for entry in (previous.released if previous else ())
        if _age(entry, now) < delay and all(entry.address != str(r.record.address) for r in releases)
    ]  # fmt: skip
    kept += [
        ReleasedAddress(address=str(r.record.address), service=r.service, released_at=rfc3339(now))
        for r in releases
    ]
    if delay <= timedelta(0):
        kept = []
    overlaps = sorted(
        other.name for other in others
        if other.name != view.name and any(a.overlaps(b) for a in view.blocks for b in other.blocks)
    )  # fmt: skip
    old = {
        c.type: c.model_dump(by_alias=True, exclude_none=True)
        for c in (previous.conditions if previous else ())
    }
    stamp = rfc3339(now)
    generation = view.pool.metadata.generation
    if overlaps:
        conflict = (True, "Overlap", f"addresses also in pool {', '.join(overlaps)}: each goes out once")
    else:
        conflict = (False, "NoOverlap", "no address is in another pool")
    conditions = [
        _condition("Ready", True, "Valid", "the pool's spec is usable", old.get("Ready"), stamp, generation),
        _condition("Conflict", *conflict, old.get("Conflict"), stamp, generation),
    ]
    return VirtualIPPoolStatus.model_validate(
        {
            "ipv4": usage[4].model_dump() if 4 in usage else None,
            "ipv6": usage[6].model_dump() if 6 in usage else None,
            "orphaned": len(held) - len(inside),
            "released": [e.model_dump(by_alias=True) for e in kept],
            "conditions": conditions,
            "observedGeneration": generation,
        }
    )


def invalid_pool_status(message: str, generation: int | None, now: datetime) -> dict[str, Any]:
    """The status of a pool whose spec does not parse (what slipped past the webhook)."""
    return {
        "conditions": [_condition("Ready", False, "InvalidSpec", message, None, rfc3339(now), generation)],
        "observedGeneration": generation,
    }


def _age(entry: ReleasedAddress, now: datetime) -> timedelta:
    try:
        return now - datetime.fromisoformat(entry.released_at.replace("Z", "+00:00"))
    except ValueError:
        return timedelta.max
