"""The operator's stages as plain functions: parse → decide (pure) → apply → status.

kopf's decorators live in :mod:`keepvip.operator.handlers`; the work lives here, taking
plain JSON-shaped bodies and a :class:`Context`, so each stage reads top to bottom.
Three stages:

* :func:`reconcile_spec` (create / update / resume): parse the spec, check the
  address against older VirtualIPs, allocate the pair through the ledger, publish the
  addresses in the referenced Service, write status (:func:`settle_and_write_status`).
* :func:`aggregate_status` (every watch event, and periodically): re-derive master,
  state and conditions from the speakers' ``status.nodes``, settled
  (:mod:`keepvip.operator.settle`: a takeover seen half-way is not news); patch only
  when something changed, so the operator's own patch (one more watch event) derives
  the same and stops there. Events compare with the status this process last wrote
  (not with the watch body, which may predate that write), so each is posted once.
* :func:`release` (the finalizer): wait until no node is MASTER (or a timeout), then
  unpublish the Service and release the ledger entry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from keepvip.api.model import NodeStatus, VirtualIP, VirtualIPStatus
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.api.timestamps import utc_now
from keepvip.inet import IPAddress
from keepvip.operator import metrics
from keepvip.operator.admission import (
    Inventory,
    InventoryEntry,
    address_held_by_older,
    exec_check_refusals,
    refusal_message,
)
from keepvip.operator.allocation import (
    Allocated,
    LedgerEntry,
    Pair,
    Pool,
    Refused,
    Request,
    allocate,
    encode_entry,
    pool_usage,
    stale_uids,
)
from keepvip.operator.daemonset import desired_daemonset
from keepvip.operator.kube import Kube, LedgerChanges, ObjectRef
from keepvip.operator.memory import StatusMemory, readiness_key
from keepvip.operator.problems import Problem
from keepvip.operator.serviceref import (
    RETRY_SECONDS,
    NotOptedIn,
    ServiceOutcome,
    ServiceRefReason,
    desired_ingress,
)
from keepvip.operator.settings import OperatorSettings
from keepvip.operator.settle import first_sight, master_to_tell, settle
from keepvip.operator.status import (
    EventSpec,
    Observation,
    SpecOutcome,
    build_status,
    master_changed,
    operator_fields,
    outcome_from_status,
    transition_events,
)

Readiness = Mapping[str, bool]
"""Node name -> whether its Node is Ready (kopf's node index); None trusts every entry."""

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What every stage needs: settings, the API module, the pool, clocks, the status memory."""

    settings: OperatorSettings
    kube: Kube
    pool: Pool = field(init=False)
    clock: Callable[[], str] = utc_now
    monotonic: Callable[[], float] = time.monotonic
    memory: StatusMemory = field(default_factory=StatusMemory)

    def __post_init__(self) -> None:
        self.pool = Pool.from_settings(self.settings.allocation)


class RetryLater(Exception):
    """The stage did what it could and must run again after ``delay`` seconds."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


def json_copy(value: Any) -> Any:
    """A JSON-shaped copy of a kopf body view (Mappings → dicts, sequences → lists)."""
    if isinstance(value, Mapping):
        return {str(k): json_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_copy(v) for v in value]
    return value


def parse_spec(body: Mapping[str, Any]) -> VirtualIP:
    """The VirtualIP without its status (status is read leniently, apart)."""
    return parse_virtualip({k: v for k, v in body.items() if k != "status"})


def read_status(body: Mapping[str, Any]) -> VirtualIPStatus | None:
    """The current status; a status the model refuses counts as none (and is rewritten)."""
    raw = body.get("status")
    if not isinstance(raw, Mapping):
        return None
    try:
        return VirtualIPStatus.model_validate({k: v for k, v in raw.items() if k != "nodes"})
    except ValueError:
        log.warning("status of %s does not parse; rewriting it", body.get("metadata", {}).get("name"))
        return None


def read_nodes(body: Mapping[str, Any]) -> list[NodeStatus]:
    """The speakers' entries; one that does not parse is skipped (the speaker will rewrite it)."""
    raw = body.get("status")
    entries = raw.get("nodes") if isinstance(raw, Mapping) else None
    nodes: list[NodeStatus] = []
    for entry in entries or ():
        try:
            nodes.append(NodeStatus.model_validate(entry))
        except ValueError:
            continue
    return nodes


def _ref(body: Mapping[str, Any]) -> ObjectRef:
    metadata = body["metadata"]
    return ObjectRef(metadata["name"], metadata.get("uid", ""))


def _recorded_pair(status: VirtualIPStatus | None) -> Pair | None:
    outcome = outcome_from_status(status)
    return outcome.pair if outcome is not None else None


def _problem_events(previous: VirtualIPStatus | None, outcome: SpecOutcome) -> list[EventSpec]:
    """A Warning when a spec problem appears or changes; Normal when a pair is first allocated."""
    before = outcome_from_status(previous)
    if outcome.problem is not None:
        if before is None or before.problem is not outcome.problem or before.message != outcome.message:
            return [EventSpec("Warning", outcome.problem.value, outcome.message)]
        return []
    if outcome.pair is not None and (before is None or before.pair != outcome.pair):
        return [EventSpec("Normal", "Allocated", str(outcome.pair))]
    return []


def _service_events(previous: VirtualIPStatus | None, outcome: SpecOutcome) -> list[EventSpec]:
    """A Warning when spec.serviceRef's outcome turns into (or changes) a refusal: once, not per retry."""
    service = outcome.service
    if service is None or service.published:
        return []
    before = outcome_from_status(previous)
    if before is not None and before.service == service:
        return []
    return [EventSpec("Warning", service.reason.value, service.message)]


def settle_and_write_status(
    ctx: Context,
    body: Mapping[str, Any],
    outcome: SpecOutcome | None,
    readiness: Readiness | None,
    *,
    recheck: bool = False,
) -> VirtualIPStatus | None:
    """Settle, write the derived status if it differs from the stored one, post the events.

    ``recheck``: the periodic re-check, whose ``body`` is only a fallback; it derives from
    the newest body a watch event or the spec stage delivered (:attr:`Remembered.newest_body`).

    A body whose ``resourceVersion`` this process already answered with the same fields
    is not answered again: the watch (and a daemon's body) lags the operator's own patch,
    and without this every re-check until the watch caught up patched the same status.

    ``outcome`` None keeps the spec stage's last conclusion (the status stage); None is
    returned when there is none yet.
    """
    ref = _ref(body)
    with ctx.memory.hold(ref.uid) as memory:
        if recheck and memory.newest_body is not None:
            body = memory.newest_body
        else:
            memory.newest_body = body
        version = body["metadata"].get("resourceVersion")
        memory.derived_from, memory.derived_at = (version, readiness_key(readiness)), ctx.monotonic()
        recorded = read_status(body)
        previous = memory.written if memory.written is not None else recorded
        outcome = outcome if outcome is not None else outcome_from_status(previous)
        if outcome is None:
            return None  # the spec stage has not run yet: it writes the first status
        seen = Observation.of(read_nodes(body), readiness)
        before = memory.settling if memory.settling is not None else first_sight(previous)
        now, grace = ctx.monotonic(), ctx.settings.status.settle_seconds
        before, held = master_to_tell(before, now, grace)  # a first master that held, before it goes
        settling = settle(before, seen, now, grace)
        status = build_status(outcome, settling.view, previous, ctx.clock())
        wanted = operator_fields(status)
        answered = version is not None and memory.patched_over == version and memory.patched == wanted
        if not answered and (recorded is None or operator_fields(recorded) != wanted):
            ctx.kube.patch_virtualip_status(ref.name, wanted)
            memory.patched, memory.patched_over = wanted, version
        settling, change = master_to_tell(settling, now, grace)
        memory.settling, memory.written = settling, status
        events = _problem_events(previous, outcome) + _service_events(previous, outcome)
        events += [master_changed(*told) for told in (held, change) if told is not None]
        for event in [*events, *transition_events(previous, status)]:
            ctx.kube.post_event(ref, event)
    metrics.record_state(ref.name, status.state)
    return status


# --- the spec stage -------------------------------------------------------------------


def reconcile_spec(
    ctx: Context,
    body: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    inventory: Inventory,
    readiness: Readiness | None = None,
) -> None:
    """Parse, check, allocate, publish; raise :class:`RetryLater` while a problem lasts."""
    metadata = body["metadata"]
    generation = metadata.get("generation")
    previous = read_status(body)
    try:
        vip = parse_spec(body)
    except InvalidVirtualIP as error:
        # What slipped past the webhook: reported, never retried (a spec change re-runs us).
        outcome = SpecOutcome(
            _recorded_pair(previous), Problem.INVALID_SPEC, refusal_message(error.errors), generation
        )
        settle_and_write_status(ctx, body, outcome, readiness)
        return
    refused = exec_check_refusals(vip, ctx.settings.speaker.exec_checks)
    if refused:  # an exec check the chart does not allow (stored before the webhook, or past it)
        message = refusal_message(refused)
        outcome = SpecOutcome(_recorded_pair(previous), Problem.INVALID_SPEC, message, generation)
        settle_and_write_status(ctx, body, outcome, readiness)
        return
    lost = address_held_by_older(vip, metadata.get("creationTimestamp", ""), inventory.values())
    if lost is not None:
        outcome = SpecOutcome(None, Problem.ADDRESS_IN_USE, str(lost), generation)
        settle_and_write_status(ctx, body, outcome, readiness)
        raise RetryLater(str(lost), delay=30)
    reserved = {entry.pair: entry.name for entry in inventory.values() if entry.pair is not None}
    request = Request.from_virtualip(vip)
    decision = ctx.kube.update_ledger(lambda ledger: _allocation(request, ledger, ctx.pool, reserved))
    if isinstance(decision, Refused):
        outcome = SpecOutcome(None, decision.problem, decision.message, generation)
        settle_and_write_status(ctx, body, outcome, readiness)
        raise RetryLater(decision.message, delay=60)
    before = _old_spec(old)
    # Status first (the speakers wait for the pair), carrying serviceRef's last outcome; then
    # the Service, and status again if its outcome changed (the ServicePublished condition).
    remembered = ctx.memory.peek(metadata.get("uid", ""))
    written = remembered.written if remembered is not None and remembered.written is not None else previous
    carried = _carried_service(written, vip, before)  # what this process wrote last: the body may lag
    outcome = SpecOutcome(decision.pair, None, "", generation, carried)
    settle_and_write_status(ctx, body, outcome, readiness)
    service = _sync_service(ctx, vip, before)
    if service != carried:
        settle_and_write_status(ctx, body, replace(outcome, service=service), readiness)
    if service is not None and not service.published:
        raise RetryLater(service.message, delay=RETRY_SECONDS)


def _allocation(
    request: Request, ledger: Mapping[str, LedgerEntry], pool: Pool, reserved: Mapping[Pair, str]
) -> tuple[LedgerChanges, Allocated | Refused]:
    decision = allocate(request, ledger, pool, reserved)
    if isinstance(decision, Allocated) and decision.is_new:
        return {request.uid: encode_entry(LedgerEntry(request.name, decision.pair))}, decision
    return {}, decision


def _old_spec(old: Mapping[str, Any] | None) -> VirtualIP | None:
    if old is None or "spec" not in old or "metadata" not in old:
        return None
    try:
        return parse_spec(old)
    except InvalidVirtualIP:
        return None


def _carried_service(
    previous: VirtualIPStatus | None, vip: VirtualIP, before: VirtualIP | None
) -> ServiceOutcome | None:
    """serviceRef's outcome as status records it, while the reference is the same one."""
    if vip.spec.service_ref is None or (
        before is not None and before.spec.service_ref != vip.spec.service_ref
    ):
        return None
    recorded = outcome_from_status(previous)
    return recorded.service if recorded is not None else None


def _sync_service(ctx: Context, vip: VirtualIP, before: VirtualIP | None) -> ServiceOutcome | None:
    """Publish the addresses in spec.serviceRef; unpublish from a previous Service or address.

    Only Services annotated ``keepvip.io/virtualip: <this VirtualIP>`` are written
    (keepvip.operator.serviceref): otherwise nothing is written and the outcome names the
    reason (the ``ServicePublished`` condition, one Warning Event); the stage retries, as
    the annotation or the Service may come later. None: there is no serviceRef.
    """
    ref = vip.spec.service_ref
    addresses: list[IPAddress] = [a.ip for a in vip.spec.addresses]
    if before is not None and before.spec.service_ref is not None:
        old_ref = before.spec.service_ref
        old_addresses = [a.ip for a in before.spec.addresses]
        gone = old_addresses if old_ref != ref else [a for a in old_addresses if a not in addresses]
        if gone:
            _unpublish(ctx, vip.name, old_ref.namespace, old_ref.name, gone)
    if ref is None:
        return None
    try:
        found = ctx.kube.update_service_ingress(
            ref.namespace, ref.name, lambda current: desired_ingress(current, add=addresses), opt_in=vip.name
        )
    except NotOptedIn as refused:
        return ServiceOutcome(refused.reason, str(refused))
    if not found:
        message = f"spec.serviceRef: Service {ref.namespace}/{ref.name} does not exist"
        return ServiceOutcome(ServiceRefReason.NOT_FOUND, message)
    where = f"Service {ref.namespace}/{ref.name} status.loadBalancer.ingress"
    return ServiceOutcome(ServiceRefReason.PUBLISHED, f"{', '.join(map(str, addresses))} in {where}")


def _unpublish(ctx: Context, virtualip: str, namespace: str, name: str, gone: list[IPAddress]) -> None:
    """Remove ``gone`` from a Service that opted in; one that did not was never written."""
    try:
        ctx.kube.update_service_ingress(
            namespace, name, lambda current: desired_ingress(current, remove=gone), opt_in=virtualip
        )
    except NotOptedIn as refused:
        log.info("%s: not unpublishing: %s", virtualip, refused)


# --- the status stage -----------------------------------------------------------------


def aggregate_status(
    ctx: Context, body: Mapping[str, Any], readiness: Readiness | None = None, *, recheck: bool = False
) -> bool:
    """Re-derive status from the speakers' entries; False when there is nothing to do yet.

    ``recheck``: called by the periodic re-check, whose body may be older than the one a
    watch event delivered meanwhile (see :func:`settle_and_write_status`).
    """
    if body.get("metadata", {}).get("deletionTimestamp"):
        return False
    return settle_and_write_status(ctx, body, None, readiness, recheck=recheck) is not None


def status_is_quiet(ctx: Context, uid: str, version: str | None, readiness: Readiness | None) -> bool:
    """Whether the periodic re-check may skip this VirtualIP: nothing it could derive now
    differs from the last derivation (see :meth:`Remembered.is_quiet`). Cheap: no parsing,
    no lock held (a derivation racing with this read is followed by another check)."""
    memory = ctx.memory.peek(uid)
    grace = ctx.settings.status.settle_seconds
    return memory is not None and memory.is_quiet(version, readiness_key(readiness), grace)


def drop_status_memory(ctx: Context, uid: str) -> None:
    """A VirtualIP is gone: drop what the operator remembered of it."""
    ctx.memory.drop(uid)


# --- the finalizer --------------------------------------------------------------------


def release(ctx: Context, body: Mapping[str, Any], waited: float, readiness: Readiness | None = None) -> None:
    """Wait for the master to let go (a NotReady node cannot), then unpublish and release the pair."""
    masters = Observation.of(read_nodes(body), readiness).masters
    ref = _ref(body)
    if masters and waited < ctx.settings.finalizer_timeout_seconds:
        raise RetryLater(f"waiting for {', '.join(masters)} to release the addresses", delay=2)
    if masters:
        log.warning("%s: releasing although %s still report MASTER", ref.name, ", ".join(masters))
    try:
        vip: VirtualIP | None = parse_spec(body)
    except InvalidVirtualIP:
        vip = None
    if vip is not None and vip.spec.service_ref is not None:
        service = vip.spec.service_ref
        _unpublish(ctx, vip.name, service.namespace, service.name, [a.ip for a in vip.spec.addresses])
    uid = ref.uid
    ctx.kube.update_ledger(lambda ledger: ({uid: None} if uid in ledger else {}, None))
    metrics.remove_series(ref.name)
    drop_status_memory(ctx, uid)


# --- maintenance ----------------------------------------------------------------------


def apply_daemonset(ctx: Context) -> None:
    """Render and server-side-apply the speaker DaemonSet."""
    ctx.kube.apply_daemonset(desired_daemonset(ctx.settings, ctx.kube.find_owner()))


def collect_stale_allocations(ctx: Context) -> set[str]:
    """Release entries of VirtualIPs that vanished without the finalizer.

    The ledger is read before the VirtualIPs are listed, and only entries present in
    that first read can be released: an allocation made meanwhile is never lost.
    """
    before = set(ctx.kube.read_ledger())
    live = ctx.kube.list_virtualip_uids()

    def decide(ledger: Mapping[str, LedgerEntry]) -> tuple[LedgerChanges, set[str]]:
        stale = stale_uids(ledger, live) & before
        return dict.fromkeys(stale), stale

    return ctx.kube.update_ledger(decide)


def update_pool_gauges(ctx: Context) -> None:
    """The pool gauges, from the ledger."""
    ledger = ctx.kube.read_ledger()
    for family in (4, 6):
        size, used = pool_usage(ledger, ctx.pool, family)
        metrics.POOL_SIZE.labels(family=f"ipv{family}").set(size)
        metrics.POOL_USED.labels(family=f"ipv{family}").set(used)


def inventory_entry(body: Mapping[str, Any]) -> InventoryEntry | None:
    """The index's summary of one VirtualIP (None when its spec does not parse)."""
    try:
        vip = parse_spec(body)
    except InvalidVirtualIP:
        return None
    entry = InventoryEntry.of(vip, created=body.get("metadata", {}).get("creationTimestamp", ""))
    recorded = _recorded_pair(read_status(body))
    if entry.pair is None and recorded is not None:
        entry = InventoryEntry(entry.name, entry.addresses, recorded, entry.created)
    return entry
