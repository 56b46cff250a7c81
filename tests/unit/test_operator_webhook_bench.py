"""bench/webhook.py: the AdmissionReview it sends, and how it reads latencies (its own and the
API server's histogram, which on v1.20 stops at 2.5 s)."""

from __future__ import annotations

import sys
from pathlib import Path

from keepvip.api.parse import parse_virtualip
from keepvip.operator.admission import KnownReferences, review

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "bench")]

from cluster_scale import histogram, requests  # noqa: E402
from webhook import admission_review, describe_histogram, histogram_delta, summary, virtualip  # noqa: E402


def test_the_review_carries_a_create_of_a_valid_virtualip_as_the_api_server_sends_it() -> None:
    body = virtualip("probe-1", "198.18.202.1")
    sent = admission_review(body)
    request = sent["request"]
    assert (sent["apiVersion"], sent["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    assert (request["operation"], request["oldObject"]) == ("CREATE", None)
    assert request["resource"] == {"group": "keepvip.io", "version": "v1alpha1", "resource": "virtualips"}
    assert request["object"] == body
    assert request["userInfo"]["username"]
    assert admission_review(body)["request"]["uid"] != request["uid"]
    parse_virtualip(body)  # the webhook's own model accepts it: every probe must be admitted
    assert review(body, None, {}, KnownReferences()) == []


def test_answers_over_the_api_servers_timeout_are_counted() -> None:
    seen = summary([0.01] * 98 + [4.9, 7.5])
    assert (seen["count"], seen["over_limit"], seen["max"], seen["p50"]) == (100, 1, 7.5, 0.01)
    assert summary([])["count"] == 0


METRICS = "\n".join([
    "# TYPE apiserver_admission_webhook_admission_duration_seconds histogram",
    *(
        f'apiserver_admission_webhook_admission_duration_seconds_bucket{{name="validate-virtualip.keepvip.io",'
        f'operation="{op}",rejected="false",type="validating",le="{le}"}} {n}'
        for op, counts in (("CREATE", (10, 40, 60, 70, 75, 80)), ("UPDATE", (5, 5, 5, 5, 5, 5)))
        for le, n in zip(("0.005", "0.025", "0.1", "0.5", "2.5", "+Inf"), counts, strict=True)
    ),
    'apiserver_admission_webhook_admission_duration_seconds_sum{name="validate-virtualip.keepvip.io",'
    'operation="CREATE",rejected="false",type="validating"} 30.5',
    'apiserver_admission_webhook_admission_duration_seconds_count{name="validate-virtualip.keepvip.io",'
    'operation="CREATE",rejected="false",type="validating"} 80',
    'apiserver_admission_webhook_admission_duration_seconds_count{name="validate-virtualip.keepvip.io",'
    'operation="UPDATE",rejected="false",type="validating"} 5',
    'apiserver_admission_webhook_admission_duration_seconds_count{name="other.example.com",'
    'operation="CREATE",rejected="false",type="validating"} 9',
])  # fmt: skip


def test_the_api_servers_histogram_is_summed_over_operations_and_read_as_a_difference() -> None:
    seen = histogram(METRICS)
    assert (seen["count"], seen["sum"]) == (85, 30.5)  # the other webhook is not ours
    assert (seen["le_0.005"], seen["le_2.5"], seen["le_+Inf"]) == (15, 80, 85)
    assert histogram_delta(seen, {"count": 30, "le_2.5": 30})["count"] == 55
    text = describe_histogram({"count": 85, "sum": 30.5, "le_0.5": 75, "le_2.5": 80, "le_+Inf": 85})
    assert text.endswith("slower than 2.5 s: 5)")


def test_the_listings_are_counted_by_verb_and_resource_from_the_request_counter() -> None:
    text = "\n".join([
        'apiserver_request_total{code="200",component="apiserver",dry_run="",group="keepvip.io",'
        'resource="virtualips",scope="cluster",subresource="",verb="LIST",version="v1alpha1"} 41',
        'apiserver_request_total{code="500",component="apiserver",dry_run="",group="keepvip.io",'
        'resource="virtualips",scope="cluster",subresource="",verb="LIST",version="v1alpha1"} 1',
        'apiserver_request_total{code="200",component="apiserver",dry_run="",group="keepvip.io",'
        'resource="virtualips",scope="cluster",subresource="status",verb="PATCH",version="v1alpha1"} 7',
    ])  # fmt: skip
    assert requests(text, {"LIST"}) == {("LIST", "virtualips"): 42}
    assert requests(text, {"PATCH"}) == {("PATCH", "virtualips/status"): 7}
