"""Admission decisions for VirtualIPs: the model's own rules plus the cross-object ones.

The single-object rules are the model's (:func:`keepvip.api.parse.parse_virtualip`), so
the webhook, the operator's reconcile and the standalone speaker name the same field
for the same mistake. The rules that need the rest of the cluster live here, as a pure
function over an :class:`Inventory` of the other VirtualIPs and a :class:`References`
lookup (the webhook passes kopf's in-memory index and API-backed lookups; tests pass
plain dictionaries):

* an address already used by another VirtualIP;
* a pinned (multicastGroup, vrid) pair that another VirtualIP holds or pins;
* an authentication Secret or a serviceRef Service that does not exist;
* an exec health check the chart does not allow (:func:`exec_check_refusals`: the
  reconcile calls it too, for what was stored before or around the webhook).

Writes that do not change the spec (kopf's finalizer and annotations, the speakers'
status) are always admitted: refusing them would make an object stored before the
webhook existed impossible to delete.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from keepvip.api.model import VirtualIP
from keepvip.api.parse import FieldError, InvalidVirtualIP, parse_virtualip
from keepvip.api.text import bare
from keepvip.inet import IPAddress
from keepvip.operator.allocation import Pair, Request
from keepvip.operator.settings import ExecChecksSettings

EXEC_CHECKS_VALUE = "speaker.execChecks.enabled"
ALLOWED_COMMANDS_VALUE = "speaker.execChecks.allowedCommands"


@dataclass(frozen=True)
class InventoryEntry:
    """What the cross-object rules need to know about one other VirtualIP."""

    name: str
    addresses: frozenset[IPAddress]
    pair: Pair | None = None
    """The pair it holds (status) or pins (spec), if any."""
    created: str = ""
    """metadata.creationTimestamp: the older VirtualIP keeps a contested address."""

    @classmethod
    def of(cls, vip: VirtualIP, created: str = "") -> InventoryEntry:
        """Summarise a parsed VirtualIP."""
        request = Request.from_virtualip(vip)
        pair = request.recorded
        if request.vrid is not None and request.group is not None:
            pair = Pair(request.group, request.vrid)
        return cls(vip.name, frozenset(a.ip for a in vip.spec.addresses), pair, created)


Inventory = Mapping[str, InventoryEntry]
"""VirtualIP name -> summary (cluster-scoped: names are unique)."""


class References(Protocol):
    """Existence checks for referenced objects (metadata only: no Secret is read)."""

    def secret_exists(self, namespace: str, name: str) -> bool:
        """Whether the Secret exists."""
        ...

    def service_exists(self, namespace: str, name: str) -> bool:
        """Whether the Service exists."""
        ...


@dataclass(frozen=True)
class KnownReferences:
    """:class:`References` over in-memory sets of (namespace, name)."""

    secrets: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    services: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def secret_exists(self, namespace: str, name: str) -> bool:
        """Whether the Secret is in the set."""
        return (namespace, name) in self.secrets

    def service_exists(self, namespace: str, name: str) -> bool:
        """Whether the Service is in the set."""
        return (namespace, name) in self.services


def address_conflicts(vip: VirtualIP, inventory: Iterable[InventoryEntry]) -> list[FieldError]:
    """Each of the VirtualIP's addresses that another VirtualIP already uses."""
    errors: list[FieldError] = []
    others = [entry for entry in inventory if entry.name != vip.name]
    for index, address in enumerate(vip.spec.addresses):
        holder = next((o.name for o in others if address.ip in o.addresses), None)
        if holder is not None:
            message = f"{address.ip} is already used by VirtualIP {holder!r}"
            errors.append(FieldError(f"spec.addresses[{index}]", message))
    return errors


def pair_conflict(vip: VirtualIP, inventory: Iterable[InventoryEntry]) -> FieldError | None:
    """A pinned pair that another VirtualIP holds or pins."""
    request = Request.from_virtualip(vip)
    if request.vrid is None or request.group is None:
        return None
    pinned = Pair(request.group, request.vrid)
    holder = next((e.name for e in inventory if e.name != vip.name and e.pair == pinned), None)
    if holder is None:
        return None
    return FieldError("spec.vrrp.vrid", f"{pinned} is already used by VirtualIP {holder!r}")


