"""The allocation record: one VirtualIP per address (or sharing group), named after the address.

Creating the record only if absent makes the API server the allocation lock: a second
operator replica, or this one after a restart, gets 409 Conflict for an address that is
already someone's and re-reads instead of handing it out twice. The record is what the
speakers run (it is an ordinary VirtualIP), so the address is announced by VRRP with the
pool's template; it names its Services in an annotation, because a cluster-scoped
object cannot carry an ownerReference to a namespaced Service (the garbage collector
treats that as unresolvable), and its owner is the pool.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from keepvip.api.constants import API_VERSION
from keepvip.api.model import VirtualIPSpec
from keepvip.api.parse import field_errors
from keepvip.inet import IPAddress
from keepvip.operator.lb.pools import PoolView
from keepvip.operator.lb.service import LbService

POOL_LABEL = "keepvip.io/pool"
SERVICES_ANNOTATION = "keepvip.io/services"
SHARING_ANNOTATION = "keepvip.io/sharing-key"
MANAGED_BY = {"app.kubernetes.io/managed-by": "keepvip-operator"}
LOCAL_CHECK = "kube-proxy-local-endpoints"
STAND_DOWN_LABEL = "keepvip.io/no-ready-endpoints"
"""A node label no node carries: added to the nodeSelector while a Service has no ready
endpoint, so every speaker drops the router and the address is withdrawn."""


def record_name(address: IPAddress) -> str:
    """``lb-198-18-0-100``, ``lb-2001-db8--64``: DNS-1123, one name per address."""
    text = str(address).replace(".", "-").replace(":", "-")
    return f"lb-{text}0" if text.endswith("-") else f"lb-{text}"


@dataclass(frozen=True)
class NodeView:
    """One speaker's entry of the record's status."""

    node: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class Record:
    """An existing allocation record, as listed."""

    name: str
    uid: str
    address: IPAddress
    pool: str
    services: tuple[str, ...]
    group_key: str | None
    spec: Mapping[str, Any]
    master: str | None = None
    nodes: tuple[NodeView, ...] = ()
    deleting: bool = False
    """Released already: its finalizer waits for the master to withdraw the address."""

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.address.version


def parse_record(body: Mapping[str, Any]) -> Record | None:
    """A VirtualIP labelled with a pool, as a record; None when it is not one."""
    metadata = body.get("metadata") or {}
    pool = (metadata.get("labels") or {}).get(POOL_LABEL)
    addresses: list[Any] = list((body.get("spec") or {}).get("addresses") or ())
    if not pool or len(addresses) != 1:
        return None
    try:
        address = ipaddress.ip_interface(addresses[0]).ip
    except ValueError:
        return None
    annotations = metadata.get("annotations") or {}
    services = tuple(s for s in annotations.get(SERVICES_ANNOTATION, "").split(",") if s)
    status = body.get("status") or {}
    nodes = tuple(
        NodeView(str(n.get("node")), str(n.get("state")), str(n.get("reason") or ""))
        for n in status.get("nodes") or ()
        if isinstance(n, Mapping)
    )
    return Record(
        name=str(metadata.get("name")),
        uid=str(metadata.get("uid", "")),
        address=address,
        pool=pool,
        services=services,
        group_key=annotations.get(SHARING_ANNOTATION) or None,
        spec=body.get("spec") or {},
        master=status.get("master"),
        nodes=nodes,
        deleting=bool(metadata.get("deletionTimestamp")),
    )


def addresses_of(body: Mapping[str, Any]) -> list[IPAddress]:
    """Every address a VirtualIP claims (records and hand-written ones alike)."""
    result: list[IPAddress] = []
    for text in (body.get("spec") or {}).get("addresses") or ():
        try:
            result.append(ipaddress.ip_interface(text).ip)
        except ValueError:
            continue
    return result


def desired_spec(
    view: PoolView, address: IPAddress, members: Sequence[LbService], ready: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """The record's spec: the pool's template, the address, and what the Services need.

    * ``externalTrafficPolicy: Local``: a built-in HTTP check on kube-proxy's
      ``healthCheckNodePort`` (kube-proxy answers 200 only while the node has a ready
      local endpoint, 503 otherwise), weight 0 (FAULT), rise 2 / fall 2: each speaker
      decides for its own node, without the API server.
    * ``Cluster``: while no endpoint is ready anywhere (and no Service opted out with
      ``keepvip.io/announce-without-endpoints``), a nodeSelector term no node satisfies,
      so the speakers withdraw the address; the API server is involved, but only for a
      Service with no backend at all, never for a node failover.

    Returns the spec, or the refusal when template and address do not fit together.
    """
    template = view.pool.spec.template.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec: dict[str, Any] = {**template, "addresses": [f"{address}/{address.max_prefixlen}"]}
    local = [m for m in members if m.local and m.health_check_node_port]
    if local:
        check = {
            "name": LOCAL_CHECK,
            "http": {"port": local[0].health_check_node_port, "path": "/healthz"},
            "interval": "1s",
            "timeout": "1s",
            "rise": 2,
            "fall": 2,
            "weight": 0,
        }
        spec["healthChecks"] = [*spec.get("healthChecks", []), check]
    elif members and not ready and not any(m.announce_without_endpoints for m in members):
        selector = dict(spec.get("nodeSelector") or {})
        term = {"key": STAND_DOWN_LABEL, "operator": "Exists"}
        selector["matchExpressions"] = [*selector.get("matchExpressions", []), term]
        spec["nodeSelector"] = selector
    try:
        VirtualIPSpec.model_validate(spec)
    except ValidationError as error:
        problems = "; ".join(str(e) for e in field_errors(error))
        return None, f"pool {view.name}'s template does not fit {address}: {problems}"
    return spec, None


def same_spec(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether two specs mean the same (the API server fills defaults into the stored one)."""
    try:
        return VirtualIPSpec.model_validate(dict(current)) == VirtualIPSpec.model_validate(dict(wanted))
    except ValidationError:
        return False


def record_body(
    name: str, view: PoolView, members: Sequence[str], group_key: str | None, spec: Mapping[str, Any]
) -> dict[str, Any]:
    """The record as created: labelled with its pool, owned by it, naming its Services."""
    annotations = {SERVICES_ANNOTATION: ",".join(members)}
    if group_key:
        annotations[SHARING_ANNOTATION] = group_key
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualIP",
        "metadata": {
            "name": name,
            "labels": {POOL_LABEL: view.name, **MANAGED_BY},
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "VirtualIPPool",
                    "name": view.name,
                    "uid": view.pool.metadata.uid or "",
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": dict(spec),
    }
