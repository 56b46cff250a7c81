"""Node objects for the harness's network-namespace nodes.

Without a kubelet nobody registers or heartbeats a Node, so the harness does it once:
it creates the Node with the usual well-known labels, then writes its status with the
node's LAN addresses, a capacity the scheduler can fit pods into and ``Ready=True``.
The controller manager runs with a 24 h node-monitor grace period, so that status holds
until a test changes it (:func:`set_node_ready`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from keepvip.localcluster.binaries import K8S_VERSION
from keepvip.localcluster.containers import now_rfc3339

CAPACITY = {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "20Gi"}


def _ready_condition(ready: bool, reason: str) -> dict[str, str]:
    now = now_rfc3339()
    return {"type": "Ready", "status": "True" if ready else "False", "reason": reason,
            "message": f"keepvip local cluster: {reason}",
            "lastHeartbeatTime": now, "lastTransitionTime": now}


def register_node(core: client.CoreV1Api, name: str, addresses: Sequence[str],
                  labels: Mapping[str, str]) -> None:
    """Create (or replace the status of) Node ``name`` with ``addresses`` as InternalIPs."""
    all_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", **labels}
    body = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": all_labels}}
    try:
        core.create_node(body)  # type: ignore[arg-type]  # a manifest, as the API takes it
    except ApiException as e:
        if e.status != 409:
            raise
        core.patch_node(name, {"metadata": {"labels": all_labels}})
    status = {
        "addresses": [*({"type": "InternalIP", "address": a} for a in addresses),
                      {"type": "Hostname", "address": name}],
        "capacity": CAPACITY, "allocatable": CAPACITY,
        "conditions": [_ready_condition(True, "KeepvipLocalNode")],
        "nodeInfo": {"kubeletVersion": K8S_VERSION, "kubeProxyVersion": K8S_VERSION,
                     "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "keepvip-process://0", "osImage": "netns",
                     "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": ""},
    }
    core.patch_node_status(name, {"status": status})
    # The not-ready taint that admission put on the new Node would be removed by the
    # node-lifecycle controller within seconds of Ready=True; the Node is ready now, so
    # remove it at once (the controller puts it back if Ready turns False).
    taints = _taints(core, name)
    keep = [{"key": t.key, "value": t.value, "effect": t.effect} for t in taints
            if not t.key.startswith("node.kubernetes.io/not-ready")]
    if len(keep) != len(taints):
        core.patch_node(name, {"spec": {"taints": keep or None}})


def _taints(core: client.CoreV1Api, name: str) -> list[client.V1Taint]:
    spec = core.read_node(name).spec
    return list(spec.taints or []) if spec is not None else []


def set_node_ready(core: client.CoreV1Api, name: str, ready: bool) -> None:
    """Set the Node's Ready condition (the node-lifecycle controller taints it if False)."""
    reason = "KeepvipLocalNode" if ready else "KeepvipTestNotReady"
    core.patch_node_status(name, {"status": {"conditions": [_ready_condition(ready, reason)]}})


def wait_schedulable(core: client.CoreV1Api, names: Sequence[str], timeout: float = 30) -> None:
    """Wait until the node-lifecycle controller has removed the ``not-ready`` taints."""
    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        for name in list(pending):
            taints = _taints(core, name)
            if not any(t.key.startswith("node.kubernetes.io/not-ready") for t in taints):
                pending.discard(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nodes still tainted not-ready after {timeout} s: {sorted(pending)}")
        time.sleep(0.1)


def delete_node(core: client.CoreV1Api, name: str) -> None:
    """Delete the Node object and force-delete the pods still bound to it."""
    resp: Any = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={name}",
                                                 _preload_content=False)
    for pod in json.loads(resp.data)["items"]:
        try:
            core.delete_namespaced_pod(pod["metadata"]["name"], pod["metadata"]["namespace"],
                                       grace_period_seconds=0)
        except ApiException as e:
            if e.status != 404:
                raise
    try:
        core.delete_node(name)
    except ApiException as e:
        if e.status != 404:
            raise
