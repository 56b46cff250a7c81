"""In a cluster: VirtualIPs and this node's labels from the API server, status back to it.

The speaker watches (list + watch, with the kubernetes client in worker threads) every
VirtualIP and its own Node, and hands the speaker whole snapshots. It writes its own
entry of each VirtualIP's ``status.nodes`` with server-side apply under its own field
manager (``keepvip-speaker/<node>``), so hundreds of speakers never conflict and never
touch kopf's annotations.

Fail static (DESIGN.md): the API server is never in the failover path. When it is
unreachable, the watches retry with exponential backoff (1 s .. 30 s) and *no* snapshot
is produced, so the routers keep running on the last configuration while VRRP keeps
deciding who holds each VIP; status writes wait and keep only the latest report. After
reconnecting, a fresh list is applied, and unchanged VirtualIPs are left untouched.

Status is not a control channel (issue 10, :mod:`.status_gate`): a VirtualIP is acted
on only in a generation the operator accepted, with its status fields checked against
the spec's rules; the last accepted generation keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from kubernetes import client, config, watch

from keepvip.api.constants import GROUP, PLURAL, VERSION
from keepvip.api.model import VirtualIP
from keepvip.api.parse import InvalidVirtualIP, parse_virtualip
from keepvip.api.timestamps import rfc3339
from keepvip.speaker.desired import SecretKey
from keepvip.speaker.metrics import SpeakerMetrics
from keepvip.speaker.runtime.failures import FailureReport
from keepvip.speaker.runtime.router_runner import RouterReport
from keepvip.speaker.sources.snapshot import ConfigSnapshot
from keepvip.speaker.sources.status_gate import AcceptedGenerations, Refusal, Selection

log = logging.getLogger("keepvip.speaker.kubernetes")

BACKOFF_FIRST: Final = 1.0
BACKOFF_MAX: Final = 30.0
WATCH_SECONDS: Final = 60
REQUEST_TIMEOUT: Final = 10.0
DEBOUNCE_SECONDS: Final = 0.05


def api_client() -> client.ApiClient:
    """In-cluster credentials (the pod's ServiceAccount), else the local kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def field_manager(node: str) -> str:
    """The server-side-apply manager that owns this node's status entries."""
    return f"keepvip-speaker/{node}"


class _Watcher(threading.Thread):
    """list + watch one resource forever in a thread; reconnects with backoff."""

    def __init__(
        self,
        name: str,
        list_call: Callable[..., Any],
        on_list: Callable[[list[Any]], None],
        on_event: Callable[[str, Any], None],
        stopping: threading.Event,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._list_call = list_call
        self._kwargs = kwargs
        self._on_list = on_list
        self._on_event = on_event
        self._stopping = stopping

    def run(self) -> None:
        backoff = BACKOFF_FIRST
        failures = 0
        while not self._stopping.is_set():
            try:
                listing = self._list_call(_request_timeout=REQUEST_TIMEOUT, **self._kwargs)
                items, version = _items_and_version(listing)
                self._on_list(items)
                if failures:
                    log.info("reached the API server again (%s) after %d failures", self.name, failures)
                failures = 0
                backoff = BACKOFF_FIRST
                stream = watch.Watch().stream(
                    self._list_call,
                    resource_version=version,
                    timeout_seconds=WATCH_SECONDS,
                    _request_timeout=WATCH_SECONDS + REQUEST_TIMEOUT,
                    **self._kwargs,
                )
                for event in stream:
                    if self._stopping.is_set():
                        return
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: relist
                    self._on_event(event["type"], event["object"])
            except Exception as error:
                level = logging.WARNING if failures == 0 else logging.DEBUG
                log.log(level, "cannot watch %s: %s; keeping the running configuration", self.name, error)
                failures += 1
                self._stopping.wait(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)


def _items_and_version(listing: Any) -> tuple[list[Any], str]:
    if isinstance(listing, dict):
        return list(listing.get("items", [])), str(listing["metadata"]["resourceVersion"])
    return list(listing.items), str(listing.metadata.resource_version)


class KubernetesSource:
    """Snapshots of the cluster's VirtualIPs and this node's labels."""

    def __init__(self, node: str, api: client.ApiClient, metrics: SpeakerMetrics | None = None) -> None:
        self._node = node
        self._metrics = metrics
        self._gate = AcceptedGenerations(self._status_refused)
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._lock = threading.Lock()
        self._bodies: dict[str, dict[str, Any]] = {}
        self._labels: dict[str, str] | None = None
        self._secrets: dict[SecretKey, bytes] = {}
        self._stopping = threading.Event()
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._invalid: dict[str, str] = {}

    def _wake(self) -> None:
        self._loop.call_soon_threadsafe(self._changed.set)

    def _vips_listed(self, items: list[Any]) -> None:
        with self._lock:
            self._bodies = {item["metadata"]["name"]: item for item in items}
        self._wake()

    def _vip_event(self, kind: str, body: Any) -> None:
        with self._lock:
            name = body["metadata"]["name"]
            if kind == "DELETED":
                self._bodies.pop(name, None)
            else:
                self._bodies[name] = body
        self._wake()

    def _node_listed(self, items: list[Any]) -> None:
        if items:
            self._node_event("ADDED", items[0])

    def _node_event(self, kind: str, node: Any) -> None:
        if kind == "DELETED":
            return
        with self._lock:
            self._labels = dict(node.metadata.labels or {})
        self._wake()

    def uid_of(self, name: str) -> str | None:
        """The uid of VirtualIP ``name`` as last watched (None: unknown); Events carry it."""
        with self._lock:
            body = self._bodies.get(name)
        metadata = body.get("metadata") if isinstance(body, dict) else None
        uid = metadata.get("uid") if isinstance(metadata, dict) else None
        return uid if isinstance(uid, str) else None

    def start(self) -> None:
        """Start the watch threads."""
        _Watcher(
            "virtualips",
            self._custom.list_cluster_custom_object,
            self._vips_listed,
            self._vip_event,
            self._stopping,
            group=GROUP,
            version=VERSION,
            plural=PLURAL,
        ).start()
        _Watcher(
            "node",
            self._core.list_node,
            self._node_listed,
            self._node_event,
            self._stopping,
            field_selector=f"metadata.name={self._node}",
        ).start()

    def stop(self) -> None:
        """Ask the watch threads to end (they are daemons: exit never waits for them)."""
        self._stopping.set()

    def _status_refused(self, refusal: Refusal) -> None:
        if self._metrics is not None:
            self._metrics.status_invalid.labels(refusal.problem.value).inc()

    def _virtualips(self) -> Selection:
        """The VirtualIPs to act on, those waiting for the operator, and refused statuses."""
        with self._lock:
            bodies = list(self._bodies.values())
        live: dict[str, dict[str, Any]] = {}
        for body in bodies:
            if not isinstance(body, dict) or not isinstance(body.get("metadata"), dict):
                continue
            if body["metadata"].get("deletionTimestamp"):
                continue  # being deleted: release it (the operator's finalizer waits for that)
            name = str(body["metadata"].get("name"))
            live[name] = body
            without_status = {key: value for key, value in body.items() if key != "status"}
            try:
                parse_virtualip(without_status)
            except InvalidVirtualIP as error:
                if self._invalid.get(name) != str(error):
                    self._invalid[name] = str(error)
                    log.warning("ignoring %s", error, extra={"virtualip": name})
        return self._gate.select(live)

    async def _read_secrets(self, vips: tuple[VirtualIP, ...]) -> dict[SecretKey, bytes]:
        wanted = {
            (a.secret_ref.namespace, a.secret_ref.name, a.secret_ref.key)
            for a in (v.spec.vrrp.authentication for v in vips)
            if a is not None
        }
        found: dict[SecretKey, bytes] = {}
        for namespace, name, key in wanted:
            try:
                secret = await asyncio.to_thread(
                    self._core.read_namespaced_secret, name, namespace, _request_timeout=REQUEST_TIMEOUT
                )
                value = (secret.data or {}).get(key)
                if value is not None:
                    found[(namespace, name, key)] = base64.b64decode(value)
            except Exception as error:
                log.warning("cannot read secret %s/%s: %s", namespace, name, error)
                if (namespace, name, key) in self._secrets:
                    found[(namespace, name, key)] = self._secrets[(namespace, name, key)]
        self._secrets = found
        return found

    async def snapshots(self) -> AsyncIterator[ConfigSnapshot]:
        """A snapshot after every change (debounced), starting once the node is known.

        Each new iterator starts with the current state (a restarted configuration loop
        gets a snapshot at once, not at the next change).
        """
        self._changed.set()
        while True:
            await self._changed.wait()
            await asyncio.sleep(DEBOUNCE_SECONDS)
            self._changed.clear()
            with self._lock:
                labels = self._labels
            if labels is None:
                continue  # the Node has not been read yet: its labels decide the selection
            selection = self._virtualips()
            secrets = await self._read_secrets(selection.virtualips)
            yield ConfigSnapshot(
                virtualips=selection.virtualips,
                secrets=secrets,
                node_labels=labels,
                pending=selection.pending,
                invalid_status=selection.invalid_status,
            )


class StatusWriter:
    """Writes this node's ``status.nodes`` entries; never blocks VRRP, keeps only the latest."""

    def __init__(self, node: str, api: client.ApiClient) -> None:
        self._node = node
        self._custom = client.CustomObjectsApi(api)
        self._pending: dict[str, RouterReport | FailureReport | None] = {}
        self._wakeup = asyncio.Event()
        self._written: dict[str, list[dict[str, Any]]] = {}
        """VirtualIP -> this node's entries as last applied: the same again is not re-applied
        (a report repeats what was written, e.g. a failure retried every few seconds)."""

    def report(self, report: RouterReport | FailureReport) -> None:
        """Queue this node's latest view of a VirtualIP."""
        self._pending[report.virtualip] = report
        self._wakeup.set()

    def forget(self, virtualip: str) -> None:
        """Queue the removal of this node's entry (it no longer runs the VirtualIP)."""
        self._pending[virtualip] = None
        self._wakeup.set()

    def entry(self, report: RouterReport | FailureReport) -> dict[str, Any]:
        """The ``status.nodes`` entry for a report (camelCase, RFC 3339 time).

        A `FailureReport` (the VirtualIP does not run here), or a router in FAULT because
        binding failed, adds ``message``; fields it does not know are left out.
        """
        entry: dict[str, Any] = {
            "node": self._node,
            "state": report.state.value,
            "priority": report.priority,
            "effectivePriority": report.effective_priority,
            "interface": report.interface,
            "since": rfc3339(report.since),
            "reason": report.reason,
        }
        if report.conflict:
            entry["conflict"] = report.conflict
        if report.message is not None:  # a FailureReport's, or a router's FAULT for a failed bind
            entry["message"] = report.message[:1024]
        return {key: value for key, value in entry.items() if value is not None}

    def _apply(self, virtualip: str, report: RouterReport | FailureReport | None) -> None:
        nodes = [] if report is None else [self.entry(report)]
        if self._written.get(virtualip) == nodes:
            return  # unchanged: no API write
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "VirtualIP",
            "metadata": {"name": virtualip},
            "status": {"nodes": nodes},
        }
        self._written.pop(virtualip, None)  # unknown until this apply succeeds
        try:
            self._custom.patch_cluster_custom_object_status(
                GROUP,
                VERSION,
                PLURAL,
                virtualip,
                body,
                field_manager=field_manager(self._node),
                force=True,
                _content_type="application/apply-patch+yaml",
                _request_timeout=REQUEST_TIMEOUT,
            )
        except client.ApiException as error:
            if error.status != 404:  # gone: nothing to report on
                raise
            return
        if report is None:
            self._written.pop(virtualip, None)  # forgotten: a VirtualIP created again starts afresh
        else:
            self._written[virtualip] = nodes

    async def run(self) -> None:
        """Write pending entries; on failure keep them and retry with backoff."""
        backoff = BACKOFF_FIRST
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                virtualip, report = next(iter(self._pending.items()))
                try:
                    await asyncio.to_thread(self._apply, virtualip, report)
                except Exception as error:
                    log.warning("cannot write status of %s: %s", virtualip, error)
                    await asyncio.sleep(backoff)
                    backoff = min(BACKOFF_MAX, backoff * 2)
                    continue
                backoff = BACKOFF_FIRST
                if self._pending.get(virtualip, ...) is report:
                    del self._pending[virtualip]

    async def flush(self, timeout: float) -> None:
        """Best effort at shutdown: write what is pending within ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._pending:
                    virtualip, report = next(iter(self._pending.items()))
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self._apply, virtualip, report)
                    self._pending.pop(virtualip, None)
