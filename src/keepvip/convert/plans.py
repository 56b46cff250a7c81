"""What a LoadBalancer converter decided, before it becomes documents.

The MetalLB, kube-vip and Cilium readers each turn their tool's objects into the same
few plans — a pool, a VirtualIP, the annotations a Service needs — and report what
they could not map. :mod:`keepvip.convert.render` turns the plans into documents,
validated by the API model, so every reader is a pure function from manifests to plans
and the rules that check a VirtualIPPool are written once, in :mod:`keepvip.api.pool`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keepvip.convert.manifests import Manifest
from keepvip.convert.report import Outcome, Report

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every Namespace since Kubernetes 1.21 (NamespaceDefaultLabelName)."""


@dataclass
class PoolPlan:
    """One VirtualIPPool to write; ``source``/``path`` name what it came from."""

    name: str
    source: Manifest
    path: str
    addresses: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    reserve: bool = False
    auto_assign: bool = True
    disabled: bool = False
    priority: int | None = None
    service_selector: dict[str, Any] | None = None
    namespace_selector: dict[str, Any] | None = None
    interface: str | None = None
    node_selector: dict[str, Any] | None = None


@dataclass
class VipPlan:
    """One VirtualIP to write (kube-vip's control-plane address)."""

    name: str
    source: Manifest
    path: str
    address: str
    interface: str | None = None
    node_selector: dict[str, Any] | None = None


@dataclass
class ServicePatch:
    """The keepvip annotations one Service needs (``kubectl annotate``)."""

    namespace: str
    name: str
    source: Manifest
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Plans:
    """Everything a reader decided."""

    pools: list[PoolPlan] = field(default_factory=list)
    vips: list[VipPlan] = field(default_factory=list)
    patches: list[ServicePatch] = field(default_factory=list)


@dataclass
class Notes:
    """Report entries about manifests: the object, where the field was written, its path."""

    report: Report

    def __call__(self, manifest: Manifest, path: str, outcome: Outcome, detail: str) -> None:
        """Record what became of ``path`` of ``manifest``."""
        self.report.add(manifest.ref, manifest.at(path), path or "object", outcome, detail)


def names_selector(key: str, names: list[str]) -> dict[str, Any]:
    """A LabelSelector for the objects whose ``key`` label is one of ``names``."""
    return {"matchExpressions": [{"key": key, "operator": "In", "values": sorted(set(names))}]}


def truthy(value: object) -> bool:
    """A Kubernetes-style boolean written as YAML or as an env string (``"true"``)."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "1", "on")
