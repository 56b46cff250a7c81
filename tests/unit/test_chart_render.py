"""The chart as helm renders it with its defaults: lint, objects, settings, CRD, webhook TLS.

Real helm (hack/get-helm.sh), no cluster. What each single value changes is specified
in test_chart_values.py; RBAC in test_chart_rbac.py; pod security in
test_chart_security.py.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.operator.handlers import WEBHOOK_ID
from keepvip.operator.settings import OperatorSettings
from tests.chart_helm import CHART, ROOT, Helm, HelmError, Rendered

NAMESPACE = "keepvip-system"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def default(helm: Helm) -> Rendered:
    return helm.template(namespace=NAMESPACE)


def test_helm_lint_passes_in_strict_mode(helm: Helm) -> None:
    out = helm.run("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in out


def test_default_render_is_the_operator_its_identities_settings_and_webhook(default: Rendered) -> None:
    kinds = sorted(d["kind"] for d in default.docs)
    assert kinds == sorted([
        "ServiceAccount", "ServiceAccount",
        "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding",
        "Role", "RoleBinding", "Role", "RoleBinding", "Role", "RoleBinding",
        "ConfigMap", "Deployment",
        "Secret", "Service", "ValidatingWebhookConfiguration",
        "CustomResourceDefinition", "CustomResourceDefinition", "CustomResourceDefinition",
    ])  # fmt: skip


def test_default_render_has_no_speaker_daemonset_because_the_operator_owns_it(default: Rendered) -> None:
    assert not default.has("DaemonSet")


def test_default_render_has_no_monitoring_objects_so_it_installs_without_prometheus_crds(
    default: Rendered,
) -> None:
    for kind in ("PodMonitor", "ServiceMonitor", "PrometheusRule"):
        assert not default.has(kind)
    assert [d["metadata"]["name"] for d in default.of_kind("ConfigMap")] == ["keepvip-operator-settings"]


def test_namespaced_objects_land_in_the_release_namespace(helm: Helm) -> None:
    rendered = helm.template(namespace="vips")
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration",
                      "CustomResourceDefinition"}  # fmt: skip
    for doc in rendered.docs:
        if doc["metadata"]["name"] in ("keepvip-operator-events", "keepvip-speaker-events"):
            assert doc["metadata"]["namespace"] == "default"  # where Events on cluster objects go
        elif doc["kind"] in cluster_scoped:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"]["namespace"] == "vips", doc["kind"]


def test_release_named_keepvip_gives_the_names_the_operator_defaults_to(default: Rendered) -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in default.docs}
    assert ("Deployment", "keepvip-operator") in names
    assert ("ServiceAccount", "keepvip-speaker") in names
    assert ("Service", "keepvip-webhook") in names
    defaults = OperatorSettings()
    settings = default.settings()
    assert settings["speaker"]["daemonSetName"] == defaults.speaker.daemon_set_name
    assert settings["speaker"]["serviceAccountName"] == defaults.speaker.service_account_name
    assert settings["webhook"]["serviceName"] == defaults.webhook.service_name


def test_another_release_name_prefixes_every_object_so_two_releases_do_not_collide(helm: Helm) -> None:
    rendered = helm.template(release="edge")
    # CRDs are named by their API group and shared by the cluster (one release owns them).
    owned = [d for d in rendered.docs if d["kind"] != "CustomResourceDefinition"]
    assert {d["metadata"]["name"].split("-")[0] for d in owned} == {"edge"}
    assert rendered.settings()["speaker"]["daemonSetName"] == "edge-keepvip-speaker"


def test_rendered_settings_are_accepted_by_the_operator(default: Rendered) -> None:
    settings = OperatorSettings.model_validate(default.settings())
    assert settings.namespace == NAMESPACE


def test_rendered_settings_name_the_objects_the_chart_creates(default: Rendered) -> None:
    settings = OperatorSettings.model_validate(default.settings())
    service_accounts = {d["metadata"]["name"] for d in default.of_kind("ServiceAccount")}
    assert settings.speaker.service_account_name in service_accounts
    assert default.one("Service")["metadata"]["name"] == settings.webhook.service_name
    assert settings.speaker.image == default.operator_container()["image"]
    cert_mount = [m for m in default.operator_container()["volumeMounts"] if m["name"] == "webhook-tls"]
    assert [m["mountPath"] for m in cert_mount] == [settings.webhook.cert_dir]
    ports = {p["name"]: p["containerPort"] for p in default.operator_container()["ports"]}
    assert ports == {"metrics": settings.metrics_port, "webhook": settings.webhook.port,
                     "health": settings.health_port}
    assert settings.webhook.manage_configuration is False  # the chart ships the configuration
    assert default.one("Service")["spec"]["ports"][0]["port"] == settings.webhook.service_port


def test_speaker_daemonset_is_owned_by_the_rendered_operator_deployment(helm: Helm) -> None:
    """The owner reference makes `helm uninstall` garbage-collect the speakers."""
    rendered = helm.template(release="edge")
    assert rendered.settings()["deploymentName"] == rendered.one("Deployment")["metadata"]["name"]


def test_chart_defaults_are_the_operators_own_defaults(default: Rendered) -> None:
    """values.yaml documents the defaults; they must be what the operator would use anyway."""
    rendered = OperatorSettings.model_validate(default.settings()).model_dump(by_alias=True)
    builtin = OperatorSettings().model_dump(by_alias=True)
    release_specific = {"namespace", "speaker.image", "webhook.certDir"}
    for section in ("speaker", "allocation", "webhook"):
        for key, value in builtin[section].items():
            if f"{section}.{key}" not in release_specific:
                assert rendered[section][key] == value, f"{section}.{key}"
    assert rendered["metricsPort"] == builtin["metricsPort"]
    assert rendered["healthPort"] == builtin["healthPort"]


def test_operator_is_started_with_its_settings_file(default: Rendered) -> None:
    container = default.operator_container()
    command = container["command"]
    assert command[:2] == ["keepvip", "operator"]
    settings_file = command[command.index("--settings") + 1]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "settings")
    assert mount["mountPath"] == settings_file
    assert mount["subPath"] == "operator.yaml"
    volume = next(v for v in default.operator_pod()["volumes"] if v["name"] == "settings")
    assert volume["configMap"]["name"] == "keepvip-operator-settings"


def test_operator_pod_rolls_when_its_settings_change(helm: Helm, default: Rendered) -> None:
    def checksum(r: Rendered) -> str:
        value: str = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/settings"]
        return value

    assert checksum(helm.template({"speaker": {"metricsPort": 9999}})) != checksum(default)
    assert checksum(helm.template({"operator": {"podLabels": {"a": "b"}}})) == checksum(default)


def test_chart_crd_holds_the_same_bytes_as_the_generated_top_level_crd() -> None:
    files = CHART / "files" / "crds"  # rendered by templates/crds.yaml (test_chart_crds.py)
    top = ROOT / "crds" / "virtualips.keepvip.io.yaml"
    in_chart = files / "virtualips.keepvip.io.yaml"
    assert in_chart.read_bytes() == top.read_bytes(), (
        "charts/keepvip/files/crds is stale: run `make crd`"
    )
    pools = "virtualippools.keepvip.io.yaml"
    assert (files / pools).read_bytes() == (ROOT / "crds" / pools).read_bytes(), "run `make crd`"
    # Besides them, only kopf's ClusterKopfPeering CRD (operator peering; not generated).
    assert sorted(p.name for p in files.iterdir()) == [
        "clusterkopfpeerings.kopf.dev.yaml", pools, "virtualips.keepvip.io.yaml"
    ]


def _chain_verifies(cert_pem: str, key_pem: str, ca_pem: str, hostname: str, tmp: Path) -> None:
    """A real TLS handshake in memory: a server with the chart's pair, a client trusting the CA."""
    (tmp / "tls.crt").write_text(cert_pem)
    (tmp / "tls.key").write_text(key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp / "tls.crt", tmp / "tls.key")
    client_ctx = ssl.create_default_context(cadata=ca_pem)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, end in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    end.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("TLS handshake did not complete")


