"""kopf's registrations: each handler turns kopf's arguments into a stage call.

Registered on an explicit :class:`kopf.OperatorRegistry` (no import-time globals), so
tests and ``keepvip operator`` build the same operator from settings.

kopf's own bookkeeping, chosen not to fight the speakers:

* handler progress and the last-handled spec live in annotations under ``keepvip.io/``
  (speakers never write metadata; status would be pruned by the CRD's schema anyway);
* the finalizer is ``keepvip.io/release-allocation``;
* status changes reach the operator through ``on.event`` only: event handlers keep
  no state, and the status stage patches only when the derived status differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from keepvip.api.constants import GROUP, PLURAL, VERSION
from keepvip.operator import metrics
from keepvip.operator.admission import InventoryEntry, refusal_message, review
from keepvip.operator.reconcile import (
    Context,
    RetryLater,
    aggregate_status,
    apply_daemonset,
    collect_stale_allocations,
    inventory_entry,
    plain,
    publish_pool_usage,
    reconcile_spec,
    release,
)
from keepvip.operator.webhook import KeepvipWebhookServer

log = logging.getLogger(__name__)

FINALIZER = "keepvip.io/release-allocation"
ANNOTATIONS_PREFIX = "keepvip.io"
INDEX = "virtualip_inventory"
WEBHOOK_ID = "validate-virtualip"
"""The validating handler's id: the webhook's URL path is ``/validate-virtualip``."""


def _inventory(index: Any) -> dict[str, InventoryEntry]:
    """kopf's index (name -> store of one entry) as a plain mapping."""
    result: dict[str, InventoryEntry] = {}
    for name, store in index.items():
        for entry in store:
            result[name] = entry
    return result


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
        entry = inventory_entry(plain(body))
        return {name: entry} if entry is not None else None

    @kopf.on.resume(*resource, id="spec", registry=registry)
    @kopf.on.create(*resource, id="spec", registry=registry)
    @kopf.on.update(*resource, id="spec", registry=registry)
    def spec(body: kopf.Body, old: Any, **kwargs: Any) -> None:
        old_body = plain(old) if isinstance(old, Mapping) else None
        inventory = _inventory(kwargs[INDEX])
        _counted("spec", reconcile_spec, ctx, plain(body), old_body, inventory)

    @kopf.on.event(*resource, registry=registry)
    def status(type: str | None, body: kopf.Body, name: str, **_: Any) -> None:
        if type == "DELETED":
            metrics.forget_virtualip(name)
            return
        _counted("status", aggregate_status, ctx, plain(body))

    @kopf.on.delete(*resource, registry=registry)
    def finalize(body: kopf.Body, runtime: Any, **_: Any) -> None:
        _counted("delete", release, ctx, plain(body), runtime.total_seconds())

    if webhook is not None:

        @kopf.on.validate(*resource, id=WEBHOOK_ID, operations=["CREATE", "UPDATE"], registry=registry)
        def validate(body: kopf.Body, **kwargs: Any) -> None:
            old = kwargs.get("old")
            old_body = plain(old) if isinstance(old, Mapping) and old else None
            errors = review(plain(body), old_body, _inventory(kwargs[INDEX]), ctx.kube)
            metrics.RECONCILES.labels(handler="admission", result="refused" if errors else "ok").inc()
            if errors:
                raise kopf.AdmissionError(refusal_message(errors), code=422)


async def _maintain(ctx: Context) -> None:
    """Forever: keep the DaemonSet applied, collect stale allocations, publish pool usage."""
    while True:
        for name, job in (
            ("daemonset", apply_daemonset),
            ("ledger", collect_stale_allocations),
            ("pool", publish_pool_usage),
        ):
            try:
                await asyncio.to_thread(job, ctx)
                metrics.RECONCILES.labels(handler=name, result="ok").inc()
            except Exception as error:
                log.exception("maintenance step %s failed", name)
                metrics.RECONCILES.labels(handler=name, result="error").inc()
                metrics.RECONCILE_ERRORS.labels(handler=name, reason=type(error).__name__).inc()
        await asyncio.sleep(ctx.settings.resync_seconds)
