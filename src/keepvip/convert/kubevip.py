"""kube-vip's manifest and its cloud provider's ConfigMap → a VirtualIP and VirtualIPPool plans.

kube-vip is configured through its container's environment (the DaemonSet or the static
pod ``kube-vip manifest`` prints): ``cp_enable`` holds the control-plane address
(``address``/``vip_address``, ``vip_cidr``/``vip_subnet``, ``vip_interface``) — a
VirtualIP here — and ``svc_enable`` announces the addresses kube-vip-cloud-provider gives
Services from its ConfigMap (``kube-system/kubevip``): ``cidr-<namespace>``,
``range-<namespace>`` and the ``-global`` variants, comma-separated — VirtualIPPools here,
one per namespace (selected by the ``kubernetes.io/metadata.name`` label, tried first) and
one global pool (tried after them).

kube-vip elects its holder with a Kubernetes Lease (``vip_leaderelection``), so a node that
loses the API server loses the address; keepvip elects by VRRP between the nodes and
never needs the API server to fail over. Lease timings therefore have no keepvip
equivalent and are reported as dropped; BGP, routing-table, DHCP/DDNS, IPVS and egress
modes are reported unsupported.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from keepvip.api.pool import parse_block
from keepvip.convert.manifests import Manifest
from keepvip.convert.plans import (
    NAMESPACE_NAME_LABEL,
    Notes,
    Plans,
    PoolPlan,
    VipPlan,
    names_selector,
    truthy,
)
from keepvip.convert.report import Outcome
from keepvip.convert.services import Dialect

NAMESPACE_PRIORITY = 100
GLOBAL_PRIORITY = 200
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"

DIALECT = Dialect(
    tool="kube-vip",
    translated={
        "kube-vip.io/loadbalancerIPs": "keepvip.io/load-balancer-ips",
        "kube-vip.io/ignore": "keepvip.io/ignore",
    },
    unsupported={
        "kube-vip.io/egress": "egress through the VIP (kube-vip's egress mode) is not something keepvip does",
        "kube-vip.io/serviceInterface": "a per-Service interface: keepvip sets it per pool",
    },
    dropped={
        "kube-vip.io/vipHost": "written by kube-vip to show the holder: see keepvip's Announced condition",
    },
    prefixes=("kube-vip.io/",),
)

LEASE = "a Lease timing: keepvip elects by VRRP (no Lease); failover takes 3 × advertisementInterval + skew"
UNSUPPORTED_PREFIXES = {
    "bgp_": "BGP: keepvip announces by VRRP on the local segment",
    "lb_": "kube-vip's IPVS load balancing of the control plane: put a Service in front instead",
    "egress_": "kube-vip's egress mode",
    "vip_routingtable": "routing-table mode: keepvip announces on the local segment",
    "vip_cleanroutingtable": "routing-table mode: keepvip announces on the local segment",
    "vip_ddns": "DDNS: keepvip takes fixed addresses",
    "dhcp_mode": "DHCP-leased addresses: keepvip takes fixed addresses",
    "vip_wireguard": "WireGuard mode",
    "enable_upnp": "UPnP forwarding",
}
DROPPED = {
    "port": "the API server's port: a VirtualIP holds the address, not a port",
    "vip_nodename": "keepvip knows each node by its speaker's --node",
    "vip_leaseduration": LEASE,
    "vip_renewdeadline": LEASE,
    "vip_retryperiod": LEASE,
    "vip_leasename": LEASE,
    "cp_namespace": "the namespace of kube-vip's Lease: keepvip needs none",
    "svc_leasename": LEASE,
    "prometheus_server": "keepvip's speakers serve their own metrics (docs/metrics.md)",
    "vip_loglevel": "log level: see the chart's values",
    "enable_node_labeling": "keepvip shows the holder in VirtualIP status and the Announced condition",
    "vip_arp_rate": "keepvip sends GARP 5 at once and 5 more after 5 s (see the chart's values for refresh)",
}


def _env(container: dict[str, Any]) -> list[tuple[int, str, object]]:
    found = []
    for index, item in enumerate(container.get("env") or []):
        if isinstance(item, dict) and item.get("name"):
            found.append((index, str(item["name"]), item.get("value", item.get("valueFrom"))))
    return found


def _kube_vip_container(manifest: Manifest) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """The kube-vip container, its path and its pod spec, of a Pod, DaemonSet or Deployment."""
    body = manifest.body
    pod, base = (body.get("spec"), "spec") if manifest.kind == "Pod" else (
        ((body.get("spec") or {}).get("template") or {}).get("spec"), "spec.template.spec"
    )  # fmt: skip
    if not isinstance(pod, dict):
        return None
    for index, container in enumerate(pod.get("containers") or []):
        image = str(container.get("image", "")) if isinstance(container, dict) else ""
        if "kube-vip" in image and "cloud-provider" not in image:
            return f"{base}.containers[{index}]", container, pod
    return None


class _Manifest:
    """One kube-vip manifest's settings."""

    def __init__(self, notes: Notes, manifest: Manifest, path: str, container: dict[str, Any]) -> None:
        self.notes = notes
        self.manifest = manifest
        self.path = path
        self.values: dict[str, tuple[str, object]] = {}
        for index, name, value in _env(container):
            self.values[name] = (f"{path}.env[{index}]", value)

    def text(self, name: str) -> str | None:
        found = self.values.get(name)
        if found is None:
            return None
        where, value = found
        if not isinstance(value, str | int | bool):
            self.notes(self.manifest, where, Outcome.ERROR, f"{name} comes from valueFrom: give its value")
            return None
        return str(value)

    def flag(self, name: str) -> bool:
        return truthy(self.text(name) or "false")