def _webhook_pair(rendered: Rendered) -> dict[str, str]:
    secret = rendered.one("Secret", "-webhook-tls")
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_webhook_certificate_is_trusted_for_the_service_name_through_what_the_operator_publishes(
    default: Rendered, tmp_path: Path
) -> None:
    """The operator publishes its tls.crt as caBundle: that bundle must verify the pair."""
    pair = _webhook_pair(default)
    settings = OperatorSettings.model_validate(default.settings())
    hostname = f"{settings.webhook.service_name}.{settings.namespace}.svc"
    _chain_verifies(pair["tls.crt"], pair["tls.key"], pair["tls.crt"], hostname, tmp_path)
    _chain_verifies(pair["tls.crt"], pair["tls.key"], pair["ca.crt"], hostname, tmp_path)


def test_webhook_certificate_is_refused_for_another_name(default: Rendered, tmp_path: Path) -> None:
    pair = _webhook_pair(default)
    with pytest.raises(ssl.SSLCertVerificationError):
        _chain_verifies(pair["tls.crt"], pair["tls.key"], pair["ca.crt"], "evil.keepvip-system.svc", tmp_path)


def test_webhook_service_leads_to_the_operators_webhook_port(default: Rendered) -> None:
    settings = OperatorSettings.model_validate(default.settings())
    service = default.one("Service", "-webhook")
    assert service["metadata"]["name"] == settings.webhook.service_name
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": settings.webhook.service_port, "targetPort": "webhook", "protocol": "TCP"}
    ]
    pod_labels = default.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_webhook_configuration_sends_only_virtualip_creates_and_updates_to_the_operators_handler(
    default: Rendered,
) -> None:
    webhooks = default.one("ValidatingWebhookConfiguration")["webhooks"]
    assert len(webhooks) == 2  # VirtualIPs, and VirtualIPPools (loadBalancer.enabled)
    webhook = webhooks[0]
    pools = webhooks[1]
    assert pools["rules"][0]["resources"] == ["virtualippools"]
    assert pools["clientConfig"]["service"]["path"] == "/validate-virtualippool"
    assert webhook["rules"] == [{
        "apiGroups": ["keepvip.io"], "apiVersions": ["v1alpha1"], "resources": ["virtualips"],
        "operations": ["CREATE", "UPDATE"], "scope": "Cluster",
    }]  # fmt: skip
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["failurePolicy"] == "Ignore"
    service = default.one("Service", "-webhook")
    assert webhook["clientConfig"]["service"] == {
        "name": service["metadata"]["name"], "namespace": NAMESPACE,
        "port": service["spec"]["ports"][0]["port"], "path": f"/{WEBHOOK_ID}",
    }  # fmt: skip
    ca_bundle = base64.b64decode(webhook["clientConfig"]["caBundle"]).decode()
    assert ca_bundle == _webhook_pair(default)["ca.crt"]


