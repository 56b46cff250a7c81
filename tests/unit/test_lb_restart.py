"""bench/lb_restart.py: what an operator restart changed, judged from two readings of the
Services' ``status.loadBalancer.ingress`` (changed addresses, duplicates not shared)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench")]

from lb_restart import Assigned, assigned, compare, passes  # noqa: E402

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
