"""Every documented value of charts/keepvip/values.yaml, changed one at a time.

One row per leaf of values.yaml: the value to set and what must then be true of the
rendered manifests. Each row is checked twice: with the value set the check holds,
and with the defaults it does not, so every row proves that the value has an effect
(a value the templates ignore fails its row). A separate test requires the table to
name every leaf of values.yaml, so a new undocumented-untested value fails the suite.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from keepvip.operator.settings import OperatorSettings
from tests.chart_helm import CHART, Helm, Rendered, nested

Check = Callable[[Rendered], None]


@dataclass(frozen=True)
class Row:
    """Set ``path`` to ``value`` (on top of ``base``); then ``check`` holds."""

    path: str
    value: Any
    check: Check
    base: dict[str, Any] = field(default_factory=dict)


def labels(doc: dict[str, Any]) -> dict[str, str]:
    result: dict[str, str] = doc["metadata"].get("labels", {})
    return result


def speaker(r: Rendered) -> dict[str, Any]:
    section: dict[str, Any] = r.settings()["speaker"]
    return section


def operator_template(r: Rendered) -> dict[str, Any]:
    template: dict[str, Any] = r.one("Deployment", "-operator")["spec"]["template"]
    return template


def container_ports(r: Rendered) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in r.operator_container()["ports"]}


def alert(r: Rendered, name: str) -> dict[str, Any]:
    rules = r.one("PrometheusRule")["spec"]["groups"][0]["rules"]
    found: dict[str, Any] = next(rule for rule in rules if rule.get("alert") == name)
    return found


def webhook_cert_days(r: Rendered) -> float:
    pem = base64.b64decode(r.one("Secret", "-webhook-tls")["data"]["tls.crt"])
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=pem,
                         capture_output=True, check=True).stdout.decode()  # fmt: skip
    not_after = datetime.strptime(end.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC)
    return (not_after - datetime.now(UTC)) / timedelta(days=1)


def check_all(*checks: Check) -> Check:
    def run(r: Rendered) -> None:
        for check in checks:
            check(r)

    return run


def expect(predicate: Callable[[Rendered], bool], what: str) -> Check:
    def run(r: Rendered) -> None:
        assert predicate(r), what

    return run


PM = {"monitoring.podMonitor.enabled": True}
PR = {"monitoring.prometheusRule.enabled": True}
DB = {"dashboards.enabled": True}
NP = {"operator.networkPolicy.enabled": True}
PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}
AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}  # fmt: skip
RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}}
DIGEST = "sha256:" + "ab" * 32

ROWS = [
    Row("nameOverride", "vip", expect(lambda r: all(
        labels(d).get("app.kubernetes.io/name") == "vip" for d in r.docs), "every object labelled name=vip")),
    Row("fullnameOverride", "edge", expect(lambda r: r.has("Deployment") and all(
        d["metadata"]["name"].startswith(("edge-", "edge.")) for d in r.docs
        if d["kind"] != "CustomResourceDefinition"), "every object but the CRDs named edge*")),
    Row("commonLabels", {"team": "net"}, expect(lambda r: all(
        labels(d).get("team") == "net" for d in r.docs), "every object labelled team=net")),
    Row("image.repository", "registry.example/kv", expect(lambda r: (
        r.operator_container()["image"] == speaker(r)["image"] == "registry.example/kv:0.1.0"), "repo")),
    Row("image.tag", "9.9.9", expect(lambda r: (
        r.operator_container()["image"] == speaker(r)["image"] == "ghcr.io/keepvip/keepvip:9.9.9"), "tag")),
    Row("image.digest", DIGEST, expect(lambda r: (
        r.operator_container()["image"] == speaker(r)["image"] == f"ghcr.io/keepvip/keepvip@{DIGEST}"),
        "pinned by digest")),
    Row("image.pullPolicy", "Always", expect(lambda r: (
        r.operator_container()["imagePullPolicy"] == speaker(r)["imagePullPolicy"] == "Always"), "policy")),
    Row("imagePullSecrets", ["regcred"], expect(lambda r: (
        r.operator_pod().get("imagePullSecrets") == [{"name": "regcred"}]
        and speaker(r)["imagePullSecrets"] == ["regcred"]), "pull secrets for operator and speakers")),
    Row("operator.replicaCount", 3, check_all(
        expect(lambda r: r.one("Deployment")["spec"]["replicas"] == 3, "replicas"),
        expect(lambda r: r.settings().get("peeringName") == "keepvip", "peering on above one replica"))),
    Row("operator.peering.enabled", True, check_all(
        expect(lambda r: r.one("Deployment")["spec"]["replicas"] == 1, "still one replica"),
        expect(lambda r: r.settings().get("peeringName") == "keepvip", "peering named like the release"),
        expect(lambda r: r.has("ClusterKopfPeering"), "the peering object"))),
    Row("operator.logFormat", "text", expect(lambda r: (
        r.operator_container()["command"][-2:] == ["--log-format", "text"]), "--log-format text")),
    Row("operator.metricsPort", 9100, expect(lambda r: (
        r.settings()["metricsPort"] == 9100 and container_ports(r)["metrics"] == 9100), "metrics port")),
    Row("operator.healthPort", 9101, check_all(
        expect(lambda r: r.settings()["healthPort"] == 9101, "settings"),
        expect(lambda r: container_ports(r)["health"] == 9101, "container port"),
        expect(lambda r: r.operator_container()["livenessProbe"]["httpGet"]["port"] == "health", "probe"))),
    Row("operator.status.settleSeconds", 0.5, expect(lambda r: (
        OperatorSettings.model_validate(r.settings()).status.settle_seconds == 0.5), "settle seconds")),
    Row("operator.resources", RESOURCES, expect(
        lambda r: r.operator_container()["resources"] == RESOURCES, "resources")),
    # helm merges a map with its default: kubernetes.io/os stays unless set to null.
    Row("operator.nodeSelector", {"role": "infra", "kubernetes.io/os": None}, expect(
        lambda r: r.operator_pod()["nodeSelector"] == {"role": "infra"}, "node selector")),
    Row("operator.tolerations", [TOLERATION], expect(
        lambda r: r.operator_pod().get("tolerations") == [TOLERATION], "tolerations")),
    Row("operator.affinity", AFFINITY, expect(
        lambda r: r.operator_pod().get("affinity") == AFFINITY, "affinity")),
    Row("operator.priorityClassName", "system-cluster-critical", expect(
        lambda r: r.operator_pod().get("priorityClassName") == "system-cluster-critical", "priority class")),
    Row("operator.podLabels", {"team": "net"}, expect(
        lambda r: operator_template(r)["metadata"]["labels"].get("team") == "net", "pod label")),
    Row("operator.podAnnotations", {"a/b": "c"}, expect(
        lambda r: operator_template(r)["metadata"]["annotations"].get("a/b") == "c", "pod annotation")),
    Row("operator.networkPolicy.enabled", True, expect(lambda r: [
        sorted(p["port"] for p in rule["ports"]) for rule in r.one("NetworkPolicy")["spec"]["ingress"]
    ] == [[9474], [9443]], "health and webhook ports only; metrics closed")),
    Row("operator.networkPolicy.metricsFrom", [PEER], expect(lambda r: any(
        rule["ports"] == [{"protocol": "TCP", "port": 9473}] and rule["from"] == [PEER]
        for rule in r.one("NetworkPolicy")["spec"]["ingress"]), "metrics from the monitoring namespace"), NP),
    Row("operator.networkPolicy.webhookFrom", [{"ipBlock": {"cidr": "198.18.0.0/24"}}], expect(lambda r: any(
        rule["ports"] == [{"protocol": "TCP", "port": 9443}]
        and rule.get("from") == [{"ipBlock": {"cidr": "198.18.0.0/24"}}]
        for rule in r.one("NetworkPolicy")["spec"]["ingress"]), "webhook from the API server's network"), NP),
    Row("speaker.nodeSelector", {"vip": "yes"}, expect(lambda r: speaker(r)["nodeSelector"] == {
        "vip": "yes", "kubernetes.io/os": "linux"}, "merged with the default")),
    Row("speaker.tolerations", [TOLERATION], expect(
        lambda r: speaker(r)["tolerations"] == [TOLERATION], "speaker tolerations")),
    Row("speaker.tolerateAllTaints", True, expect(
        lambda r: speaker(r)["tolerations"] == [{"operator": "Exists"}], "every taint tolerated")),
    Row("speaker.execChecks.enabled", True, expect(
        lambda r: speaker(r)["execChecks"]["enabled"] is True, "exec checks on")),
    Row("speaker.execChecks.allowedCommands", ["/usr/local/bin/check-*"], expect(
        lambda r: speaker(r)["execChecks"]["allowedCommands"] == ["/usr/local/bin/check-*"], "allowlist")),
    Row("speaker.execChecks.runAsUser", 1001, expect(
        lambda r: speaker(r)["execChecks"]["runAsUser"] == 1001, "check user")),
    Row("speaker.execChecks.runAsGroup", 1002, expect(
        lambda r: speaker(r)["execChecks"]["runAsGroup"] == 1002, "check group")),
    Row("speaker.ownershipMarker", "state-file", expect(
        lambda r: speaker(r)["ownershipMarker"] == "state-file", "state-file marker")),
    Row("speaker.stateDir", "/srv/keepvip", expect(
        lambda r: speaker(r)["stateDir"] == "/srv/keepvip", "state directory")),
    Row("speaker.priorityClassName", "", expect(
        lambda r: speaker(r)["priorityClassName"] is None, "no priority class")),
    Row("speaker.resources", RESOURCES, expect(lambda r: speaker(r)["resources"] == RESOURCES, "resources")),
    Row("speaker.metricsPort", 9200, expect(lambda r: speaker(r)["metricsPort"] == 9200, "speaker metrics")),
    Row("speaker.logFormat", "text", expect(lambda r: speaker(r)["logFormat"] == "text", "log format")),
    Row("speaker.terminationGracePeriodSeconds", 30, expect(
        lambda r: speaker(r)["terminationGracePeriodSeconds"] == 30, "grace period")),
    Row("speaker.maxUnavailable", "25%", expect(
        lambda r: speaker(r)["maxUnavailable"] == "25%", "max unavailable")),
    Row("speaker.podLabels", {"team": "net"}, expect(
        lambda r: speaker(r)["labels"] == {"team": "net"}, "speaker labels")),
    Row("speaker.podAnnotations", {"a/b": "c"}, expect(
        lambda r: speaker(r)["annotations"] == {"a/b": "c"}, "speaker annotations")),
    Row("speaker.authSecrets", [{"namespace": "ingress", "name": "vrrp-pass"}], expect(lambda r: any(
        d["metadata"]["namespace"] == "ingress"
        and d["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["vrrp-pass"],
                            "verbs": ["get"]}]
        for d in r.of_kind("Role")), "a Role in namespace ingress naming only that Secret")),
    Row("allocation.vridFirst", 10, expect(lambda r: r.settings()["allocation"]["vridFirst"] == 10, "first")),
    Row("allocation.vridLast", 20, expect(lambda r: r.settings()["allocation"]["vridLast"] == 20, "last")),
    Row("allocation.ipv4Groups", ["224.0.0.18"], expect(
        lambda r: r.settings()["allocation"]["ipv4Groups"] == ["224.0.0.18"], "v4 groups")),
    Row("allocation.ipv6Groups", ["ff02::12"], expect(
        lambda r: r.settings()["allocation"]["ipv6Groups"] == ["ff02::12"], "v6 groups")),
    Row("loadBalancer.enabled", False, check_all(
        expect(lambda r: r.settings()["loadBalancer"]["enabled"] is False, "settings say disabled"),
        expect(lambda r: all("virtualippools" not in rule["resources"]
                             for rule in r.one("ClusterRole", "-operator")["rules"]), "no pool rights"),
        expect(lambda r: [w["name"] for w in r.one("ValidatingWebhookConfiguration")["webhooks"]]
               == ["validate-virtualip.keepvip.io"], "pools not validated"))),
    Row("loadBalancer.defaultClass", True, expect(lambda r: (
        OperatorSettings.model_validate(r.settings()).load_balancer.default_class is True), "class-less")),
    Row("loadBalancer.reuseDelay", "5m", expect(lambda r: (
        OperatorSettings.model_validate(r.settings()).load_balancer.reuse_delay_value.total_seconds() == 300),
        "reuse delay")),
    Row("webhook.enabled", False, check_all(
        expect(lambda r: r.settings()["webhook"]["enabled"] is False, "settings say disabled"),
        expect(lambda r: not r.has("ValidatingWebhookConfiguration") and not r.has("Service")
               and not r.has("Secret"), "no webhook objects"),
        expect(lambda r: "webhook" not in container_ports(r), "no webhook port"))),
    Row("webhook.port", 8443, expect(lambda r: (
        r.settings()["webhook"]["port"] == 8443 and container_ports(r)["webhook"] == 8443), "webhook port")),
    Row("webhook.failurePolicy", "Fail", expect(lambda r: (
        r.one("ValidatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Fail"), "fail closed")),
    Row("webhook.timeoutSeconds", 12, expect(lambda r: (
        r.one("ValidatingWebhookConfiguration")["webhooks"][0]["timeoutSeconds"] == 12), "timeout")),
    Row("webhook.certificateValidityDays", 30, expect(
        lambda r: 29 < webhook_cert_days(r) <= 30, "certificate valid 30 days")),
    Row("monitoring.podMonitor.enabled", True, expect(lambda r: r.has("PodMonitor"), "a PodMonitor")),
    Row("monitoring.podMonitor.labels", {"release": "prom"}, expect(
        lambda r: labels(r.one("PodMonitor")).get("release") == "prom", "PodMonitor label"), PM),
    Row("monitoring.podMonitor.interval", "1m", expect(lambda r: all(
        e["interval"] == "1m" for e in r.one("PodMonitor")["spec"]["podMetricsEndpoints"]), "interval"), PM),
    Row("monitoring.prometheusRule.enabled", True, expect(lambda r: r.has("PrometheusRule"), "rules")),
    Row("monitoring.prometheusRule.labels", {"release": "prom"}, expect(
        lambda r: labels(r.one("PrometheusRule")).get("release") == "prom", "rule label"), PR),
    Row("monitoring.prometheusRule.noMasterFor", "5m", expect(
        lambda r: alert(r, "KeepvipNoMaster")["for"] == "5m", "no-master delay"), PR),
    Row("monitoring.prometheusRule.splitBrainFor", "2m", expect(
        lambda r: alert(r, "KeepvipSplitBrain")["for"] == "2m", "split-brain delay"), PR),
    Row("monitoring.prometheusRule.flappingWindow", "1h", expect(
        lambda r: "[1h]" in alert(r, "KeepvipFlapping")["expr"], "flapping window"), PR),
    Row("monitoring.prometheusRule.flappingThreshold", 9, expect(
        lambda r: alert(r, "KeepvipFlapping")["expr"].strip().endswith("> 9"), "flapping threshold"), PR),
    Row("monitoring.prometheusRule.poolUsageThreshold", 0.5, expect(
        lambda r: alert(r, "KeepvipAllocationPoolNearlyExhausted")["expr"].strip().endswith("> 0.5"),
        "pool threshold"), PR),
    Row("dashboards.enabled", True, expect(lambda r: any(
        "keepvip.json" in d.get("data", {}) for d in r.of_kind("ConfigMap")), "dashboard ConfigMap")),
    Row("dashboards.labels", {"dash": "yes"}, expect(
        lambda r: labels(r.one("ConfigMap", "-dashboard")) .get("dash") == "yes", "dashboard label"), DB),
    Row("dashboards.annotations", {"grafana_folder": "Network"}, expect(lambda r: (
        r.one("ConfigMap", "-dashboard")["metadata"].get("annotations") == {"grafana_folder": "Network"}),
        "folder annotation"), DB),
    Row("dashboards.namespace", "monitoring", expect(
        lambda r: r.one("ConfigMap", "-dashboard")["metadata"]["namespace"] == "monitoring", "ns"), DB),
    Row("crds.enabled", False, expect(lambda r: r.has("Deployment") and not r.has("CustomResourceDefinition"),
        "no CRD rendered")),
    Row("crds.keep", False, expect(lambda r: len(r.of_kind("CustomResourceDefinition")) == 3 and not any(
        "helm.sh/resource-policy" in (d["metadata"].get("annotations") or {})
        for d in r.of_kind("CustomResourceDefinition")), "CRDs without the keep policy")),
]  # fmt: skip


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm"))


@pytest.mark.parametrize("row", ROWS, ids=[row.path for row in ROWS])
def test_value_changes_the_rendered_output(helm: Helm, row: Row) -> None:
    changed = helm.template(nested({**row.base, row.path: row.value}))
    row.check(changed)
    OperatorSettings.model_validate(changed.settings())
    with pytest.raises(AssertionError):
        row.check(_unchanged(helm, row.base))


_RENDERED: dict[str, Rendered] = {}


def _unchanged(helm: Helm, base: dict[str, Any]) -> Rendered:
    """The render without the row's value (shared by the rows with the same base)."""
    key = repr(sorted(base.items()))
    if key not in _RENDERED:
        _RENDERED[key] = helm.template(nested(base))
    return _RENDERED[key]


def _leaves(values: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Leaf paths of values.yaml: recurse into the chart's own sections only."""
    found = []
    for key, value in values.items():
        child = schema["properties"][key]
        is_section = "properties" in child and not child.get("description", "").startswith("Kubernetes ")
        if is_section:
            found += _leaves(value, child, f"{prefix}{key}.")
        else:
            found.append(f"{prefix}{key}")
    return found


def test_the_table_names_every_leaf_of_values_yaml_and_nothing_else() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    table = [row.path for row in ROWS]
    assert len(table) == len(set(table)), "a value is listed twice"
    assert sorted(table) == sorted(_leaves(values, schema))
