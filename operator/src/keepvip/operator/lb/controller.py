"""The LoadBalancer controller: list everything, decide (pure), apply, report.

One pass at a time, in one thread: list pools, Services, VirtualIPs, namespaces and
Endpoints (nothing is decided before all are listed, so a restarted operator sees
every allocation first), :func:`keepvip.operator.lb.plan.decide`, then write in an
order that never loses an allocation:

1. a released address is first written into its pool's ``status.released`` (so its
   rest survives a crash), then its record is deleted;
2. records are created only if absent; 409 Conflict means someone else holds the name
   (another replica, a stale list): the Service is told ``Retrying`` and the next pass
   re-reads, so there is never a second holder;
3. records whose members or spec changed are patched (the address never changes);
4. each Service's ``status`` (ingress at allocation time, conditions) and its Events;
   Services that stopped being ours have ingress and conditions cleared;
5. pool status and the pool gauges.

Watch events (kopf, :mod:`keepvip.operator.handlers`) only wake the loop; a periodic
pass catches anything missed and ends reuse delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keepvip.api.pool import InvalidPool, VirtualIPPoolStatus, parse_pool
from keepvip.api.timestamps import rfc3339
from keepvip.inet import IPAddress
from keepvip.operator import metrics
from keepvip.operator.kube import LoadBalancerApi, api_unavailable
from keepvip.operator.lb.plan import Inventory, Outcome, Plan, Slot, decide
from keepvip.operator.lb.pools import PoolView
from keepvip.operator.lb.reasons import ALLOCATED_CONDITION, Allocation
from keepvip.operator.lb.records import (
    SERVICES_ANNOTATION,
    SHARING_ANNOTATION,
    Record,
    addresses_of,
    parse_record,
    record_body,
)
from keepvip.operator.lb.report import (
    OUR_CONDITIONS,
    invalid_pool_status,
    pool_status,
    service_events,
    service_status,
)
from keepvip.operator.lb.service import LbService, parse_service, server_knows_ip_mode
from keepvip.operator.settings import LoadBalancerSettings

log = logging.getLogger(__name__)

RETRY_SECONDS = 2.0
"""How soon a pass runs again after a conflict, a release or while an address rests."""


@dataclass
class PassReport:
    """What a pass did (counted in metrics, returned to tests and the loop)."""

    created: int = 0
    conflicts: int = 0
    released: int = 0
    updated: int = 0
    services_written: int = 0
    again_in: float | None = None


@dataclass
class LoadBalancerController:
    """Serves LoadBalancer Services from pools; :meth:`run_pass` is one level-triggered pass."""

    settings: LoadBalancerSettings
    api: LoadBalancerApi
    resync_seconds: float = 60.0
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    known: set[str] = field(default_factory=set)
    """Keys of the Services served last pass (an Endpoints event for another is ignored)."""
    _ip_mode: bool | None = None

    def poke(self) -> None:
        """Ask for a pass soon (called from kopf's event handlers, in the event loop)."""
        self.wake.set()

    async def run(self) -> None:
        """Forever: wait for a poke (or the resync), let the burst settle, run a pass."""
        delay: float | None = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.wake.wait(), timeout=delay if delay is not None else self.resync_seconds
                )
            self.wake.clear()
            await asyncio.sleep(0.2)  # a burst of watch events is one pass
            try:
                report = await asyncio.to_thread(self.run_pass)
                delay = report.again_in
                metrics.RECONCILES.labels(handler="loadbalancer", result="ok").inc()
            except Exception as error:
                unavailable = api_unavailable(error)
                if unavailable is None:
                    log.exception("LoadBalancer pass failed")
                else:  # the API server restarting: the retry below, no traceback
                    log.warning("LoadBalancer pass: %s; again in %g s", unavailable, RETRY_SECONDS * 5)
                metrics.RECONCILES.labels(handler="loadbalancer", result="error").inc()
                metrics.RECONCILE_ERRORS.labels(handler="loadbalancer", reason=type(error).__name__).inc()
                delay = RETRY_SECONDS * 5

    # -- one pass ---------------------------------------------------------------------------
    def run_pass(self) -> PassReport:
        """List, decide, apply, report."""
        if self._ip_mode is None:
            self._ip_mode = server_knows_ip_mode(*self.api.server_version())
        pool_bodies = self.api.list_pools()
        service_bodies = self.api.list_services()
        virtualips = self.api.kube.list_virtualips()
        namespaces = self.api.list_namespaces()
        endpoints = self.api.list_ready_endpoints()
        now = self.clock()

        views, invalid = self._pools(pool_bodies)
        services: list[LbService] = []
        cleared: list[Mapping[str, Any]] = []
        for body in service_bodies:
            parsed = parse_service(body, self.settings.default_class)
            if isinstance(parsed, LbService):
                services.append(parsed)
            elif any(
                c.get("type") in OUR_CONDITIONS for c in (body.get("status") or {}).get("conditions") or ()
            ):
                cleared.append(body)
        records: list[Record] = []
        foreign: dict[IPAddress, str] = {}
        for body in virtualips:
            record = parse_record(body)
            if record is not None:
                records.append(record)
            else:
                foreign.update(dict.fromkeys(addresses_of(body), body["metadata"]["name"]))
        # No Endpoints object at all (a Service without selector nobody wrote one for) is no
        # ready endpoint, as an empty one is.
        ready = {s.key: endpoints.get(s.key, False) for s in services}
        inventory = Inventory(
            services=tuple(services),
            pools=tuple(views),
            records=tuple(records),
            foreign=foreign,
            namespaces=namespaces,
            ready=ready,
            now=now,
            default_delay=self.settings.reuse_delay_value,
        )
        plan = decide(inventory)
        report = PassReport()
        self._release(plan, views, now, report)
        # A Service's EXTERNAL-IP is written as soon as its own record exists, not after
        # the whole pass: a burst of hundreds of Services otherwise waits for the last
        # record's create (bench/lb.py; docs/benchmarks.md). The closing sweep writes what
        # is left (failures, conditions of unchanged Services) and skips what was written.
        written: dict[str, dict[str, Any]] = {}
        created: set[IPAddress] = set()

        def write_members(slot: Slot) -> None:
            created.add(slot.address)  # a dual-stack Service waits for its other family's record
            done = frozenset(k for k in slot.members if set(plan.outcomes.get(k, Outcome()).new) <= created)
            if done:
                self._write_services(inventory, plan, records, report, written=written, only=done)

        self._create_and_update(plan, views, report, write_members)
        self._write_services(inventory, plan, records, report, written=written)
        for stale in cleared:
            self._clear(stale)
        self._write_pools(plan, views, invalid, pool_bodies, now)
        self.known = {s.key for s in services}
        if (
            report.conflicts
            or report.released
            or any(
                o.failure and o.failure[0] is not Allocation.INVALID_REQUEST for o in plan.outcomes.values()
            )
        ):
            report.again_in = RETRY_SECONDS
        return report

    @staticmethod
    def _pools(bodies: list[dict[str, Any]]) -> tuple[list[PoolView], dict[str, str]]:
        views: list[PoolView] = []
        invalid: dict[str, str] = {}
        for body in bodies:
            if body.get("metadata", {}).get("deletionTimestamp"):
                continue
            try:
                views.append(PoolView.of(parse_pool(body)))
            except InvalidPool as error:
                invalid[body["metadata"]["name"]] = str(error)
        return views, invalid

    def _pool_statuses(
        self, plan: Plan, views: list[PoolView], now: datetime
    ) -> dict[str, VirtualIPPoolStatus]:
        released = {r.record.name for r in plan.releases}
        result: dict[str, VirtualIPPoolStatus] = {}
        for view in views:
            held = [s.address for s in plan.slots if s.pool == view.name and s.name not in released]
            result[view.name] = pool_status(
                view=view,
                held=held,
                releases=[r for r in plan.releases if r.record.pool == view.name],
                others=views,
                now=now,
                default_delay=self.settings.reuse_delay_value,
                previous=view.pool.status,
            )
        return result

    def _release(self, plan: Plan, views: list[PoolView], now: datetime, report: PassReport) -> None:
        if not plan.releases:
            return
        statuses = self._pool_statuses(plan, views, now)
        for pool in {r.record.pool for r in plan.releases}:
            if pool in statuses:  # remember the rest before the record goes
                self.api.patch_pool_status(pool, _status_body(statuses[pool]))
        for release in plan.releases:
            log.info("releasing %s (was %s)", release.record.address, release.service or "unowned")
            self.api.delete_virtualip(release.record.name)
            report.released += 1

    def _create_and_update(
        self, plan: Plan, views: list[PoolView], report: PassReport, created: Callable[[Slot], None]
    ) -> None:
        by_name = {v.name: v for v in views}
        for slot in plan.creates():
            view = by_name[slot.pool]
            if slot.spec is None:
                _withdraw(plan, slot, None)
                continue
            if self.api.create_virtualip(
                record_body(slot.name, view, slot.members, slot.group_key, slot.spec)
            ):
                log.info("allocated %s from pool %s to %s", slot.address, slot.pool, ", ".join(slot.members))
                report.created += 1
                created(slot)
            else:
                report.conflicts += 1
                _withdraw(
                    plan, slot, f"{slot.address} was taken meanwhile (VirtualIP {slot.name} exists); retrying"
                )
        for slot in plan.updates():
            annotations = {SERVICES_ANNOTATION: ",".join(slot.members)}
            if slot.group_key:
                annotations[SHARING_ANNOTATION] = slot.group_key
            self.api.update_record(slot.name, annotations, slot.spec)
            report.updated += 1

    def _write_services(
        self,
        inventory: Inventory,
        plan: Plan,
        records: list[Record],
        report: PassReport,
        *,
        written: dict[str, dict[str, Any]],
        only: frozenset[str] | None = None,
    ) -> None:
        """Write the Services' status (``only`` these keys); ``written`` is this pass's memory
        of what each Service was given, so a Service is written once per pass."""
        by_address = {r.address: r for r in records}
        for service in inventory.services:
            if only is not None and service.key not in only:
                continue
            outcome = plan.outcomes.get(service.key, Outcome())
            wanted = service_status(
                service=service,
                outcome=outcome,
                records=by_address,
                ready=inventory.ready.get(service.key),
                server_knows_ip_mode=bool(self._ip_mode),
                now=rfc3339(inventory.now),
            )
            if service.key in written and _same_status(written[service.key], wanted):
                continue
            current_ingress = [{"ip": str(a)} for a in service.ingress]
            same_ingress = _ingress_ips(wanted) == [e["ip"] for e in current_ingress]
            if same_ingress and _conditions(wanted) == [dict(c) for c in service.conditions]:
                continue
            if not self.api.patch_service_status(service.namespace, service.name, wanted):
                continue
            written[service.key] = wanted
            report.services_written += 1
            for event in service_events(service, outcome, wanted):
                self.api.post_service_event(
                    service.namespace,
                    service.name,
                    service.uid,
                    event.type,
                    event.reason.value,
                    event.message,
                )

    def _clear(self, body: Mapping[str, Any]) -> None:
        metadata = body["metadata"]
        status = body.get("status") or {}
        others = [c for c in status.get("conditions") or () if c.get("type") not in OUR_CONDITIONS]
        self.api.patch_service_status(
            metadata["namespace"], metadata["name"], {"loadBalancer": {"ingress": []}, "conditions": others}
        )

    def _write_pools(
        self,
        plan: Plan,
        views: list[PoolView],
        invalid: Mapping[str, str],
        bodies: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        raw = {b["metadata"]["name"]: b.get("status") or {} for b in bodies}
        for name, status in self._pool_statuses(plan, views, now).items():
            body = _status_body(status)
            if _without_times(body) != _without_times(raw.get(name, {})):
                self.api.patch_pool_status(name, body)
            for family, usage in ((4, status.ipv4), (6, status.ipv6)):
                if usage is not None:
                    metrics.record_pool(name, family, usage.total, usage.assigned, usage.available)
        generations = {b["metadata"]["name"]: b["metadata"].get("generation") for b in bodies}
        for name, message in invalid.items():
            body = invalid_pool_status(message, generations.get(name), now)
            if _without_times(body) != _without_times(raw.get(name, {})):
                self.api.patch_pool_status(name, body)


def _withdraw(plan: Plan, slot: Slot, message: str | None) -> None:
    """A record that could not be created: its Services do not have the address (yet)."""
    for key in slot.members:
        outcome = plan.outcomes.setdefault(key, Outcome())
        if slot.address in outcome.addresses:
            outcome.addresses.remove(slot.address)
        if slot.address in outcome.new:
            outcome.new.remove(slot.address)
        if message is not None:
            outcome.failure = (Allocation.RETRYING, message)


def _status_body(status: VirtualIPPoolStatus) -> dict[str, Any]:
    body = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    body.setdefault("released", [])
    return body


def _same_status(one: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Same ingress and conditions (transition times aside: both come from one pass's clock)."""
    return _ingress_ips(one) == _ingress_ips(other) and _conditions(one) == _conditions(other)


def _ingress_ips(status: Mapping[str, Any]) -> list[str]:
    return [e["ip"] for e in status["loadBalancer"]["ingress"]]


def _conditions(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(c) for c in status["conditions"]]


def _without_times(status: Mapping[str, Any]) -> Any:
    """A pool status without transition times (a pass that changes nothing writes nothing)."""
    conditions = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or ()
    ]
    return {**{k: v for k, v in status.items() if k != "conditions"}, "conditions": conditions}


__all__ = ["ALLOCATED_CONDITION", "LoadBalancerController", "PassReport"]
