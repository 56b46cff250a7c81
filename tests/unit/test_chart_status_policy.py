"""The chart's ValidatingAdmissionPolicy: a speaker changes only its own node's status entry.

The local cluster (Kubernetes 1.20) cannot run a ValidatingAdmissionPolicy, so this
renders it with ``helm template --kube-version 1.30`` plus the API a 1.30 server's
discovery reports (``helm template`` alone reports group/versions without kinds), and
evaluates its CEL expressions with cel-python (a pure-Python CEL implementation) over
admission requests built like the API server's: ``request``, ``object``, ``oldObject``
and the policy's ``variables`` in order. The expressions use only standard CEL (no
Kubernetes extension library), so the evaluator and the API server agree on them.
"""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from tests.chart_helm import Helm, Rendered

VAP_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
SPEAKER = "system:serviceaccount:keepvip-system:keepvip-speaker"
NODE_CLAIM = "authentication.kubernetes.io/node-name"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def policy(helm: Helm) -> dict[str, Any]:
    rendered = helm.template(extra=["--kube-version", "1.30.0", "--api-versions", VAP_API])
    found: dict[str, Any] = rendered.one("ValidatingAdmissionPolicy")
    binding = rendered.one("ValidatingAdmissionPolicyBinding")
    assert binding["spec"] == {"policyName": found["metadata"]["name"], "validationActions": ["Deny"]}
    return found


@pytest.mark.parametrize(
    ("extra", "rendered"),
    [
        (["--kube-version", "1.30.0", "--api-versions", VAP_API], True),
        (["--kube-version", "1.29.0", "--api-versions", VAP_API], False),  # the API, but too old a server
        (["--kube-version", "1.30.0"], False),  # a server that does not serve the API
        (["--kube-version", "1.20.2"], False),
    ],
)
def test_the_policy_is_rendered_only_where_the_api_server_offers_it(
    helm: Helm, extra: list[str], rendered: bool
) -> None:
    result: Rendered = helm.template(extra=extra)
    assert result.has("ValidatingAdmissionPolicy") is rendered
    assert result.has("ValidatingAdmissionPolicyBinding") is rendered


def test_it_matches_the_speakers_status_updates_only(policy: dict[str, Any]) -> None:
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    assert spec["matchConstraints"]["resourceRules"] == [{
        "apiGroups": ["keepvip.io"], "apiVersions": ["*"], "operations": ["UPDATE"],
        "resources": ["virtualips/status"]}]  # fmt: skip


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    environment = celpy.Environment()
    program = environment.program(environment.compile(expression))
    return program.evaluate(activation)


def admit(policy: dict[str, Any], old: dict[str, Any], new: dict[str, Any], *,
          username: str = SPEAKER, node: str | None = "node-a") -> list[str]:  # fmt: skip
    """The messages of the failed validations (empty: admitted), as the API server evaluates them."""
    extra = {NODE_CLAIM: [node]} if node is not None else {}
    request = {"userInfo": {"username": username, "extra": extra}, "operation": "UPDATE"}
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(new),
        "oldObject": celpy.json_to_cel(old),
    }
    spec = policy["spec"]
    if not all(_evaluate(c["expression"], activation) for c in spec["matchConditions"]):
        return []  # the policy does not apply
    variables: dict[str, Any] = {}
    for variable in spec["variables"]:
        activation["variables"] = celpy.celtypes.MapType(variables)
        variables[celpy.celtypes.StringType(variable["name"])] = _evaluate(variable["expression"], activation)
    activation["variables"] = celpy.celtypes.MapType(variables)
    return [v["message"] for v in spec["validations"] if not _evaluate(v["expression"], activation)]


def vip(nodes: list[dict[str, Any]] | None = None, **operator_fields: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"vrid": 17, "multicastGroup": "224.0.0.201", "state": "Ready"}
    status.update(operator_fields)
    if nodes is not None:
        status["nodes"] = nodes
    return {"metadata": {"name": "web"}, "spec": {"addresses": ["198.18.0.100/24"]}, "status": status}


A_BACKUP = {"node": "node-a", "state": "BACKUP", "priority": 100}
A_MASTER = {"node": "node-a", "state": "MASTER", "priority": 100}
B_MASTER = {"node": "node-b", "state": "MASTER", "priority": 150}
B_BACKUP = {"node": "node-b", "state": "BACKUP", "priority": 150}


def test_a_speaker_may_add_and_change_its_own_entry(policy: dict[str, Any]) -> None:
    assert admit(policy, vip([B_MASTER]), vip([B_MASTER, A_BACKUP])) == []
    assert admit(policy, vip([B_MASTER, A_BACKUP]), vip([B_MASTER, A_MASTER])) == []
    assert admit(policy, vip([A_BACKUP, B_MASTER]), vip([B_MASTER])) == []  # removing its own
    assert admit(policy, vip(), vip([A_BACKUP])) == []  # the first entry of all


def test_a_speaker_may_not_touch_another_nodes_entry(policy: dict[str, Any]) -> None:
    own_only = "a speaker may change only the status.nodes entry of its own node"
    assert admit(policy, vip([B_MASTER]), vip([B_BACKUP])) == [own_only]
    assert admit(policy, vip([B_MASTER, A_BACKUP]), vip([A_MASTER])) == [own_only]
    assert admit(policy, vip([A_BACKUP]), vip([A_BACKUP, B_BACKUP])) == [own_only]


@pytest.mark.parametrize(("field", "value"), [
    ("vrid", 99), ("multicastGroup", "224.0.0.18"), ("master", "node-a"), ("state", "SplitBrain"),
    ("observedGeneration", 7), ("conditions", [{"type": "Ready", "status": "True"}]),
])  # fmt: skip
def test_a_speaker_may_not_change_the_operators_fields(
    policy: dict[str, Any], field: str, value: Any
) -> None:
    assert admit(policy, vip([A_BACKUP]), vip([A_BACKUP], **{field: value})) == [
        f"status.{field} is the operator's: a speaker may not change it"
    ]


def test_removing_an_operator_field_is_a_change_too(policy: dict[str, Any]) -> None:
    old, new = vip([A_BACKUP]), vip([A_BACKUP])
    del new["status"]["vrid"]
    assert admit(policy, old, new) == ["status.vrid is the operator's: a speaker may not change it"]


def test_a_token_without_a_node_claim_is_refused(policy: dict[str, Any]) -> None:
    messages = admit(policy, vip([A_BACKUP]), vip([A_MASTER]), node=None)
    assert messages[0].startswith("a speaker writes VirtualIP status only with a node-bound token")


def test_the_operator_and_other_users_are_not_restricted_by_it(policy: dict[str, Any]) -> None:
    operator = "system:serviceaccount:keepvip-system:keepvip-operator"
    assert admit(policy, vip([B_MASTER]), vip([B_BACKUP], vrid=3), username=operator, node=None) == []
