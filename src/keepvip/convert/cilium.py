"""Cilium LB-IPAM pools and L2 announcement policies → VirtualIPPool plans.

``CiliumLoadBalancerIPPool`` (``cilium.io/v2alpha1`` or ``v2``) lists ``blocks`` (``cidr`` or
``start``/``stop``; ``cidrs`` in early versions), may be ``disabled``, selects Services with
``serviceSelector`` — where the pseudo-labels ``io.kubernetes.service.namespace`` and
``io.kubernetes.service.name`` select by namespace and name — and reserves a CIDR's first
and last address only with ``allowFirstLastIPs: "No"``.

``CiliumL2AnnouncementPolicy`` decides which Services are announced by L2 and from which
nodes and interfaces. keepvip decides nodes per pool, so a policy maps onto the pools it
covers: a policy without ``serviceSelector`` covers every pool, one whose selector equals a
pool's covers that pool; anything finer is reported. A pool no policy covers is
announced by BGP or not at all under Cilium and is not converted. Cilium elects each
Service's announcer with a Kubernetes Lease; keepvip elects by VRRP, without the API
server.
"""

from __future__ import annotations

import re
from typing import Any

from keepvip.api.pool import parse_block
from keepvip.convert.manifests import Manifest
from keepvip.convert.names import dns_label
from keepvip.convert.plans import NAMESPACE_NAME_LABEL, Notes, Plans, PoolPlan
from keepvip.convert.report import Outcome
from keepvip.convert.services import Dialect

GROUP = "cilium.io"
NAMESPACE_KEY = "io.kubernetes.service.namespace"
NAME_KEY = "io.kubernetes.service.name"
BGP = "BGP: keepvip announces by VRRP on the local segment; keep BGP with a BGP speaker of your own"
_PLAIN_INTERFACE = re.compile(r"^\^?([A-Za-z0-9_.@-]+)\$?$")

DIALECT = Dialect(
    tool="cilium",
    translated={
        "lbipam.cilium.io/ips": "keepvip.io/load-balancer-ips",
        "io.cilium/lb-ipam-ips": "keepvip.io/load-balancer-ips",
        "lbipam.cilium.io/sharing-key": "keepvip.io/sharing-key",
        "io.cilium/lb-ipam-sharing-key": "keepvip.io/sharing-key",
    },
    unsupported={
        "lbipam.cilium.io/sharing-cross-namespace": "keepvip shares an address only inside one namespace",
        "io.cilium/lb-ipam-sharing-cross-namespace": "keepvip shares an address only inside one namespace",
    },
    prefixes=("lbipam.cilium.io/", "io.cilium/"),
)


