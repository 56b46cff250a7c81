"""Kubernetes objects as plain dictionaries: create, apply, get, list, delete.

Tests and the demo speak in manifests (the same YAML a user writes). The typed
``kubernetes`` API classes want model objects and return optional-laden models; this
thin wrapper over the client's dynamic (discovery-based) API takes and returns
``dict[str, Any]`` for any kind, custom resources included, and refreshes discovery
when a kind appears after start (a freshly installed CRD).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from kubernetes import client, dynamic
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

Manifest = Mapping[str, Any]


class Objects:
    """Generic object access with one ApiClient (admin or any other identity)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._dyn = dynamic.DynamicClient(api)

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._dyn.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self._dyn.resources.invalidate_cache()
            return self._dyn.resources.get(api_version=api_version, kind=kind)

    @staticmethod
    def _dict(obj: Any) -> dict[str, Any]:
        result: dict[str, Any] = obj.to_dict()
        return result

    def create(self, manifest: Manifest, namespace: str | None = None) -> dict[str, Any]:
        """POST the manifest (namespaced kinds go to ``namespace`` unless it names one)."""
        res = self._resource(manifest["apiVersion"], manifest["kind"])
        ns = manifest.get("metadata", {}).get("namespace") or namespace
        return self._dict(res.create(body=dict(manifest), namespace=ns if res.namespaced else None))

    def apply(self, manifest: Manifest, field_manager: str, namespace: str | None = None,
              force: bool = True, subresource: str | None = None) -> dict[str, Any]:
        """Server-side apply the manifest as ``field_manager`` (optionally on ``/status``)."""
        res = self._resource(manifest["apiVersion"], manifest["kind"])
        if subresource is not None:
            res = res.subresources[subresource]
        meta = manifest["metadata"]
        ns = meta.get("namespace") or namespace
        return self._dict(res.server_side_apply(
            body=dict(manifest), name=meta["name"], namespace=ns if res.namespaced else None,
            field_manager=field_manager, force_conflicts=force))

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or ``None`` when it does not exist."""
        res = self._resource(api_version, kind)
        try:
            return self._dict(res.get(name=name, namespace=namespace if res.namespaced else None))
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind (in ``namespace`` if given), optionally selected."""
        res = self._resource(api_version, kind)
        items = res.get(namespace=namespace, label_selector=label_selector,
                        field_selector=field_selector)
        return [self._dict(i) for i in items.items]

    def patch(self, api_version: str, kind: str, name: str, patch: Manifest,
              namespace: str | None = None) -> dict[str, Any]:
        """A JSON merge patch."""
        res = self._resource(api_version, kind)
        return self._dict(res.patch(body=dict(patch), name=name, namespace=namespace,
                                    content_type="application/merge-patch+json"))

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None,
               grace_period_seconds: int | None = None) -> None:
        """Delete; an object that is already gone is fine."""
        res = self._resource(api_version, kind)
        body = ({"gracePeriodSeconds": grace_period_seconds}
                if grace_period_seconds is not None else None)
        with contextlib.suppress(NotFoundError):
            res.delete(name=name, namespace=namespace if res.namespaced else None, body=body)
