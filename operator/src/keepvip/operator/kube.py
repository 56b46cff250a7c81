"""The one module of the operator that talks to the Kubernetes API.

Everything else decides (pure functions over typed values); this module reads and
writes, with the kubernetes client, synchronously (kopf runs sync handlers in its
thread pool). Writes that race with other writers use optimistic concurrency:

* the allocation ledger, a ConfigMap keyed by VirtualIP uid, is replaced with its
  ``resourceVersion`` (compare-and-swap) and the decision is re-made on a conflict, so
  two handlers (or two operator replicas during a rolling update) never hand out the
  same pair; a process-wide lock only saves needless conflicts between our own threads;
* a Service's ``status.loadBalancer.ingress`` is patched with a ``resourceVersion``
  precondition, and recomputed on a conflict.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from keepvip.api.constants import GROUP, KIND, PLURAL, VERSION
from keepvip.api.pool import POOL_PLURAL
from keepvip.api.timestamps import utc_now
from keepvip.operator.allocation import LedgerEntry, decode_ledger
from keepvip.operator.daemonset import FIELD_MANAGER, Owner
from keepvip.operator.serviceref import check_opt_in
from keepvip.operator.settings import OperatorSettings
from keepvip.operator.status import EventSpec

log = logging.getLogger(__name__)

LEDGER_CONFIGMAP = "keepvip-allocations"
"""The ConfigMap (in the operator's namespace) holding the allocation ledger."""
EVENTS_NAMESPACE = "default"
"""Where Events about cluster-scoped VirtualIPs go (as for Nodes)."""
_PARTIAL_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
_MERGE_PATCH = "application/merge-patch+json"
_APPLY_PATCH = "application/apply-patch+yaml"
_JSON_PATCH = "application/json-patch+json"
_CAS_ATTEMPTS = 100

T = TypeVar("T")

LedgerChanges = Mapping[str, str | None]
"""uid -> the new encoded entry, or None to delete it."""


class LedgerContention(RuntimeError):
    """The ledger kept changing under us; the caller retries later."""


NOT_SERVED = "404 page not found"
"""kube-apiserver's plain-text answer for a path it does not serve: a collection whose CRD
the apiextensions server has not loaded yet (just after a restart), or no longer has. A
missing *object* is a JSON Status (reason NotFound) instead, and is not this."""


def api_unavailable(error: BaseException) -> str | None:
    """Why the API server could not serve a request just now, or None for any other error.

    The operator's own periodic passes (maintenance, LoadBalancer) retry on their next
    round anyway; for these errors a warning line is the whole story, where a traceback
    would report a bug (and the chaos harness counts tracebacks as crashes). They are: no
    connection (a stopped or restarting API server), 5xx and 429 (starting, overloaded),
    and ``404 page not found`` (its CRDs not served yet: keepvip.operator.rewatch).
    """
    if isinstance(error, ApiException):
        status = error.status or 0
        body = error.body.decode(errors="replace") if isinstance(error.body, bytes) else str(error.body or "")
        if status == 404 and body.strip() == NOT_SERVED:
            return f"the API server answered {NOT_SERVED} (its CRDs may still be loading)"
        if status == 429 or status >= 500:
            return f"the API server answered {status} {error.reason or ''}".rstrip()
        return None
    if isinstance(error, (urllib3.exceptions.HTTPError, OSError)):
        return f"the API server is unreachable ({type(error).__name__})"
    return None


@dataclass(frozen=True)
class ObjectRef:
    """Enough of a VirtualIP to post an Event about it."""

    name: str
    uid: str


def load_configuration() -> None:
    """In a pod: the ServiceAccount; elsewhere: $KUBECONFIG or ~/.kube/config."""
    config: Any = kubernetes.config  # the loaders are untyped
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
    else:
        config.load_kube_config()


def event_body(
    namespace: str, involved: Mapping[str, str], kind: str, reason: str, message: str
) -> dict[str, Any]:
    """An Event as client-go's recorder writes it.

    Named ``<object>.<unix nanoseconds, hex>``: Event times have whole seconds only, and
    the API lists by name, so events of the same second are listed (and shown by
    ``kubectl describe``) in the order they happened.
    """
    now = utc_now()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{involved['name']}.{time.time_ns():x}", "namespace": namespace},
        "involvedObject": dict(involved),
        "type": kind,
        "reason": reason,
        "message": message,
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
        "reportingInstance": socket.gethostname(),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class _LedgerCall(Generic[T]):
    """One caller's ``decide`` waiting in :meth:`Kube.update_ledger`'s batch, and its outcome."""

    def __init__(self, decide: Callable[[dict[str, LedgerEntry]], tuple[LedgerChanges, T]]) -> None:
        self.decide = decide
        self.done = False
        self._result: T | None = None
        self._error: BaseException | None = None

    def decide_on(self, data: dict[str, str]) -> bool:
        """Decide on the ledger ``data`` holds and apply the changes to it; True if any."""
        self._error = None
        try:
            changes, self._result = self.decide(decode_ledger(data))
        except Exception as error:  # this caller's problem only: the others still commit
            self._error = error
            return False
        for uid, encoded in changes.items():
            if encoded is None:
                data.pop(uid, None)
            else:
                data[uid] = encoded
        return bool(changes)

    def fail(self, error: BaseException) -> None:
        """The batch could not be stored: every caller gets the error."""
        self._error, self.done = error, True

    def outcome(self) -> T:
        """The decision once stored (or the error that prevented it)."""
        if self._error is not None:
            raise self._error
        return cast(T, self._result)


def _jitter(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.5, 0.01 * (attempt + 1))))  # noqa: S311 - backoff, not crypto


