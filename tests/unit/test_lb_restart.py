"""bench/lb_restart.py: what an operator restart changed, judged from two readings of the
Services' ``status.loadBalancer.ingress`` (changed addresses, duplicates not shared)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench")]

from lb_restart import (  # noqa: E402
    Assigned,
    assigned,
    compare,
    new_events,
    operator_writes,
    passes,
    status_changes,
)

A, B, C = "198.18.204.1", "198.18.204.2", "198.18.204.3"


def service(name: str, *ips: str, namespace: str = "ns", key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace}}
    if key is not None:
        body["metadata"]["annotations"] = {"keepvip.io/sharing-key": key}
    if ips:
        body["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    return body


def test_the_reading_keys_services_by_namespace_and_keeps_every_ingress_address() -> None:
    read = assigned(
        [service("one", A, "2001:db8::1", key="web"), service("two"), service("one", B, namespace="x")]
    )
    assert read == {
        "ns/one": Assigned(frozenset({A, "2001:db8::1"}), "ns/web"),
        "ns/two": Assigned(frozenset(), None),
        "x/one": Assigned(frozenset({B}), None),
    }


def test_the_same_addresses_after_the_restart_is_a_clean_verdict() -> None:
    before = assigned([service("one", A), service("two", B)])
    verdict = compare(before, assigned([service("two", B), service("one", A)]))
    assert verdict.ok()
    assert (verdict.changed, verdict.duplicates) == ({}, {})


def test_a_moved_a_lost_and_a_vanished_address_are_each_a_change() -> None:
    before = assigned([service("one", A), service("two", B), service("three", C)])
    verdict = compare(before, assigned([service("one", C), service("two")]))
    assert verdict.changed == {"ns/one": ([A], [C]), "ns/three": ([C], []), "ns/two": ([B], [])}
    assert not verdict.ok()


def test_one_address_on_two_services_that_do_not_share_is_a_duplicate() -> None:
    before = assigned([service("one", A), service("two", B)])
    verdict = compare(before, assigned([service("one", A), service("two", B, A)]))
    assert verdict.duplicates == {A: ["ns/one", "ns/two"]}
    assert verdict.changed == {"ns/two": ([B], [A, B])}


def test_sharing_is_only_within_one_namespace_and_one_key() -> None:
    shared = [service("one", A, key="web"), service("two", A, key="web")]
    assert compare(assigned(shared), assigned(shared)).ok()
    for other in (
        service("two", A, key="api"),
        service("two", A),
        service("two", A, namespace="x", key="web"),
    ):
        after = assigned([shared[0], other])
        assert list(compare(after, after).duplicates) == [A]


def test_the_finished_passes_are_read_from_the_operators_metrics() -> None:
    text = "\n".join([
        "# HELP keepvip_operator_reconcile_total Handler runs, by handler and result.",
        'keepvip_operator_reconcile_total{handler="spec",result="ok"} 7.0',
        'keepvip_operator_reconcile_total{handler="loadbalancer",result="error"} 1.0',
        'keepvip_operator_reconcile_total{handler="loadbalancer",result="ok"} 2.0',
        'keepvip_operator_reconcile_created{handler="loadbalancer",result="ok"} 1.7e+09',
    ])  # fmt: skip
    assert passes(text) == 2
    assert (
        passes(text.replace('handler="loadbalancer",result="ok"', 'handler="loadbalancer",result="x"')) == 0
    )
    assert passes("") == 0


def announced(name: str, message: str, since: str = "2026-11-30T01:00:00Z") -> dict[str, Any]:
    body = service(name, A)
    body["status"]["conditions"] = [
        {"type": "keepvip.io/Allocated", "status": "True", "reason": "Allocated", "message": A},
        {"type": "keepvip.io/Announced", "status": "True", "reason": "Held", "message": message,
         "lastTransitionTime": since},
    ]  # fmt: skip
    return body


def test_a_restart_that_rewrites_a_condition_is_named_field_by_field() -> None:
    before = [announced("one", f"{A} on node-c"), announced("two", f"{A} on node-c")]
    after = [
        announced("one", f"{A} on node-c"),
        announced("two", f"{A}: waiting", since="2026-11-30T02:00:00Z"),
    ]
    assert status_changes(before, after) == {
        "ns/two": [
            "conditions[keepvip.io/Announced].lastTransitionTime: "
            "'2026-11-30T01:00:00Z' -> '2026-11-30T02:00:00Z'",
            f"conditions[keepvip.io/Announced].message: '{A} on node-c' -> '{A}: waiting'",
        ]
    }
    assert status_changes(before, before) == {}


def test_fields_written_by_others_and_objects_of_one_reading_only_are_not_compared() -> None:
    record = {"metadata": {"name": "lb-1"}, "status": {"master": "node-c", "nodes": [{"node": "node-a"}]}}
    moved = {"metadata": {"name": "lb-1"}, "status": {"master": "node-c", "nodes": [{"node": "node-b"}]}}
    assert status_changes([record], [moved], skip=("nodes",)) == {}
    assert status_changes([record], [moved]) != {}
    assert status_changes([], [record]) == {}
    ingress = service("one", A)
    assert status_changes([ingress], [service("one", B)]) == {
        "ns/one": [f"loadBalancer.ingress: [{{'ip': '{A}'}}] -> [{{'ip': '{B}'}}]"]
    }


def test_the_operators_writes_are_picked_out_of_the_api_servers_counters() -> None:
    counters = {
        ("PATCH", "services/status"): 3,
        ("POST", "events"): 4,  # counted from the Events themselves (the kubelet posts some)
        ("PATCH", "pods/status"): 2,  # the kubelet's bookkeeping of the restarted pod
        ("PATCH", "virtualips/status"): 0,
        ("APPLY", "virtualips/status"): 1,  # a speaker's entry
    }
    assert operator_writes(counters) == {"PATCH services/status": 3}
    assert operator_writes({("PATCH", "pods/status"): 2}) == {}


def event(name: str, kind: str, count: int = 1, namespace: str = "ns") -> dict[str, Any]:
    involved = {"kind": kind, "name": name.partition(".")[0]}
    return {"metadata": {"name": name, "namespace": namespace}, "count": count, "reason": "NodeAssigned",
            "message": "announcing", "involvedObject": involved}  # fmt: skip


def test_new_and_recounted_events_on_keepvips_objects_are_the_restarts() -> None:
    before = [event("one.1", "Service"), event("lb-1.1", "VirtualIP", namespace="default")]
    after = [
        *before[:1],
        event("lb-1.1", "VirtualIP", count=2, namespace="default"),
        event("two.1", "Service"),
        event("keepvip-operator.1", "Pod"),
    ]
    assert new_events(before, after) == [
        "VirtualIP lb-1: NodeAssigned announcing",
        "Service two: NodeAssigned announcing",
    ]
    assert new_events(before, before) == []
