"""A refused value is quoted short at every layer that names it (issue 9).

"a refused value is quoted at most ~64 characters (a 1 MB address is echoed back whole
today)". The model's own messages are covered in test_model.py; these are the other
places a user's text reaches a message: the name of an unknown field (the model echoed a
1 MB key whole), the admission webhook's "does not exist" for a referenced Secret or
Service, and the speaker's "not found" for a Secret its file does not hold.
"""

from __future__ import annotations

from typing import Any

import pytest

from keepvip.api.limits import SHOWN_VALUE_MAX
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.operator.admission import KnownReferences, refusal_message, review
from keepvip.speaker.desired import NodeIdentity, PlanProblem, desired_routers

HUGE = "9" * 1_000_000
LONGEST_SECRET = "s" * 253  # the longest name Kubernetes allows a Secret
QUOTED = SHOWN_VALUE_MAX + len(" (1000000 characters in all)")


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP", "metadata": {"name": "web"},
        "spec": {"addresses": ["198.18.0.100/24"], **spec},
    }  # fmt: skip


def auth(namespace: str = "default", name: str = "vrrp", key: str = "pw") -> dict[str, Any]:
    secret = {"namespace": namespace, "name": name, "key": key}
    return {"version": 2, "vrid": 7, "authentication": {"type": "PASS", "secretRef": secret}}


@pytest.mark.parametrize(
    ("spec", "path"),
    [({HUGE: 1}, "spec."), ({"vrrp": {HUGE: 1}}, "spec.vrrp."), ({"healthChecks": [{"name": "w", HUGE: 1}]},
                                                                 "spec.healthChecks[0].")],
)  # fmt: skip
def test_an_unknown_field_with_a_megabyte_name_is_named_short(spec: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidVirtualIP) as refused:
        parse_virtualip(body(**spec))
    unknown = [e for e in refused.value.errors if e.message == "unknown field"]
    assert len(unknown) == 1, refused.value.errors
    assert unknown[0].path.startswith(path + "9" * 50)
    assert len(unknown[0].path) < len(path) + QUOTED
    assert len(str(refused.value)) < 300


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"vrrp": auth(name=HUGE)}, "spec.vrrp.authentication.secretRef.name"),
        ({"vrrp": auth(namespace=HUGE)}, "spec.vrrp.authentication.secretRef.namespace"),
        ({"vrrp": auth(key=HUGE)}, "spec.vrrp.authentication.secretRef.key"),
        ({"serviceRef": {"namespace": "default", "name": HUGE}}, "spec.serviceRef.name"),
    ],
)
def test_a_reference_longer_than_kubernetes_allows_is_refused_without_echoing_it(
    spec: dict[str, Any], field: str
) -> None:
    errors = review(body(**spec), None, {}, KnownReferences())
    assert [e.path for e in errors] == [field]
    assert len(refusal_message(errors)) < 200


def test_a_missing_secret_with_the_longest_name_is_named_short_by_admission_and_speaker() -> None:
    errors = review(body(vrrp=auth(name=LONGEST_SECRET)), None, {}, KnownReferences())
    assert [e.path for e in errors] == ["spec.vrrp.authentication.secretRef"]
    assert "s" * 50 in errors[0].message
    assert len(errors[0].message) < 200, errors[0].message

    vip = parse_virtualip(body(vrrp=auth(name=LONGEST_SECRET)))
    plans, skipped = desired_routers([vip], NodeIdentity("node-a"), {}, use_status_allocation=False)
    assert plans == {}
    assert [s.problem for s in skipped] == [PlanProblem.MISSING_SECRET]
    assert "s" * 50 in skipped[0].detail
    assert len(skipped[0].detail) < 200, skipped[0].detail
