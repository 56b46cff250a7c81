"""A Service body → what it asks of keepvip (pure; object bodies in, typed values out).

Read here, once: ``spec.type``, ``spec.loadBalancerClass`` (Kubernetes 1.21+; absent on
1.20, where only class-less Services exist), the keepvip annotations,
``spec.loadBalancerIP``, ports, selector, ``externalTrafficPolicy`` with its
``healthCheckNodePort``, ``ipFamilies``/``ipFamilyPolicy`` and the current
``status.loadBalancer.ingress``. A request that cannot be honoured is still an
:class:`LbService` carrying its :attr:`LbService.problem`, so the Service is told why.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keepvip.inet import IPAddress
from keepvip.operator.lb.reasons import Allocation

LOAD_BALANCER_CLASS = "keepvip.io/vrrp"
ANNOTATION_IPS = "keepvip.io/load-balancer-ips"
ANNOTATION_POOL = "keepvip.io/pool"
ANNOTATION_SHARING_KEY = "keepvip.io/sharing-key"
ANNOTATION_IP_MODE = "keepvip.io/ip-mode"
ANNOTATION_IGNORE = "keepvip.io/ignore"
ANNOTATION_ANNOUNCE_WITHOUT_ENDPOINTS = "keepvip.io/announce-without-endpoints"
IP_MODES = ("VIP", "Proxy")
_TRUE = ("true", "yes", "1")


class Skip(enum.StrEnum):
    """Why a Service is not keepvip's (logged at debug; nothing is written to it)."""

    NOT_LOAD_BALANCER = "NotLoadBalancer"
    OTHER_CLASS = "OtherClass"
    NO_CLASS = "NoClass"  # class-less, and the chart's loadBalancer.defaultClass is false
    IGNORED = "Ignored"  # keepvip.io/ignore: "true"


@dataclass(frozen=True, order=True)
class PortKey:
    """One port of a Service as sharing sees it (port and protocol)."""

    port: int
    protocol: str

    def __str__(self) -> str:
        return f"{self.port}/{self.protocol}"


@dataclass(frozen=True)
class LbService:
    """A LoadBalancer Service keepvip serves."""

    namespace: str
    name: str
    uid: str = ""
    labels: Mapping[str, str] | None = None
    families: tuple[int, ...] = (4,)
    """Families to allocate, in order (ipFamilies, else the requested addresses', else IPv4)."""
    require_all: bool = True
    """RequireDualStack (or SingleStack): every family must get an address."""
    requested: tuple[IPAddress, ...] = ()
    pool: str | None = None
    sharing_key: str | None = None
    ip_mode: str = "VIP"
    ports: frozenset[PortKey] = frozenset()
    selector: tuple[tuple[str, str], ...] = ()
    local: bool = False
    """externalTrafficPolicy: Local."""
    health_check_node_port: int | None = None
    announce_without_endpoints: bool = False
    ingress: tuple[IPAddress, ...] = ()
    """Addresses status.loadBalancer.ingress shows now."""
    conditions: tuple[Mapping[str, Any], ...] = ()
    generation: int | None = None
    problem: tuple[Allocation, str] | None = None
    """A request that cannot be honoured as written (reason, message naming the field)."""

    @property
    def key(self) -> str:
        """namespace/name."""
        return f"{self.namespace}/{self.name}"

    @property
    def group_key(self) -> str | None:
        """namespace/sharing-key: Services share only inside one namespace."""
        return f"{self.namespace}/{self.sharing_key}" if self.sharing_key else None

    def requested_in(self, family: int) -> IPAddress | None:
        """The requested address of a family, if any."""
        return next((a for a in self.requested if a.version == family), None)


def _addresses(text: str, field: str) -> tuple[tuple[IPAddress, ...], str | None]:
    found: list[IPAddress] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            found.append(ipaddress.ip_address(part))
        except ValueError:
            return (), f"{field}: {part!r} is not an IP address"
    if len({a.version for a in found}) != len(found):
        return (), f"{field}: at most one address per family"
    return tuple(found), None


def _ingress(status: Mapping[str, Any] | None) -> tuple[IPAddress, ...]:
    entries = ((status or {}).get("loadBalancer") or {}).get("ingress") or ()
    result: list[IPAddress] = []
    for entry in entries:
        try:
            result.append(ipaddress.ip_address(entry.get("ip", "")))
        except (ValueError, AttributeError):
            continue
    return tuple(result)


