"""An operator restart must change no LoadBalancer address (issue 12): the pure comparison.

bench/lb.py reads every Service's ``status.loadBalancer.ingress`` once every VIP answers,
SIGKILLs the operator, waits for the restarted one to finish a pass, and reads them
again. What a user would notice is judged here, apart from the cluster, so that it is
unit-tested (tests/unit/test_lb_restart.py):

* **changed**: a Service whose addresses after the restart are not the ones it had
  (a lost address counts: an empty ingress is a change too). The allocation is kept in
  the API (the VirtualIP records), not in the operator's memory, so a restart must
  rebuild exactly what was there;
* **duplicates**: an address on two Services that do not share it. Sharing is opt-in
  per namespace with the ``keepvip.io/sharing-key`` annotation (the operator's
  ``LbService.sharing_group``: Services share only inside one namespace with the same
  key), so the same key in another namespace, or no key, is a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SHARING_KEY = "keepvip.io/sharing-key"  # the operator's ANNOTATION_SHARING_KEY (operator/lb/service.py)


@dataclass(frozen=True)
class Assigned:
    """A Service's addresses as the API shows them, and the group it may share them with."""

    addresses: frozenset[str]
    sharing: str | None  # "namespace/key", or None: shares with nobody


def assigned(services: Iterable[Mapping[str, Any]]) -> dict[str, Assigned]:
    """``namespace/name`` → its ingress addresses and sharing group, from Service bodies."""
    found: dict[str, Assigned] = {}
    for body in services:
        meta = body.get("metadata") or {}
        namespace = meta.get("namespace", "")
        ingress = ((body.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
        key = (meta.get("annotations") or {}).get(SHARING_KEY) or None
        found[f"{namespace}/{meta.get('name', '')}"] = Assigned(
            frozenset(str(i["ip"]) for i in ingress if i.get("ip")),
            f"{namespace}/{key}" if key else None,
        )
    return found


@dataclass(frozen=True)
class RestartVerdict:
    changed: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)
    """Service → (addresses before, addresses after), for each Service whose addresses changed."""
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    """Address → the Services (at least two, not one sharing group) that carry it after."""

    def ok(self) -> bool:
        return not self.changed and not self.duplicates


def compare(before: Mapping[str, Assigned], after: Mapping[str, Assigned]) -> RestartVerdict:
    """Changes between the two readings and duplicates in the second one.

    Only Services of the first reading are compared (they are the ones the restart could
    change); one missing after the restart has lost its addresses. Every Service of the
    second reading counts for duplicates.
    """
    lost = Assigned(frozenset(), None)
    changed = {
        name: (sorted(was.addresses), sorted(after.get(name, lost).addresses))
        for name, was in sorted(before.items())
        if after.get(name, lost).addresses != was.addresses
    }
    carriers: dict[str, list[str]] = {}
    for name, now in sorted(after.items()):
        for address in now.addresses:
            carriers.setdefault(address, []).append(name)
    duplicates = {
        address: names
        for address, names in sorted(carriers.items())
        if len(names) > 1 and (None in (groups := {after[n].sharing for n in names}) or len(groups) > 1)
    }
    return RestartVerdict(changed, duplicates)


PASSES = "keepvip_operator_reconcile_total"
"""The operator's counter of handler runs; ``handler="loadbalancer",result="ok"`` counts the
LoadBalancer passes that finished (docs/metrics.md)."""


def passes(metrics_text: str) -> int:
    """How many LoadBalancer passes an operator finished, from its ``/metrics`` text (0 if none yet).

    Every pass lists pools, Services and VirtualIP records afresh from the API (no cache),
    so one finished pass of the restarted operator is a full look at every Service.
    """
    for line in metrics_text.splitlines():
        name, _, rest = line.partition("{")
        if name == PASSES and 'handler="loadbalancer"' in rest and 'result="ok"' in rest:
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _flat(value: Any, path: str, into: dict[str, Any]) -> None:
    """Leaves of a status under dotted paths; a list of conditions is keyed by its types."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flat(item, f"{path}.{key}" if path else str(key), into)
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) and "type" in v for v in value):
        for item in value:
            _flat({k: v for k, v in item.items() if k != "type"}, f"{path}[{item['type']}]", into)
    else:
        into[path] = value


def status_fields(status: Mapping[str, Any] | None, skip: Sequence[str] = ()) -> dict[str, Any]:
    """``status`` as {dotted path: leaf}, without the top-level fields in ``skip``."""
    found: dict[str, Any] = {}
    _flat({k: v for k, v in (status or {}).items() if k not in skip}, "", found)
    return found


def _key(body: Mapping[str, Any]) -> str:
    meta = body.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta.get("name", ""))


def status_changes(
    before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]], skip: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Object → ``path: before -> after`` for each status field that differs between the readings.

    Objects are keyed ``namespace/name`` (or ``name``); only objects of both readings are
    compared (``skip``: top-level status fields written by others, e.g. the speakers'
    ``nodes`` of a VirtualIP).
    """
    was = {_key(b): status_fields(b.get("status"), skip) for b in before}
    changes: dict[str, list[str]] = {}
    for body in after:
        key = _key(body)
        if key not in was:
            continue
        now = status_fields(body.get("status"), skip)
        diff = [
            f"{path}: {was[key].get(path)!r} -> {now.get(path)!r}"
            for path in sorted(set(was[key]) | set(now))
            if was[key].get(path) != now.get(path)
        ]
        if diff:
            changes[key] = diff
    return changes


OPERATOR_WRITES = (
    ("PATCH", "services/status"),
    ("POST", "events"),
    ("PATCH", "virtualips/status"),
    ("PATCH", "virtualips"),
    ("POST", "virtualips"),
    ("DELETE", "virtualips"),
    ("PATCH", "virtualippools/status"),
    ("PUT", "configmaps"),
)
"""(verb, resource) of the API server's counters that only the operator writes in this bench
once every VIP answers (events: counted apart by :func:`new_events`, the kubelet posts some)."""


def operator_writes(writes: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """The operator's writes among the API server's write counters (``"VERB resource"`` → n)."""
    return {f"{v} {r}": writes[(v, r)] for v, r in OPERATOR_WRITES if writes.get((v, r), 0) and r != "events"}


KEEPVIP_KINDS = ("Service", "VirtualIP", "VirtualIPPool")


def new_events(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]) -> list[str]:
    """Events on Services and keepvip's objects posted (or counted again) between two listings.

    An Event is new when its name was not listed before or its ``count`` grew; the kubelet's
    Events about the restarted Pod are not the operator's and are left out.
    """
    seen = {(_key(e), e.get("count") or 1) for e in before}
    names = {_key(e) for e in before}
    found: list[str] = []
    for event in after:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") not in KEEPVIP_KINDS:
            continue
        if _key(event) in names and (_key(event), event.get("count") or 1) in seen:
            continue
        what = f"{involved.get('kind')} {involved.get('name')}"
        found.append(f"{what}: {event.get('reason')} {event.get('message')}")
    return found
