"""Status is not a control channel: what a cluster speaker takes from a VirtualIP's status (issue 10).

Every speaker may patch every VirtualIP's status, so a speaker believes a status field
only when it satisfies the spec's own rules, and acts only on a generation the operator
has accepted (its Allocated condition for that generation), keeping the last accepted
one otherwise. The bodies below are what the API server would hand the watch.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from ipaddress import ip_address
from typing import Any

import pytest
from kubernetes import client

from keepvip.api.model import NodeStatus
from keepvip.speaker.desired import NodeIdentity, PlanProblem, desired_routers
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.failures import FailureReport
from keepvip.speaker.sources.kubernetes import KubernetesSource, StatusWriter
from keepvip.speaker.sources.snapshot import ConfigSnapshot
from keepvip.speaker.sources.status_gate import AcceptedGenerations, StatusProblem

NODE = NodeIdentity("node-a", {})


def allocated(generation: int | None, *, status: str = "True") -> dict[str, Any]:
    return {"type": "Allocated", "status": status, "reason": "Allocated", "observedGeneration": generation}


def body(
    name: str = "web",
    *,
    generation: int = 1,
    vrid: object = 7,
    group: object = "224.0.0.116",
    conditions: list[dict[str, Any]] | None = None,
    address: str = "198.18.0.100/24",
    **vrrp: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {"vrid": vrid, "multicastGroup": group}
    status["conditions"] = [allocated(generation)] if conditions is None else conditions
    return {
        "apiVersion": "keepvip.io/v1alpha1",
        "kind": "VirtualIP",
        "metadata": {"name": name, "generation": generation},
        "spec": {"addresses": [address], "vrrp": vrrp},
        "status": status,
    }


def plans_for(gate: AcceptedGenerations, *bodies: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    selected = gate.select({b["metadata"]["name"]: b for b in bodies})
    return desired_routers(selected.virtualips, NODE, {}, use_status_allocation=True,
                           pending=selected.pending, invalid_status=selected.invalid_status)  # fmt: skip


async def snapshot_of(metrics: SpeakerMetrics, *bodies: dict[str, Any]) -> ConfigSnapshot:
    """What the cluster source makes of a VirtualIP list (no API server is contacted)."""
    source = KubernetesSource("node-a", client.ApiClient(), metrics)
    source._node_listed([client.V1Node(metadata=client.V1ObjectMeta(name="node-a", labels={}))])
    source._vips_listed(list(bodies))
    return await asyncio.wait_for(anext(source.snapshots()), 5)


def planned(snapshot: ConfigSnapshot) -> tuple[dict[str, Any], list[Any]]:
    return desired_routers(snapshot.virtualips, NODE, {}, use_status_allocation=True,
                           pending=snapshot.pending, invalid_status=snapshot.invalid_status)  # fmt: skip


def test_an_accepted_allocation_runs() -> None:
    plans, skipped = plans_for(AcceptedGenerations(), body())
    assert skipped == []
    assert (plans["web"].vrid, plans["web"].group) == (7, ip_address("224.0.0.116"))


@pytest.mark.parametrize("vrid", ["abc", 0, 300, True, 7.5, [7]])
def test_a_status_vrid_outside_the_specs_rules_counts_as_not_allocated_and_is_counted(vrid: object) -> None:
    metrics = SpeakerMetrics()
    snapshot = asyncio.run(snapshot_of(metrics, body(vrid=vrid)))
    plans, skipped = planned(snapshot)
    assert plans == {}
    assert [s.problem for s in skipped] == [PlanProblem.INVALID_STATUS]
    assert skipped[0].detail.startswith("status.vrid: ")
    assert metrics.status_invalid.labels(StatusProblem.INVALID_VRID.value).value == 1


@pytest.mark.parametrize(
    ("group", "address"),
    [
        ("198.18.0.1", "198.18.0.100/24"),  # unicast, not a group
        ("239.1.1.1", "198.18.0.100/24"),  # multicast, but not link-local (the spec refuses it)
        ("ff02::12", "198.18.0.100/24"),  # a group of the other family
        ("224.0.0.18", "2001:db8::100/64"),
        ("ff02::12%eth0", "2001:db8::100/64"),  # a zone index matches no packet
        (12, "198.18.0.100/24"),
        ("x" * 100_000, "198.18.0.100/24"),
    ],
)
def test_a_status_group_outside_the_specs_rules_counts_as_not_allocated_and_is_counted(
    group: object, address: str
) -> None:
    metrics = SpeakerMetrics()
    snapshot = asyncio.run(snapshot_of(metrics, body(group=group, address=address)))
    plans, skipped = planned(snapshot)
    assert plans == {}
    assert [s.problem for s in skipped] == [PlanProblem.INVALID_STATUS]
    assert skipped[0].detail.startswith("status.multicastGroup: ")
    assert len(skipped[0].detail) < 300  # a refused value is quoted short
    assert metrics.status_invalid.labels(StatusProblem.INVALID_MULTICAST_GROUP.value).value == 1


def test_a_refusal_is_counted_once_per_change_not_per_snapshot() -> None:
    refused: list[StatusProblem] = []
    gate = AcceptedGenerations(lambda refusal: refused.append(refusal.problem))
    for _ in range(3):
        plans_for(gate, body(vrid="abc"))
    assert refused == [StatusProblem.INVALID_VRID]


def test_a_status_that_is_not_an_object_is_not_allocated() -> None:
    broken = body()
    broken["status"] = ["vrid", 7]
    plans, skipped = plans_for(AcceptedGenerations(), broken)
    assert plans == {}
    assert [s.problem for s in skipped] == [PlanProblem.INVALID_STATUS]


@pytest.mark.parametrize(
    "conditions",
    [
        [],  # the operator has not looked at it
        [allocated(1, status="False")],  # refused (e.g. PairInUse)
        [allocated(0)],  # accepted an older generation only
        [allocated(None)],
        ["Allocated"],  # not a condition at all
    ],
)
def test_a_generation_the_operator_has_not_accepted_does_not_run(conditions: list[Any]) -> None:
    plans, skipped = plans_for(AcceptedGenerations(), body(conditions=conditions))
    assert plans == {}
    assert [s.problem for s in skipped] == [PlanProblem.NOT_ALLOCATED]


def test_a_pinned_vrid_runs_only_once_the_operator_accepted_it() -> None:
    gate = AcceptedGenerations()
    # A fail-open webhook let a VirtualIP pin another one's VRID: the operator refuses it.
    intruder = body("intruder", vrid=None, group=None, conditions=[allocated(1, status="False")])
    intruder["spec"]["vrrp"] = {"vrid": 7}
    plans, _ = plans_for(gate, body(), intruder)
    assert set(plans) == {"web"}


def test_fail_static_keeps_the_last_accepted_generation_until_the_next_is_accepted() -> None:
    gate = AcceptedGenerations()
    plans, _ = plans_for(gate, body(generation=1))
    assert plans["web"].vrid == 7

    # Generation 2 pins VRID 99; the operator has not accepted it (yet, or ever).
    edited = body(generation=2, conditions=[allocated(1)], vrid=7)
    edited["spec"]["vrrp"] = {"vrid": 99}
    plans, skipped = plans_for(gate, edited)
    assert (plans["web"].vrid, skipped) == (7, [])

    # Someone with the speakers' token writes garbage into status: still the accepted one.
    plans, _ = plans_for(gate, body(generation=2, vrid="abc", conditions=[allocated(2)]))
    assert plans["web"].vrid == 7

    # The operator accepts generation 2: now it runs.
    accepted = body(generation=2, vrid=99, conditions=[allocated(2)])
    accepted["spec"]["vrrp"] = {"vrid": 99}
    plans, _ = plans_for(gate, accepted)
    assert plans["web"].vrid == 99


def test_a_deleted_virtualip_is_forgotten() -> None:
    gate = AcceptedGenerations()
    plans_for(gate, body())
    assert plans_for(gate) == ({}, [])
    plans, skipped = plans_for(gate, body(conditions=[]))
    assert plans == {}
    assert [s.problem for s in skipped] == [PlanProblem.NOT_ALLOCATED]


def test_a_virtualip_that_cannot_run_gets_a_fault_entry_with_reason_and_message() -> None:
    report = FailureReport(
        virtualip="web",
        reason="interface_not_found",
        message="spec.interface: no interface named 'lan1' on this node",
        interface="lan1",
        priority=120,
        since=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    entry = StatusWriter("node-c", client.ApiClient()).entry(report)
    assert entry == {
        "node": "node-c",
        "state": "FAULT",
        "priority": 120,
        "effectivePriority": 0,
        "interface": "lan1",
        "since": "2026-01-02T03:04:05Z",
        "reason": "interface_not_found",
        "message": "spec.interface: no interface named 'lan1' on this node",
    }
    NodeStatus.model_validate(entry)  # the API model (and so the CRD) has every field
