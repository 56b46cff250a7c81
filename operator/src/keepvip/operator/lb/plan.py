"""Every allocation decision of one pass, as a pure function of what was listed.

A pass starts only once Services, VirtualIPs, pools (and namespaces, endpoints) are all
listed, so a restarted operator sees every existing allocation before it makes one.
Then, in this order:

1. **Keep** — each record keeps the Services it names that still want that address
   (same family, same sharing key, not asking for another address); a record left
   with no Service is released (its address rests ``reuseDelay`` in the pool status).
   Pool edits never move an address: a record outside its pool's ranges is kept and
   counted as orphaned.
2. **Re-bind** — a Service whose status already shows an address that no record holds
   (a record deleted by hand, a status written by an older version) gets a record for
   that very address when it is free.
3. **Serve** pending Services, sorted by key: a sharing group's existing address, else
   the requested address, else the hashed sticky choice of the best pool
   (:func:`keepvip.operator.lb.pools.pick`), an address the Service itself released
   first.

Nothing here talks to the API; :mod:`.controller` applies the :class:`Plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from keepvip.inet import IPAddress
from keepvip.operator.lb.pools import PoolView, ordered, pick, resting
from keepvip.operator.lb.reasons import Allocation
from keepvip.operator.lb.records import Record, desired_spec, record_name, same_spec
from keepvip.operator.lb.service import LbService, sharing_conflict


@dataclass(frozen=True)
class Inventory:
    """Everything a pass decides from (all listed before anything is decided)."""

    services: tuple[LbService, ...]
    pools: tuple[PoolView, ...]
    records: tuple[Record, ...]
    foreign: Mapping[IPAddress, str]
    """Addresses claimed by VirtualIPs that are not records → their names."""
    namespaces: Mapping[str, Mapping[str, str]]
    ready: Mapping[str, bool]
    """Service key → whether any endpoint is ready (absent: unknown, treated as ready)."""
    now: datetime
    default_delay: timedelta = timedelta(0)


@dataclass
class Slot:
    """One address of this pass's outcome: an existing record or one to create."""

    name: str
    address: IPAddress
    pool: str
    members: list[str]
    group_key: str | None
    record: Record | None = None
    """None: to be created."""
    spec: dict[str, Any] | None = None
    """The spec to write (None: unchanged)."""


@dataclass(frozen=True)
class Release:
    """A record to delete; its address rests in ``pool``'s status, remembered for ``service``."""

    record: Record
    service: str


@dataclass
class Outcome:
    """What one Service gets."""

    addresses: list[IPAddress] = field(default_factory=list)
    new: list[IPAddress] = field(default_factory=list)
    failure: tuple[Allocation, str] | None = None


@dataclass
class Plan:
    """What to write, in order: releases, creates and updates, Service statuses."""

    slots: list[Slot] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def creates(self) -> list[Slot]:
        """Records to create."""
        return [s for s in self.slots if s.record is None]

    def updates(self) -> list[Slot]:
        """Existing records whose members or spec change."""
        return [
            s for s in self.slots
            if s.record is not None and (tuple(s.members) != s.record.services or s.spec is not None)
        ]  # fmt: skip


