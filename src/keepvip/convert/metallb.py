"""MetalLB's configuration → VirtualIPPool plans.

Two formats exist: the ``metallb.io`` custom resources (``IPAddressPool`` announced by
``L2Advertisement``, v0.13 and later) and, before them, the ``config`` ConfigMap whose
``data.config`` is a YAML document of ``address-pools`` (``protocol: layer2`` or ``bgp``)
and BGP ``peers``. keepvip announces by VRRP on one L2 segment, so:

* a pool announced by an L2Advertisement (or a ``layer2`` ConfigMap pool) becomes a
  VirtualIPPool; a pool only BGP announces, and everything BGP (peers, BGPAdvertisement,
  communities, BFD), is reported unsupported and not converted;
* MetalLB hands out every address of a CIDR, network and broadcast included, unless
  ``avoidBuggyIPs`` — which skips *every* address ending in .0 or .255, not only a CIDR's
  ends — so pools are written with ``reserveNetworkAndBroadcast: false`` and the .0/.255
  addresses as ``exclude`` entries;
* ``serviceAllocation`` maps onto ``priority`` (lower wins in both), ``namespaceSelector``
  (``namespaces`` by the ``kubernetes.io/metadata.name`` label) and ``serviceSelector``;
  MetalLB ORs several selectors, a VirtualIPPool takes one: the first is kept and the
  rest reported;
* an L2Advertisement's ``nodeSelectors`` and ``interfaces`` become the pool template's
  ``nodeSelector`` and ``interface`` when they say one thing for the pool.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import ValidationError

from keepvip.api.model import LabelSelector
from keepvip.api.parse import field_errors
from keepvip.api.pool import parse_block
from keepvip.convert.manifests import Manifest, Problem, embedded
from keepvip.convert.names import dns_label
from keepvip.convert.plans import NAMESPACE_NAME_LABEL, Notes, Plans, PoolPlan, names_selector, truthy
from keepvip.convert.report import Outcome
from keepvip.convert.services import Dialect

GROUP = "metallb.io"
BGP_KINDS = ("BGPAdvertisement", "BGPPeer", "BFDProfile", "Community")
LAST_PRIORITY = 1000
MAX_EXCLUDED = 1024
"""avoidBuggyIPs over a range larger than a /15 would need more exclude entries than is sane."""

BGP = "BGP: keepvip announces by VRRP on the local segment; keep BGP with a BGP speaker of your own"
DIALECT = Dialect(
    tool="metallb",
    translated={
        f"{prefix}/{name}": target
        for prefix in ("metallb.universe.tf", "metallb.io")
        for name, target in (
            ("address-pool", "keepvip.io/pool"),
            ("loadBalancerIPs", "keepvip.io/load-balancer-ips"),
            ("allow-shared-ip", "keepvip.io/sharing-key"),
        )
    },
    dropped={
        f"{prefix}/ip-allocated-from-pool": "written by MetalLB to say where the address came from"
        for prefix in ("metallb.universe.tf", "metallb.io")
    },
    prefixes=("metallb.universe.tf/", "metallb.io/"),
)


class _Pool:
    """A MetalLB pool as read, from either format."""

    def __init__(self, manifest: Manifest, path: str, name: str, labels: dict[str, str]) -> None:
        self.manifest = manifest
        self.path = path
        self.name = name
        self.labels = labels
        self.plan = PoolPlan(dns_label(name, "pool"), manifest, path, reserve=False)
        self.addresses_path = f"{path}.addresses"
        self.ok = True
        self.layer2 = False  # the ConfigMap's protocol: layer2
        self.avoid_buggy = False
        self.ads: list[tuple[Manifest, dict[str, Any]]] = []
        self.bgp: list[Manifest] = []


def _selector(notes: Notes, manifest: Manifest, path: str, raw: object) -> dict[str, Any] | None:
    try:
        LabelSelector.model_validate(raw)
    except ValidationError as error:
        for problem in field_errors(error):
            notes(manifest, path, Outcome.ERROR, f"not a label selector: {problem}")
        return None
    return raw if isinstance(raw, dict) else None


def _addresses(notes: Notes, pool: _Pool, entries: object, path: str) -> None:
    if not isinstance(entries, list) or not entries:
        notes(pool.manifest, path, Outcome.ERROR, "a pool needs a list of addresses")
        pool.ok = False
        return
    for index, entry in enumerate(entries):
        try:
            block = parse_block(str(entry))
        except ValueError as error:
            notes(pool.manifest, f"{path}[{index}]", Outcome.ERROR, str(error))
            pool.ok = False
            continue
        text = str(entry).replace(" ", "") if "/" in str(entry) else str(block)
        pool.plan.addresses.append(text)


def _buggy(notes: Notes, pool: _Pool, path: str) -> None:
    """MetalLB's avoidBuggyIPs: no IPv4 address ending in .0 or .255, anywhere in the pool."""
    excluded: list[str] = []
    for text in pool.plan.addresses:
        block = parse_block(text)
        if block.family != 4:
            continue
        start = block.first - block.first % 256
        for base in range(start, block.last + 1, 256):
            for candidate in (base, base + 255):
                if block.first <= candidate <= block.last:
                    excluded.append(str(ipaddress.IPv4Address(candidate)))
        if len(excluded) > MAX_EXCLUDED:
            notes(
                pool.manifest, path, Outcome.UNSUPPORTED,
                f"more than {MAX_EXCLUDED} addresses end in .0 or .255: not excluded (split the pool)",
            )  # fmt: skip
            return
    pool.plan.exclude.extend(excluded)
    notes(
        pool.manifest,
        path,
        Outcome.CONVERTED,
        f"→ spec.exclude: the {len(excluded)} addresses ending in .0 or .255",
    )


