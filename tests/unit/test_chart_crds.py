"""The chart's CRDs are templates (``crds.enabled`` / ``crds.keep``), so ``helm upgrade`` brings them.

Helm installs a chart's ``crds/`` folder on the first install only and never upgrades
it: a release installed before VirtualIPPool existed never got that CRD from ``helm
upgrade``. The chart now renders them from ``files/crds/`` (cert-manager's way); the live
upgrade from the old layout is tests/cluster/test_lb_chart_upgrade.py.
"""

from __future__ import annotations

import pytest
import yaml

from tests.chart_helm import CHART, ROOT, Helm, HelmError, Rendered

CRDS = ("clusterkopfpeerings.kopf.dev", "virtualippools.keepvip.io", "virtualips.keepvip.io")


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def default(helm: Helm) -> Rendered:
    return helm.template()


def test_the_chart_has_no_crds_folder_that_helm_would_install_once_and_never_upgrade() -> None:
    assert not (CHART / "crds").exists()


def test_every_crd_is_rendered_as_committed_owned_by_the_release_and_kept(default: Rendered) -> None:
    rendered = {d["metadata"]["name"]: d for d in default.of_kind("CustomResourceDefinition")}
    assert sorted(rendered) == sorted(CRDS)
    for name, crd in rendered.items():
        committed = yaml.safe_load((CHART / "files" / "crds" / f"{name}.yaml").read_text())
        assert crd["spec"] == committed["spec"], name
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}, name
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert crd["metadata"]["labels"]["app.kubernetes.io/instance"] == "keepvip"
    pool = yaml.safe_load((ROOT / "crds" / "virtualippools.keepvip.io.yaml").read_text())
    assert rendered["virtualippools.keepvip.io"]["spec"] == pool["spec"]


def test_crds_disabled_renders_none_and_keep_off_drops_only_the_policy(helm: Helm) -> None:
    assert not helm.template({"crds": {"enabled": False}}).has("CustomResourceDefinition")
    unkept = helm.template({"crds": {"keep": False}}).of_kind("CustomResourceDefinition")
    assert len(unkept) == 3
    assert all("annotations" not in d["metadata"] for d in unkept)


def test_a_typo_under_crds_is_refused_naming_the_key(helm: Helm) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template({"crds": {"enable": False}})
    assert "crds: Additional property enable is not allowed" in refused.value.stderr
