"""Several operator replicas: the chart turns kopf peering on exactly when they need it.

One replica runs standalone (no peering object, no peering rights, Recreate). More than
one, or ``operator.peering.enabled``, renders kopf's ClusterKopfPeering object named
like the release, puts that name into the operator's settings, grants the rights kopf's
peering uses, rolls pods without downtime and spreads them over nodes.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kopf._cogs.structs import references

from keepvip.operator.settings import OperatorSettings
from tests.chart_helm import CHART, Helm, Rendered

PEERING_CRD = CHART / "files" / "crds" / "clusterkopfpeerings.kopf.dev.yaml"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def two(helm: Helm) -> Rendered:
    return helm.template({"operator": {"replicaCount": 2}})


def peering_rules(rendered: Rendered) -> list[dict[str, Any]]:
    role = rendered.one("ClusterRole", "-operator")
    return [rule for rule in role["rules"] if "kopf.dev" in rule["apiGroups"]]


def strategy(rendered: Rendered) -> dict[str, Any]:
    found: dict[str, Any] = rendered.one("Deployment", "-operator")["spec"]["strategy"]
    return found


def test_two_replicas_peer_through_the_object_named_in_the_operators_settings(two: Rendered) -> None:
    peering = two.one("ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert peering["metadata"]["name"] == "keepvip"
    assert "namespace" not in peering["metadata"]
    assert OperatorSettings.model_validate(two.settings()).peering_name == "keepvip"
    assert two.one("Deployment", "-operator")["spec"]["replicas"] == 2


def test_two_replicas_may_watch_every_peering_object_but_patch_only_their_own(two: Rendered) -> None:
    assert peering_rules(two) == [
        {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["list", "watch"]},
        {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "resourceNames": ["keepvip"],
         "verbs": ["patch"]},
    ]  # fmt: skip


def test_two_replicas_roll_one_new_pod_at_a_time_without_stopping_the_old_ones_first(two: Rendered) -> None:
    assert strategy(two) == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_two_replicas_prefer_different_nodes(two: Rendered) -> None:
    anti_affinity = two.operator_pod()["affinity"]["podAntiAffinity"]
    preferred = anti_affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    [term] = [p["podAffinityTerm"] for p in preferred]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    pod_labels = two.one("Deployment", "-operator")["spec"]["template"]["metadata"]["labels"]
    assert term["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    assert term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"


def test_the_operators_identity_for_peering_is_its_pod_name(two: Rendered) -> None:
    env = {e["name"]: e for e in two.operator_container()["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.parametrize("replicas", [0, 1])
def test_one_or_no_replica_runs_standalone_with_no_peering_object_or_right(helm: Helm, replicas: int) -> None:
    rendered = helm.template({"operator": {"replicaCount": replicas}})
    assert not rendered.has("ClusterKopfPeering")
    assert "peeringName" not in rendered.settings()
    assert OperatorSettings.model_validate(rendered.settings()).peering_name is None
    assert peering_rules(rendered) == []
    assert strategy(rendered) == {"type": "Recreate"}
    assert "affinity" not in rendered.operator_pod()


def test_peering_can_be_turned_on_for_one_replica_so_it_can_be_scaled_later(helm: Helm) -> None:
    rendered = helm.template({"operator": {"peering": {"enabled": True}}})
    assert rendered.one("Deployment", "-operator")["spec"]["replicas"] == 1
    assert rendered.one("ClusterKopfPeering")["metadata"]["name"] == rendered.settings()["peeringName"]
    assert len(peering_rules(rendered)) == 2


def test_the_peering_object_is_named_like_the_release(helm: Helm) -> None:
    rendered = helm.template({"operator": {"replicaCount": 2}}, release="edge")
    assert rendered.one("ClusterKopfPeering")["metadata"]["name"] == "edge-keepvip"
    assert rendered.settings()["peeringName"] == "edge-keepvip"
    assert peering_rules(rendered)[1]["resourceNames"] == ["edge-keepvip"]


def test_an_affinity_given_in_the_values_replaces_the_default_spread(helm: Helm) -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "role", "operator": "In", "values": ["infra"]}]}]}}}  # fmt: skip
    rendered = helm.template({"operator": {"replicaCount": 2, "affinity": affinity}})
    assert rendered.operator_pod()["affinity"] == affinity


def test_helm_ships_the_peering_crd_kopf_looks_for(helm: Helm) -> None:
    rendered = helm.template(extra=["--include-crds"])
    crd = rendered.one("CustomResourceDefinition", "kopf.dev")
    [version] = crd["spec"]["versions"]
    assert version["served"]
    assert version["storage"]
    assert crd["spec"]["scope"] == "Cluster"
    names = crd["spec"]["names"]
    served = references.Resource(
        group=crd["spec"]["group"], version=version["name"], plural=names["plural"],
        kind=names["kind"], singular=names["singular"], namespaced=False,
    )  # fmt: skip
    # kopf's own selector of cluster-wide peering resources (what it discovers and watches).
    assert references.CLUSTER_PEERINGS_K.check(served)
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    # kopf merge-patches status in the main resource when there is no status subresource.
    assert "subresources" not in version
    shipped = yaml.safe_load(PEERING_CRD.read_text())
    assert crd["spec"] == shipped["spec"]
    assert crd["metadata"]["name"] == shipped["metadata"]["name"]
