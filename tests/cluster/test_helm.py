"""helm install, upgrade and uninstall work against the local cluster.

The chart (tests/cluster/charts/hello) holds a ConfigMap and a Deployment whose pod
prints the greeting it reads from the ConfigMap, so each step is checked by what runs,
not only by what helm says: ``--wait`` needs the process kubelet's Ready reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.localcluster import Helm, LocalCluster, Objects, wait_until

pytestmark = pytest.mark.cluster

CHART = Path(__file__).parent / "charts" / "hello"


def _greeter_output(cluster: LocalCluster, objects: Objects, namespace: str,
                    greeting: str) -> str | None:
    pods: list[dict[str, Any]] = objects.list("v1", "Pod", namespace,
                                              label_selector="app.kubernetes.io/instance=demo")
    for pod in pods:
        if pod.get("status", {}).get("phase") != "Running":
            continue
        log = cluster.container_log(namespace, pod["metadata"]["name"], "greeter")
        if f"greeting={greeting}" in log:
            return log
    return None


def test_helm_install_upgrade_and_uninstall_a_chart(
        cluster: LocalCluster, objects: Objects, namespace: str, helm: Helm) -> None:
    helm.run("install", "demo", str(CHART), "-n", namespace, "--wait", "--timeout", "60s")
    wait_until(lambda: _greeter_output(cluster, objects, namespace, "hello"),
               what="the installed greeter to print hello")

    helm.run("upgrade", "demo", str(CHART), "-n", namespace, "--set", "greeting=bonjour",
             "--wait", "--timeout", "60s")
    wait_until(lambda: _greeter_output(cluster, objects, namespace, "bonjour"),
               what="the upgraded greeter to print bonjour")
    cm = objects.get("v1", "ConfigMap", "demo-greeting", namespace)
    assert cm is not None
    assert cm["data"] == {"greeting": "bonjour"}
    history = yaml.safe_load(helm.run("history", "demo", "-n", namespace, "-o", "yaml"))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]

    helm.run("uninstall", "demo", "-n", namespace, "--wait")
    assert objects.get("v1", "ConfigMap", "demo-greeting", namespace) is None
    assert objects.get("apps/v1", "Deployment", "demo-greeter", namespace) is None
    wait_until(lambda: not objects.list("v1", "Pod", namespace), timeout=30,
               what="the greeter pods to be gone")
    assert "demo" not in helm.run("list", "-n", namespace, "-q")
