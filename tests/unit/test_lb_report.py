"""What the user sees, on object bodies: Service conditions, Events, Announced from the record."""

from __future__ import annotations

import ipaddress
from typing import Any

from keepvip.operator.lb.plan import Outcome
from keepvip.operator.lb.reasons import Allocation
from keepvip.operator.lb.records import NodeView, Record
from keepvip.operator.lb.report import service_events, service_status
from keepvip.operator.lb.service import LbService, parse_service

ADDRESS = ipaddress.ip_address("198.18.0.101")


def svc(status: dict[str, Any] | None = None, **spec: Any) -> LbService:
    body = {
        "metadata": {"name": "web", "namespace": "ns", "generation": 3},
        "spec": {"type": "LoadBalancer", **spec},
        "status": status or {},
    }
    parsed = parse_service(body, default_class=True)
    assert isinstance(parsed, LbService)
    return parsed


def record(master: str | None = None, states: tuple[str, ...] = ()) -> Record:
    nodes = tuple(NodeView(f"node-{i}", s) for i, s in enumerate(states))
    return Record("lb-198-18-0-101", "u", ADDRESS, "main", ("ns/web",), None, {}, master, nodes)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def status_of(
    service: LbService, outcome: Outcome, rec: Record | None, ready: bool | None = True
) -> dict[str, Any]:
    records = {ADDRESS: rec} if rec is not None else {}
    return service_status(
        service=service,
        outcome=outcome,
        records=records,
        ready=ready,
        server_knows_ip_mode=False,
        now="2026-01-01T12:00:00Z",
    )


def test_allocation_writes_ingress_at_once_and_announced_waits_for_a_holder() -> None:
    outcome = Outcome(addresses=[ADDRESS], new=[ADDRESS])
    status = status_of(svc(), outcome, None)
    assert status["loadBalancer"]["ingress"] == [{"ip": "198.18.0.101"}]
    got = conditions(status)
    assert got["keepvip.io/Allocated"]["status"] == "True"
    assert got["keepvip.io/Allocated"]["observedGeneration"] == 3
    assert got["keepvip.io/Announced"]["reason"] == "Electing"
    held = conditions(status_of(svc(), outcome, record("node-b", ("BACKUP", "MASTER"))))[
        "keepvip.io/Announced"
    ]
    assert held["status"] == "True"
    assert held["message"] == "198.18.0.101 on node-b"


def test_local_policy_without_local_endpoints_anywhere_says_so() -> None:
    local = svc(externalTrafficPolicy="Local", healthCheckNodePort=31000)
    outcome = Outcome(addresses=[ADDRESS])
    announced = conditions(status_of(local, outcome, record(None, ("FAULT", "FAULT"))))[
        "keepvip.io/Announced"
    ]
    assert announced["reason"] == "NoLocalEndpoints"
    assert "31000" in announced["message"]


def test_cluster_policy_without_ready_endpoints_says_withdrawn_unless_opted_out() -> None:
    outcome = Outcome(addresses=[ADDRESS])
    announced = conditions(status_of(svc(), outcome, record(), ready=False))["keepvip.io/Announced"]
    assert announced["reason"] == "NoReadyEndpoints"
    assert announced["status"] == "False"


def test_failure_event_once_per_new_reason_and_transition_time_kept() -> None:
    outcome = Outcome(failure=(Allocation.POOL_EXHAUSTED, "no free IPv4 address in pool main"))
    first = status_of(svc(), outcome, None)
    assert [e.reason.value for e in service_events(svc(), outcome, first)] == ["AllocationFailed"]
    again = svc(status=first)
    second = status_of(again, outcome, None)
    assert service_events(again, outcome, second) == []
    assert second["conditions"] == first["conditions"]


def test_others_conditions_are_kept_and_a_release_is_a_clear_assignment() -> None:
    theirs = {
        "type": "example.com/Thing",
        "status": "True",
        "reason": "X",
        "message": "",
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }
    before = svc(status={"loadBalancer": {"ingress": [{"ip": "198.18.0.101"}]}, "conditions": [theirs]})
    status = status_of(before, Outcome(), None)
    assert status["conditions"][0] == theirs
    assert [e.reason.value for e in service_events(before, Outcome(), status)] == ["ClearAssignment"]


def test_pool_status_counts_orphans_and_reports_an_overlap_with_another_pool() -> None:
    from datetime import UTC, datetime, timedelta

    from keepvip.api.pool import parse_pool
    from keepvip.operator.lb.pools import PoolView
    from keepvip.operator.lb.report import pool_status

    def view(name: str, addresses: list[str]) -> PoolView:
        return PoolView.of(
            parse_pool({"metadata": {"name": name, "generation": 2}, "spec": {"addresses": addresses}})
        )

    main = view("main", ["198.18.0.96/30"])  # .97, .98 usable
    other = view("other", ["198.18.0.98-198.18.0.99"])
    held = [ipaddress.ip_address("198.18.0.97"), ipaddress.ip_address("198.18.0.120")]  # .120: pool shrunk
    status = pool_status(
        view=main,
        held=held,
        releases=[],
        others=[main, other],
        now=datetime(2026, 1, 1, tzinfo=UTC),
        default_delay=timedelta(0),
        previous=None,
    )
    assert status.ipv4 is not None
    assert (status.ipv4.total, status.ipv4.assigned, status.ipv4.available) == (2, 1, 1)
    assert status.orphaned == 1
    conflict = next(c for c in status.conditions if c.type == "Conflict")
    assert (conflict.status, conflict.reason) == ("True", "Overlap")
    assert conflict.message is not None
    assert "other" in conflict.message