def _shared(notes: Notes, pool: _Pool, key: str, value: object, path: str) -> bool:
    """The fields both formats have (``autoAssign``/``auto-assign``...); False for any other."""
    if key in ("autoAssign", "auto-assign"):
        pool.plan.auto_assign = truthy(value)
        notes(
            pool.manifest, path, Outcome.CONVERTED, f"→ spec.autoAssign {str(pool.plan.auto_assign).lower()}"
        )
        return True
    if key in ("avoidBuggyIPs", "avoid-buggy-ips"):
        pool.avoid_buggy = truthy(value)
        if pool.avoid_buggy and pool.ok:
            _buggy(notes, pool, path)
        elif not pool.avoid_buggy:
            notes(pool.manifest, path, Outcome.CONVERTED, "false: MetalLB's default")
        return True
    return False


def _crd_pool(notes: Notes, manifest: Manifest) -> _Pool:
    labels = manifest.metadata.get("labels")
    pool = _Pool(manifest, "spec", manifest.name, labels if isinstance(labels, dict) else {})
    spec = manifest.body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    _addresses(notes, pool, spec.get("addresses"), "spec.addresses")
    for key, value in spec.items():
        path = f"spec.{key}"
        if key == "addresses":
            continue
        if _shared(notes, pool, key, value, path):
            continue
        if key == "serviceAllocation" and isinstance(value, dict):
            _allocation(notes, pool, value)
        else:
            notes(manifest, path, Outcome.DROPPED, "not an IPAddressPool field keepvip knows")
    return pool


def _first(
    notes: Notes, manifest: Manifest, choices: list[tuple[str, dict[str, Any]]]
) -> dict[str, Any] | None:
    """MetalLB ORs selectors; a VirtualIPPool takes one: the first, the others reported."""
    if not choices:
        return None
    field = "namespaceSelector" if ".namespace" in choices[0][0] else "serviceSelector"
    notes(manifest, choices[0][0], Outcome.CONVERTED, f"→ spec.{field}")
    for other_path, _ in choices[1:]:
        notes(
            manifest, other_path, Outcome.UNSUPPORTED,
            f"a VirtualIPPool takes one selector and MetalLB ORs them: only {choices[0][0]} is kept, "
            "so this pool serves fewer Services than under MetalLB",
        )  # fmt: skip
    return choices[0][1]