class _Pass:
    """The mutable bookkeeping of one decision (not shared, not kept)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inv = inventory
        self.services = {s.key: s for s in inventory.services}
        self.pools = {p.name: p for p in inventory.pools}
        self.plan = Plan()
        self.by_address: dict[IPAddress, Slot] = {}
        self.bound: dict[tuple[str, int], Slot] = {}
        self.resting = {p.name: resting(p, inventory.now, inventory.default_delay) for p in inventory.pools}
        self.leaving: dict[IPAddress, str] = {}
        """Addresses whose record is being deleted → the record's name."""

    # -- 1. keep ----------------------------------------------------------------------------
    def keep(self) -> None:
        for record in sorted(self.inv.records, key=lambda r: (r.address.version, int(r.address))):
            if record.deleting:  # released by an earlier pass: busy until it is gone, never re-released
                self.leaving[record.address] = record.name
                continue
            members = [k for k in record.services if self._still_wants(k, record)]
            if not members:
                self.plan.releases.append(Release(record, record.services[0] if record.services else ""))
                self.resting.setdefault(record.pool, {})[record.address] = (
                    record.services[0] if record.services else ""
                )
                continue
            slot = Slot(record.name, record.address, record.pool, members, record.group_key, record)
            self._add(slot)

    def _still_wants(self, key: str, record: Record) -> bool:
        service = self.services.get(key)
        if service is None or record.family not in service.families:
            return False
        if (key, record.family) in self.bound:
            return False  # already bound to another record of the family: one address per family
        requested = service.requested_in(record.family)
        return (requested is None or requested == record.address) and service.group_key == record.group_key

    def _add(self, slot: Slot) -> None:
        self.plan.slots.append(slot)
        self.by_address[slot.address] = slot
        for key in slot.members:
            self.bound[(key, slot.address.version)] = slot

    # -- 2. re-bind ---------------------------------------------------------------------------
    def rebind(self) -> None:
        for service in sorted(self.services.values(), key=lambda s: s.key):
            if service.problem is not None:
                continue
            for address in service.ingress:
                family = address.version
                if family not in service.families or (service.key, family) in self.bound:
                    continue
                if service.requested_in(family) not in (None, address) or not self._free(address, service):
                    continue
                view = next((p for p in ordered(self.pools.values()) if address in p), None)
                if view is not None and service.group_key is None:
                    self._create(service, view, address)

    # -- 3. serve -------------------------------------------------------------------------------
    def serve(self) -> None:
        for service in sorted(self.services.values(), key=lambda s: s.key):
            outcome = self.plan.outcomes.setdefault(service.key, Outcome())
            if service.problem is not None:
                outcome.failure = service.problem
                continue
            failures: list[tuple[Allocation, str]] = []
            for family in service.families:
                if (service.key, family) not in self.bound:
                    failure = self._serve_one(service, family)
                    if failure is not None:
                        failures.append(failure)
            got = {f for f in service.families if (service.key, f) in self.bound}
            if failures and (service.require_all or not got):
                outcome.failure = failures[0]

    def _serve_one(self, service: LbService, family: int) -> tuple[Allocation, str] | None:
        requested = service.requested_in(family)
        group = service.group_key
        if group is not None:
            slot = next(
                (s for s in self.plan.slots if s.group_key == group and s.address.version == family), None
            )
            if slot is not None:
                return self._join(service, slot, requested)
        if requested is not None:
            return self._requested(service, requested)
        return self._choose(service, family)

    def _join(
        self, service: LbService, slot: Slot, requested: IPAddress | None
    ) -> tuple[Allocation, str] | None:
        if requested is not None and requested != slot.address:
            return Allocation.SHARING_CONFLICT, (
                f"sharing key {service.sharing_key!r} already has {slot.address}, not {requested}"
            )
        members = [self.services[m] for m in slot.members if m in self.services]
        conflict = sharing_conflict(service, members)
        if conflict is not None:
            return (
                Allocation.SHARING_CONFLICT,
                f"{slot.address} (sharing key {service.sharing_key!r}): {conflict}",
            )
        slot.members.append(service.key)
        self.bound[(service.key, slot.address.version)] = slot
        self.plan.outcomes.setdefault(service.key, Outcome()).new.append(slot.address)
        return None

    def _requested(self, service: LbService, address: IPAddress) -> tuple[Allocation, str] | None:
        holder = self._holder(address)
        if holder is not None:
            return Allocation.REQUESTED_IP_UNAVAILABLE, f"{address} is already used by {holder}"
        pools = [self.pools[service.pool]] if service.pool in self.pools else list(self.pools.values())
        view = next((p for p in ordered(pools) if address in p and not p.pool.spec.disabled), None)
        if view is None:
            where = f"pool {service.pool}" if service.pool else "any enabled pool"
            return Allocation.REQUESTED_IP_UNAVAILABLE, f"{address} is not an address of {where}"
        previous = self.resting.get(view.name, {}).get(address)
        if previous not in (None, service.key):
            return Allocation.REQUESTED_IP_UNAVAILABLE, (
                f"{address} was released by {previous or 'another Service'} "
                "and rests for the pool's reuseDelay"
            )
        return self._create(service, view, address)

    def _choose(self, service: LbService, family: int) -> tuple[Allocation, str] | None:
        if service.pool is not None:
            view = self.pools.get(service.pool)
            if view is None or view.pool.spec.disabled or not view.family_blocks(family):
                why = (
                    "does not exist"
                    if view is None
                    else ("is disabled" if view.pool.spec.disabled else f"has no IPv{family} address")
                )
                return Allocation.NO_MATCHING_POOL, f"pool {service.pool} {why}"
            candidates = [view]
        else:
            labels = self.inv.namespaces.get(service.namespace, {})
            candidates = [p for p in ordered(self.pools.values()) if p.serves(service, labels, family)]
        if not candidates:
            return (
                Allocation.NO_MATCHING_POOL,
                f"no enabled pool with autoAssign offers IPv{family} to this Service",
            )
        taken = set(self.by_address) | set(self.inv.foreign) | set(self.leaving)
        for view in candidates:
            rest = self.resting.get(view.name, {})
            back = sorted(
                (
                    a
                    for a, who in rest.items()
                    if who == service.key and a.version == family and a not in taken
                ),
                key=int,
            )
            blocked = taken | {a for a, who in rest.items() if who != service.key}
            address = back[0] if back else pick(service.key, view.family_blocks(family), blocked)
            if address is not None:
                return self._create(service, view, address)
        names = ", ".join(v.name for v in candidates)
        return Allocation.POOL_EXHAUSTED, f"no free IPv{family} address in pool {names}"

    def _create(
        self, service: LbService, view: PoolView, address: IPAddress
    ) -> tuple[Allocation, str] | None:
        slot = Slot(record_name(address), address, view.name, [service.key], service.group_key)
        self._add(slot)
        self.plan.outcomes.setdefault(service.key, Outcome()).new.append(address)
        return None

    def _holder(self, address: IPAddress) -> str | None:
        slot = self.by_address.get(address)
        if slot is not None:
            return f"Service {', '.join(slot.members)}"
        foreign = self.inv.foreign.get(address) or self.leaving.get(address)
        return f"VirtualIP {foreign}" if foreign is not None else None

    def _free(self, address: IPAddress, service: LbService) -> bool:
        if address in self.by_address or address in self.inv.foreign or address in self.leaving:
            return False
        return all(rest.get(address) in (None, service.key) for rest in self.resting.values())

    # -- specs and outcomes -------------------------------------------------------------------
    def specs(self) -> None:
        for slot in self.plan.slots:
            view = self.pools.get(slot.pool)
            if view is None:
                continue  # the pool is gone: the garbage collector removes its records
            members = [self.services[m] for m in slot.members if m in self.services]
            ready = any(self.inv.ready.get(m.key, True) for m in members)
            spec, problem = desired_spec(view, slot.address, members, ready)
            if spec is None:
                for member in members:
                    self.plan.outcomes.setdefault(member.key, Outcome()).failure = (
                        Allocation.INVALID_REQUEST,
                        str(problem),
                    )
                continue
            if slot.record is None or not same_spec(slot.record.spec, spec):
                slot.spec = spec
        for slot in self.plan.slots:
            for key in slot.members:
                self.plan.outcomes.setdefault(key, Outcome()).addresses.append(slot.address)


def decide(inventory: Inventory) -> Plan:
    """The plan of one pass (see the module's docstring for the order)."""
    state = _Pass(inventory)
    state.keep()
    state.rebind()
    state.serve()
    state.specs()
    for outcome in state.plan.outcomes.values():
        outcome.addresses.sort(key=lambda a: (a.version, int(a)))
    return state.plan
