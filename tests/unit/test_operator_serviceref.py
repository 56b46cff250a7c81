"""serviceRef writes only to a Service that opts in (``keepvip.io/virtualip: <name>``).

The spec stage runs against a stand-in for the API module that keeps Services in
memory and applies the same opt-in check as the real one (``Kube.update_service_ingress``
calls :func:`check_opt_in` on the Service it read); the cluster tier runs it against a
real API server (tests/cluster/test_operator_cluster.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pytest

from keepvip.operator.allocation import LedgerEntry, decode_ledger
from keepvip.operator.kube import Kube, LedgerChanges, ObjectRef
from keepvip.operator.reconcile import Context, RetryLater, aggregate_status, reconcile_spec, release
from keepvip.operator.serviceref import OPT_IN_ANNOTATION, NotOptedIn, check_opt_in
from keepvip.operator.settings import OperatorSettings
from keepvip.operator.status import EventSpec

T = TypeVar("T")


def service(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "nginx", "namespace": "ingress"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "status": {"loadBalancer": {"ingress": [{"ip": "198.18.9.9"}]}}}


def test_only_the_annotation_naming_the_virtualip_opts_in() -> None:
    check_opt_in(service({OPT_IN_ANNOTATION: "web"}), "web")
    expected = re.escape("needs the annotation keepvip.io/virtualip: web (it has none)")
    with pytest.raises(NotOptedIn, match=expected):
        check_opt_in(service(), "web")
    with pytest.raises(NotOptedIn, match=re.escape("(it has 'other')")):
        check_opt_in(service({OPT_IN_ANNOTATION: "other"}), "web")


class Services(Kube):
    """Services in memory behind the real opt-in check; records Events."""

    def __init__(self, settings: OperatorSettings, stored: dict[str, Any]) -> None:
        super().__init__(settings)
        self.service = stored
        self.events: list[EventSpec] = []
        self.writes = 0
        self.status: dict[str, Any] = {}
        self.exists = True
        self.statuses: list[dict[str, Any]] = []
        self.ledger: dict[str, str] = {}

    def update_service_ingress(
        self,
        namespace: str,  # noqa: ARG002
        name: str,  # noqa: ARG002
        change: Callable[[Sequence[Mapping[str, Any]]], list[dict[str, Any]]],
        opt_in: str | None = None,
    ) -> bool:
        if not self.exists:
            return False
        if opt_in is not None:
            check_opt_in(self.service, opt_in)
        balancer = self.service["status"]["loadBalancer"]
        balancer["ingress"] = change(balancer["ingress"])
        self.writes += 1
        return True

    def patch_virtualip_status(self, name: str, fields: Mapping[str, Any]) -> None:  # noqa: ARG002
        self.status = dict(fields)
        self.statuses.append(self.status)

    def post_event(self, ref: ObjectRef, event: EventSpec) -> None:  # noqa: ARG002
        self.events.append(event)

    def update_ledger(self, decide: Callable[[dict[str, LedgerEntry]], tuple[LedgerChanges, T]]) -> T:
        changes, result = decide(decode_ledger(self.ledger))
        self.ledger.update({k: v for k, v in changes.items() if v is not None})
        return result


def body(status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {
        "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": "web", "uid": "u-1", "generation": 1},
        "spec": {"addresses": ["198.18.0.100/24"], "serviceRef": {"namespace": "ingress", "name": "nginx"}},
    }  # fmt: skip
    if status:
        document["status"] = dict(status)
    return document


def published(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ServicePublished condition the operator wrote, if any."""
    return next((c for c in status.get("conditions", []) if c["type"] == "ServicePublished"), None)


def run(stored: dict[str, Any]) -> tuple[Services, RetryLater | None]:
    settings = OperatorSettings()
    kube = Services(settings, stored)
    ctx = Context(settings, kube, clock=lambda: "T", monotonic=lambda: 0.0)
    try:
        reconcile_spec(ctx, body(), None, {})
    except RetryLater as retry:
        return kube, retry
    return kube, None


