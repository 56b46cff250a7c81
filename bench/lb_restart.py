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

from collections.abc import Iterable, Mapping
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
