"""Plans → documents: VirtualIPPools, VirtualIPs, Service annotation patches, a script.

Each pool and VirtualIP is parsed by the API model before it is emitted, so a
conversion never hands out what ``kubectl apply`` (or the admission webhook) would
refuse; what the model refuses is reported with its own field message, against the
source object, and not emitted. Service patches are partial Service documents (name,
namespace, annotations) for ``kubectl apply --server-side``; the same changes are
written as ``kubectl annotate`` commands for those who prefer a script.
"""

from __future__ import annotations

import shlex
from typing import Any

from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.api.pool import InvalidPool, parse_pool
from keepvip.convert.plans import Notes, Plans, PoolPlan, ServicePatch, VipPlan
from keepvip.convert.report import Outcome

API_VERSION = "keepvip.io/v1alpha1"
FIELD_MANAGER = "keepvip-convert"


def pool_document(plan: PoolPlan) -> dict[str, Any]:
    """The VirtualIPPool document of ``plan`` (defaults left out)."""
    spec: dict[str, Any] = {"addresses": list(plan.addresses)}
    if plan.exclude:
        spec["exclude"] = list(plan.exclude)
    spec["reserveNetworkAndBroadcast"] = plan.reserve
    if not plan.auto_assign:
        spec["autoAssign"] = False
    if plan.disabled:
        spec["disabled"] = True
    if plan.priority is not None:
        spec["priority"] = plan.priority
    if plan.service_selector is not None:
        spec["serviceSelector"] = plan.service_selector
    if plan.namespace_selector is not None:
        spec["namespaceSelector"] = plan.namespace_selector
    template: dict[str, Any] = {}
    if plan.interface is not None:
        template["interface"] = plan.interface
    if plan.node_selector is not None:
        template["nodeSelector"] = plan.node_selector
    if template:
        spec["template"] = template
    return {"apiVersion": API_VERSION, "kind": "VirtualIPPool", "metadata": {"name": plan.name}, "spec": spec}


def vip_document(plan: VipPlan) -> dict[str, Any]:
    """The VirtualIP document of ``plan``."""
    spec: dict[str, Any] = {"addresses": [plan.address]}
    if plan.interface is not None:
        spec["interface"] = plan.interface
    if plan.node_selector is not None:
        spec["nodeSelector"] = plan.node_selector
    return {"apiVersion": API_VERSION, "kind": "VirtualIP", "metadata": {"name": plan.name}, "spec": spec}


def patch_document(patch: ServicePatch) -> dict[str, Any]:
    """A partial Service: only the annotations keepvip needs (server-side apply merges it)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": patch.name,
            "namespace": patch.namespace,
            "annotations": dict(patch.annotations),
        },
    }


def documents(plans: Plans, notes: Notes) -> list[dict[str, Any]]:
    """The pools and VirtualIPs the model accepts, in plan order; refusals are reported."""
    emitted: list[dict[str, Any]] = []
    names: set[tuple[str, str]] = set()
    for pool in plans.pools:
        if ("VirtualIPPool", pool.name) in names:
            notes(pool.source, pool.path, Outcome.ERROR, f"a second pool named {pool.name}: not converted")
            continue
        document = pool_document(pool)
        try:
            parse_pool(document)
        except InvalidPool as error:
            for problem in error.errors:
                notes(
                    pool.source,
                    pool.path,
                    Outcome.ERROR,
                    f"VirtualIPPool {pool.name}: {problem}: not converted",
                )
            continue
        names.add(("VirtualIPPool", pool.name))
        emitted.append(document)
    for vip in plans.vips:
        document = vip_document(vip)
        try:
            parse_virtualip(document)
        except InvalidVirtualIP as error:
            for problem in error.errors:
                notes(vip.source, vip.path, Outcome.ERROR, f"VirtualIP {vip.name}: {problem}: not converted")
            continue
        emitted.append(document)
    return emitted


def script(patches: list[ServicePatch], command: str) -> str:
    """``kubectl annotate`` commands for ``patches`` (empty when there are none)."""
    if not patches:
        return ""
    lines = [
        "#!/bin/sh",
        f"# Written by `{command}`: the keepvip annotations of each Service.",
        f"# Equivalent to: kubectl apply --server-side --field-manager {FIELD_MANAGER} -f services.yaml",
        "set -eu",
    ]
    for patch in patches:
        pairs = " ".join(shlex.quote(f"{k}={v}") for k, v in patch.annotations.items())
        lines.append(
            f"kubectl annotate --overwrite --namespace {shlex.quote(patch.namespace)} "
            f"service/{shlex.quote(patch.name)} {pairs}"
        )
    return "\n".join(lines) + "\n"