def _allocation(notes: Notes, pool: _Pool, allocation: dict[str, Any]) -> None:
    manifest = pool.manifest
    namespaces: list[tuple[str, dict[str, Any]]] = []
    services: list[tuple[str, dict[str, Any]]] = []
    for key, value in allocation.items():
        path = f"spec.serviceAllocation.{key}"
        if key == "priority":
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LAST_PRIORITY:
                pool.plan.priority = value
                notes(manifest, path, Outcome.CONVERTED, f"→ spec.priority {value} (lower wins in both)")
            else:
                notes(
                    manifest, path, Outcome.ERROR, f"{value!r}: keepvip takes a priority 0..{LAST_PRIORITY}"
                )
                pool.ok = False
        elif key == "namespaces" and isinstance(value, list) and value:
            namespaces.append((path, names_selector(NAMESPACE_NAME_LABEL, [str(v) for v in value])))
            notes(
                manifest, path, Outcome.NOTE,
                f"as a selector on the {NAMESPACE_NAME_LABEL} label (set by Kubernetes 1.21+; "
                "on older clusters label the namespaces yourself)",
            )  # fmt: skip
        elif key in ("namespaceSelectors", "serviceSelectors") and isinstance(value, list):
            into = namespaces if key == "namespaceSelectors" else services
            for index, raw in enumerate(value):
                selector = _selector(notes, manifest, f"{path}[{index}]", raw)
                if selector is None:
                    pool.ok = False
                    continue
                into.append((f"{path}[{index}]", selector))
        else:
            notes(manifest, path, Outcome.DROPPED, "not a serviceAllocation field keepvip knows")
    pool.plan.namespace_selector = _first(notes, manifest, namespaces)
    pool.plan.service_selector = _first(notes, manifest, services)


def _legacy(notes: Notes, manifest: Manifest, pools: list[_Pool]) -> None:
    data = manifest.body.get("data")
    text = data.get("config") if isinstance(data, dict) else None
    if not isinstance(text, str):
        notes(manifest, "data", Outcome.DROPPED, "a ConfigMap without data.config: not MetalLB's")
        return
    parsed = embedded(manifest, "data.config", text)
    if isinstance(parsed, Problem):
        notes(manifest, "data.config", Outcome.ERROR, parsed.detail)
        return
    config, marks = parsed
    manifest.marks.update(marks)
    if not isinstance(config, dict):
        notes(manifest, "data.config", Outcome.ERROR, "not a mapping of address-pools and peers")
        return
    for key, value in config.items():
        path = f"data.config:{key}"
        if key in ("peers", "bgp-communities", "bfd-profiles"):
            notes(manifest, path, Outcome.UNSUPPORTED, BGP)
        elif key == "address-pools" and isinstance(value, list):
            for index, raw in enumerate(value):
                _legacy_pool(notes, manifest, f"{path}[{index}]", raw, pools)
        else:
            notes(manifest, path, Outcome.DROPPED, "not a MetalLB configuration key keepvip knows")


