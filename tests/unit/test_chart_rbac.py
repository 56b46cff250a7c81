"""The chart's RBAC is least privilege: each role is exactly the reviewed list.

tests/chart_rbac_reviewed.yaml holds, per role, the verbs per resource someone
reviewed and justified. The rendered roles must equal it: a verb added to a template
without review fails here, and a verb the component needs but lacks fails the cluster
tests, which run the operator and the speakers under these roles.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart_helm import ROOT, Helm, Rendered, nested

REVIEWED = ROOT / "tests" / "chart_rbac_reviewed.yaml"


def grants(role: dict[str, Any]) -> dict[str, list[str]]:
    """A role's rules as "apiGroup/resource" -> sorted verbs (resourceNames kept apart)."""
    out: dict[str, set[str]] = defaultdict(set)
    for rule in role.get("rules") or []:
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                key = f"{group or 'core'}/{resource}"
                if rule.get("resourceNames"):
                    key += f" {sorted(rule['resourceNames'])}"
                out[key] |= set(rule["verbs"])
    return {key: sorted(verbs) for key, verbs in out.items()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return Helm.find(tmp_path_factory.mktemp("helm")).template()


Reviewed = dict[str, dict[str, list[str]]]


def roles(rendered: Rendered) -> Reviewed:
    """Every rendered role, keyed as in the reviewed file."""
    return {
        f"{doc['kind']}/{doc['metadata']['name']} {doc['metadata'].get('namespace', '')}".strip(): grants(doc)
        for doc in rendered.docs if doc["kind"] in ("ClusterRole", "Role")
    }  # fmt: skip


def reviewed_rights() -> tuple[Reviewed, dict[tuple[str, str], Reviewed]]:
    """The default rights, and per (values path, value) the rights each role gains with it."""
    base: Reviewed = {}
    conditional: dict[tuple[str, str], Reviewed] = defaultdict(dict)
    for key, rules in yaml.safe_load(REVIEWED.read_text()).items():
        rights = {resource: sorted(verbs) for resource, verbs in rules.items()}
        role, _, condition = key.partition(" when ")
        if condition:
            path, _, value = condition.partition("=")
            conditional[(path, value)][role] = rights
        else:
            base[role] = rights
    return base, conditional


def test_every_role_grants_exactly_the_reviewed_verbs(rendered: Rendered) -> None:
    base, _ = reviewed_rights()
    assert roles(rendered) == base


def test_rights_a_value_turns_on_are_exactly_the_reviewed_additions(tmp_path: Path) -> None:
    base, conditional = reviewed_rights()
    assert conditional, "the reviewed file lists conditional rights (kopf peering)"
    helm = Helm.find(tmp_path)
    for (path, value), additions in conditional.items():
        expected = {role: {**rights, **additions.get(role, {})} for role, rights in base.items()}
        assert roles(helm.template(nested({path: yaml.safe_load(value)}))) == expected, f"{path}={value}"


def test_no_role_uses_wildcards_or_escalation_verbs(rendered: Rendered) -> None:
    for doc in rendered.docs:
        if doc["kind"] not in ("ClusterRole", "Role"):
            continue
        for rule in doc["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"{doc['metadata']['name']}: wildcard in {field}"
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert "nonResourceURLs" not in rule


def test_no_secret_is_readable_by_default(rendered: Rendered) -> None:
    roles = [d for d in rendered.docs if d["kind"] in ("ClusterRole", "Role")]
    assert roles
    assert all(not key.startswith("core/secrets") for role in roles for key in grants(role))


def test_auth_secrets_are_granted_by_name_in_their_own_namespaces(tmp_path: Path) -> None:
    helm = Helm.find(tmp_path)
    rendered = helm.template({"speaker": {"authSecrets": [
        {"namespace": "ingress", "name": "vrrp-a"},
        {"namespace": "ingress", "name": "vrrp-b"},
        {"namespace": "db", "name": "vrrp-db"},
    ]}})  # fmt: skip
    roles = {d["metadata"]["namespace"]: grants(d) for d in rendered.of_kind("Role")
             if d["metadata"]["name"] == "keepvip-auth-secrets"}  # fmt: skip
    assert roles == {
        "ingress": {"core/secrets ['vrrp-a', 'vrrp-b']": ["get"]},
        "db": {"core/secrets ['vrrp-db']": ["get"]},
    }
    bindings = [b for b in rendered.of_kind("RoleBinding")
                if b["metadata"]["name"] == "keepvip-auth-secrets"]  # fmt: skip
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["db", "ingress"]
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "keepvip-speaker", "namespace": "keepvip-system"},
            {"kind": "ServiceAccount", "name": "keepvip-operator", "namespace": "keepvip-system"},
        ]


def test_each_binding_gives_its_role_to_its_own_service_account_only(rendered: Rendered) -> None:
    roles = {(d["kind"], d["metadata"]["name"]) for d in rendered.docs
             if d["kind"] in ("ClusterRole", "Role")}  # fmt: skip
    bound = set()
    for binding in rendered.docs:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        ref = binding["roleRef"]
        bound.add((ref["kind"], ref["name"]))
        component = ref["name"].removeprefix("keepvip-").removesuffix("-events")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"keepvip-{component}", "namespace": "keepvip-system"}
        ]
    assert bound == roles


def test_operator_pod_runs_as_the_operator_service_account(rendered: Rendered) -> None:
    assert rendered.operator_pod()["serviceAccountName"] == "keepvip-operator"
    assert rendered.settings()["speaker"]["serviceAccountName"] == "keepvip-speaker"


def test_speaker_events_are_create_and_patch_in_default_only(rendered: Rendered) -> None:
    """The speaker's Events (Conflict, AddressBindFailed) need no more than this (issue 10)."""
    speaker_roles = [
        d for d in rendered.docs
        if d["kind"] in ("ClusterRole", "Role") and d["metadata"]["name"].startswith("keepvip-speaker")
    ]  # fmt: skip
    event_rights = {
        (doc["kind"], doc["metadata"].get("namespace")): {
            k: v for k, v in grants(doc).items() if "events" in k
        }
        for doc in speaker_roles
    }
    assert event_rights == {
        ("ClusterRole", None): {},
        ("Role", "default"): {"core/events": ["create", "patch"]},
    }
    [binding] = [
        d
        for d in rendered.docs
        if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "keepvip-speaker-events"
    ]
    assert binding["metadata"]["namespace"] == "default"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "keepvip-speaker-events",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "keepvip-speaker", "namespace": "keepvip-system"}
    ]