def test_a_service_that_did_not_opt_in_is_not_written_and_the_reason_is_told() -> None:
    kube, retry = run(service())
    assert kube.writes == 0
    assert kube.service["status"]["loadBalancer"]["ingress"] == [{"ip": "198.18.9.9"}]
    [refusal] = [e for e in kube.events if e.type == "Warning"]
    assert refusal.reason == "ServiceNotOptedIn"
    assert "keepvip.io/virtualip: web" in refusal.message
    assert retry is not None
    condition = published(kube.status)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "ServiceNotOptedIn")
    assert "Service ingress/nginx does not opt in" in condition["message"]
    assert "keepvip.io/virtualip: web" in condition["message"]
    assert kube.status["conditions"][1]["type"] == "Allocated"  # the pair is allocated all the same
    assert kube.status["conditions"][1]["status"] == "True"


def test_the_refusal_is_told_once_and_cleared_when_the_service_opts_in() -> None:
    settings = OperatorSettings()
    kube = Services(settings, service())
    ctx = Context(settings, kube, clock=lambda: "T", monotonic=lambda: 0.0)
    with pytest.raises(RetryLater):
        reconcile_spec(ctx, body(), None, {})
    with pytest.raises(RetryLater):  # the retry, with the status the watch now shows
        reconcile_spec(ctx, body(kube.status), None, {})
    assert [e.reason for e in kube.events if e.type == "Warning"] == ["ServiceNotOptedIn"]
    assert kube.writes == 0
    kube.service["metadata"]["annotations"] = {OPT_IN_ANNOTATION: "web"}
    reconcile_spec(ctx, body(kube.status), None, {})
    assert kube.writes == 1
    condition = published(kube.status)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("True", "Published")
    assert "198.18.0.100 in Service ingress/nginx" in condition["message"]
    # The status stage (speakers' reports) keeps the condition: it is read back from status.
    assert aggregate_status(ctx, body(kube.status))
    assert published(kube.status) == condition


def test_a_missing_service_is_a_named_condition_too() -> None:
    settings = OperatorSettings()
    kube = Services(settings, service())
    kube.exists = False
    ctx = Context(settings, kube, clock=lambda: "T", monotonic=lambda: 0.0)
    with pytest.raises(RetryLater, match="does not exist"):
        reconcile_spec(ctx, body(), None, {})
    condition = published(kube.status)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "ServiceNotFound")


def test_without_service_ref_there_is_no_service_condition() -> None:
    settings = OperatorSettings()
    kube = Services(settings, service())
    ctx = Context(settings, kube, clock=lambda: "T", monotonic=lambda: 0.0)
    plain = body()
    del plain["spec"]["serviceRef"]
    reconcile_spec(ctx, plain, None, {})
    assert kube.status["conditions"]
    assert published(kube.status) is None


def test_a_service_that_opted_in_receives_the_addresses_and_loses_them_on_release() -> None:
    kube, retry = run(service({OPT_IN_ANNOTATION: "web"}))
    assert retry is None
    assert kube.service["status"]["loadBalancer"]["ingress"] == [{"ip": "198.18.9.9"}, {"ip": "198.18.0.100"}]
    ctx = Context(OperatorSettings(), kube, clock=lambda: "T", monotonic=lambda: 0.0)
    release(ctx, body(), waited=0.0)
    assert kube.service["status"]["loadBalancer"]["ingress"] == [{"ip": "198.18.9.9"}]


def test_releasing_never_writes_to_a_service_that_did_not_opt_in() -> None:
    kube = Services(OperatorSettings(), service({OPT_IN_ANNOTATION: "someone-else"}))
    ctx = Context(OperatorSettings(), kube, clock=lambda: "T", monotonic=lambda: 0.0)
    release(ctx, body(), waited=0.0)
    assert kube.writes == 0


def test_a_retry_on_a_lagging_body_tells_the_refusal_no_second_time() -> None:
    """kopf may retry with a body whose status predates the operator's last write."""
    settings = OperatorSettings()
    kube = Services(settings, service())
    ctx = Context(settings, kube, clock=lambda: "T", monotonic=lambda: 0.0)
    with pytest.raises(RetryLater):
        reconcile_spec(ctx, body(), None, {})
    first = kube.statuses[0]  # the allocation, written before the Service was looked at
    assert published(first) is None
    with pytest.raises(RetryLater):
        reconcile_spec(ctx, body(first), None, {})  # the watch has not caught up with the second write
    assert [e.reason for e in kube.events if e.type == "Warning"] == ["ServiceNotOptedIn"]
    condition = published(kube.status)
    assert condition is not None
    assert condition["reason"] == "ServiceNotOptedIn"
