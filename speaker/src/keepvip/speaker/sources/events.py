"""The speaker's Kubernetes Events: conflicts and failed binds.

What is told, and how often, is decided in :mod:`.event_limits` (pure, bounded); this
module turns those decisions into API writes without ever holding up VRRP: the report
callback only queues (a bounded queue: when the writer is behind, the newest is
dropped and counted), one task writes in a worker thread.

The Event is about the VirtualIP (``involvedObject``, with its uid, which ``kubectl
describe virtualip`` selects on) and names the node (``related``, ``source.host``,
``reportingInstance``); the reporting component is ``keepvip-speaker``. VirtualIPs are
cluster-scoped, so the Events live in ``default``, like the operator's and the
kubelet's Events about Nodes. They are core/v1 Events in the form client-go's recorder
writes (``firstTimestamp``/``lastTimestamp``/``count``, no ``eventTime``): older API
servers, the local cluster's v1.20 among them, refuse an events.k8s.io-style Event (one
with ``eventTime``) about a cluster-scoped object outside ``kube-system``
("involvedObject.namespace: does not match event.namespace"). The chart grants
``create`` and ``patch`` on events in ``default`` only. Standalone mode has no API
server and records nothing (this module is not used there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from kubernetes import client

from keepvip.api.constants import GROUP, VERSION
from keepvip.api.timestamps import rfc3339
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.failures import FailureReport
from keepvip.speaker.runtime.router_runner import RouterReport
from keepvip.speaker.sources.event_limits import (
    Create,
    Decision,
    EventLimiter,
    EventResult,
    Occurrence,
    Patch,
    Suppressed,
    occurrence_of,
)

log = logging.getLogger("keepvip.speaker.events")

CONTROLLER: Final = "keepvip-speaker"
NAMESPACE: Final = "default"
QUEUE_LIMIT: Final = 32
REQUEST_TIMEOUT: Final = 10.0
ACTION: Final = "BindVirtualIP"


def event_body(
    occurrence: Occurrence, name: str, node: str, uid: str | None, now: datetime
) -> dict[str, Any]:
    """A new core/v1 Event (a Warning) about ``occurrence``'s VirtualIP, as client-go writes one."""
    involved: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VirtualIP",
        "name": occurrence.virtualip,
    }
    if uid:
        involved["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "involvedObject": involved,
        "related": {"apiVersion": "v1", "kind": "Node", "name": node},
        "type": "Warning",
        "reason": occurrence.reason.value,
        "action": ACTION,
        "message": occurrence.note,
        "source": {"component": CONTROLLER, "host": node},
        "reportingComponent": CONTROLLER,
        "reportingInstance": node[:128],
        "firstTimestamp": rfc3339(now),
        "lastTimestamp": rfc3339(now),
        "count": 1,
    }


def series_patch(count: int, now: datetime) -> dict[str, Any]:
    """The merge patch that says the Event has happened ``count`` times, last ``now``."""
    return {"count": count, "lastTimestamp": rfc3339(now)}


class EventRecorder:
    """Queues this node's Events from its reports and writes them (in a cluster only)."""

    def __init__(
        self,
        node: str,
        api: client.ApiClient,
        metrics: SpeakerMetrics,
        uid_of: Callable[[str], str | None],
        limiter: EventLimiter | None = None,
    ) -> None:
        self._node = node
        self._events = client.CoreV1Api(api)
        self._metrics = metrics
        self._uid_of = uid_of
        self._limiter = limiter if limiter is not None else EventLimiter(node)
        self._queue: deque[tuple[Occurrence, Decision]] = deque()
        self._wakeup = asyncio.Event()

    def observe(self, report: RouterReport | FailureReport) -> None:
        """Every report of this node passes here (the status writer's callback); cheap, never raises."""
        occurrence = occurrence_of(report, self._node)
        decision = self._limiter.observe(report.virtualip, occurrence, time.monotonic())
        if decision is None or occurrence is None:
            return
        if isinstance(decision, Suppressed):
            self._count(occurrence, EventResult.RATE_LIMITED)
        elif len(self._queue) >= QUEUE_LIMIT:
            self._count(occurrence, EventResult.QUEUE_FULL)
        else:
            self._queue.append((occurrence, decision))
            self._wakeup.set()

    def forget(self, virtualip: str) -> None:
        """The VirtualIP no longer runs on this node."""
        self._limiter.forget(virtualip)

    def _count(self, occurrence: Occurrence, result: EventResult) -> None:
        self._metrics.events.labels(occurrence.reason.value, result.value).inc()

    def _patch(self, decision: Patch) -> bool:
        """Count one more occurrence on the existing Event; False when it is gone (expired)."""
        try:
            self._events.patch_namespaced_event(
                decision.name, NAMESPACE, series_patch(decision.count, datetime.now(UTC)),
                _request_timeout=REQUEST_TIMEOUT,
            )  # fmt: skip
        except client.ApiException as error:
            if error.status == 404:  # Events live an hour: start a new one
                return False
            raise
        return True

    def _create(self, occurrence: Occurrence, decision: Create) -> None:
        uid = self._uid_of(occurrence.virtualip)
        body = event_body(occurrence, decision.name, self._node, uid, datetime.now(UTC))
        self._events.create_namespaced_event(NAMESPACE, body, _request_timeout=REQUEST_TIMEOUT)  # type: ignore[arg-type]

    async def run(self) -> None:
        """Write queued Events one at a time; a failed write is counted and logged, not retried."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                occurrence, decision = self._queue.popleft()
                self._count(occurrence, await self._write_logged(occurrence, decision))

    async def _write_logged(self, occurrence: Occurrence, decision: Decision) -> EventResult:
        """One write in a worker thread; the limiter is only touched here, on the event loop."""
        try:
            if isinstance(decision, Patch):
                if await asyncio.to_thread(self._patch, decision):
                    return EventResult.SERIES
                decision = self._limiter.recreate(occurrence, time.monotonic())
            assert isinstance(decision, Create)
            await asyncio.to_thread(self._create, occurrence, decision)
        except Exception as error:
            fields = {"virtualip": occurrence.virtualip, "reason": occurrence.reason.value}
            log.warning("cannot write the %s Event: %s", fields["reason"], _short(error), extra=fields)
            return EventResult.FAILED
        return EventResult.CREATED

    async def flush(self, timeout: float) -> None:
        """Best effort at shutdown: write what is queued within ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._queue:
                    occurrence, decision = self._queue.popleft()
                    self._count(occurrence, await self._write_logged(occurrence, decision))


def _short(error: Exception) -> str:
    """One line: the API server's status and its own message (which names the field it refused)."""
    if isinstance(error, client.ApiException):
        try:
            said = json.loads(error.body or "{}").get("message", "")
        except (ValueError, AttributeError):
            said = ""
        head = f"{error.status} {error.reason}"
        return f"{head}: {str(said)[:500]}" if said else head
    return f"{type(error).__name__}: {error}"