def missing_references(vip: VirtualIP, references: References) -> list[FieldError]:
    """Referenced Secrets and Services that do not exist."""
    errors: list[FieldError] = []
    auth = vip.spec.vrrp.authentication
    if auth is not None:
        ref = auth.secret_ref
        if not references.secret_exists(ref.namespace, ref.name):
            errors.append(
                FieldError(
                    "spec.vrrp.authentication.secretRef",
                    f"Secret {bare(ref.namespace)}/{bare(ref.name)} does not exist",
                )
            )
    service = vip.spec.service_ref
    if service is not None and not references.service_exists(service.namespace, service.name):
        errors.append(
            FieldError(
                "spec.serviceRef", f"Service {bare(service.namespace)}/{bare(service.name)} does not exist"
            )
        )
    return errors


def exec_check_refusals(vip: VirtualIP, allowed: ExecChecksSettings) -> list[FieldError]:
    """Each exec check the chart's ``speaker.execChecks`` does not allow, by field.

    Off (the default): every exec check, naming the chart value that turns them on. On:
    a program that is not an absolute path matching ``allowedCommands``. The speakers
    apply the same rules themselves (they never assume admission ran); this is so the
    author learns at ``kubectl apply`` time, not from a failing check.
    """
    errors: list[FieldError] = []
    for index, check in enumerate(vip.spec.health_checks):
        if check.exec is None:
            continue
        if not allowed.enabled:
            message = f"exec checks are disabled in this cluster (chart value {EXEC_CHECKS_VALUE}=false)"
            errors.append(FieldError(f"spec.healthChecks[{index}].exec", message))
            continue
        program = check.exec.command[0]
        if not program.startswith("/"):
            message = f"{program!r} must be an absolute path"
            errors.append(FieldError(f"spec.healthChecks[{index}].exec.command[0]", message))
        elif not any(fnmatch.fnmatchcase(program, pattern) for pattern in allowed.allowed_commands):
            message = f"{program!r} is not in the chart value {ALLOWED_COMMANDS_VALUE}"
            errors.append(FieldError(f"spec.healthChecks[{index}].exec.command[0]", message))
    return errors


def review(
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    inventory: Inventory,
    references: References,
    exec_checks: ExecChecksSettings | None = None,
) -> list[FieldError]:
    """Every reason to refuse a CREATE (``old`` None) or UPDATE of a VirtualIP; empty: admit.

    ``exec_checks``: the chart's ``speaker.execChecks``; None: the default (off).
    """
    if nothing_to_review(body, old):
        return []
    try:
        vip = parse_virtualip(body)
    except InvalidVirtualIP as error:
        return list(error.errors)
    entries = list(inventory.values())
    errors = address_conflicts(vip, entries)
    conflict = pair_conflict(vip, entries)
    if conflict is not None:
        errors.append(conflict)
    errors.extend(missing_references(vip, references))
    errors.extend(exec_check_refusals(vip, exec_checks or ExecChecksSettings()))
    return errors


def nothing_to_review(body: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """An UPDATE that leaves the spec as it was (metadata, e.g. kopf's finalizer and
    annotations), or of a VirtualIP being deleted: admitted without looking at the others.
    The webhook asks first, so such updates cost no list of every VirtualIP."""
    return old is not None and (old.get("spec") == body.get("spec") or _is_deleting(body))


def _is_deleting(body: Mapping[str, Any]) -> bool:
    metadata = body.get("metadata")
    return isinstance(metadata, Mapping) and metadata.get("deletionTimestamp") is not None


def refusal_message(errors: Iterable[FieldError]) -> str:
    """One line for ``kubectl apply``: every field and why."""
    return "; ".join(str(error) for error in errors)


def address_held_by_older(
    vip: VirtualIP, created: str, inventory: Iterable[InventoryEntry]
) -> FieldError | None:
    """For the reconcile: an address conflict this VirtualIP loses (the older one keeps it).

    The webhook refuses the second VirtualIP; this catches what slipped past it (the
    webhook down, or two created at the same instant).
    """
    mine = {a.ip for a in vip.spec.addresses}
    for entry in sorted(inventory, key=lambda e: (e.created, e.name)):
        if entry.name == vip.name or not (mine & entry.addresses):
            continue
        if (entry.created, entry.name) < (created, vip.name):
            shared = sorted(mine & entry.addresses, key=lambda a: (a.version, int(a)))
            return FieldError(
                "spec.addresses",
                f"{', '.join(map(str, shared))} already used by the older VirtualIP {entry.name!r}",
            )
    return None