def _control_plane(notes: Notes, settings: _Manifest, pod: dict[str, Any]) -> VipPlan | None:
    manifest = settings.manifest
    first = settings.text("address")
    second = settings.text("vip_address")
    if first and second and first != second:
        notes(
            manifest,
            settings.values["vip_address"][0],
            Outcome.ERROR,
            f"{second} differs from address {first}",
        )
        return None
    address = first or second
    where = settings.values["address" if first else "vip_address"][0] if address else settings.path
    if not address:
        notes(manifest, settings.path, Outcome.ERROR, "cp_enable without address or vip_address")
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        notes(
            manifest,
            where,
            Outcome.ERROR,
            f"{address!r} is not an IP address (a DNS name needs kube-vip's DDNS)",
        )
        return None
    prefix_text = settings.text("vip_cidr") or settings.text("vip_subnet")
    prefix = ip.max_prefixlen if prefix_text is None else prefix_text.lstrip("/")
    name = f"{manifest.name or 'kube-vip'}-control-plane"
    plan = VipPlan(name, manifest, where, f"{ip}/{prefix}", interface=settings.text("vip_interface"))
    notes(manifest, where, Outcome.CONVERTED, f"{address} → VirtualIP {name} spec.addresses [{plan.address}]")
    selector = pod.get("nodeSelector")
    if manifest.kind == "Pod":
        plan.node_selector = {"matchExpressions": [{"key": CONTROL_PLANE_LABEL, "operator": "Exists"}]}
        notes(
            manifest, "kind", Outcome.NOTE,
            f"a static pod runs on the node whose manifest folder holds it: the VirtualIP selects the nodes "
            f"labelled {CONTROL_PLANE_LABEL} instead; change spec.nodeSelector if yours differ",
        )  # fmt: skip
    elif isinstance(selector, dict) and selector:
        plan.node_selector = {"matchLabels": {str(k): str(v) for k, v in selector.items()}}
        notes(manifest, "spec.template.spec.nodeSelector", Outcome.CONVERTED, "→ spec.nodeSelector")
    if pod.get("affinity"):
        notes(
            manifest, "spec.template.spec.affinity", Outcome.UNSUPPORTED,
            "node affinity is not converted: write it as the VirtualIP's spec.nodeSelector",
        )  # fmt: skip
    return plan


