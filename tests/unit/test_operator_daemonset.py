"""The speaker DaemonSet the operator renders from its settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from keepvip.operator.daemonset import Owner, desired_daemonset
from keepvip.operator.settings import OperatorSettings, SpeakerSettings


def render(**speaker: Any) -> dict[str, Any]:
    settings = OperatorSettings(namespace="vip-system", speaker=SpeakerSettings(**speaker))
    return desired_daemonset(settings)


def container(ds: dict[str, Any]) -> dict[str, Any]:
    [only] = ds["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def test_speakers_run_on_the_host_network() -> None:
    pod = render()["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_only_net_admin_and_net_raw_are_granted_everything_else_dropped() -> None:
    security = container(render())["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    assert security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsUser"] == 0  # added capabilities reach root processes only


def test_the_command_runs_the_kubernetes_speaker_for_its_own_node() -> None:
    ds = render(command=("/usr/local/bin/keepvip",), metrics_port=9999, log_format="text")
    assert container(ds)["command"] == [
        "/usr/local/bin/keepvip", "speaker", "--kubernetes", "--node", "$(NODE_NAME)",
        "--metrics-address", "[$(HOST_IP)]:9999", "--log-format", "text",
        "--ownership-marker", "auto", "--state-dir", "/var/lib/keepvip", "--exec-checks", "off",
    ]
    assert container(ds)["env"] == [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
    ]
    assert container(ds)["ports"] == [{"name": "metrics", "containerPort": 9999, "protocol": "TCP"}]


def test_scheduling_settings_come_from_the_chart() -> None:
    tolerations = ({"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"},)
    ds = render(
        tolerations=tolerations, node_selector={"role": "edge"}, priority_class_name="vip-critical",
        resources={"requests": {"cpu": "10m"}}, image="registry.example/keepvip:9",
        image_pull_secrets=("pull",),
    )
    pod = ds["spec"]["template"]["spec"]
    assert pod["tolerations"] == list(tolerations)
    assert pod["nodeSelector"] == {"role": "edge"}
    assert pod["priorityClassName"] == "vip-critical"
    assert pod["imagePullSecrets"] == [{"name": "pull"}]
    assert container(ds)["resources"] == {"requests": {"cpu": "10m"}}
    assert container(ds)["image"] == "registry.example/keepvip:9"


def test_no_priority_class_when_the_chart_sets_none() -> None:
    assert "priorityClassName" not in render(priority_class_name=None)["spec"]["template"]["spec"]


def test_rolling_updates_go_one_node_at_a_time_with_time_for_the_priority_zero_handover() -> None:
    ds = render(termination_grace_period_seconds=15)
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}
    assert ds["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 15
    assert "lifecycle" not in container(ds)  # SIGTERM is the handover trigger (see daemonset.py)


def test_names_namespace_and_selector_are_fixed_while_user_labels_are_added() -> None:
    ds = render(daemon_set_name="speakers", labels={"team": "net"}, annotations={"a": "b"})
    assert (ds["metadata"]["name"], ds["metadata"]["namespace"]) == ("speakers", "vip-system")
    selector = ds["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "keepvip", "app.kubernetes.io/component": "speaker"}
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert pod_labels["team"] == "net"
    assert ds["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}


def test_the_operator_deployment_owns_the_daemonset_when_known() -> None:
    settings = OperatorSettings()
    owned = desired_daemonset(settings, Owner("apps/v1", "Deployment", "keepvip-operator", "u-1"))
    assert owned["metadata"]["ownerReferences"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "keepvip-operator", "uid": "u-1"}
    ]
    assert "ownerReferences" not in desired_daemonset(settings)["metadata"]


def test_the_daemonset_depends_on_settings_only() -> None:
    assert render() == render()


def test_metrics_listen_on_the_nodes_own_address_never_on_every_address() -> None:
    command = container(render())["command"]
    address = command[command.index("--metrics-address") + 1]
    assert address.startswith("[$(HOST_IP)]:")
    assert "0.0.0.0" not in " ".join(command)


def test_exec_checks_are_off_unless_enabled_and_then_allowlisted_and_unprivileged() -> None:
    command = container(render())["command"]
    assert command[-2:] == ["--exec-checks", "off"]
    enabled = render(exec_checks={"enabled": True, "allowedCommands": ["/usr/local/bin/check-*", "/bin/true"],
                                  "runAsUser": 1001, "runAsGroup": 1002})
    command = container(enabled)["command"]
    tail = command[command.index("--exec-checks"):]
    assert tail == ["--exec-checks", "on", "--script-user", "1001:1002",
                    "--exec-allow", "/usr/local/bin/check-*", "--exec-allow", "/bin/true"]


def test_the_speaker_tolerates_no_taint_by_default() -> None:
    assert render()["spec"]["template"]["spec"]["tolerations"] == []


def test_the_state_directory_is_the_one_host_path_and_the_marker_is_passed_on() -> None:
    ds = render(ownership_marker="state-file", state_dir="/srv/keepvip/state")
    pod = ds["spec"]["template"]["spec"]
    command = container(ds)["command"]
    assert command[command.index("--ownership-marker") + 1] == "state-file"
    assert command[command.index("--state-dir") + 1] == "/srv/keepvip/state"
    host_paths = [volume for volume in pod["volumes"] if "hostPath" in volume]
    assert host_paths == [
        {"name": "state", "hostPath": {"path": "/srv/keepvip/state", "type": "DirectoryOrCreate"}}
    ]
    assert {"name": "state", "mountPath": "/srv/keepvip/state"} in container(ds)["volumeMounts"]


@pytest.mark.parametrize("state_dir", ["var/lib/keepvip", "/var/lib/../../etc", "/", "/var//lib", "/a/./b"])
def test_a_state_directory_that_is_not_a_plain_absolute_path_is_refused(state_dir: str) -> None:
    with pytest.raises(ValidationError, match=r"stateDir|state_dir"):
        SpeakerSettings(state_dir=state_dir)


def test_an_unknown_ownership_marker_is_refused() -> None:
    with pytest.raises(ValidationError, match="ownership"):
        SpeakerSettings(ownership_marker="label")  # type: ignore[arg-type]
