"""The process kubelet follows the pod contract keepvip's manifests depend on.

restartPolicy decides what happens when a container exits; deletion gives a process
that ignores SIGTERM its grace period and then SIGKILLs it; env comes from values, the
downward API, Secrets and ConfigMaps with ``$(VAR)`` expansion; removing a node stops
its pods and removes them from the API.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from keepvip.localcluster import LocalCluster, Objects, wait_until

pytestmark = pytest.mark.cluster


def _pod(name: str, command: str, node: str = "node-a", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "x",
                                     "command": ["/bin/sh", "-c", command]}], **spec}}


def _status(objects: Objects, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (objects.get("v1", "Pod", name, namespace) or {}).get("status", {})
    return status


@pytest.mark.parametrize(("policy", "command", "phase", "exit_code"), [
    ("Never", "exit 3", "Failed", 3),
    ("OnFailure", "exit 0", "Succeeded", 0),
])
def test_a_container_that_exits_ends_the_pod_unless_the_policy_restarts_it(
        objects: Objects, namespace: str, *, policy: str, command: str, phase: str,
        exit_code: int) -> None:
    objects.create(_pod("once", command, restartPolicy=policy), namespace)

    status = wait_until(lambda: (s := _status(objects, namespace, "once")).get("phase") == phase
                        and s, what=f"phase {phase}")

    container = status["containerStatuses"][0]
    assert container["state"]["terminated"]["exitCode"] == exit_code
    assert container["restartCount"] == 0


def test_restart_policy_always_restarts_an_exiting_container(
        cluster: LocalCluster, objects: Objects, namespace: str) -> None:
    objects.create(_pod("again", "echo run; exit 1", restartPolicy="Always"), namespace)

    wait_until(lambda: _status(objects, namespace, "again").get("containerStatuses", [{}])[0]
               .get("restartCount", 0) >= 2, timeout=20, what="two restarts")

    assert cluster.container_log(namespace, "again", "main").count("run") >= 2
    assert _status(objects, namespace, "again")["phase"] == "Running"


def test_deletion_kills_a_process_ignoring_sigterm_after_its_grace_period(
        cluster: LocalCluster, objects: Objects, namespace: str) -> None:
    objects.create(_pod("stubborn", "trap '' TERM; echo up; while :; do sleep 0.1; done",
                        terminationGracePeriodSeconds=2), namespace)
    wait_until(lambda: "up" in cluster.container_log(namespace, "stubborn", "main"),
               what="the stubborn container to start")

    began = time.monotonic()
    objects.delete("v1", "Pod", "stubborn", namespace)
    wait_until(lambda: objects.get("v1", "Pod", "stubborn", namespace) is None, timeout=15,
               interval=0.05, what="the pod object to be removed")
    took = time.monotonic() - began

    assert 1.8 <= took < 6
    assert cluster.kubelet.container_pid(namespace, "stubborn", "main") is None


def test_environment_resolves_values_downward_api_secrets_and_config_maps(
        cluster: LocalCluster, objects: Objects, namespace: str) -> None:
    objects.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                    "stringData": {"password": "pw1"}}, namespace)
    objects.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                    "data": {"mode": "fast"}}, namespace)
    pod = _pod("env", 'echo "A=$A B=$B C=$C D=$D E=$E"; exec sleep 3600', node="node-c")
    pod["spec"]["containers"][0]["env"] = [
        {"name": "A", "value": "plain"},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
        {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "mode"}}},
        {"name": "E", "value": "$(A)-$(D)"},
    ]
    objects.create(pod, namespace)

    log = wait_until(lambda: cluster.container_log(namespace, "env", "main"),
                     what="the env pod's output")
    assert f"A=plain B={namespace} C=pw1 D=fast E=plain-fast" in log


def test_removing_a_node_stops_its_pods_and_removes_them(
        cluster: LocalCluster, objects: Objects, namespace: str) -> None:
    cluster.add_node("node-extra", {"keepvip.io/test": "extra"})
    try:
        node = objects.get("v1", "Node", "node-extra")
        assert node is not None
        assert node["metadata"]["labels"]["keepvip.io/test"] == "extra"
        objects.create(_pod("doomed", "exec sleep 3600", node="node-extra"), namespace)
        wait_until(lambda: _status(objects, namespace, "doomed").get("phase") == "Running",
                   what="the pod on the extra node to run")
        pid = cluster.kubelet.container_pid(namespace, "doomed", "main")
        assert pid is not None
    finally:
        cluster.remove_node("node-extra")

    assert objects.get("v1", "Node", "node-extra") is None
    assert objects.get("v1", "Pod", "doomed", namespace) is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_volume_mounted_on_tmp_does_not_hide_the_service_account_token(
        cluster: LocalCluster, objects: Objects, namespace: str) -> None:
    # The pod directories live under the run's workdir, often below /tmp: an emptyDir on
    # /tmp (what a read-only root filesystem needs) must not shadow the token's source.
    sa_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    pod = _pod("tmpvol", f"test -s {sa_file} && echo token-ok; touch /tmp/x && echo tmp-ok",
               restartPolicy="Never", volumes=[{"name": "tmp", "emptyDir": {}}])
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    objects.create(pod, namespace)

    wait_until(lambda: _status(objects, namespace, "tmpvol").get("phase") == "Succeeded",
               timeout=20, what="the pod to succeed")
    assert cluster.container_log(namespace, "tmpvol", "main").split() == ["token-ok", "tmp-ok"]


def test_a_volume_mounted_over_the_projects_directory_does_not_hide_the_program(
        cluster: LocalCluster, objects: Objects, namespace: str) -> None:
    # The host file system is the "image": a checkout below /tmp plus an emptyDir on /tmp
    # (the speaker's read-only root filesystem needs one) must still run keepvip.
    project = Path(__file__).resolve().parents[2]
    keepvip = Path(sys.executable).parent / "keepvip"
    marker = project.parent / f"keepvip-kubelet-test-{os.getpid()}-{time.monotonic_ns()}"
    command = f"{keepvip} --help > /dev/null && echo program-ok; touch {marker} && echo vol-ok"
    pod = _pod("hidden", command,
               restartPolicy="Never", volumes=[{"name": "cover", "emptyDir": {}}])
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "cover", "mountPath": str(project.parent)}]
    objects.create(pod, namespace)

    wait_until(lambda: _status(objects, namespace, "hidden").get("phase") == "Succeeded",
               timeout=30, what="the pod to succeed")
    assert cluster.container_log(namespace, "hidden", "main").split() == ["program-ok", "vol-ok"]
    assert not marker.exists()  # the write went to the emptyDir, not the host