def _selector(
    notes: Notes, manifest: Manifest, raw: object
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """A pool's serviceSelector → (serviceSelector, namespaceSelector) in keepvip's terms."""
    if not isinstance(raw, dict) or not raw:
        return None, None
    terms: list[tuple[str, object, str, Any]] = [
        (f"matchLabels[{key}]", key, "matchLabels", {key: value})
        for key, value in (raw.get("matchLabels") or {}).items()
    ]
    terms += [
        (f"matchExpressions[{index}]", r.get("key") if isinstance(r, dict) else None, "matchExpressions", r)
        for index, r in enumerate(raw.get("matchExpressions") or [])
    ]
    services: dict[str, Any] = {}
    namespaces: dict[str, Any] = {}
    for where, key, part, written in terms:
        path = f"spec.serviceSelector.{where}"
        if key == NAME_KEY:
            notes(
                manifest,
                path,
                Outcome.UNSUPPORTED,
                "keepvip selects Services by label, not by name: label the Service",
            )
            continue
        into, term = services, written
        if key == NAMESPACE_KEY:
            into = namespaces
            term = (
                {NAMESPACE_NAME_LABEL: written[NAMESPACE_KEY]}
                if part == "matchLabels"
                else {**written, "key": NAMESPACE_NAME_LABEL}
            )
            notes(
                manifest,
                path,
                Outcome.NOTE,
                f"→ namespaceSelector on {NAMESPACE_NAME_LABEL} (set by Kubernetes 1.21+)",
            )
        else:
            notes(manifest, path, Outcome.CONVERTED, "→ serviceSelector")
        if part == "matchLabels":
            into.setdefault(part, {}).update(term)
        else:
            into.setdefault(part, []).append(term)
    return services or None, namespaces or None


def _blocks(notes: Notes, manifest: Manifest, pool: PoolPlan, field: str, blocks: object) -> bool:
    if not isinstance(blocks, list) or not blocks:
        notes(manifest, f"spec.{field}", Outcome.ERROR, "a pool needs a list of blocks")
        return False
    ok = True
    for index, raw in enumerate(blocks):
        path = f"spec.{field}[{index}]"
        block = raw if isinstance(raw, dict) else {}
        if block.get("cidr"):
            text = str(block["cidr"])
        elif block.get("start"):
            text = f"{block['start']}-{block.get('stop') or block['start']}"
        else:
            notes(manifest, path, Outcome.ERROR, "a block needs cidr, or start (and stop)")
            ok = False
            continue
        try:
            parsed = parse_block(text)
        except ValueError as error:
            notes(manifest, path, Outcome.ERROR, str(error))
            ok = False
            continue
        pool.addresses.append(text if "/" in text else str(parsed))
        notes(manifest, path, Outcome.CONVERTED, f"→ VirtualIPPool {pool.name} spec.addresses")
    return ok


def _pool(notes: Notes, manifest: Manifest) -> PoolPlan | None:
    spec = manifest.body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    pool = PoolPlan(dns_label(manifest.name, "pool"), manifest, "spec")
    ok = True
    for key, value in spec.items():
        path = f"spec.{key}"
        if key in ("blocks", "cidrs"):
            ok = _blocks(notes, manifest, pool, key, value) and ok
        elif key == "disabled":
            pool.disabled = value is True
            notes(manifest, path, Outcome.CONVERTED, f"→ spec.disabled {str(pool.disabled).lower()}")
        elif key == "allowFirstLastIPs":
            pool.reserve = str(value) == "No"
            notes(
                manifest, path, Outcome.CONVERTED, f"→ reserveNetworkAndBroadcast {str(pool.reserve).lower()}"
            )
        elif key == "serviceSelector":
            pool.service_selector, pool.namespace_selector = _selector(notes, manifest, value)
        else:
            notes(manifest, path, Outcome.DROPPED, "not a CiliumLoadBalancerIPPool field keepvip knows")
    if "blocks" not in spec and "cidrs" not in spec:
        notes(manifest, "spec", Outcome.ERROR, "a pool needs spec.blocks: not converted")
        ok = False
    if pool.reserve:
        for text in pool.addresses:
            block = parse_block(text)
            if "/" in text and block.family == 6 and block.size > 2:
                pool.exclude.append(str(block.address(block.size - 1)))  # Cilium reserves both ends
    return pool if ok else None


def _interface(notes: Notes, manifest: Manifest, value: object) -> str | None:
    patterns = [str(v) for v in value] if isinstance(value, list) else []
    plain = _PLAIN_INTERFACE.match(patterns[0]) if len(patterns) == 1 else None
    if plain is not None:
        notes(manifest, "spec.interfaces", Outcome.CONVERTED, f"→ template.interface {plain.group(1)}")
        return plain.group(1)
    if patterns:
        notes(
            manifest, "spec.interfaces", Outcome.UNSUPPORTED,
            f"interface patterns {patterns}: keepvip holds a VIP on one interface, by default the one whose "
            "subnet holds the address",
        )  # fmt: skip
    return None


def _policy(notes: Notes, manifest: Manifest, pools: list[PoolPlan], covered: dict[str, Manifest]) -> None:
    spec = manifest.body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    if spec.get("loadBalancerIPs") is not True:
        notes(
            manifest,
            "spec.loadBalancerIPs",
            Outcome.DROPPED,
            "this policy does not announce LoadBalancer addresses",
        )
        return
    for key in spec:
        if key == "externalIPs" and spec[key] is True:
            notes(
                manifest,
                "spec.externalIPs",
                Outcome.UNSUPPORTED,
                "keepvip announces LoadBalancer addresses, not spec.externalIPs",
            )
        elif key not in ("loadBalancerIPs", "externalIPs", "nodeSelector", "serviceSelector", "interfaces"):
            notes(
                manifest,
                f"spec.{key}",
                Outcome.DROPPED,
                "not a CiliumL2AnnouncementPolicy field keepvip knows",
            )
    selector = spec.get("serviceSelector") or None
    mine = [
        p
        for p in pools
        if selector is None or selector == p.source.body.get("spec", {}).get("serviceSelector")
    ]
    if not mine:
        notes(
            manifest, "spec.serviceSelector", Outcome.UNSUPPORTED,
            "selects Services no pool selects alike: keepvip decides the announcing nodes per pool",
        )  # fmt: skip
        return
    interface = _interface(notes, manifest, spec.get("interfaces"))
    nodes = spec.get("nodeSelector") or None
    if nodes is not None:
        notes(manifest, "spec.nodeSelector", Outcome.CONVERTED, "→ template.nodeSelector of its pools")
    notes(
        manifest,
        "spec.loadBalancerIPs",
        Outcome.NOTE,
        f"announces pools {[p.name for p in mine]} by VRRP, not a Lease per Service",
    )
    for pool in mine:
        if pool.name in covered:
            if nodes is not None and pool.node_selector != nodes:
                notes(
                    manifest, "spec.nodeSelector", Outcome.UNSUPPORTED,
                    f"pool {pool.name} is also announced by {covered[pool.name].ref}: its nodes are kept",
                )  # fmt: skip
            continue
        covered[pool.name] = manifest
        pool.node_selector = nodes
        pool.interface = interface


def read_cilium(manifests: list[Manifest], notes: Notes) -> tuple[Plans, dict[str, str]]:
    """Cilium's objects → pool plans (Cilium pools are not named by Services)."""
    pools: list[PoolPlan] = []
    policies: list[Manifest] = []
    for manifest in manifests:
        kind, group = manifest.kind, manifest.api_group
        if kind == "CiliumLoadBalancerIPPool" and group == GROUP:
            pool = _pool(notes, manifest)
            if pool is not None:
                pools.append(pool)
        elif kind == "CiliumL2AnnouncementPolicy" and group == GROUP:
            policies.append(manifest)
        elif group == GROUP and "BGP" in kind:
            notes(manifest, "", Outcome.UNSUPPORTED, BGP)
        elif kind != "Service":
            notes(manifest, "", Outcome.DROPPED, "not Cilium LB-IPAM or L2 announcement configuration")
    covered: dict[str, Manifest] = {}
    for manifest in policies:
        _policy(notes, manifest, pools, covered)
    plans = Plans()
    for pool in pools:
        if pool.name not in covered:
            notes(
                pool.source, "spec", Outcome.DROPPED,
                "no CiliumL2AnnouncementPolicy announces it (BGP or nothing does): not converted, as keepvip "
                "announces every address it allocates",
            )  # fmt: skip
            continue
        plans.pools.append(pool)
    return plans, {}
