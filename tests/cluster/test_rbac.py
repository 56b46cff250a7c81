"""RBAC is on: a ServiceAccount can do what a Role grants it and nothing else.

Checked twice: with the ServiceAccount's token from outside, and from inside a pod,
where the process kubelet mounts the pod's own token at the in-cluster path, so that
``load_incluster_config()`` authenticates as the pod's ServiceAccount, exactly as the
chart's operator and speakers will.
"""

from __future__ import annotations

import textwrap

import pytest
from kubernetes.dynamic.exceptions import ForbiddenError

from keepvip.localcluster import LocalCluster, Objects, wait_until

pytestmark = pytest.mark.cluster


@pytest.fixture
def reader_account(cluster: LocalCluster, objects: Objects, namespace: str) -> str:
    """ServiceAccount ``reader``, allowed to get/list ConfigMaps in the namespace only.

    Returned once its token exists: the API server refuses a pod of an account whose
    token the controller has not created yet (500 "No API token found"), as it would
    refuse a user who applied both in one go on a busy cluster.
    """
    rbac = "rbac.authorization.k8s.io/v1"
    objects.create({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "reader"}}, namespace)
    objects.create({"apiVersion": rbac, "kind": "Role", "metadata": {"name": "configmap-reader"},
                    "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                               "verbs": ["get", "list"]}]}, namespace)
    objects.create({"apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": "reader"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": "configmap-reader"},
                    "subjects": [{"kind": "ServiceAccount", "name": "reader",
                                  "namespace": namespace}]}, namespace)
    cluster.service_account_token(namespace, "reader")
    return "reader"


def test_service_account_token_is_allowed_what_its_role_grants_and_denied_the_rest(
        cluster: LocalCluster, namespace: str, reader_account: str) -> None:
    as_reader = Objects(cluster.service_account_client(namespace, reader_account))

    assert as_reader.list("v1", "ConfigMap", namespace) is not None
    with pytest.raises(ForbiddenError):
        as_reader.list("v1", "Secret", namespace)
    with pytest.raises(ForbiddenError):
        as_reader.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}},
                         namespace)
    with pytest.raises(ForbiddenError):
        as_reader.list("v1", "ConfigMap", "default")


IN_POD_CHECK = textwrap.dedent("""
    from kubernetes import client, config
    config.load_incluster_config()
    core = client.CoreV1Api()
    ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
    core.list_namespaced_config_map(ns)
    print("configmaps: allowed", flush=True)
    try:
        core.list_namespaced_secret(ns)
        print("secrets: allowed", flush=True)
    except client.ApiException as e:
        print(f"secrets: denied {e.status}", flush=True)
""")


def test_pod_authenticates_in_cluster_as_its_own_service_account(
        cluster: LocalCluster, objects: Objects, namespace: str, reader_account: str) -> None:
    objects.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rbac-check"},
                    "spec": {"serviceAccountName": reader_account, "restartPolicy": "Never",
                             "nodeName": "node-b",
                             "containers": [{"name": "check", "image": "python",
                                             "command": ["python3", "-c", IN_POD_CHECK]}]}},
                   namespace)

    def finished() -> str | None:
        pod = objects.get("v1", "Pod", "rbac-check", namespace) or {}
        phase = pod.get("status", {}).get("phase")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until(finished, timeout=30, what="the in-pod RBAC check to finish")
    output = cluster.container_log(namespace, "rbac-check", "check")
    assert phase == "Succeeded", output
    assert "configmaps: allowed" in output
    assert "secrets: denied 403" in output
