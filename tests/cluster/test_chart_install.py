"""`helm install`, `upgrade` and `uninstall` of charts/keepvip on the local cluster.

Two scenarios:

* the chart's own life cycle with the operator scaled to zero: every object helm
  renders is created, an upgrade changes what the values say and keeps the webhook's
  certificate, a values typo is refused without touching the release, and uninstall
  leaves nothing behind but the VirtualIP CRD;
* the chart as a user runs it: the operator pod, run by the process kubelet under the
  chart's ServiceAccount and roles, becomes Ready, creates the speaker DaemonSet (one
  pod per node, under the speaker's ServiceAccount), answers the admission webhook
  through the chart's Service, certificate and path, and is never refused a permission;
  uninstall garbage-collects the speakers. (The speakers' own run under their roles is
  the end-to-end tier's: tests/cluster/test_e2e_*.)
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.localcluster import Helm, LocalCluster, Objects, wait_until
from keepvip.localcluster.helm import HelmError

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "keepvip"
CRD = ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "virtualips.keepvip.io")
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration",
                  "CustomResourceDefinition"}  # fmt: skip
FORBIDDEN = re.compile(r"Forbidden|\b403\b")


def manifest_objects(helm: Helm, release: str, namespace: str) -> list[dict[str, Any]]:
    """What helm says the release holds (`helm get manifest`)."""
    text = helm.run("get", "manifest", release, "-n", namespace)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def live(objects: Objects, doc: dict[str, Any], namespace: str) -> dict[str, Any] | None:
    ns = None if doc["kind"] in CLUSTER_SCOPED else doc["metadata"].get("namespace", namespace)
    found: dict[str, Any] | None = objects.get(doc["apiVersion"], doc["kind"], doc["metadata"]["name"], ns)
    return found


def labelled_leftovers(objects: Objects, release: str) -> list[str]:
    """Anything still labelled with the release, cluster-wide, of the kinds the chart makes."""
    selector = f"app.kubernetes.io/instance={release}"
    kinds = [("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"),
             ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("v1", "Pod"),
             ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
             ("rbac.authorization.k8s.io/v1", "ClusterRole"),
             ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
             ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")]  # fmt: skip
    return [f"{kind}/{item['metadata']['name']}" for api, kind in kinds
            for item in objects.list(api, kind, label_selector=selector)]  # fmt: skip


@pytest.fixture
def release(objects: Objects, helm: Helm, namespace: str) -> Iterator[str]:
    """A unique release name; whatever a failing test left installed is uninstalled."""
    name = f"keepvip-{secrets.token_hex(2)}"
    yield name
    if name in helm.run("list", "-n", namespace, "-q", check=False).split():
        helm.run("uninstall", name, "-n", namespace, "--wait", check=False)


def test_install_upgrade_and_uninstall_leave_nothing_behind_but_the_crd(
    objects: Objects, helm: Helm, namespace: str, release: str, tmp_path: Path
) -> None:
    no_operator = ["--set", "operator.replicaCount=0"]
    notes = helm.run("install", release, str(CHART), "-n", namespace, *no_operator,
                     "--wait", "--timeout", "60s")  # fmt: skip
    assert "kubectl get vip" in notes
    assert f"deployment/{release}-operator" in notes

    installed = manifest_objects(helm, release, namespace)
    assert {d["kind"] for d in installed} >= {"Deployment", "ConfigMap", "ClusterRole", "Role",
                                               "ValidatingWebhookConfiguration", "Secret", "Service"}
    for doc in installed:
        assert live(objects, doc, namespace) is not None, f"{doc['kind']}/{doc['metadata']['name']}"
    crd = objects.get(*CRD)
    assert crd is not None
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    tls_before = objects.get("v1", "Secret", f"{release}-webhook-tls", namespace)["data"]

    helm.run("upgrade", release, str(CHART), "-n", namespace, *no_operator,
             "--set", "speaker.metricsPort=9999", "--wait", "--timeout", "60s")  # fmt: skip
    settings_map = objects.get("v1", "ConfigMap", f"{release}-operator-settings", namespace)
    assert yaml.safe_load(settings_map["data"]["operator.yaml"])["speaker"]["metricsPort"] == 9999
    tls_after = objects.get("v1", "Secret", f"{release}-webhook-tls", namespace)["data"]
    assert tls_after == tls_before, "an upgrade must keep the webhook certificate"
    webhook = objects.get("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
                          f"{release}-webhook")  # fmt: skip
    assert webhook["webhooks"][0]["clientConfig"]["caBundle"] == tls_before["ca.crt"]

    typo = tmp_path / "typo.yaml"
    typo.write_text("speaker:\n  metricPort: 9100\n")
    with pytest.raises(HelmError, match="speaker: Additional property metricPort is not allowed"):
        helm.run("upgrade", release, str(CHART), "-n", namespace, "--values", str(typo))
    history = yaml.safe_load(helm.run("history", release, "-n", namespace, "-o", "yaml"))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]

    helm.run("uninstall", release, "-n", namespace, "--wait")
    for doc in installed:
        if doc["kind"] == "CustomResourceDefinition":  # crds.keep: helm.sh/resource-policy keep
            assert live(objects, doc, namespace) is not None, f"CRD {doc['metadata']['name']} removed"
            continue
        assert live(objects, doc, namespace) is None, f"{doc['kind']}/{doc['metadata']['name']} left"
    assert labelled_leftovers(objects, release) == []
    assert objects.get(*CRD) is not None, "the CRD stays (crds.keep: helm.sh/resource-policy keep)"


def test_a_typo_in_the_values_refuses_the_install_and_creates_nothing(
    objects: Objects, helm: Helm, namespace: str, release: str, tmp_path: Path
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("webhook:\n  enabeld: false\n")
    with pytest.raises(HelmError, match="webhook: Additional property enabeld is not allowed"):
        helm.run("install", release, str(CHART), "-n", namespace, "--values", str(typo))
    assert release not in helm.run("list", "-n", namespace, "-q", "--all").split()
    assert labelled_leftovers(objects, release) == []


def _pods(objects: Objects, namespace: str, component: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = objects.list(
        "v1", "Pod", namespace, label_selector=f"app.kubernetes.io/component={component}"
    )
    return pods


def _logs(cluster: LocalCluster, namespace: str, pods: list[dict[str, Any]], container: str) -> str:
    return "\n".join(cluster.container_log(namespace, p["metadata"]["name"], container) for p in pods)


def test_the_installed_operator_runs_under_the_charts_roles_owns_the_speakers_and_serves_the_webhook(
    cluster: LocalCluster, objects: Objects, helm: Helm, namespace: str, release: str
) -> None:
    helm.run("install", release, str(CHART), "-n", namespace, "--set", "webhook.failurePolicy=Fail",
             "--wait", "--timeout", "90s")  # fmt: skip
    operators = _pods(objects, namespace, "operator")
    assert [p["spec"]["serviceAccountName"] for p in operators] == [f"{release}-operator"]

    daemonset = wait_until(
        lambda: objects.get("apps/v1", "DaemonSet", f"{release}-speaker", namespace),
        timeout=60, what="the operator to create the speaker DaemonSet",
    )
    owners = daemonset["metadata"].get("ownerReferences", [])
    assert [(o["kind"], o["name"]) for o in owners] == [("Deployment", f"{release}-operator")]
    nodes = len(objects.list("v1", "Node"))
    speakers = wait_until(
        lambda: [p for p in _pods(objects, namespace, "speaker") if p["spec"].get("nodeName")]
        if len(_pods(objects, namespace, "speaker")) == nodes else None,
        timeout=60, what="one speaker pod bound to every node",
    )
    assert {p["spec"]["serviceAccountName"] for p in speakers} == {f"{release}-speaker"}

    refusal = _apply_invalid_virtualip(cluster)
    assert refusal.returncode != 0
    assert "denied the request" in refusal.stderr, refusal.stderr
    assert "spec.vrrp.version" in refusal.stderr, refusal.stderr

    operator_log = _logs(cluster, namespace, operators, "operator")
    assert "Activity 'register.<locals>.configure' succeeded" in operator_log
    assert not FORBIDDEN.search(operator_log), operator_log[-3000:]

    helm.run("uninstall", release, "-n", namespace, "--wait")
    wait_until(lambda: objects.get("apps/v1", "DaemonSet", f"{release}-speaker", namespace) is None,
               timeout=60, what="the speaker DaemonSet garbage-collected with its owner")  # fmt: skip
    wait_until(lambda: labelled_leftovers(objects, release) == [], timeout=60,
               what="the operator and speaker pods gone")  # fmt: skip
    assert not _pods(objects, namespace, "speaker")


def _apply_invalid_virtualip(cluster: LocalCluster) -> subprocess.CompletedProcess[str]:
    """kubectl apply of IPv6 with VRRPv2: a cross-field rule only the webhook enforces."""
    name = f"chart-invalid-{secrets.token_hex(2)}"
    manifest = {
        "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": name},
        "spec": {"addresses": ["2001:db8:7::1/64"], "vrrp": {"version": 2}},
    }  # fmt: skip
    return subprocess.run(
        ["kubectl", "apply", "--validate=false", "-f", "-"], input=yaml.safe_dump(manifest),
        capture_output=True, text=True, env=cluster.kubectl_env(), timeout=60, check=False,
    )


def test_rendered_webhook_secret_holds_a_pair_for_the_service(
    objects: Objects, helm: Helm, namespace: str, release: str
) -> None:
    helm.run("install", release, str(CHART), "-n", namespace, "--set", "operator.replicaCount=0")
    data = objects.get("v1", "Secret", f"{release}-webhook-tls", namespace)["data"]
    cert = base64.b64decode(data["tls.crt"])
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=cert,
                          capture_output=True, check=True).stdout.decode()  # fmt: skip
    assert f"DNS:{release}-webhook.{namespace}.svc" in text