CONVERTED = {
    "address": "→ the VirtualIP's address",
    "vip_address": "→ the VirtualIP's address",
    "vip_cidr": "→ the prefix length of the VirtualIP's address",
    "vip_subnet": "→ the prefix length of the VirtualIP's address",
    "vip_interface": "→ the VirtualIP's spec.interface",
    "cp_enable": "→ a VirtualIP for the control-plane address",
    "svc_enable": "→ LoadBalancer Services are served from the VirtualIPPools",
    "vip_servicesinterface": "→ template.interface of the pools",
    "vip_arp": "layer 2: the VRRP master sends gratuitous ARP / unsolicited NA",
    "svc_election": "each Service address is its own VRRP router in keepvip",
}


def _environment(notes: Notes, settings: _Manifest) -> None:
    """A report line for every variable, named in the line."""
    manifest = settings.manifest
    for name, (where, _) in settings.values.items():
        if name in CONVERTED:
            notes(manifest, where, Outcome.CONVERTED, f"{name} {CONVERTED[name]}")
        elif name == "vip_leaderelection":
            notes(
                manifest,
                where,
                Outcome.NOTE,
                f"{name}: the holder is elected by VRRP between the nodes, not a Lease",
            )
        elif name in DROPPED:
            notes(manifest, where, Outcome.DROPPED, f"{name}: {DROPPED[name]}")
        elif any(name.startswith(p) for p in UNSUPPORTED_PREFIXES):
            why = next(v for p, v in UNSUPPORTED_PREFIXES.items() if name.startswith(p))
            enabled = settings.flag(name) or not name.endswith("enable")
            notes(manifest, where, Outcome.UNSUPPORTED if enabled else Outcome.DROPPED, f"{name}: {why}")
        else:
            notes(manifest, where, Outcome.DROPPED, f"{name}: not a kube-vip variable keepvip knows")


def _setting(notes: Notes, manifest: Manifest, key: str, skip_ends: bool) -> None:
    """A ConfigMap key that is not a pool's."""
    path = f"data.{key}"
    if key == "skip-end-ips-in-cidr":
        notes(manifest, path, Outcome.CONVERTED, f"→ reserveNetworkAndBroadcast {str(skip_ends).lower()}")
    elif key == "search-order":
        notes(
            manifest,
            path,
            Outcome.DROPPED,
            "keepvip picks a hashed, sticky address (a re-created Service gets its old one)",
        )
    else:
        notes(manifest, path, Outcome.DROPPED, "not a key kube-vip-cloud-provider reads")


def _config_map(notes: Notes, manifest: Manifest) -> list[PoolPlan]:
    """kube-vip-cloud-provider's ConfigMap → one pool per namespace, and one global pool."""
    data = manifest.body.get("data")
    data = data if isinstance(data, dict) else {}
    skip_ends = truthy(data.get("skip-end-ips-in-cidr", "false"))
    pools: dict[str, PoolPlan] = {}
    failed: set[str] = set()
    for key, value in data.items():
        path = f"data.{key}"
        kind, _, scope = str(key).partition("-")
        if kind in ("cidr", "range") and scope:
            pool = pools.get(scope)
            if pool is None:
                pool = PoolPlan(f"kubevip-{scope}", manifest, path, reserve=skip_ends)
                pools[scope] = pool
            for entry in str(value).split(","):
                if not _entry(notes, manifest, path, pool, kind=kind, entry=entry.strip()):
                    failed.add(scope)
        elif kind == "interface" and scope:
            pools.setdefault(scope, PoolPlan(f"kubevip-{scope}", manifest, path, reserve=skip_ends))
            pools[scope].interface = str(value)
            notes(
                manifest,
                path,
                Outcome.CONVERTED,
                f"{value} → VirtualIPPool kubevip-{scope} template.interface",
            )
        else:
            _setting(notes, manifest, str(key), skip_ends)
    plans = []
    for scope, pool in pools.items():
        if scope in failed:
            continue  # its entries' errors are reported: the pool is not converted
        if not pool.addresses:
            notes(
                manifest, pool.path, Outcome.ERROR, f"interface-{scope} without cidr-{scope} or range-{scope}"
            )
            continue
        if scope == "global":
            pool.priority = GLOBAL_PRIORITY
        else:
            pool.priority = NAMESPACE_PRIORITY
            pool.namespace_selector = names_selector(NAMESPACE_NAME_LABEL, [scope])
            notes(
                manifest, pool.path, Outcome.NOTE,
                f"namespace {scope} → namespaceSelector on {NAMESPACE_NAME_LABEL} (set by Kubernetes 1.21+); "
                "tried before the global pool, and unlike kube-vip the global pool serves the namespace once "
                "its own pool is exhausted",
            )  # fmt: skip
        plans.append(pool)
    return plans