def _legacy_pool(notes: Notes, manifest: Manifest, path: str, raw: object, pools: list[_Pool]) -> None:
    if not isinstance(raw, dict) or not raw.get("name"):
        notes(manifest, path, Outcome.ERROR, "an address pool needs a name")
        return
    pool = _Pool(manifest, path, str(raw["name"]), {})
    protocol = raw.get("protocol")
    _addresses(notes, pool, raw.get("addresses"), f"{path}.addresses")
    for key, value in raw.items():
        here = f"{path}.{key}"
        if key in ("name", "addresses"):
            continue
        if key == "protocol":
            pool.layer2 = value == "layer2"
            if not pool.layer2:
                pool.bgp.append(manifest)
            outcome = Outcome.CONVERTED if pool.layer2 else Outcome.UNSUPPORTED
            notes(manifest, here, outcome, "layer2: announced by VRRP on every node" if pool.layer2 else BGP)
        elif _shared(notes, pool, key, value, here):
            continue
        elif key == "bgp-advertisements":
            notes(manifest, here, Outcome.UNSUPPORTED, BGP)
        else:
            notes(manifest, here, Outcome.DROPPED, "not an address-pool key keepvip knows")
    if protocol is None:
        notes(manifest, path, Outcome.ERROR, "an address pool needs a protocol (layer2 or bgp)")
        pool.ok = False
    pools.append(pool)


def _advertises(ad: dict[str, Any], pool: _Pool) -> bool:
    names = ad.get("ipAddressPools")
    selectors = ad.get("ipAddressPoolSelectors")
    if not names and not selectors:
        return True  # an advertisement naming no pool announces them all
    if isinstance(names, list) and pool.name in names:
        return True
    for raw in selectors if isinstance(selectors, list) else []:
        try:
            if LabelSelector.model_validate(raw).matches(pool.labels):
                return True
        except ValidationError:
            continue
    return False


def _announce(notes: Notes, pool: _Pool) -> bool:
    """Apply the L2Advertisements that announce ``pool``; whether it is converted."""
    if pool.layer2:
        return True
    if not pool.ads:
        why = (
            "announced only by BGP"
            if pool.bgp
            else "announced by no L2Advertisement (MetalLB allocates, announces nothing)"
        )
        outcome = Outcome.UNSUPPORTED if pool.bgp else Outcome.DROPPED
        notes(
            pool.manifest,
            pool.path,
            outcome,
            f"{why}: not converted, since keepvip announces every address it allocates",
        )
        return False
    everywhere = [m for m, ad in pool.ads if not ad.get("nodeSelectors")]
    chosen: list[tuple[str, dict[str, Any]]] = []
    for manifest, ad in pool.ads:
        for index, raw in enumerate(ad.get("nodeSelectors") or []):
            chosen.append((f"{manifest.ref} spec.nodeSelectors[{index}]", raw))
    if not everywhere and chosen:
        distinct = {repr(sorted(c[1].items())) for c in chosen}
        pool.plan.node_selector = chosen[0][1]
        if len(distinct) > 1:
            notes(
                pool.manifest, pool.path, Outcome.UNSUPPORTED,
                f"announced from the nodes of several selectors (MetalLB ORs them): only {chosen[0][0]} "
                "is kept as template.nodeSelector",
            )  # fmt: skip
    interfaces = {tuple(ad.get("interfaces") or ()) for _, ad in pool.ads}
    if len(interfaces) == 1:
        only = next(iter(interfaces))
        if len(only) == 1:
            pool.plan.interface = str(only[0])
        elif len(only) > 1:
            notes(
                pool.manifest, pool.path, Outcome.UNSUPPORTED,
                f"announced on interfaces {list(only)}: a VIP lives on one interface; keepvip picks, per "
                "node, the interface whose subnet holds the address",
            )  # fmt: skip
    else:
        notes(
            pool.manifest, pool.path, Outcome.UNSUPPORTED,
            "its L2Advertisements name different interfaces: keepvip picks, per node, the interface whose "
            "subnet holds the address",
        )  # fmt: skip
    return True