def test_operator_has_no_right_on_webhook_configurations(default: Rendered) -> None:
    for role in default.of_kind("ClusterRole") + default.of_kind("Role"):
        assert all("validatingwebhookconfigurations" not in r["resources"] for r in role["rules"])


# --- values.yaml documentation and values.schema.json strictness -------------------------

VALUES = CHART / "values.yaml"
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())


def _is_leaf(schema: dict[str, Any]) -> bool:
    """A values leaf: anything but one of our sections (Kubernetes types are leaves)."""
    is_section = "properties" in schema and not schema.get("description", "").startswith("Kubernetes ")
    return not is_section


def _documented_keys() -> list[tuple[str, list[str]]]:
    """(dotted path, comment lines above it) for every leaf key written in values.yaml."""
    lines = VALUES.read_text().splitlines()
    stack: list[tuple[int, str]] = []
    found = []
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.\-/]*):(\s|$)", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parents = [key for _, key in stack]
        stack.append((indent, match.group(2)))
        if any(_is_leaf(_at(SCHEMA, ".".join(parents[:n]))) for n in range(1, len(parents) + 1)):
            continue  # inside a leaf's default value (e.g. nodeSelector's kubernetes.io/os)
        path = ".".join([*parents, match.group(2)])
        if not _is_leaf(_at(SCHEMA, path)):
            continue
        comment = []
        for previous in reversed(lines[:index]):
            if not previous.strip().startswith("#"):
                break
            comment.insert(0, previous.strip())
        found.append((path, comment))
    return found


def test_every_values_leaf_has_a_comment_above_it_stating_its_default() -> None:
    documented = _documented_keys()
    assert len(documented) > 40
    undocumented = [path for path, comment in documented if "Default" not in " ".join(comment)]
    assert undocumented == []


def _object_nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if node.get("type") == "object":
        found.append((path or "<root>", node))
    for name, child in node.get("properties", {}).items():
        found += _object_nodes(child, f"{path}.{name}".lstrip("."))
    if isinstance(node.get("items"), dict):
        found += _object_nodes(node["items"], f"{path}[]")
    for branch in node.get("oneOf", []):
        found += _object_nodes(branch, path)
    return found


def test_schema_refuses_unknown_keys_at_every_level() -> None:
    passthrough = "a Kubernetes object, passed through unchanged"
    open_objects = [
        path for path, node in _object_nodes(SCHEMA)
        if "additionalProperties" not in node and node.get("description") != passthrough
    ]  # fmt: skip
    assert open_objects == []
    fixed = [path for path, node in _object_nodes(SCHEMA) if "properties" in node]
    assert all(_at(SCHEMA, p).get("additionalProperties") is False for p in fixed)


