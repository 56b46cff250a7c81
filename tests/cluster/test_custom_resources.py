"""A CRD with a status subresource, and server-side apply on status by two managers.

This is the API surface keepvip's speakers rely on: each speaker owns its own entry of
``status.nodes`` (a list of type map keyed by ``node``) through server-side apply with
its own field manager, so two speakers never conflict and never erase each other.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.dynamic.exceptions import ConflictError

from keepvip.localcluster import Objects, wait_until

pytestmark = pytest.mark.cluster

GROUP, VERSION, KIND = "harness.keepvip.io", "v1", "Widget"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"widgets.{GROUP}"


def _crd() -> dict[str, Any]:
    node_entry = {"type": "object", "required": ["node"], "properties": {
        "node": {"type": "string"}, "state": {"type": "string"},
        "priority": {"type": "integer"}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP, "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": KIND},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                    "status": {"type": "object", "properties": {
                        "master": {"type": "string"},
                        "nodes": {"type": "array", "items": node_entry,
                                  "x-kubernetes-list-type": "map",
                                  "x-kubernetes-list-map-keys": ["node"]}}}}}},
            }],
        },
    }


@pytest.fixture(scope="module")
def widgets_crd(objects: Objects) -> Iterator[None]:
    objects.create(_crd())

    def established() -> bool:
        crd = objects.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME) or {}
        return any(c["type"] == "Established" and c["status"] == "True"
                   for c in crd.get("status", {}).get("conditions", []))

    wait_until(established, what="CRD Established")
    yield
    objects.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME)


@pytest.fixture
def widget(objects: Objects, widgets_crd: None) -> Iterator[str]:
    name = f"w-{secrets.token_hex(3)}"
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "spec": {"size": 1}}
    wait_until(lambda: objects.create(body), timeout=10, what="the Widget kind to be served")
    yield name
    objects.delete(API_VERSION, KIND, name)


def _apply_status(objects: Objects, name: str, manager: str, entry: dict[str, Any],
                  force: bool = False) -> dict[str, Any]:
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name},
            "status": {"nodes": [entry]}}
    return objects.apply(body, field_manager=manager, force=force, subresource="status")


def test_status_subresource_ignores_spec_and_main_resource_ignores_status(
        objects: Objects, widget: str) -> None:
    objects.apply({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": widget},
                   "spec": {"size": 9}, "status": {"master": "node-a"}},
                  field_manager="status-writer", subresource="status")
    objects.patch(API_VERSION, KIND, widget, {"spec": {"size": 2}, "status": {"master": "x"}})

    obj = objects.get(API_VERSION, KIND, widget)
    assert obj is not None
    assert obj["spec"]["size"] == 2
    assert obj["status"]["master"] == "node-a"


def test_two_field_managers_own_their_own_status_entries_without_conflict(
        objects: Objects, widget: str) -> None:
    _apply_status(objects, widget, "speaker-node-a",
                  {"node": "node-a", "state": "MASTER", "priority": 150})
    _apply_status(objects, widget, "speaker-node-b",
                  {"node": "node-b", "state": "BACKUP", "priority": 100})
    # node-a changes its own entry: node-b's entry must survive untouched.
    obj = _apply_status(objects, widget, "speaker-node-a",
                        {"node": "node-a", "state": "BACKUP", "priority": 150})

    entries = {e["node"]: e for e in obj["status"]["nodes"]}
    assert entries == {
        "node-a": {"node": "node-a", "state": "BACKUP", "priority": 150},
        "node-b": {"node": "node-b", "state": "BACKUP", "priority": 100},
    }
    managers = {m["manager"] for m in obj["metadata"]["managedFields"]
                if m["operation"] == "Apply"}
    assert {"speaker-node-a", "speaker-node-b"} <= managers


def test_a_manager_changing_another_managers_entry_is_a_conflict(
        objects: Objects, widget: str) -> None:
    _apply_status(objects, widget, "speaker-node-a", {"node": "node-a", "state": "MASTER"})

    with pytest.raises(ConflictError):
        _apply_status(objects, widget, "speaker-node-b", {"node": "node-a", "state": "FAULT"})

    obj = objects.get(API_VERSION, KIND, widget)
    assert obj is not None
    assert obj["status"]["nodes"] == [{"node": "node-a", "state": "MASTER"}]