class Kube:
    """The operator's API calls, each named for what it does."""

    def __init__(self, settings: OperatorSettings, api: Any | None = None) -> None:
        self.settings = settings
        # Typed as Any: the client's generated models are not worth mirroring here;
        # this module passes and reads plain JSON-shaped dictionaries.
        self.api: Any = api if api is not None else kubernetes.client.ApiClient()
        self.core: Any = kubernetes.client.CoreV1Api(self.api)
        self.apps: Any = kubernetes.client.AppsV1Api(self.api)
        self.custom: Any = kubernetes.client.CustomObjectsApi(self.api)
        self._ledger_lock = threading.Lock()
        self._queue_guard = threading.Lock()
        self._queue: list[_LedgerCall[Any]] = []
        self._daemonset_applied: tuple[str, str, int] | None = None
        """(the body applied, the DaemonSet's uid, its generation after the apply)."""

    # --- the allocation ledger -------------------------------------------------------

    def read_ledger(self) -> dict[str, LedgerEntry]:
        """The ledger as it is now (empty when the ConfigMap does not exist yet)."""
        try:
            config_map = self.core.read_namespaced_config_map(LEDGER_CONFIGMAP, self.settings.namespace)
        except ApiException as error:
            if error.status == 404:
                return {}
            raise
        return decode_ledger(config_map.data or {})

    def update_ledger(self, decide: Callable[[dict[str, LedgerEntry]], tuple[LedgerChanges, T]]) -> T:
        """Run ``decide`` on the current ledger and store its changes with compare-and-swap.

        ``decide`` is re-run on the fresh ledger after every conflict; its result is
        returned once its changes (if any) are stored. Calls that arrive while another
        is writing are committed together by the next writer, in one read and one
        replace (:meth:`_commit`): 500 VirtualIPs created at once wrote the ledger 500
        times, one after the other, each time a bigger ConfigMap.
        """
        call: _LedgerCall[T] = _LedgerCall(decide)
        with self._queue_guard:
            self._queue.append(call)
        with self._ledger_lock:
            if not call.done:
                with self._queue_guard:
                    batch, self._queue = self._queue, []
                self._commit(batch)
        return call.outcome()

    def _commit(self, batch: Sequence[_LedgerCall[Any]]) -> None:
        """Decide every call of ``batch`` in turn on one read of the ledger, each seeing the
        changes of those before it, and store them all with one compare-and-swap replace
        (all re-decided on a conflict). A call whose ``decide`` raises fails alone."""
        try:
            for attempt in range(_CAS_ATTEMPTS):
                config_map = self._ledger_config_map()
                data: dict[str, str] = dict(config_map.data or {})
                changed = False
                for call in batch:
                    changed |= call.decide_on(data)
                if not changed:
                    break
                config_map.data = data
                try:
                    self.core.replace_namespaced_config_map(
                        LEDGER_CONFIGMAP, self.settings.namespace, config_map
                    )
                except ApiException as error:
                    if error.status == 409:
                        _jitter(attempt)
                        continue
                    raise
                break
            else:
                raise LedgerContention(
                    f"ConfigMap {LEDGER_CONFIGMAP} kept changing for {_CAS_ATTEMPTS} attempts"
                )
        except Exception as error:
            for call in batch:
                call.fail(error)
            return
        for call in batch:
            call.done = True

    def _ledger_config_map(self) -> Any:
        namespace = self.settings.namespace
        while True:
            try:
                return self.core.read_namespaced_config_map(LEDGER_CONFIGMAP, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": LEDGER_CONFIGMAP,
                    "namespace": namespace,
                    "labels": {
                        "app.kubernetes.io/name": "keepvip",
                        "app.kubernetes.io/managed-by": FIELD_MANAGER,
                    },
                    "annotations": {"keepvip.io/ledger": "VirtualIP uid -> (multicastGroup, vrid)"},
                },
                "data": {},
            }
            try:
                return self.core.create_namespaced_config_map(namespace, body)
            except ApiException as error:
                if error.status != 409:
                    raise

    # --- VirtualIPs -----------------------------------------------------------------

    def list_virtualips(self, *, cached: bool = False, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every VirtualIP: as stored now, or (``cached``) from the API server's watch cache.

        ``cached`` is ``resourceVersion=0``: served from the API server's memory instead of
        a quorum read of etcd, at most a moment behind it. The admission webhook asks that
        way: a create it reviews is not in etcd either way until admitted, so a fresher
        list would not make two simultaneous creates see each other. ``timeout`` (seconds,
        connect and each read): the webhook's listing is shared by every review waiting for
        it, so one that hangs must fail rather than hold them all.
        """
        options: dict[str, Any] = {"resource_version": "0"} if cached else {}
        if timeout is not None:
            options["_request_timeout"] = timeout
        listing = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **options)
        return list(listing.get("items", []))

    def list_virtualip_uids(self) -> set[str]:
        """The uids of every VirtualIP that exists now."""
        listing = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        return {item["metadata"]["uid"] for item in listing.get("items", [])}

    def patch_virtualip_status(self, name: str, fields: Mapping[str, Any]) -> None:
        """Merge-patch the operator's fields of status (never ``nodes``: the speakers own it)."""
        self.custom.patch_cluster_custom_object_status(
            GROUP, VERSION, PLURAL, name, {"status": dict(fields)}, _content_type=_MERGE_PATCH
        )

    def post_event(self, ref: ObjectRef, event: EventSpec) -> None:
        """An Event about a VirtualIP, shown by ``kubectl describe vip``; failures are logged only."""
        involved = {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "name": ref.name, "uid": ref.uid}
        body = event_body(EVENTS_NAMESPACE, involved, event.type, event.reason, event.message)
        try:
            self.core.create_namespaced_event(EVENTS_NAMESPACE, body)
        except ApiException as error:
            log.warning("could not post event %s on %s: %s", event.reason, ref.name, error.reason)

    # --- the speaker DaemonSet ---------------------------------------------------------

    def find_owner(self) -> Owner | None:
        """The operator's Deployment, when configured and present."""
        name = self.settings.deployment_name
        if not name:
            return None
        try:
            deployment = self.apps.read_namespaced_deployment(name, self.settings.namespace)
        except ApiException as error:
            if error.status in (403, 404):  # absent, or the role lacks `get deployments`
                log.warning(
                    "deployment %s/%s unreadable (%s): the speaker DaemonSet gets no owner",
                    self.settings.namespace,
                    name,
                    error.status,
                )
                return None
            raise
        return Owner("apps/v1", "Deployment", name, deployment.metadata.uid)

    def apply_daemonset(self, body: Mapping[str, Any]) -> bool:
        """Server-side apply of the speaker DaemonSet (creates it when absent); False: not needed.

        The maintenance loop calls this every resync to repair drift. An apply that changes
        nothing is still a write request to the API server (issue 15: the one write a minute
        left in a steady cluster), so it is skipped when the body is the one last applied and
        the DaemonSet is still that object at that generation (a read, not a write): a spec
        edited by someone else bumps the generation, a deleted and re-created one has a new
        uid, and either is applied again.
        """
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        wanted = json.dumps(body, sort_keys=True)
        applied = self._daemonset_applied
        if applied is not None and applied[0] == wanted:
            try:
                current = self.apps.read_namespaced_daemon_set(name, namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
            else:
                if (current.metadata.uid, current.metadata.generation) == applied[1:]:
                    return False
        result = self.apps.patch_namespaced_daemon_set(
            name, namespace, dict(body), field_manager=FIELD_MANAGER, force=True, _content_type=_APPLY_PATCH
        )
        self._daemonset_applied = (wanted, result.metadata.uid, result.metadata.generation)
        return True

    # --- Services and Secrets ----------------------------------------------------------

    def update_service_ingress(
        self,
        namespace: str,
        name: str,
        change: Callable[[Sequence[Mapping[str, Any]]], list[dict[str, Any]]],
        opt_in: str | None = None,
    ) -> bool:
        """Rewrite a Service's ``status.loadBalancer.ingress``; False when it does not exist.

        ``opt_in``: the VirtualIP's name, which the Service must carry in its
        ``keepvip.io/virtualip`` annotation (else :class:`NotOptedIn`, nothing written).
        """
        for attempt in range(_CAS_ATTEMPTS):
            try:
                found = self.core.read_namespaced_service(name, namespace)
                service = self.api.sanitize_for_serialization(found)
            except ApiException as error:
                if error.status == 404:
                    return False
                raise
            if opt_in is not None:
                check_opt_in(service, opt_in)
            current = service.get("status", {}).get("loadBalancer", {}).get("ingress") or []
            wanted = change(current)
            if wanted == current:
                return True
            patch = {
                "metadata": {"resourceVersion": service["metadata"]["resourceVersion"]},
                "status": {"loadBalancer": {"ingress": wanted}},
            }
            try:
                self.core.patch_namespaced_service_status(name, namespace, patch, _content_type=_MERGE_PATCH)
            except ApiException as error:
                if error.status == 409:
                    _jitter(attempt)
                    continue
                if error.status == 404:
                    return False
                raise
            return True
        raise LedgerContention(f"Service {namespace}/{name} kept changing")

    def secret_exists(self, namespace: str, name: str) -> bool:
        """Whether the Secret exists; only its metadata is fetched, never its data."""
        return self._exists(
            lambda: self.core.read_namespaced_secret(
                name, namespace, _preload_content=False, _headers={"Accept": _PARTIAL_METADATA}
            )
        )

    def service_exists(self, namespace: str, name: str) -> bool:
        """Whether the Service exists."""
        return self._exists(lambda: self.core.read_namespaced_service(name, namespace))

    @staticmethod
    def _exists(read: Callable[[], object]) -> bool:
        try:
            read()
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True


class LoadBalancerApi:
    """The API calls of the LoadBalancer controller (keepvip.operator.lb.controller).

    Reads are fresh lists (not watch caches): a pass decides only from a complete,
    current picture. Records are created only if absent, so the API server is the lock.
    """

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.core = kube.core
        self.custom = kube.custom

    def _plain(self, value: Any) -> Any:
        return self.kube.api.sanitize_for_serialization(value)

    def server_version(self) -> tuple[str, str]:
        """(major, minor) of the API server, as /version reports them."""
        info = kubernetes.client.VersionApi(self.kube.api).get_code()
        return str(info.major), str(info.minor)

    def list_services(self) -> list[dict[str, Any]]:
        """Every Service (LoadBalancer or not: a Service that stopped being one is cleared)."""
        return list(self._plain(self.core.list_service_for_all_namespaces()).get("items") or [])

    def list_namespaces(self) -> dict[str, dict[str, str]]:
        """namespace → its labels (for pools' namespaceSelector)."""
        items = self._plain(self.core.list_namespace()).get("items") or []
        return {i["metadata"]["name"]: dict(i["metadata"].get("labels") or {}) for i in items}

    def list_ready_endpoints(self) -> dict[str, bool]:
        """namespace/name → whether the Service's Endpoints have a ready address."""
        items = self._plain(self.core.list_endpoints_for_all_namespaces()).get("items") or []
        return {
            f"{i['metadata']['namespace']}/{i['metadata']['name']}": any(
                subset.get("addresses") for subset in i.get("subsets") or ()
            )
            for i in items
        }

    def list_pools(self) -> list[dict[str, Any]]:
        """Every VirtualIPPool."""
        return list(self.custom.list_cluster_custom_object(GROUP, VERSION, POOL_PLURAL).get("items") or [])

    def create_virtualip(self, body: Mapping[str, Any]) -> bool:
        """Create a VirtualIP only if absent; False when the name is taken (409 Conflict)."""
        try:
            self.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, dict(body))
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_virtualip(self, name: str) -> None:
        """Delete a VirtualIP (its finalizer lets the master withdraw the address first)."""
        try:
            self.custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        except ApiException as error:
            if error.status != 404:
                raise

    def update_record(
        self, name: str, annotations: Mapping[str, str], spec: Mapping[str, Any] | None
    ) -> None:
        """Replace a record's spec (if given) and set its annotations (JSON patch: exact)."""
        ops: list[dict[str, Any]] = [
            {
                "op": "add",
                "path": f"/metadata/annotations/{key.replace('~', '~0').replace('/', '~1')}",
                "value": v,
            }
            for key, v in annotations.items()
        ]
        if spec is not None:
            ops.append({"op": "replace", "path": "/spec", "value": dict(spec)})
        self.custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, ops, _content_type=_JSON_PATCH)

    def patch_service_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> bool:
        """Merge-patch a Service's status (lists are replaced whole); False when it is gone."""
        try:
            self.core.patch_namespaced_service_status(
                name, namespace, {"status": dict(status)}, _content_type=_MERGE_PATCH
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def patch_pool_status(self, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch a pool's status (a pool deleted since the listing is skipped)."""
        try:
            self.custom.patch_cluster_custom_object_status(
                GROUP, VERSION, POOL_PLURAL, name, {"status": dict(status)}, _content_type=_MERGE_PATCH
            )
        except ApiException as error:
            if error.status != 404:
                raise

    def post_service_event(  # noqa: PLR0917 - the fields of one Event
        self, namespace: str, name: str, uid: str, kind: str, reason: str, message: str
    ) -> None:
        """An Event on a Service (``kubectl describe svc``); failures are logged only."""
        involved = {"apiVersion": "v1", "kind": "Service", "name": name, "namespace": namespace, "uid": uid}
        body = event_body(namespace, involved, kind, reason, message)
        try:
            self.core.create_namespaced_event(namespace, body)
        except ApiException as error:
            log.warning("could not post event %s on Service %s/%s: %s", reason, namespace, name, error.reason)
