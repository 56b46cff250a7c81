"""kopf's watch streams ride out a ``404 page not found`` instead of stopping the operator.

Why this exists: a restarted kube-apiserver accepts connections before it serves every
custom resource. While the apiextensions server loads the CRDs, a list or watch of
``/apis/keepvip.io/v1alpha1/virtualips`` is answered ``404 page not found`` (the plain-text
answer of the server's catch-all handler, not a ``Status`` about an object). The chaos
harness (bench/chaos_cluster.py, docs/reliability.md) saw exactly that, and the operator
exited: a restart of the API server cost a restart of the operator.

Where the 404 escapes, in kopf 1.45 (``kopf/_cogs/clients``, ``kopf/_core/reactor``):

* ``api.request`` retries connection errors, 5xx, 403 and 429 with
  ``settings.networking.error_backoffs``, but raises a 404 at once as ``APINotFoundError``;
* ``watching.continuous_watch`` (the initial list through ``fetching.fetch_objs``, then
  ``watch_objs``) lets it through, and ``watching.infinite_watch`` catches only
  ``APITooManyRequestsError`` around it;
* ``queueing.watcher`` lets it through, its guarded task logs "Watcher for ... has failed"
  with a traceback, and the orchestrator re-raises the finished task's error:
  "Multidimensional multitasker has failed", and ``kopf.run`` returns.

No kopf setting covers it (``settings.watching.*`` are timeouts and the reconnect pause,
``error_backoffs`` applies to the statuses above only), and site-packages are not ours to
patch. So :func:`install` wraps the one seam every kopf watch goes through (resource
watchers, the peering observer, the CRD and namespace observers all call
``watching.continuous_watch`` by its module attribute): a 404 ends that stream as a
disconnect would, after one warning line (no traceback) and a pause of
:data:`FIRST_DELAY` seconds doubling to :data:`MAX_DELAY` per resource, reset by the next
event; ``infinite_watch`` then lists and watches again. The pause ends early when kopf
peering pauses the operator, so a pause is never delayed by it.

A CRD that was really deleted is kopf's observer's business: it stops the watcher when it
sees the CRD go. If that is missed, the watcher keeps retrying with this warning every
:data:`MAX_DELAY` seconds — kopf's own answer to a missing resource — and never crashes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Final

from kopf._cogs.aiokits import aiotasks
from kopf._cogs.clients import errors, watching
from kopf._cogs.configs import configuration
from kopf._cogs.structs import bodies, references

log = logging.getLogger(__name__)

FIRST_DELAY: Final = 0.5
"""Seconds before the first retry after a 404: the CRDs of a restarting API server are
served a moment after it accepts connections (seconds on a loaded machine)."""
MAX_DELAY: Final = 10.0
"""The longest pause between retries (each 404 in a row doubles the pause up to this)."""

ContinuousWatch = Callable[..., AsyncIterator[watching.Bookmark | bodies.RawEvent]]
_MARK: Final = "_keepvip_rides_out_404"


class Backoff:
    """The pause before the next retry of each stream: FIRST_DELAY doubling to MAX_DELAY."""

    def __init__(self, first: float = FIRST_DELAY, limit: float = MAX_DELAY) -> None:
        self.first = first
        self.limit = limit
        self._next: dict[tuple[references.Resource, references.Namespace], float] = {}

    def failed(self, resource: references.Resource, namespace: references.Namespace) -> float:
        """One more 404 in a row for this stream: how long to pause now."""
        key = (resource, namespace)
        delay = self._next.get(key, self.first)
        self._next[key] = min(delay * 2, self.limit)
        return delay

    def succeeded(self, resource: references.Resource, namespace: references.Namespace) -> None:
        """The stream delivered: the next 404 starts the backoff over."""
        self._next.pop((resource, namespace), None)


def riding_out_404(original: ContinuousWatch, backoff: Backoff) -> ContinuousWatch:
    """``original`` (kopf's ``continuous_watch``), but a 404 ends the stream after a pause."""

    async def continuous_watch(
        *,
        settings: configuration.OperatorSettings,
        resource: references.Resource,
        namespace: references.Namespace,
        operator_pause_waiter: aiotasks.Future,
    ) -> AsyncIterator[watching.Bookmark | bodies.RawEvent]:
        stream = original(
            settings=settings,
            resource=resource,
            namespace=namespace,
            operator_pause_waiter=operator_pause_waiter,
        )
        try:
            async for item in stream:
                backoff.succeeded(resource, namespace)
                yield item
        except errors.APINotFoundError as error:
            delay = backoff.failed(resource, namespace)
            where = "cluster-wide" if namespace is None else f"in {namespace}"
            log.warning(
                "the API server answered 404 (%s) for %s %s; it may still be loading its CRDs: "
                "watching again in %g s",
                str(error) or "not found", resource, where, delay,
            )  # fmt: skip
            await asyncio.wait({operator_pause_waiter}, timeout=delay)
        finally:
            if isinstance(stream, AsyncGenerator):  # closed now, not when collected
                await stream.aclose()

    setattr(continuous_watch, _MARK, True)
    return continuous_watch


def install() -> None:
    """Make every kopf watch of this process ride out a 404 (idempotent; before ``kopf.run``)."""
    if getattr(watching.continuous_watch, _MARK, False):
        return
    watching.continuous_watch = riding_out_404(watching.continuous_watch, Backoff())
