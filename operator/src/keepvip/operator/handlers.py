"""kopf's registrations: each handler turns kopf's arguments into a stage call.

Registered on an explicit :class:`kopf.OperatorRegistry` (no import-time globals), so
tests and ``keepvip operator`` build the same operator from settings.

kopf's own bookkeeping, chosen not to fight the speakers:

* handler progress and the last-handled spec live in annotations under ``keepvip.io/``
  (speakers never write metadata; status would be pruned by the CRD's schema anyway);
* the finalizer is ``keepvip.io/release-allocation``;
* status changes reach the operator through ``on.event`` (change detection sees the
  spec, not status) and the status stage patches only when the derived status differs;
* a per-VirtualIP async daemon re-derives the status every :func:`recheck_interval`
  seconds from kopf's live body, unless nothing it could derive has changed (same body
  version, same node readiness, no transient waiting out its grace period:
  ``status_is_quiet``; 500 VirtualIPs re-parsed every second starved the operator): it
  adopts a transient reading once it has lasted ``status.settleSeconds`` and notices
  Nodes turning NotReady, with no timer of our own to arm or cancel (``on.event``
  handlers are never retried, so ``TemporaryError`` cannot
  schedule a re-check; a ``kopf.timer`` would log "succeeded" at INFO on every tick);
* Node readiness comes from a kopf index over Nodes (list/watch), so a stale entry of
  a node cut off from the network counts as Unknown once the node is NotReady.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
import urllib3
from kubernetes.client.exceptions import ApiException

from keepvip.api.constants import GROUP, PLURAL, VERSION
from keepvip.api.parse import FieldError
from keepvip.api.pool import POOL_PLURAL, InvalidPool, parse_pool
from keepvip.operator import metrics
from keepvip.operator.admission import InventoryEntry, nothing_to_review, refusal_message, review
from keepvip.operator.inventory import InventoryCache
from keepvip.operator.kube import LoadBalancerApi, api_unavailable
from keepvip.operator.lb.controller import LoadBalancerController
from keepvip.operator.lb.records import POOL_LABEL
from keepvip.operator.listing import SharedListing
from keepvip.operator.reconcile import (
    Context,
    RetryLater,
    aggregate_status,
    apply_daemonset,
    collect_stale_allocations,
    drop_status_memory,
    inventory_entry,
    json_copy,
    reconcile_spec,
    release,
    status_is_quiet,
    update_pool_gauges,
)
from keepvip.operator.webhook import KeepvipWebhookServer

log = logging.getLogger(__name__)

FINALIZER = "keepvip.io/release-allocation"
ANNOTATIONS_PREFIX = "keepvip.io"
INDEX = "virtualip_inventory"
NODE_INDEX = "node_readiness"
WEBHOOK_ID = "validate-virtualip"
"""The validating handler's id: the webhook's URL path is ``/validate-virtualip``."""
POOL_WEBHOOK_ID = "validate-virtualippool"
"""The pools' validating handler: URL path ``/validate-virtualippool``."""
LIST_TIMEOUT_SECONDS = 4.0
"""The webhook's shared listing gives up after this (connect, each read): the API server
stops waiting for an answer after the chart's ``webhook.timeoutSeconds`` (5 s by default),
and a listing that hangs would hold every review waiting for it."""
REVIEW_DEADLINE_SECONDS = 30.0
"""A review whose listing failed joins the next one for this long: well past the API server's
own timeout, whose failurePolicy decides meanwhile (a refusal of ours would not be its choice)."""
LISTING_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)
"""What a listing the API server is too slow or too busy to answer raises."""
REVIEW_THREADS = 32
"""Threads of the VirtualIP webhook's own. A review's thread waits (blocked, no CPU) for the
listing it shares (keepvip.operator.listing); with at least as many threads as the API
server has reviews in flight (16 creating clients: 16) they all join one listing, where
with fewer each listing serves only the threads minus the one fetching."""


