"""Services of another LoadBalancer: their annotations in keepvip's words, and ``--adopt``.

Every tool steers its Services with its own annotations (MetalLB's
``metallb.universe.tf/address-pool``, kube-vip's ``kube-vip.io/loadbalancerIPs``, Cilium's
``lbipam.cilium.io/ips``...). Each known one is translated into keepvip's
(``keepvip.io/pool``, ``keepvip.io/load-balancer-ips``, ``keepvip.io/sharing-key``); the rest
is reported, never silently dropped.

``--adopt`` is the live cut-over: every LoadBalancer Service that already has an address
(``status.loadBalancer.ingress``) is pinned to it with ``keepvip.io/load-balancer-ips``
(unless ``spec.loadBalancerIP`` already says the same), so keepvip's operator allocates
exactly that address as a *requested* one. The operator alone would re-bind an address it
finds in a Service's status, but not for a Service with a sharing key (the group's first
member would draw a hashed address) and not for an address outside every pool (a pool
edited after allocation, a hand-picked address): a pin covers both. Addresses no converted
pool holds go into one extra pool, ``adopted-<tool>``, with ``autoAssign: false``, so they
are kept for their Services and never handed to new ones. Two Services holding one
address without a common sharing key cannot both keep it: that is an error, naming both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from keepvip.api.pool import Block, parse_block, subtract
from keepvip.convert.manifests import Manifest
from keepvip.convert.plans import Notes, PoolPlan, ServicePatch
from keepvip.convert.report import Outcome
from keepvip.inet import IPAddress

KEEPVIP_IPS = "keepvip.io/load-balancer-ips"
KEEPVIP_POOL = "keepvip.io/pool"
KEEPVIP_SHARING = "keepvip.io/sharing-key"
KEEPVIP_IGNORE = "keepvip.io/ignore"
INGRESS = "status.loadBalancer.ingress"


@dataclass(frozen=True)
class Dialect:
    """One tool's Service annotations and what keepvip makes of them."""

    tool: str
    """The tool's short name (``metallb``), used in the adopted pool's name."""
    translated: dict[str, str]
    """The tool's annotation → keepvip's annotation with the same meaning."""
    unsupported: dict[str, str] = field(default_factory=dict)
    """The tool's annotation → why keepvip cannot do what it asks."""
    dropped: dict[str, str] = field(default_factory=dict)
    """The tool's annotation → why keepvip needs nothing in its place."""
    prefixes: tuple[str, ...] = ()
    """Annotation prefixes the tool owns (anything else under them is reported as dropped)."""


@dataclass
class _Held:
    service: str
    namespace: str
    sharing: str | None
    manifest: Manifest


def pool_blocks(pool: PoolPlan) -> list[Block]:
    """The addresses a converted pool hands out (entries the model would refuse are left out)."""
    wanted, holes = [], []
    for text in pool.addresses:
        try:
            wanted.append(parse_block(text, pool.reserve))
        except ValueError:
            continue
    for text in pool.exclude:
        try:
            holes.append(parse_block(text))
        except ValueError:
            continue
    return subtract(wanted, holes)


def _ingress(manifest: Manifest, notes: Notes) -> list[IPAddress]:
    status = manifest.body.get("status")
    balancer = status.get("loadBalancer") if isinstance(status, dict) else None
    entries = balancer.get("ingress") if isinstance(balancer, dict) else None
    found: list[IPAddress] = []
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        text = entry.get("ip") if isinstance(entry, dict) else None
        try:
            address = ipaddress.ip_address(str(text))
        except ValueError:
            notes(
                manifest,
                f"{INGRESS}[{index}]",
                Outcome.DROPPED,
                "no IP address (a hostname): nothing to keep",
            )
            continue
        if address not in found:
            found.append(address)
    return found


