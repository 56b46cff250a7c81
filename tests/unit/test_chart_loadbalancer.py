"""The chart's LoadBalancer values: refused when malformed, and what they switch on."""

from __future__ import annotations

from typing import Any

import pytest

from keepvip.operator.handlers import POOL_WEBHOOK_ID
from tests.chart_helm import Helm, HelmError


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"loadBalancer": {"reuseDelay": "30 seconds"}}, "loadBalancer.reuseDelay: Does not match pattern"),
        ({"loadBalancer": {"defaultClass": "yes"}}, "loadBalancer.defaultClass: Invalid type"),
        ({"loadBalancer": {"enable": True}}, "loadBalancer: Additional property enable is not allowed"),
    ],
)
def test_malformed_load_balancer_values_are_refused_naming_the_key(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template(values)
    assert message in refused.value.stderr


def test_the_pool_webhook_reaches_the_pool_handler(helm: Helm) -> None:
    rendered = helm.template({})
    [pools] = [w for w in rendered.one("ValidatingWebhookConfiguration")["webhooks"]
               if w["rules"][0]["resources"] == ["virtualippools"]]  # fmt: skip
    assert pools["clientConfig"]["service"]["path"] == f"/{POOL_WEBHOOK_ID}"
    assert pools["rules"][0]["operations"] == ["CREATE", "UPDATE"]


@pytest.mark.parametrize(
    "kube_version",
    [
        "1.20.2",  # the local cluster: no spec.loadBalancerClass, no ipMode (class-less Services only)
        "1.21.0",  # spec.loadBalancerClass
        "1.29.0",  # status.loadBalancer.ingress[].ipMode
        "1.31.0",
    ],
)
def test_one_chart_serves_every_kubernetes_version_the_lb_api_fields_depend_on(
    helm: Helm, kube_version: str
) -> None:
    """The LoadBalancer pieces render the same on every server: which Service fields exist
    (loadBalancerClass 1.21+, ipMode 1.29+) is decided by the operator at run time from the
    server's version (tests/unit/test_lb_plan.py, on object bodies), never by the chart."""
    values = {"loadBalancer": {"defaultClass": True}}
    rendered = helm.template(values, extra=["--kube-version", kube_version])
    baseline = helm.template(values, extra=["--kube-version", "1.20.2"])
    assert rendered.settings()["loadBalancer"] == {"enabled": True, "defaultClass": True, "reuseDelay": "30s"}
    assert rendered.settings() == baseline.settings()
    role = rendered.one("ClusterRole", "-operator")["rules"]
    assert role == baseline.one("ClusterRole", "-operator")["rules"]
    assert {"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]} in role
    crds = {d["metadata"]["name"]: d["apiVersion"] for d in rendered.of_kind("CustomResourceDefinition")}
    assert crds["virtualippools.keepvip.io"] == "apiextensions.k8s.io/v1"  # served since 1.16


def test_a_server_older_than_the_oldest_tested_is_refused(helm: Helm) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template({}, extra=["--kube-version", "1.19.16"])
    assert "incompatible with Kubernetes v1.19.16" in refused.value.stderr
