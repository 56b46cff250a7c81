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