def _entry(notes: Notes, manifest: Manifest, path: str, pool: PoolPlan, *, kind: str, entry: str) -> bool:
    """Add one comma-separated entry to ``pool``; False when it is malformed (reported)."""
    if not entry:
        return True
    try:
        if kind == "cidr":
            network = ipaddress.ip_network(entry, strict=False)
            if str(network) != entry:
                notes(manifest, path, Outcome.NOTE, f"{entry} has host bits set: written as {network}")
            if network.version == 6 and pool.reserve:
                notes(
                    manifest,
                    path,
                    Outcome.NOTE,
                    f"{network}: keepvip also reserves the IPv6 Subnet-Router anycast address",
                )
            entry = str(network)
        elif "-" not in entry:
            raise ValueError(f"{entry!r} is not a first-last range")
        block = parse_block(entry)
    except ValueError as error:
        notes(manifest, path, Outcome.ERROR, f"{error}: pool {pool.name} is not converted")
        return False
    pool.addresses.append(entry if kind == "cidr" else str(block))
    notes(manifest, path, Outcome.CONVERTED, f"{entry} → VirtualIPPool {pool.name} spec.addresses")
    return True


def _kube_vip(
    notes: Notes,
    manifest: Manifest,
    found: tuple[str, dict[str, Any], dict[str, Any]],
    plans: Plans,
    interfaces: list[tuple[Manifest, str, str]],
) -> bool:
    """One kube-vip manifest into ``plans``; whether it announces Services."""
    path, container, pod = found
    settings = _Manifest(notes, manifest, path, container)
    _environment(notes, settings)
    if settings.flag("bgp_enable"):
        notes(
            manifest, path, Outcome.UNSUPPORTED, "kube-vip in BGP mode: nothing of this manifest is converted"
        )
        return False
    if settings.flag("cp_enable"):
        vip = _control_plane(notes, settings, pod)
        if vip is not None:
            plans.vips.append(vip)
    if not settings.flag("svc_enable"):
        return False
    interface = settings.text("vip_servicesinterface")
    if interface:
        interfaces.append((manifest, settings.values["vip_servicesinterface"][0], interface))
    return True


def read_kubevip(manifests: list[Manifest], notes: Notes) -> tuple[Plans, dict[str, str]]:
    """kube-vip's manifests and ConfigMap → plans (kube-vip has no pool names for Services to name)."""
    plans = Plans()
    interfaces: list[tuple[Manifest, str, str]] = []
    services_on = False
    for manifest in manifests:
        found = _kube_vip_container(manifest) if manifest.kind in ("Pod", "DaemonSet", "Deployment") else None
        data = manifest.body.get("data")
        if found is not None:
            services_on = _kube_vip(notes, manifest, found, plans, interfaces) or services_on
        elif (
            manifest.kind == "ConfigMap"
            and isinstance(data, dict)
            and any(str(k).startswith(("cidr-", "range-")) for k in data)
        ):
            plans.pools.extend(_config_map(notes, manifest))
        elif manifest.kind != "Service":
            notes(manifest, "", Outcome.DROPPED, "not kube-vip configuration")
    for pool in plans.pools:
        for manifest, where, interface in interfaces[:1]:
            if pool.interface is None:
                pool.interface = interface
                notes(manifest, where, Outcome.CONVERTED, f"→ VirtualIPPool {pool.name} template.interface")
    if plans.pools and not services_on:
        notes(
            plans.pools[0].source, "", Outcome.NOTE,
            "no kube-vip manifest with svc_enable in the input: pools converted as the ConfigMap says",
        )  # fmt: skip
    return plans, {}
