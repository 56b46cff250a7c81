"""Pod security policy for what the chart deploys, checked on the rendered manifests.

The operator Deployment is rendered by helm. The speaker DaemonSet is not: the operator
renders it from the chart's settings. So the speaker half of the policy loads the
ConfigMap's operator.yaml from `helm template` output into OperatorSettings and checks
the DaemonSet that ``desired_daemonset`` builds from it: the same path the settings
take in a cluster.

Policy (issue 5):
* operator: non-root, read-only root filesystem, no capabilities, no privilege
  escalation, nothing from the host;
* speaker: hostNetwork; capabilities NET_ADMIN and NET_RAW only, everything else
  dropped; not privileged; no privilege escalation; read-only root filesystem; the
  chart's scheduling settings (linux nodes, system-node-critical, no CPU limit).
"""

from __future__ import annotations

from typing import Any

import pytest

from keepvip.operator.daemonset import desired_daemonset
from keepvip.operator.settings import OperatorSettings
from tests.chart_helm import Helm, Rendered

JSON = dict[str, Any]
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> Rendered:
    return helm.template(
        {"monitoring": {"podMonitor": {"enabled": True}}, "speaker": {"podLabels": {"team": "net"}}}
    )


@pytest.fixture(scope="module")
def daemonset(rendered: Rendered) -> JSON:
    return desired_daemonset(OperatorSettings.model_validate(rendered.settings()))


def speaker_pod(daemonset: JSON) -> JSON:
    pod: JSON = daemonset["spec"]["template"]["spec"]
    return pod


def only_container(pod: JSON) -> JSON:
    assert len(pod["containers"]) == 1
    assert not pod.get("initContainers")
    container: JSON = pod["containers"][0]
    return container


# --- operator ------------------------------------------------------------------------


def test_operator_runs_as_a_non_root_user(rendered: Rendered) -> None:
    pod = rendered.operator_pod()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert only_container(pod).get("securityContext", {}).get("runAsUser", 1) != 0


def test_operator_has_a_read_only_root_filesystem_and_no_privilege_escalation(rendered: Rendered) -> None:
    context = only_container(rendered.operator_pod())["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged", False) is False


def test_operator_drops_every_capability_and_adds_none(rendered: Rendered) -> None:
    capabilities = only_container(rendered.operator_pod())["securityContext"]["capabilities"]
    assert capabilities["drop"] == ["ALL"]
    assert not capabilities.get("add")


def test_operator_takes_nothing_from_the_host(rendered: Rendered) -> None:
    pod = rendered.operator_pod()
    assert not any(pod.get(key) for key in HOST_NAMESPACES)
    assert all("hostPath" not in volume for volume in pod["volumes"])
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_operator_writes_only_to_an_in_memory_scratch_directory(rendered: Rendered) -> None:
    pod = rendered.operator_pod()
    writable = [m for m in only_container(pod)["volumeMounts"] if not m.get("readOnly")]
    assert [m["mountPath"] for m in writable] == ["/var/tmp"]
    assert {"name": "TMPDIR", "value": "/var/tmp"} in only_container(pod)["env"]
    tmp = next(v for v in pod["volumes"] if v["name"] == writable[0]["name"])
    assert tmp["emptyDir"]["medium"] == "Memory"


# --- speaker (the DaemonSet the operator renders from the chart's settings) -------------


def test_speaker_uses_the_node_network(daemonset: JSON) -> None:
    pod = speaker_pod(daemonset)
    assert pod["hostNetwork"] is True
    assert not pod.get("hostPID")
    assert not pod.get("hostIPC")
    # One host directory only: where the state-file ownership marker keeps its list (issue 10).
    host_paths = [volume["hostPath"] for volume in pod.get("volumes", []) if "hostPath" in volume]
    assert host_paths == [{"path": "/var/lib/keepvip", "type": "DirectoryOrCreate"}]


def test_speaker_has_net_admin_and_net_raw_only(daemonset: JSON) -> None:
    capabilities = only_container(speaker_pod(daemonset))["securityContext"]["capabilities"]
    assert capabilities["drop"] == ["ALL"]
    assert sorted(capabilities["add"]) == ["NET_ADMIN", "NET_RAW"]


def test_speaker_is_not_privileged_cannot_escalate_and_has_a_read_only_root(daemonset: JSON) -> None:
    context = only_container(speaker_pod(daemonset))["securityContext"]
    assert context.get("privileged", False) is False
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    pod_context = speaker_pod(daemonset).get("securityContext", {})
    assert pod_context.get("privileged", False) is False


def test_speaker_runs_as_root_because_added_capabilities_need_uid_0(daemonset: JSON) -> None:
    """The image's default user is non-root (Dockerfile); the speaker must override it."""
    context = only_container(speaker_pod(daemonset))["securityContext"]
    assert context["runAsUser"] == 0


def test_speaker_gets_the_charts_scheduling_settings(daemonset: JSON, rendered: Rendered) -> None:
    pod = speaker_pod(daemonset)
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == []  # no taint tolerated unless speaker.tolerateAllTaints
    resources = only_container(pod)["resources"]
    assert "cpu" in resources["requests"]
    assert "cpu" not in resources.get("limits", {})


def test_speaker_runs_the_charts_image_under_the_charts_service_account(
    daemonset: JSON, rendered: Rendered
) -> None:
    pod = speaker_pod(daemonset)
    assert pod["serviceAccountName"] in {sa["metadata"]["name"] for sa in rendered.of_kind("ServiceAccount")}
    assert pod["serviceAccountName"] != rendered.operator_pod()["serviceAccountName"]
    assert only_container(pod)["image"] == only_container(rendered.operator_pod())["image"]
    assert daemonset["metadata"]["namespace"] == "keepvip-system"
    assert daemonset["spec"]["template"]["metadata"]["labels"]["team"] == "net"


def _selects(selector: JSON, labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


@pytest.mark.parametrize("name_override", ["", "vip"])
def test_pod_monitor_scrapes_the_operator_and_every_speaker_on_their_metrics_ports(
    helm: Helm, name_override: str
) -> None:
    rendered = helm.template({"nameOverride": name_override, "monitoring": {"podMonitor": {"enabled": True}}})
    monitor = rendered.one("PodMonitor")["spec"]
    daemonset = desired_daemonset(OperatorSettings.model_validate(rendered.settings()))
    templates = {
        "operator": rendered.one("Deployment")["spec"]["template"],
        "speaker": daemonset["spec"]["template"],
    }
    for component, template in templates.items():
        assert _selects(monitor["selector"], template["metadata"]["labels"]), component
        ports = {p["name"] for p in only_container(template["spec"])["ports"]}
        assert {e["port"] for e in monitor["podMetricsEndpoints"]} <= ports, component
    assert monitor["namespaceSelector"] == {"matchNames": ["keepvip-system"]}