class Adopter:
    """Translates Services' annotations and, with ``adopt``, pins their current addresses."""

    def __init__(
        self, dialect: Dialect, pools: list[PoolPlan], pool_names: dict[str, str], adopt: bool, notes: Notes
    ) -> None:
        self.dialect = dialect
        self.pools = [(p, pool_blocks(p)) for p in pools if not p.disabled]
        self.disabled = [(p, pool_blocks(p)) for p in pools if p.disabled]
        self.pool_names = pool_names
        self.adopt = adopt
        self.notes = notes
        self.patches: list[ServicePatch] = []
        self.held: dict[IPAddress, list[_Held]] = {}
        self.uncovered: dict[IPAddress, Manifest] = {}
        self.class_less_noted = False

    def run(self, services: Iterable[Manifest]) -> PoolPlan | None:
        """Read every Service; the adopted pool when some address lies in no converted pool."""
        others: list[Manifest] = []
        for manifest in services:
            if not self._service(manifest):
                others.append(manifest)
        self._clashes()
        if others:
            self.notes(
                others[0], "spec.type", Outcome.DROPPED,
                f"{len(others)} Service(s) not of type LoadBalancer, this one the first: nothing to convert",
            )  # fmt: skip
        if not self.uncovered:
            return None
        addresses = sorted(self.uncovered, key=lambda a: (a.version, int(a)))
        source = self.uncovered[addresses[0]]
        return PoolPlan(
            name=f"adopted-{self.dialect.tool}",
            source=source,
            path=INGRESS,
            addresses=[str(a) for a in addresses],
            reserve=False,
            auto_assign=False,
        )

    def _service(self, manifest: Manifest) -> bool:
        """Read one Service; False when it is not a LoadBalancer."""
        spec = manifest.body.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        if spec.get("type") != "LoadBalancer":
            return False
        klass = spec.get("loadBalancerClass")
        if klass:
            self.notes(
                manifest, "spec.loadBalancerClass", Outcome.UNSUPPORTED,
                f"class {klass} is immutable and keepvip serves only keepvip.io/vrrp or class-less "
                "Services: re-create the Service with class keepvip.io/vrrp (and its address in "
                f"{KEEPVIP_IPS} to keep it)",
            )  # fmt: skip
            return True
        if not self.class_less_noted:
            self.class_less_noted = True
            self.notes(
                manifest, "spec.type", Outcome.NOTE,
                "class-less Services are served by keepvip only with the chart value "
                "loadBalancer.defaultClass: true; stop the old implementation before you set it",
            )  # fmt: skip
        written = self._annotations(manifest)
        ingress = _ingress(manifest, self.notes)
        if ingress and self.adopt:
            self._pin(manifest, spec, ingress, written)
        elif ingress:
            self.notes(
                manifest, INGRESS, Outcome.NOTE,
                f"holds {', '.join(map(str, ingress))}: keepvip re-binds it by itself only inside a "
                "converted pool and without a sharing key; convert with --adopt to pin it",
            )  # fmt: skip
        else:
            self.notes(
                manifest, "spec.type", Outcome.NOTE, "no address yet: keepvip serves it like a new Service"
            )
        if written:
            self.patches.append(
                ServicePatch(manifest.namespace or "default", manifest.name, manifest, written)
            )
        return True

    def _annotations(self, manifest: Manifest) -> dict[str, str]:
        raw = manifest.metadata.get("annotations")
        annotations = raw if isinstance(raw, dict) else {}
        written: dict[str, str] = {}
        for key, value in annotations.items():
            path = f"metadata.annotations[{key}]"
            target = self.dialect.translated.get(key)
            if target == KEEPVIP_POOL:
                pool = self.pool_names.get(str(value))
                if pool is None:
                    self.notes(manifest, path, Outcome.UNSUPPORTED, f"pool {value} was not converted")
                    continue
                written[target] = pool
            elif target is not None:
                written[target] = str(value).replace(" ", "")
            elif key in self.dialect.dropped:
                self.notes(manifest, path, Outcome.DROPPED, self.dialect.dropped[key])
                continue
            elif key in self.dialect.unsupported:
                self.notes(manifest, path, Outcome.UNSUPPORTED, self.dialect.unsupported[key])
                continue
            elif key.startswith(self.dialect.prefixes):
                self.notes(manifest, path, Outcome.DROPPED, "not an annotation keepvip has a use for")
                continue
            else:
                continue  # another tool's or the user's own: left as it is
            self.notes(manifest, path, Outcome.CONVERTED, f"→ {target}: {written[target]}")
        spec_ip = (manifest.body.get("spec") or {}).get("loadBalancerIP")
        if spec_ip and KEEPVIP_IPS in written:
            del written[KEEPVIP_IPS]
            self.notes(
                manifest, "spec.loadBalancerIP", Outcome.NOTE,
                f"keepvip honours spec.loadBalancerIP ({spec_ip}) and refuses it beside {KEEPVIP_IPS}: "
                "the annotation is not written",
            )  # fmt: skip
        return written

    def _pin(
        self, manifest: Manifest, spec: dict[str, object], ingress: list[IPAddress], written: dict[str, str]
    ) -> None:
        shown = ",".join(map(str, ingress))
        spec_ip = spec.get("loadBalancerIP")
        if spec_ip:
            if [str(a) for a in ingress] != [str(spec_ip)]:
                self.notes(
                    manifest, "spec.loadBalancerIP", Outcome.ERROR,
                    f"asks for {spec_ip} but holds {shown}: change one so they agree, then convert again",
                )  # fmt: skip
                return
            self.notes(
                manifest, INGRESS, Outcome.CONVERTED, f"{shown} is kept: spec.loadBalancerIP asks for it"
            )
        else:
            asked = written.get(KEEPVIP_IPS)
            if asked is not None and asked != shown:
                self.notes(
                    manifest, INGRESS, Outcome.NOTE,
                    f"asked for {asked} but holds {shown}: pinned to what it holds, so no address changes",
                )  # fmt: skip
            written[KEEPVIP_IPS] = shown
            self.notes(manifest, INGRESS, Outcome.CONVERTED, f"{shown} pinned with {KEEPVIP_IPS}")
        key = f"{manifest.namespace or 'default'}/{manifest.name}"
        for address in ingress:
            self.held.setdefault(address, []).append(
                _Held(key, manifest.namespace or "default", written.get(KEEPVIP_SHARING), manifest)
            )
            inside = [pool for pool, blocks in self.pools if any(address in b for b in blocks)]
            wanted = written.get(KEEPVIP_POOL)
            if wanted is not None and all(p.name != wanted for p in inside):
                del written[KEEPVIP_POOL]
                self.notes(
                    manifest, INGRESS, Outcome.NOTE,
                    f"{address} is not an address of pool {wanted}: {KEEPVIP_POOL} is not written, "
                    "so the pinned address is found in whichever pool holds it",
                )  # fmt: skip
            if not inside:
                self.uncovered.setdefault(address, manifest)
                off = [pool.name for pool, blocks in self.disabled if any(address in b for b in blocks)]
                where = (
                    f"is in disabled pool {off[0]} (keepvip gives no address of it)"
                    if off
                    else "lies in no converted pool"
                )
                self.notes(
                    manifest, INGRESS, Outcome.NOTE,
                    f"{address} {where}: it goes to pool adopted-{self.dialect.tool} "
                    "(autoAssign false: kept for this Service, never given to another)",
                )  # fmt: skip

    def _clashes(self) -> None:
        for address, holders in self.held.items():
            if len(holders) < 2:
                continue
            keys = {(h.namespace, h.sharing) for h in holders}
            if len(keys) == 1 and holders[0].sharing is not None:
                continue
            names = ", ".join(h.service for h in holders)
            for holder in holders:
                self.notes(
                    holder.manifest, INGRESS, Outcome.ERROR,
                    f"{address} is held by {names} without one sharing key in one namespace: keepvip "
                    f"gives an address to one Service unless they share ({KEEPVIP_SHARING})",
                )  # fmt: skip
