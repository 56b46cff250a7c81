"""``helm upgrade`` from a chart that shipped its CRDs in ``crds/`` brings the VirtualIPPool CRD.

The chart before LoadBalancer support shipped VirtualIP's and kopf's CRDs in ``crds/``,
which Helm installs on the first install only and never upgrades: an upgrade to a chart
whose ``crds/`` also held VirtualIPPool never created it. The chart now renders its
CRDs as templates (``crds.enabled``, ``crds.keep``), as cert-manager does. Real helm,
real API server: install the old layout, upgrade, the pool CRD is there and served; the
old CRDs, unowned, are left alone until handed over (``kubectl label``/``annotate``, as
docs/install.md says), then the release manages and keeps them; uninstall deletes none.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.localcluster import Helm, LocalCluster, Objects, wait_until

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "keepvip"
CRD_API = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
OLD_STYLE = ("virtualips.keepvip.io", "clusterkopfpeerings.kopf.dev")
POOL_CRD = "virtualippools.keepvip.io"
NO_OPERATOR = ("--set", "operator.replicaCount=0")  # the CRDs are the subject, not the pods


def old_style_chart(into: Path) -> Path:
    """This chart laid out as the last release before LoadBalancer: VirtualIP's and kopf's
    CRDs in ``crds/``, no VirtualIPPool CRD, no CRD templates."""
    chart = into / "keepvip"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "crds.yaml").unlink()
    (chart / "crds").mkdir()
    for name in OLD_STYLE:
        shutil.move(chart / "files" / "crds" / f"{name}.yaml", chart / "crds" / f"{name}.yaml")
    shutil.rmtree(chart / "files")
    return chart


def crd(objects: Objects, name: str) -> dict[str, Any] | None:
    return objects.get(*CRD_API, name)


def owner(found: dict[str, Any] | None) -> tuple[str | None, str | None]:
    annotations = ((found or {}).get("metadata") or {}).get("annotations") or {}
    return annotations.get("meta.helm.sh/release-name"), annotations.get("meta.helm.sh/release-namespace")


def kubectl(cluster: LocalCluster, *args: str) -> None:
    subprocess.run(["kubectl", *args], env=cluster.kubectl_env(), check=True, capture_output=True,
                   text=True, timeout=60)  # fmt: skip


def manifest_kinds(helm: Helm, release: str, namespace: str) -> list[str]:
    return [d["kind"] for d in yaml.safe_load_all(helm.run("get", "manifest", release, "-n", namespace)) if d]


def test_upgrading_from_the_crds_folder_layout_installs_the_pool_crd_and_keeps_every_crd(
    cluster: LocalCluster, objects: Objects, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    # A cluster that never saw keepvip (earlier modules' releases kept their CRDs).
    for name in (*OLD_STYLE, POOL_CRD):
        objects.delete(*CRD_API, name)
    wait_until(lambda: all(crd(objects, n) is None for n in (*OLD_STYLE, POOL_CRD)), timeout=60,
               what="keepvip's CRDs gone")  # fmt: skip
    release = f"kv-{secrets.token_hex(2)}"
    helm.run("install", release, str(old_style_chart(tmp_path)), "-n", namespace, *NO_OPERATOR, "--wait")
    assert all(crd(objects, n) is not None for n in OLD_STYLE)
    assert owner(crd(objects, "virtualips.keepvip.io")) == (None, None), "crds/ carries no release"
    assert crd(objects, POOL_CRD) is None

    helm.run("upgrade", release, str(CHART), "-n", namespace, *NO_OPERATOR, "--wait")
    pool_crd = wait_until(lambda: crd(objects, POOL_CRD), timeout=30, what="the pool CRD")
    assert owner(pool_crd) == (release, namespace)
    assert pool_crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    wait_until(lambda: any(c["type"] == "Established" and c["status"] == "True"
                           for c in (crd(objects, POOL_CRD) or {}).get("status", {}).get("conditions", [])),
               timeout=30, what="the pool CRD established")  # fmt: skip
    pool = {"apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIPPool",
            "metadata": {"name": f"upgraded-{secrets.token_hex(2)}"},
            "spec": {"addresses": [f"{cluster.vip(90)}-{cluster.vip(91)}"]}}  # fmt: skip
    objects.apply(pool, field_manager="kubectl")
    objects.delete("keepvip.io/v1alpha1", "VirtualIPPool", pool["metadata"]["name"])
    # The CRDs crds/ installed belong to no release: left alone (Helm would refuse them).
    assert owner(crd(objects, "virtualips.keepvip.io")) == (None, None)
    assert "CustomResourceDefinition" in manifest_kinds(helm, release, namespace)

    # Handed over as docs/install.md says, the next upgrade manages (and keeps) them too.
    kubectl(cluster, "label", "crd", *OLD_STYLE, "app.kubernetes.io/managed-by=Helm", "--overwrite")
    kubectl(cluster, "annotate", "crd", *OLD_STYLE, f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}", "--overwrite")  # fmt: skip
    helm.run("upgrade", release, str(CHART), "-n", namespace, *NO_OPERATOR, "--wait")
    for name in OLD_STYLE:
        managed = crd(objects, name) or {}
        assert managed["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
        assert managed["metadata"]["labels"]["app.kubernetes.io/instance"] == release, name
    assert manifest_kinds(helm, release, namespace).count("CustomResourceDefinition") == 3

    # A second release finds the CRDs owned by the first and leaves them to it.
    other, second = f"{namespace[:50]}-b", f"kv-{secrets.token_hex(2)}"  # its ClusterRoles are its own
    cluster.create_namespace(other)
    try:
        helm.run("install", second, str(CHART), "-n", other, *NO_OPERATOR, "--wait")
        assert "CustomResourceDefinition" not in manifest_kinds(helm, second, other)
        assert owner(crd(objects, POOL_CRD)) == (release, namespace)
        helm.run("uninstall", second, "-n", other, "--wait")
    finally:
        cluster.core.delete_namespace(other)

    helm.run("uninstall", release, "-n", namespace, "--wait")
    for name in (*OLD_STYLE, POOL_CRD):
        assert crd(objects, name) is not None, f"helm uninstall deleted {name} despite crds.keep"