def _families(spec: Mapping[str, Any], requested: tuple[IPAddress, ...]) -> tuple[tuple[int, ...], bool]:
    policy = spec.get("ipFamilyPolicy") or "SingleStack"
    declared = tuple(4 if f == "IPv4" else 6 for f in spec.get("ipFamilies") or () if f in ("IPv4", "IPv6"))
    if not declared:
        declared = tuple(dict.fromkeys(a.version for a in requested)) or (4,)
    if policy == "SingleStack":
        return declared[:1], True
    if len(declared) == 1:  # PreferDualStack on a single-stack cluster: the other family if a pool has it
        declared = (declared[0], 10 - declared[0])
    return declared, policy == "RequireDualStack"


def parse_service(body: Mapping[str, Any], default_class: bool) -> LbService | Skip:
    """What a Service body asks of keepvip, or why it is not keepvip's."""
    spec: Mapping[str, Any] = body.get("spec") or {}
    metadata: Mapping[str, Any] = body.get("metadata") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    if spec.get("type") != "LoadBalancer":
        return Skip.NOT_LOAD_BALANCER
    lb_class = spec.get("loadBalancerClass")
    if lb_class is None and not default_class:
        return Skip.NO_CLASS
    if lb_class is not None and lb_class != LOAD_BALANCER_CLASS:
        return Skip.OTHER_CLASS
    if annotations.get(ANNOTATION_IGNORE, "").lower() in _TRUE:
        return Skip.IGNORED
    problem: tuple[Allocation, str] | None = None
    listed, spec_ip = annotations.get(ANNOTATION_IPS, ""), spec.get("loadBalancerIP") or ""
    requested: tuple[IPAddress, ...] = ()
    if listed and spec_ip:
        message = f"set either the annotation {ANNOTATION_IPS} or spec.loadBalancerIP, not both"
        problem = (Allocation.INVALID_REQUEST, message)
    else:
        field = f"metadata.annotations[{ANNOTATION_IPS}]" if listed else "spec.loadBalancerIP"
        requested, error = _addresses(listed or spec_ip, field)
        if error:
            problem = (Allocation.INVALID_REQUEST, error)
    ip_mode = annotations.get(ANNOTATION_IP_MODE, "VIP")
    if ip_mode not in IP_MODES and problem is None:
        problem = (
            Allocation.INVALID_REQUEST,
            f"metadata.annotations[{ANNOTATION_IP_MODE}]: VIP or Proxy, not {ip_mode!r}",
        )
    families, require_all = _families(spec, requested)
    missing = [a for a in requested if a.version not in families]
    if missing and problem is None:
        problem = (
            Allocation.INVALID_REQUEST,
            f"{missing[0]} is IPv{missing[0].version}, not a family of spec.ipFamilies",
        )
    ports = frozenset(
        PortKey(int(p.get("port", 0)), str(p.get("protocol") or "TCP")) for p in spec.get("ports") or ()
    )
    hcnp = spec.get("healthCheckNodePort")
    return LbService(
        namespace=str(metadata.get("namespace", "default")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        labels=dict(metadata.get("labels") or {}),
        families=families,
        require_all=require_all,
        requested=requested,
        pool=annotations.get(ANNOTATION_POOL) or None,
        sharing_key=annotations.get(ANNOTATION_SHARING_KEY) or None,
        ip_mode=ip_mode if ip_mode in IP_MODES else "VIP",
        ports=ports,
        selector=tuple(sorted((spec.get("selector") or {}).items())),
        local=spec.get("externalTrafficPolicy") == "Local",
        health_check_node_port=int(hcnp) if isinstance(hcnp, int) and hcnp > 0 else None,
        announce_without_endpoints=annotations.get(ANNOTATION_ANNOUNCE_WITHOUT_ENDPOINTS, "").lower()
        in _TRUE,
        ingress=_ingress(body.get("status")),
        conditions=tuple((body.get("status") or {}).get("conditions") or ()),
        generation=metadata.get("generation"),
        problem=problem,
    )


def sharing_conflict(joining: LbService, members: list[LbService]) -> str | None:
    """Why ``joining`` cannot share an address with ``members`` (same key assumed), or None.

    Ports and protocols must be disjoint (one address, one listener per port); with
    ``externalTrafficPolicy: Local`` the selectors must be identical, because the one
    holder is chosen by where *the* backends run.
    """
    for member in members:
        clash = sorted(joining.ports & member.ports)
        if clash:
            return f"port {clash[0]} is already used by Service {member.name} on the shared address"
        if joining.local != member.local:
            return f"Service {member.name} has another externalTrafficPolicy"
        if joining.local and joining.selector != member.selector:
            return f"externalTrafficPolicy Local needs the same selector as Service {member.name}"
    return None


def server_knows_ip_mode(major: str, minor: str) -> bool:
    """Whether the API server has ``status.loadBalancer.ingress[].ipMode`` (Kubernetes 1.29+)."""
    try:
        return (int(major), int("".join(c for c in minor if c.isdigit()) or 0)) >= (1, 29)
    except ValueError:
        return False