def _at(schema: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = schema
    for part in dotted.replace("[]", ".[]").split("."):
        if part in ("", "<root>"):
            continue
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def test_schema_describes_exactly_the_keys_values_yaml_has() -> None:
    def keys(values: Any, schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(values, dict) or _is_leaf(schema):
            return []
        missing = [f"{path}{k}" for k in values if k not in schema["properties"]]
        extra = [f"{path}{k} (schema only)" for k in schema["properties"] if k not in values]
        nested = [m for k, v in values.items() if k in schema["properties"]
                  for m in keys(v, schema["properties"][k], f"{path}{k}.")]  # fmt: skip
        return missing + extra + nested

    assert keys(yaml.safe_load(VALUES.read_text()), SCHEMA, "") == []


INVALID_VALUES = [
    pytest.param({"speakr": {}}, "Additional property speakr is not allowed", id="typo-top-level"),
    pytest.param({"speaker": {"nodeSelectr": {}}}, "speaker: Additional property nodeSelectr",
                 id="typo-nested"),
    pytest.param({"monitoring": {"podMonitor": {"intervall": "1m"}}},
                 "monitoring.podMonitor: Additional property intervall", id="typo-deep"),
    pytest.param({"speaker": {"tolerations": [{"operater": "Exists"}]}},
                 "speaker.tolerations.0: Additional property operater", id="typo-in-list-item"),
    pytest.param({"speaker": {"metricsPort": "9472"}}, "speaker.metricsPort: Invalid type", id="wrong-type"),
    pytest.param({"allocation": {"vridLast": 300}}, "allocation.vridLast: Must be less than or equal to 255",
                 id="out-of-range"),
    pytest.param({"operator": {"logFormat": "xml"}}, "operator.logFormat must be one of",
                 id="not-an-enum-value"),
    pytest.param({"operator": {"replicaCount": 6}}, "operator.replicaCount: Must be less than or equal to 5",
                 id="too-many-replicas"),
    pytest.param({"operator": {"peering": {"enabled": "yes"}}},
                 "operator.peering.enabled: Invalid type. Expected: boolean", id="peering-not-a-boolean"),
    pytest.param({"speaker": {"tolerations": {"operator": "Exists"}}},
                 "speaker.tolerations: Invalid type. Expected: array", id="map-for-list"),
    pytest.param({"operator": {"resources": {"limits": {"cpus": "1"}}}},
                 "operator.resources.limits: Additional property cpus", id="typo-in-resources"),
    pytest.param({"monitoring": {"prometheusRule": {"noMasterFor": "one minute"}}},
                 "monitoring.prometheusRule.noMasterFor: Does not match pattern", id="bad-duration"),
    pytest.param({"speaker": {"execChecks": {"runAsUser": 0}}},
                 "speaker.execChecks.runAsUser: Must be greater than or equal to 1", id="exec-as-root"),
    pytest.param({"speaker": {"execChecks": {"allowedCommands": ["check.sh"]}}},
                 "speaker.execChecks.allowedCommands.0: Does not match pattern", id="relative-cmd"),
    pytest.param({"speaker": {"ownershipMarker": "label"}}, "speaker.ownershipMarker must be one of",
                 id="unknown-marker"),
    pytest.param({"speaker": {"stateDir": "/var/lib/../../etc"}}, "speaker.stateDir: Does not match pattern",
                 id="state-dir-escapes"),
    pytest.param({"operator": {"networkPolicy": {"metricsFrom": [{"podSelectr": {}}]}}},
                 "operator.networkPolicy.metricsFrom.0: Additional property podSelectr", id="typo-in-peer"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "message"), INVALID_VALUES)
def test_invalid_values_are_refused_with_a_message_naming_the_key(
    helm: Helm, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template(values)
    assert message in refused.value.stderr


def test_a_value_set_on_the_command_line_is_validated_too(helm: Helm) -> None:
    with pytest.raises(HelmError) as refused:
        helm.run("template", "x", str(CHART), "--set", "image.pullPolicy=Sometimes")
    assert "image.pullPolicy must be one of" in refused.value.stderr


def test_packaged_chart_carries_crd_dashboard_schema_and_notes(helm: Helm, tmp_path: Path) -> None:
    helm.run("package", str(CHART), "--destination", str(tmp_path))
    archive = next(tmp_path.glob("keepvip-*.tgz"))
    listing = subprocess.run(["tar", "tzf", str(archive)], capture_output=True, text=True, check=True).stdout
    for member in ("keepvip/files/crds/virtualips.keepvip.io.yaml", "keepvip/dashboards/keepvip.json",
                   "keepvip/values.schema.json", "keepvip/templates/NOTES.txt"):  # fmt: skip
        assert member in listing.split()