def _advertisement(notes: Notes, manifest: Manifest, pools: list[_Pool]) -> None:
    spec = manifest.body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    for key, value in spec.items():
        path = f"spec.{key}"
        if key in ("ipAddressPools", "ipAddressPoolSelectors"):
            notes(manifest, path, Outcome.CONVERTED, "decides which pools are converted")
        elif key == "nodeSelectors":
            for index, raw in enumerate(value if isinstance(value, list) else []):
                if _selector(notes, manifest, f"{path}[{index}]", raw) is not None:
                    notes(
                        manifest,
                        f"{path}[{index}]",
                        Outcome.CONVERTED,
                        "→ template.nodeSelector of its pools",
                    )
        elif key == "interfaces":
            notes(manifest, path, Outcome.CONVERTED, "→ template.interface of its pools when it names one")
        else:
            notes(manifest, path, Outcome.DROPPED, "not an L2Advertisement field keepvip knows")
    names = spec.get("ipAddressPools")
    for index, name in enumerate(names if isinstance(names, list) else []):
        if not any(p.name == name for p in pools):
            notes(
                manifest,
                f"spec.ipAddressPools[{index}]",
                Outcome.NOTE,
                f"no IPAddressPool {name} in the input",
            )
    valid = dict(spec)
    valid["nodeSelectors"] = [raw for raw in (spec.get("nodeSelectors") or []) if isinstance(raw, dict)]
    for pool in pools:
        if _advertises(valid, pool):
            pool.ads.append((manifest, valid))


def _sort(
    notes: Notes, manifest: Manifest, pools: list[_Pool], ads: list[Manifest], bgp: list[Manifest]
) -> None:
    """Read a pool at once; keep advertisements until every pool is known."""
    kind, group = manifest.kind, manifest.api_group
    if kind == "IPAddressPool" and group == GROUP:
        pools.append(_crd_pool(notes, manifest))
    elif kind == "L2Advertisement" and group == GROUP:
        ads.append(manifest)
    elif group == GROUP and kind in BGP_KINDS:
        notes(manifest, "", Outcome.UNSUPPORTED, BGP)
        if kind == "BGPAdvertisement":
            bgp.append(manifest)
    elif group == GROUP:
        notes(manifest, "", Outcome.DROPPED, "not a MetalLB object keepvip converts")
    elif kind == "ConfigMap" and group == "":
        _legacy(notes, manifest, pools)
    elif kind != "Service":
        notes(manifest, "", Outcome.DROPPED, "not MetalLB configuration")


def read_metallb(manifests: list[Manifest], notes: Notes) -> tuple[Plans, dict[str, str]]:
    """MetalLB's objects → pool plans, and MetalLB pool name → VirtualIPPool name."""
    pools: list[_Pool] = []
    ads: list[Manifest] = []
    bgp_ads: list[Manifest] = []
    for manifest in manifests:
        _sort(notes, manifest, pools, ads, bgp_ads)
    for manifest in ads:
        _advertisement(notes, manifest, pools)
    for manifest in bgp_ads:
        spec = manifest.body.get("spec")
        for pool in pools:
            if _advertises(spec if isinstance(spec, dict) else {}, pool):
                pool.bgp.append(manifest)
    plans = Plans()
    names: dict[str, str] = {}
    for pool in pools:
        if not pool.ok or not _announce(notes, pool):
            continue
        notes(
            pool.manifest, pool.addresses_path, Outcome.CONVERTED,
            f"→ VirtualIPPool {pool.plan.name} spec.addresses, every address usable (MetalLB hands out a "
            "CIDR's network and broadcast addresses too: reserveNetworkAndBroadcast false)",
        )  # fmt: skip
        plans.pools.append(pool.plan)
        names[pool.name] = pool.plan.name
    if any(p.priority is not None for p in plans.pools):
        for pool in pools:
            if pool.plan.priority is None and pool.name in names:
                pool.plan.priority = LAST_PRIORITY
                notes(
                    pool.manifest, pool.path, Outcome.NOTE,
                    "no serviceAllocation.priority: MetalLB tries it after the pools that have one "
                    f"→ spec.priority {LAST_PRIORITY}",
                )  # fmt: skip
    return plans, names