def _inventory(index: Any) -> dict[str, InventoryEntry]:
    """kopf's index (name -> store of one entry) as a plain mapping."""
    result: dict[str, InventoryEntry] = {}
    for name, store in index.items():
        for entry in store:
            result[name] = entry
    return result


def _readiness(index: Any) -> dict[str, bool]:
    """kopf's node index (name -> store of one bool) as a plain mapping."""
    return {name: any(store) for name, store in index.items()}


def node_is_ready(status: Mapping[str, Any] | None) -> bool:
    """Whether a Node's ``status.conditions`` say Ready=True (Unknown and False are not).

    Read here, where kopf hands over the raw Node, so the stages see only booleans.
    """
    conditions = (status or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def recheck_interval(settle_seconds: float) -> float:
    """How often the daemon re-derives a VirtualIP's status: half the grace period,
    between 0.25 s and 1 s (so a lasting transient shows at most 1 s after its grace)."""
    return min(1.0, max(0.25, settle_seconds / 2))


def _counted(handler: str, stage: Any, *args: Any) -> Any:
    """Run a stage, count its outcome, translate RetryLater into kopf's TemporaryError."""
    try:
        result = stage(*args)
    except RetryLater as retry:
        metrics.RECONCILES.labels(handler=handler, result="retry").inc()
        metrics.RECONCILE_ERRORS.labels(handler=handler, reason="RetryLater").inc()
        raise kopf.TemporaryError(str(retry), delay=retry.delay) from None
    except Exception as error:
        metrics.RECONCILES.labels(handler=handler, result="error").inc()
        metrics.RECONCILE_ERRORS.labels(handler=handler, reason=type(error).__name__).inc()
        raise
    metrics.RECONCILES.labels(handler=handler, result="ok").inc()
    return result


def register(
    registry: kopf.OperatorRegistry,
    ctx: Context,
    webhook: KeepvipWebhookServer | None,
) -> None:
    """Register every handler of the operator on ``registry``."""
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # An explicit registry has no default login handlers: use the kubernetes
        # client's configuration (in-cluster ServiceAccount or $KUBECONFIG), as kube.py does.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATIONS_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATIONS_PREFIX, key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        settings.execution.max_workers = 8
        settings.watching.server_timeout = 300
        if webhook is not None:
            settings.admission.server = webhook
            if ctx.settings.webhook.manage_configuration:
                settings.admission.managed = ctx.settings.webhook.configuration_name
        memo.maintenance = asyncio.get_running_loop().create_task(_maintain(ctx))

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: Any, **_: Any) -> None:
        task = getattr(memo, "maintenance", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @kopf.index(*resource, id=INDEX, registry=registry)
    def virtualip_inventory(name: str, body: kopf.Body, **_: Any) -> dict[str, InventoryEntry] | None:
        entry = inventory_entry(json_copy(body))
        return {name: entry} if entry is not None else None

    @kopf.on.resume(*resource, id="spec", registry=registry)
    @kopf.on.create(*resource, id="spec", registry=registry)
    @kopf.on.update(*resource, id="spec", registry=registry)
    def spec(body: kopf.Body, old: Any, **kwargs: Any) -> None:
        old_body = json_copy(old) if isinstance(old, Mapping) else None
        inventory = _inventory(kwargs[INDEX])
        readiness = _readiness(kwargs[NODE_INDEX])
        _counted("spec", reconcile_spec, ctx, json_copy(body), old_body, inventory, readiness)

    _register_status(registry, ctx)
    if ctx.settings.load_balancer.enabled:
        _register_load_balancer(registry, ctx, webhook is not None)

    @kopf.on.delete(*resource, registry=registry)
    def finalize(body: kopf.Body, runtime: Any, **kwargs: Any) -> None:
        readiness = _readiness(kwargs[NODE_INDEX])
        _counted("delete", release, ctx, json_copy(body), runtime.total_seconds(), readiness)

    if webhook is not None:
        _register_webhook(registry, ctx)


def _register_webhook(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """The VirtualIP validating webhook: the cross-object review, off kopf's worker pool."""
    resource = (GROUP, VERSION, PLURAL)
    admitted = InventoryCache(inventory_entry)
    # A list, not kopf's index: a replica paused by peering serves the webhook too, but
    # does not watch, so its index is empty. From the API server's watch cache (issue 15:
    # a list from etcd per create, under load, made each answer outlast the API server's
    # timeout), parsed once per version, and shared by the reviews that arrived before
    # it started (keepvip.operator.listing: 16 reviews in flight, one list, not 16).
    listing = SharedListing(
        lambda: admitted.inventory(ctx.kube.list_virtualips(cached=True, timeout=LIST_TIMEOUT_SECONDS))
    )
    reviewers = ThreadPoolExecutor(max_workers=REVIEW_THREADS, thread_name_prefix="webhook")

    def review_now(new_body: dict[str, Any], old_body: dict[str, Any] | None) -> list[FieldError]:
        inventory = listing.get_retrying(REVIEW_DEADLINE_SECONDS, LISTING_ERRORS)
        return review(new_body, old_body, inventory, ctx.kube, ctx.settings.speaker.exec_checks)

    @kopf.on.validate(*resource, id=WEBHOOK_ID, operations=["CREATE", "UPDATE"], registry=registry)
    async def validate(body: kopf.Body, **kwargs: Any) -> None:
        """Async, with the blocking review in threads of its own (issue 15).

        As a sync handler it ran in kopf's 8 workers, behind the reconcile handlers of
        every VirtualIP being created: with 500 created at once the answers came
        minutes after the API server's 5 s timeout, and the chart's failurePolicy
        (Ignore) admitted those creates unchecked. In the loop's default pool
        (``asyncio.to_thread``: 6 threads on 2 cores) it queued behind the settle
        daemons' status derivations of the same burst; ``REVIEW_THREADS`` are the
        webhook's alone.
        """
        old = kwargs.get("old")
        old_body = json_copy(old) if isinstance(old, Mapping) and old else None
        new_body = json_copy(body)
        if nothing_to_review(new_body, old_body):  # kopf's own metadata patches, deletions
            metrics.RECONCILES.labels(handler="admission", result="ok").inc()
            return
        loop = asyncio.get_running_loop()
        errors = await loop.run_in_executor(reviewers, review_now, new_body, old_body)
        metrics.RECONCILES.labels(handler="admission", result="refused" if errors else "ok").inc()
        if errors:
            raise kopf.AdmissionError(refusal_message(errors), code=422)


def _register_status(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """The status stage: Node readiness, every watch event, and the periodic re-check."""
    resource = (GROUP, VERSION, PLURAL)

    @kopf.index("v1", "nodes", id=NODE_INDEX, registry=registry)
    def node_readiness(name: str, status: kopf.Status, **_: Any) -> dict[str, bool]:
        return {name: node_is_ready(json_copy(status))}

    @kopf.on.event(*resource, registry=registry)
    def status(type: str | None, body: kopf.Body, name: str, uid: str, **kwargs: Any) -> None:
        if type == "DELETED":
            metrics.remove_series(name)
            drop_status_memory(ctx, uid)
            return
        _counted("status", aggregate_status, ctx, json_copy(body), _readiness(kwargs[NODE_INDEX]))

    interval = recheck_interval(ctx.settings.status.settle_seconds)

    @kopf.daemon(*resource, id="settle", cancellation_timeout=5.0, registry=registry)
    async def settle(body: kopf.Body, name: str, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
        uid = body.get("metadata", {}).get("uid", "")
        while not stopped:
            try:
                readiness = _readiness(kwargs[NODE_INDEX])
                version = body.get("metadata", {}).get("resourceVersion")
                if not status_is_quiet(ctx, uid, version, readiness):
                    await asyncio.to_thread(aggregate_status, ctx, json_copy(body), readiness, recheck=True)
            except Exception as error:  # a failed tick is retried by the next one
                log.warning("%s: re-deriving status failed: %s", name, error)
                metrics.RECONCILE_ERRORS.labels(handler="settle", reason=type(error).__name__).inc()
            await stopped.wait(interval)


def _register_load_balancer(registry: kopf.OperatorRegistry, ctx: Context, validating: bool) -> None:
    """Services from pools: watch events only wake the controller's loop (one pass at a time).

    The loop starts at the operator's startup but runs its first pass only when a
    watch event arrives: a replica paused by kopf peering receives none, so only the
    active replica writes (records are created only if absent in any case).
    """
    controller = LoadBalancerController(
        ctx.settings.load_balancer,
        LoadBalancerApi(ctx.kube),
        resync_seconds=float(ctx.settings.resync_seconds),
    )

    @kopf.on.startup(registry=registry)
    async def start_load_balancer(memo: Any, **_: Any) -> None:
        controller.wake = asyncio.Event()  # bound to kopf's running loop
        memo.load_balancer = asyncio.get_running_loop().create_task(controller.run())

    @kopf.on.cleanup(registry=registry)
    async def stop_load_balancer(memo: Any, **_: Any) -> None:
        task = getattr(memo, "load_balancer", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @kopf.on.event("v1", "services", registry=registry)
    async def service_changed(**_: Any) -> None:
        controller.poke()

    @kopf.on.event(GROUP, VERSION, POOL_PLURAL, registry=registry)
    async def pool_changed(**_: Any) -> None:
        controller.poke()

    @kopf.on.event(
        GROUP, VERSION, PLURAL, id="lb-record", labels={POOL_LABEL: kopf.PRESENT}, registry=registry
    )
    async def record_changed(**_: Any) -> None:
        controller.poke()

    @kopf.on.event("v1", "endpoints", registry=registry)
    async def endpoints_changed(namespace: str | None, name: str, **_: Any) -> None:
        if f"{namespace}/{name}" in controller.known:
            controller.poke()

    if validating:

        @kopf.on.validate(GROUP, VERSION, POOL_PLURAL, id=POOL_WEBHOOK_ID, operations=["CREATE", "UPDATE"],
                          registry=registry)  # fmt: skip
        async def validate_pool(body: kopf.Body, **_: Any) -> None:
            # Async: parsing one pool is quick, and a sync handler would wait for one of
            # kopf's 8 workers behind the reconcile handlers (as the VirtualIP one did).
            try:
                parse_pool(json_copy(body))
            except InvalidPool as error:
                metrics.RECONCILES.labels(handler="admission", result="refused").inc()
                raise kopf.AdmissionError(str(error), code=422) from None
            metrics.RECONCILES.labels(handler="admission", result="ok").inc()


async def _maintain(ctx: Context) -> None:
    """Forever: keep the DaemonSet applied, collect stale allocations, update the pool gauges."""
    while True:
        for name, job in (
            ("daemonset", apply_daemonset),
            ("ledger", collect_stale_allocations),
            ("pool", update_pool_gauges),
        ):
            try:
                await asyncio.to_thread(job, ctx)
                metrics.RECONCILES.labels(handler=name, result="ok").inc()
            except Exception as error:
                unavailable = api_unavailable(error)
                if unavailable is None:
                    log.exception("maintenance step %s failed", name)
                else:  # the API server restarting: the next round retries, no traceback
                    log.warning("maintenance step %s: %s; again in %d s", name, unavailable,
                                ctx.settings.resync_seconds)  # fmt: skip
                metrics.RECONCILES.labels(handler=name, result="error").inc()
                metrics.RECONCILE_ERRORS.labels(handler=name, reason=type(error).__name__).inc()
        await asyncio.sleep(ctx.settings.resync_seconds)
