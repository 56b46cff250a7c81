"""Admission decisions: the shared invalid list, and the cross-object rules."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.api.parse import parse_virtualip
from keepvip.operator.admission import (
    InventoryEntry,
    KnownReferences,
    address_held_by_older,
    refusal_message,
    review,
)

INVALID = yaml.safe_load((Path(__file__).parents[1] / "data" / "invalid_virtualips.yaml").read_text())
BASE_SPEC: dict[str, Any] = {"addresses": ["198.18.0.100/24"]}
NOTHING = KnownReferences()


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = merged(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def body(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "keepvip.io/v1alpha1", "kind": "VirtualIP",
        "metadata": {"name": name}, "spec": merged(BASE_SPEC, spec),
    }


def entry(
    name: str, spec: dict[str, Any], status: dict[str, Any] | None = None, created: str = ""
) -> InventoryEntry:
    document = {"metadata": {"name": name}, "spec": spec, **({"status": status} if status else {})}
    vip = parse_virtualip(document)
    return InventoryEntry.of(vip, created)


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_each_invalid_virtualip_is_refused_naming_its_field(case: dict[str, Any]) -> None:
    errors = review(body(**case["spec"]), None, {}, NOTHING)
    assert case["field"] in [e.path for e in errors], refusal_message(errors)
    assert case["field"] + ":" in refusal_message(errors)


def test_a_valid_virtualip_with_nothing_around_it_is_admitted() -> None:
    assert review(body(), None, {}, NOTHING) == []


def test_an_address_another_virtualip_uses_is_refused() -> None:
    inventory = {"old": entry("old", {"addresses": ["198.18.0.100/32"]})}
    errors = review(body(addresses=["198.18.0.7/24", "198.18.0.100/24"]), None, inventory, NOTHING)
    assert [(e.path, e.message) for e in errors] == [
        ("spec.addresses[1]", "198.18.0.100 is already used by VirtualIP 'old'")
    ]


def test_updating_a_virtualip_does_not_conflict_with_itself() -> None:
    inventory = {"web": entry("web", {"addresses": ["198.18.0.100/24"]})}
    new = body(priority=120)
    assert review(new, body(), inventory, NOTHING) == []


def test_a_pinned_pair_another_virtualip_holds_in_status_is_refused() -> None:
    holder = entry("x", {"addresses": ["198.18.0.5/24"]}, {"vrid": 51, "multicastGroup": "224.0.0.18"})
    errors = review(body(vrrp={"vrid": 51, "multicastGroup": "standard"}), None, {"x": holder}, NOTHING)
    assert [e.path for e in errors] == ["spec.vrrp.vrid"]
    assert "'x'" in errors[0].message


def test_a_pinned_pair_another_virtualip_pins_is_refused() -> None:
    pins = {"vrid": 9, "multicastGroup": "224.0.0.230"}
    holder = entry("x", {"addresses": ["198.18.0.5/24"], "vrrp": pins})
    errors = review(body(vrrp={"vrid": 9, "multicastGroup": "224.0.0.230"}), None, {"x": holder}, NOTHING)
    assert [e.path for e in errors] == ["spec.vrrp.vrid"]


def test_the_same_vrid_in_another_group_is_admitted() -> None:
    holder = entry("x", {"addresses": ["198.18.0.5/24"]}, {"vrid": 9, "multicastGroup": "224.0.0.231"})
    assert review(body(vrrp={"vrid": 9, "multicastGroup": "224.0.0.230"}), None, {"x": holder}, NOTHING) == []


def test_a_missing_auth_secret_is_refused_and_an_existing_one_admitted() -> None:
    auth = {"type": "PASS", "secretRef": {"namespace": "vip", "name": "vrrp", "key": "password"}}
    spec: dict[str, Any] = {"vrrp": {"version": 2, "authentication": auth}}
    errors = review(body(**spec), None, {}, NOTHING)
    assert [(e.path, e.message) for e in errors] == [
        ("spec.vrrp.authentication.secretRef", "Secret vip/vrrp does not exist")
    ]
    assert review(body(**spec), None, {}, KnownReferences(secrets=frozenset({("vip", "vrrp")}))) == []


def test_a_missing_service_ref_is_refused_and_an_existing_one_admitted() -> None:
    spec: dict[str, Any] = {"serviceRef": {"namespace": "ingress", "name": "nginx"}}
    assert [e.path for e in review(body(**spec), None, {}, NOTHING)] == ["spec.serviceRef"]
    assert review(body(**spec), None, {}, KnownReferences(services=frozenset({("ingress", "nginx")}))) == []


def test_updates_that_leave_the_spec_alone_are_always_admitted() -> None:
    stored_invalid = body(priority=0)
    with_finalizer = merged(stored_invalid, {"metadata": {"finalizers": ["keepvip.io/release-allocation"]}})
    assert review(with_finalizer, stored_invalid, {}, NOTHING) == []


def test_updates_of_an_object_being_deleted_are_admitted() -> None:
    deleting = merged(body(priority=0), {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert review(deleting, body(priority=7), {}, NOTHING) == []


def test_an_update_that_changes_the_spec_is_checked_like_a_create() -> None:
    assert [e.path for e in review(body(priority=0), body(), {}, NOTHING)] == ["spec.priority"]


def test_the_refusal_lists_every_field() -> None:
    errors = review(body(priority=0, vrrp={"vrid": 0}), None, {}, NOTHING)
    message = refusal_message(errors)
    assert "spec.priority:" in message
    assert "spec.vrrp.vrid:" in message


def test_in_reconcile_the_older_virtualip_keeps_a_contested_address() -> None:
    old = entry("old", {"addresses": ["198.18.0.100/24"]}, created="2026-01-01T00:00:00Z")
    new = entry("new", {"addresses": ["198.18.0.100/24"]}, created="2026-01-02T00:00:00Z")
    vip_new = parse_virtualip(body("new"))
    vip_old = parse_virtualip(body("old"))
    lost = address_held_by_older(vip_new, new.created, [old, new])
    assert lost is not None
    assert lost.path == "spec.addresses"
    assert "'old'" in lost.message
    assert address_held_by_older(vip_old, old.created, [old, new]) is None
