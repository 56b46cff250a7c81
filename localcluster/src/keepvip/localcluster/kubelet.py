"""A process kubelet: runs the pods bound to the harness's nodes as local processes.

Why not a real kubelet: there is no container runtime here, and keepvip does not need
one. What keepvip's tests need from a node is what a real kubelet gives a pod: its
command running on the node's network with its environment, its volumes and its own
ServiceAccount credentials (so RBAC is exactly what the chart grants), a truthful pod
status, restarts per ``restartPolicy``, and a graceful deletion (preStop hook, SIGTERM,
grace period, SIGKILL). This module provides exactly that, and no images: a container
runs its ``command`` (or the entrypoint registered for its image) on this machine.

One watch thread follows every pod in the cluster; each pod bound to one of this
kubelet's nodes gets a :class:`PodWorker` thread that owns its containers. Both
survive the API server going away: processes keep running ("fail static"), status
reports and the watch resume when it returns.

Pod networking: every pod runs in its node's network namespace and reports the node's
address as ``podIP`` and ``hostIP``, whether or not it asks for ``hostNetwork`` (there is
no CNI). Each container gets a private mount namespace and UTS namespace (hostname =
node name for hostNetwork pods, else the pod name).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

import keepvip
from keepvip.localcluster.containers import ContainerRunner, now_rfc3339
from keepvip.localcluster.podspec import (
    JSON,
    SERVICE_ACCOUNT_MOUNT,
    PodContext,
    PodSpecError,
    decode_config_map_data,
    decode_secret_data,
    launcher_script,
    materialise_volumes,
    plan_container,
)

# Where the containers' programs live: the source root of every part of keepvip (the
# portions of the namespace package, installed editable) and the interpreter's prefix
# (the virtualenv). Pod volumes must not hide them.
PROGRAM_DIRS: tuple[Path, ...] = tuple(
    dict.fromkeys([*(Path(part).resolve().parent for part in keepvip.__path__), Path(sys.prefix).resolve()])
)
log = logging.getLogger(__name__)

_TICK = 0.2


@dataclass(frozen=True)
class NodeHandle:
    """What the kubelet knows about one of its nodes."""

    name: str
    netns: str
    ip: str


class _Unavailable(Exception):
    """The API server could not be asked (down, restarting): try again later."""


def _get_json(fn: Callable[..., Any], *args: Any) -> JSON | None:
    try:
        resp = fn(*args, _preload_content=False, _request_timeout=5)
    except ApiException as e:
        if e.status == 404:
            return None
        raise _Unavailable(str(e)) from e
    except Exception as e:  # urllib3 connection errors while the API server is down
        raise _Unavailable(str(e)) from e
    data: JSON = json.loads(resp.data)
    return data


class PodWorker(threading.Thread):
    """Owns the containers of one pod from first sight until the pod object is removed."""

    def __init__(self, kubelet: ProcessKubelet, pod: JSON, node: NodeHandle) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod {meta['namespace']}/{meta['name']}", daemon=True)
        self.kubelet = kubelet
        self.node = node
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.pod = pod
        self.dir = kubelet.pods_dir / f"{self.namespace}_{self.pod_name}_{self.uid[:8]}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._wake = threading.Event()
        self._gone = False
        self._halt = False
        self._halt_grace = 1.0
        self.init_runners: list[ContainerRunner] = []
        self.runners: list[ContainerRunner] = []
        self._prepared = False
        self._init_index = 0
        self._start_time = now_rfc3339()
        self._last_reported: JSON | None = None
        self._conditions: dict[str, JSON] = {}
        self._config_error: tuple[str, str] | None = None

    # -- inputs from the watch thread ------------------------------------------
    def update(self, pod: JSON) -> None:
        """A newer version of the pod object."""
        self.pod = pod
        self._wake.set()

    def object_gone(self) -> None:
        """The pod object disappeared (force-deleted): stop the containers, report nothing."""
        self._gone = True
        self._wake.set()

    def halt(self, grace: float) -> None:
        """Stop the containers now without touching the API (harness shutdown, node removal)."""
        self._halt_grace = grace
        self._halt = True
        self._wake.set()

    # -- main loop --------------------------------------------------------------
    @property
    def restart_policy(self) -> str:
        """``Always`` (default), ``OnFailure`` or ``Never``."""
        return str(self.pod.get("spec", {}).get("restartPolicy") or "Always")

    def run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("pod worker %s/%s crashed; stopping its containers",
                          self.namespace, self.pod_name)
            self._stop_all(1.0, hooks=False)
        finally:
            self.kubelet._worker_done(self)

    def _loop(self) -> None:
        while True:
            if self._halt:
                self._stop_all(self._halt_grace, hooks=False)
                return
            if self._gone:
                self._stop_all(self._spec_grace(), hooks=True)
                return
            if self.pod["metadata"].get("deletionTimestamp"):
                grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
                self._stop_all(self._spec_grace() if grace is None else float(grace), hooks=True)
                self._delete_object()
                return
            try:
                if not self._prepared:
                    self._prepare()
                else:
                    self._tick()
                self._report()
            except _Unavailable:
                pass  # API server away: processes keep running; retry next tick
            self._wake.wait(_TICK)
            self._wake.clear()

    def _spec_grace(self) -> float:
        return float(self.pod.get("spec", {}).get("terminationGracePeriodSeconds", 30))

    # -- preparing ----------------------------------------------------------------
    def _prepare(self) -> None:
        ctx = PodContext(
            pod=self.pod, node_name=self.node.name, host_ip=self.node.ip, pod_ip=self.node.ip,
            lookup_secret=self.kubelet.read_secret, lookup_config_map=self.kubelet.read_config_map,
            base_env=self.kubelet.base_env(),
        )
        spec = self.pod.get("spec", {})
        try:
            paths = materialise_volumes(ctx, self.dir / "volumes")
            hostname = self.node.name if spec.get("hostNetwork") else self.pod_name
            self.init_runners = [self._runner(ctx, c, paths, hostname)
                                 for c in spec.get("initContainers", []) or []]
            self.runners = [self._runner(ctx, c, paths, hostname)
                            for c in spec.get("containers", [])]
        except PodSpecError as e:
            self._config_error = (e.reason, str(e))
            log.warning("pod %s/%s: %s", self.namespace, self.pod_name, e)
            self._prepared = False
            self._report_config_error()
            time.sleep(1.0)
            return
        self._config_error = None
        self._prepared = True
        self.kubelet._record_pod_dir(self.namespace, self.pod_name, self.dir)
        self._tick()

    def _runner(self, ctx: PodContext, container: JSON, paths: Mapping[str, Path],
                hostname: str) -> ContainerRunner:
        plan = plan_container(ctx, container, paths, self.kubelet.entrypoints)
        sa_dir = next((m.source for m in plan.mounts if m.target == SERVICE_ACCOUNT_MOUNT), None)
        if sa_dir is not None:
            plan.env.setdefault("KEEPVIP_SERVICEACCOUNT_DIR", str(sa_dir))
        plan.env.setdefault("HOSTNAME", hostname)
        launcher = self.dir / f"launch-{plan.name}.sh"
        launcher.write_text(launcher_script(hostname, plan.mounts, plan.working_dir, PROGRAM_DIRS))
        return ContainerRunner(plan, self.node.netns, launcher,
                               self.dir / f"{plan.name}.log", self.dir / f"{plan.name}.hooks.log")

    # -- running ------------------------------------------------------------------
    def _should_restart(self, runner: ContainerRunner) -> bool:
        policy = self.restart_policy
        return policy == "Always" or (policy == "OnFailure" and runner.exit_code != 0)

    def _tick(self) -> None:
        now = time.monotonic()
        while self._init_index < len(self.init_runners):
            r = self.init_runners[self._init_index]
            if "waiting" in r.state and now >= r.next_start_at:
                r.start()
                return
            if r.check_exit() or "terminated" in r.state:
                if r.exit_code == 0:
                    self._init_index += 1
                    continue
                if self.restart_policy != "Never":
                    r.schedule_restart()
            return
        for r in self.runners:
            if "waiting" in r.state and now >= r.next_start_at and (
                    r.restart_count == 0 or r.state["waiting"].get("reason") == "CrashLoopBackOff"):
                r.start()
            elif r.check_exit():
                if self._should_restart(r):
                    r.schedule_restart()
            elif not r.run_probes():
                log.info("pod %s/%s container %s failed its liveness probe: restarting",
                         self.namespace, self.pod_name, r.plan.name)
                r.stop(self._spec_grace())
                r.schedule_restart()

    def _stop_all(self, grace: float, hooks: bool) -> None:
        deadline = time.monotonic() + grace

        def stop_one(r: ContainerRunner) -> None:
            if hooks and r.running():
                r.run_pre_stop(max(deadline - time.monotonic(), 0.1))
            r.stop(max(deadline - time.monotonic(), 0.5 if hooks else 0.0))

        threads = [threading.Thread(target=stop_one, args=(r,), daemon=True)
                   for r in self.init_runners + self.runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _delete_object(self) -> None:
        body = client.V1DeleteOptions(grace_period_seconds=0,
                                      preconditions=client.V1Preconditions(uid=self.uid))
        while not self._halt:
            try:
                self.kubelet.core.delete_namespaced_pod(self.pod_name, self.namespace, body=body,
                                                        _request_timeout=5)
                return
            except ApiException as e:
                if e.status in (404, 409):
                    return
            except Exception:  # noqa: S110 — API server away: retry until it returns
                pass
            time.sleep(0.5)

    # -- status ---------------------------------------------------------------------
    def _phase(self) -> str:
        if not self._prepared or self._init_index < len(self.init_runners):
            if self.init_runners and self.restart_policy == "Never" and any(
                    r.exit_code not in (None, 0) for r in self.init_runners):
                return "Failed"
            return "Pending"
        if any("running" in r.state or "CrashLoopBackOff" in str(r.state) or
               "ContainerCreating" in str(r.state) for r in self.runners):
            return "Running" if any(r.running() or r.restart_count for r in self.runners) \
                else "Pending"
        if all(r.exit_code == 0 for r in self.runners):
            return "Succeeded"
        return "Failed"

    def _condition(self, kind: str, ok: bool) -> JSON:
        status = "True" if ok else "False"
        prev = self._conditions.get(kind)
        if prev is None or prev["status"] != status:
            prev = {"type": kind, "status": status, "lastProbeTime": None,
                    "lastTransitionTime": now_rfc3339()}
            self._conditions[kind] = prev
        return prev

    def _status(self) -> JSON:
        ready = self._prepared and bool(self.runners) and all(r.ready() for r in self.runners)
        init_done = self._prepared and self._init_index >= len(self.init_runners)
        status: JSON = {
            "phase": self._phase(),
            "hostIP": self.node.ip, "podIP": self.node.ip, "podIPs": [{"ip": self.node.ip}],
            "startTime": self._start_time,
            "conditions": [self._condition("Initialized", init_done),
                           self._condition("ContainersReady", ready),
                           self._condition("Ready", ready),
                           self._condition("PodScheduled", True)],
            "containerStatuses": [r.status() for r in self.runners],
        }
        if self.init_runners:
            status["initContainerStatuses"] = [r.status() for r in self.init_runners]
        return status

    def _report_config_error(self) -> None:
        reason, message = self._config_error or ("", "")
        spec = self.pod.get("spec", {})
        self._send({
            "phase": "Pending", "hostIP": self.node.ip, "podIP": self.node.ip,
            "podIPs": [{"ip": self.node.ip}], "startTime": self._start_time,
            "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "imageID": "",
                                   "ready": False, "restartCount": 0,
                                   "state": {"waiting": {"reason": reason, "message": message}}}
                                  for c in spec.get("containers", [])],
        })

    def _report(self) -> None:
        if self._prepared:
            self._send(self._status())

    def _send(self, status: JSON) -> None:
        if status == self._last_reported:
            return
        try:
            self.kubelet.core.patch_namespaced_pod_status(
                self.pod_name, self.namespace, {"status": status}, _request_timeout=5)
        except ApiException as e:
            if e.status == 404:
                return
            raise _Unavailable(str(e)) from e
        except Exception as e:
            raise _Unavailable(str(e)) from e
        self._last_reported = status


class ProcessKubelet:
    """Runs every pod bound to its nodes; see the module docstring."""

    def __init__(self, api: client.ApiClient, pods_dir: Path, api_host: str, api_port: int) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.pods_dir = pods_dir
        self.api_host = api_host
        self.api_port = api_port
        self.entrypoints: dict[str, list[str]] = {}
        self._nodes: dict[str, NodeHandle] = {}
        self._workers: dict[str, PodWorker] = {}
        self._pod_dirs: dict[tuple[str, str], Path] = {}
        self._lock = threading.RLock()
        self._stopping = False
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._watch_loop, name="kubelet watch", daemon=True)

    # -- nodes ------------------------------------------------------------------
    def add_node(self, node: NodeHandle) -> None:
        """Start running pods bound to ``node``."""
        with self._lock:
            self._nodes[node.name] = node

    def remove_node(self, name: str, grace: float = 1.0) -> None:
        """Stop every pod of node ``name`` (no hooks) and forget the node."""
        with self._lock:
            self._nodes.pop(name, None)
            workers = [w for w in self._workers.values() if w.node.name == name]
        for w in workers:
            w.halt(grace)
        for w in workers:
            w.join(timeout=grace + 10)

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> None:
        """Start following pods."""
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def stop(self, grace: float = 1.0) -> None:
        """Stop every container (SIGTERM, ``grace``, SIGKILL) without touching the API."""
        with self._lock:
            self._stopping = True
            workers = list(self._workers.values())
        if self._watch is not None:
            self._watch.stop()
        for w in workers:
            w.halt(grace)
        for w in workers:
            w.join(timeout=grace + 10)

    def _worker_done(self, worker: PodWorker) -> None:
        with self._lock:
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]

    # -- what workers need ---------------------------------------------------------
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's data, ``None`` when it does not exist."""
        obj = _get_json(self.core.read_namespaced_secret, name, namespace)
        return decode_secret_data(obj) if obj is not None else None

    def read_config_map(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A ConfigMap's data, ``None`` when it does not exist."""
        obj = _get_json(self.core.read_namespaced_config_map, name, namespace)
        return decode_config_map_data(obj) if obj is not None else None

    def base_env(self) -> dict[str, str]:
        """What every container's environment starts with.

        ``KUBERNETES_SERVICE_HOST``/``PORT`` name the API server's LAN address rather
        than the ``kubernetes`` Service's ClusterIP. kube-proxy in the node namespace would
        carry the ClusterIP too, but the direct address keeps the pods' API path
        independent of kube-proxy (tests that stop the API server or a node's kube-proxy
        change one thing at a time).
        ``PATH`` leads with this interpreter's directory so the project's virtualenv
        commands (``keepvip``, ``kopf``) are found.
        """
        path = os.pathsep.join([os.path.dirname(sys.executable),
                                os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")])
        port = str(self.api_port)
        return {
            "PATH": path, "HOME": "/root", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
            "KUBERNETES_SERVICE_HOST": self.api_host, "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{self.api_host}:{port}",
        }

    def _record_pod_dir(self, namespace: str, name: str, directory: Path) -> None:
        with self._lock:
            self._pod_dirs[(namespace, name)] = directory

    # -- logs ----------------------------------------------------------------------
    def log_path(self, namespace: str, pod: str, container: str) -> Path:
        """The log file of a container of the latest pod by that name."""
        with self._lock:
            directory = self._pod_dirs.get((namespace, pod))
        if directory is None:
            raise KeyError(f"no pod {namespace}/{pod} has run on this kubelet")
        return directory / f"{container}.log"

    def hook_log_path(self, namespace: str, pod: str, container: str) -> Path:
        """Where the output of a container's exec hooks and probes goes."""
        return self.log_path(namespace, pod, container).with_suffix(".hooks.log")

    def container_pid(self, namespace: str, pod: str, container: str) -> int | None:
        """The pid of a running container process (``None`` when it is not running)."""
        with self._lock:
            for w in self._workers.values():
                if (w.namespace, w.pod_name) == (namespace, pod):
                    for r in w.runners + w.init_runners:
                        if r.plan.name == container:
                            return r.pid
        return None

    # -- watching -------------------------------------------------------------------
    def _dispatch(self, pod: JSON) -> None:
        node_name = pod.get("spec", {}).get("nodeName")
        uid = pod["metadata"]["uid"]
        with self._lock:
            if self._stopping:
                return
            worker = self._workers.get(uid)
            if worker is not None:
                worker.update(pod)
                return
            node = self._nodes.get(node_name or "")
            finished = pod.get("status", {}).get("phase") in ("Succeeded", "Failed")
            if node is None or finished:
                return
            worker = PodWorker(self, pod, node)
            self._workers[uid] = worker
        worker.start()

    def _gone(self, uid: str) -> None:
        with self._lock:
            worker = self._workers.get(uid)
        if worker is not None:
            worker.object_gone()

    def _watch_loop(self) -> None:
        while not self._stopping:
            try:
                self._list_and_watch()
            except Exception as e:  # API server away, watch expired: relist
                log.debug("kubelet watch restarts: %s", e)
            if not self._stopping:
                time.sleep(0.5)

    def _list_and_watch(self) -> None:
        resp: Any = self.core.list_pod_for_all_namespaces(_preload_content=False,
                                                           _request_timeout=10)
        listing = json.loads(resp.data)
        seen = set()
        for pod in listing.get("items", []):
            seen.add(pod["metadata"]["uid"])
            self._dispatch(pod)
        with self._lock:
            vanished = [uid for uid in self._workers if uid not in seen]
        for uid in vanished:
            self._gone(uid)
        self._watch = watch.Watch()
        events = self._watch.stream(
            self.core.list_pod_for_all_namespaces,
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=60, _request_timeout=90)
        for event in events:
            if self._stopping:
                return
            kind = event["type"]
            raw = event.get("raw_object") or {}
            if kind == "ERROR":
                return
            if kind == "DELETED":
                self._gone(raw["metadata"]["uid"])
            else:
                self._dispatch(raw)


def remove_tree(path: Path) -> None:
    """Remove a directory tree, ignoring what vanished meanwhile."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
