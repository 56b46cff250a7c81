"""A DaemonSet runs one pod per node, inside that node's network namespace.

The pods run with ``hostNetwork`` as keepvip's speakers do; each one's command prints
what it sees (its addresses, its hostname, the downward-API variables), so the test
checks that the command really ran on its node's LAN, not just that a pod object says
Running. A rolling update (``maxUnavailable: 1``) then replaces the pods one node at a
time and runs each old pod's preStop hook, which is how speakers hand over a VIP.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from keepvip.localcluster import LocalCluster, Objects, wait_until

pytestmark = pytest.mark.cluster

REPORT = (
    'echo "node=$NODE_NAME pod=$POD_NAME podIP=$POD_IP hostIP=$HOST_IP"; '
    'echo "hostname=$(hostname)"; ip -o -4 addr show dev eth0; '
)


def _daemonset(command: str, version: str = "1", pre_stop: list[str] | None = None,
               readiness: list[str] | None = None) -> dict[str, Any]:
    field = [("NODE_NAME", "spec.nodeName"), ("POD_NAME", "metadata.name"),
             ("POD_IP", "status.podIP"), ("HOST_IP", "status.hostIP")]
    container: dict[str, Any] = {
        "name": "agent", "image": "example.invalid/agent:1",
        "command": ["/bin/sh", "-c", command],
        "env": [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": p}}} for n, p in field]
        + [{"name": "VERSION", "value": version}],
    }
    if readiness:
        container["readinessProbe"] = {"exec": {"command": readiness}, "periodSeconds": 1}
    if pre_stop:
        container["lifecycle"] = {"preStop": {"exec": {"command": pre_stop}}}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"hostNetwork": True, "terminationGracePeriodSeconds": 5,
                         "containers": [container]},
            },
        },
    }


def _running_pods(objects: Objects, namespace: str) -> list[dict[str, Any]]:
    pods = objects.list("v1", "Pod", namespace, label_selector="app=agent")
    return [p for p in pods if p.get("status", {}).get("phase") == "Running"
            and "deletionTimestamp" not in p["metadata"]
            and all(c["ready"] for c in p["status"].get("containerStatuses", []))]


def _ready_on_every_node(objects: Objects, namespace: str, cluster: LocalCluster,
                         version: str = "1") -> list[dict[str, Any]] | None:
    ds = objects.get("apps/v1", "DaemonSet", "agent", namespace) or {}
    status = ds.get("status", {})
    pods = [p for p in _running_pods(objects, namespace)
            if {"name": "VERSION", "value": version} in p["spec"]["containers"][0]["env"]]
    done = (status.get("numberReady") == len(cluster.nodes)
            and status.get("updatedNumberScheduled") == len(cluster.nodes)
            and len(pods) == len(cluster.nodes))
    return pods if done else None


def test_daemonset_runs_one_pod_per_node_inside_each_nodes_namespace(
        cluster: LocalCluster, objects: Objects, namespace: str) -> None:
    objects.create(_daemonset(REPORT + "exec sleep 3600"), namespace)

    pods = wait_until(lambda: _ready_on_every_node(objects, namespace, cluster), timeout=30,
                      what="one ready agent pod per node")

    by_node = {p["spec"]["nodeName"]: p for p in pods}
    assert sorted(by_node) == sorted(cluster.nodes)
    for name, node in cluster.nodes.items():
        pod = by_node[name]
        node_ip = str(node.ipv4.ip)
        assert pod["status"]["podIP"] == node_ip
        assert pod["status"]["hostIP"] == node_ip
        pod_name: str = pod["metadata"]["name"]

        def output(pod_name: str = pod_name) -> str | None:
            # Read once REPORT's last line (``ip -o -4 addr``) is there, not at the first one.
            text = cluster.container_log(namespace, pod_name, "agent")
            return text if " inet " in text else None

        log = wait_until(output, what="agent output")
        assert f"node={name} pod={pod['metadata']['name']} podIP={node_ip} hostIP={node_ip}" in log
        assert f"hostname={name}" in log
        assert f"inet {node.ipv4}" in log  # the address of *this* node's eth0


def _events(path: Path) -> list[tuple[str, str, str]]:
    """(event, node, pod) lines the agents and their preStop hooks appended."""
    if not path.exists():
        return []
    return [tuple(line.split()[:3]) for line in path.read_text().splitlines()  # type: ignore[misc]
            if line.strip()]


def test_rolling_update_replaces_pods_one_node_at_a_time_running_pre_stop(
        cluster: LocalCluster, objects: Objects, namespace: str, tmp_path: Path) -> None:
    events = tmp_path / "events"
    # Ready only once the "start" line is written, as a real agent is ready only once
    # it has done its start-up work.
    start = (f'echo "start $NODE_NAME $POD_NAME v$VERSION" >> {events}; '
             f'touch {tmp_path}/ready-$POD_NAME; exec sleep 3600')
    pre_stop = ["/bin/sh", "-c", f'echo "prestop $NODE_NAME $POD_NAME v$VERSION" >> {events}']
    ready = ["/bin/sh", "-c", f'test -f {tmp_path}/ready-$POD_NAME']
    objects.create(_daemonset(start, "1", pre_stop, ready), namespace)
    first = wait_until(lambda: _ready_on_every_node(objects, namespace, cluster), timeout=30,
                       what="version 1 on every node")
    old_pods = {p["metadata"]["name"] for p in first}

    objects.patch("apps/v1", "DaemonSet", "agent",
                  {"spec": {"template": _daemonset(start, "2", pre_stop, ready)["spec"]["template"]}},
                  namespace)
    began = time.monotonic()
    wait_until(lambda: _ready_on_every_node(objects, namespace, cluster, "2"), timeout=60,
               what="version 2 on every node")
    took = time.monotonic() - began

    update = [e for e in _events(events) if e[0] == "prestop" or e[2] not in old_pods]
    # One node at a time: old pod's preStop on a node, then the new pod's start on that
    # node, before anything happens on the next node.
    assert len(update) == 2 * len(cluster.nodes), update
    for stop, begin in zip(update[::2], update[1::2], strict=True):
        assert stop[0] == "prestop", update
        assert stop[2] in old_pods, update
        assert begin[0] == "start", update
        assert begin[1] == stop[1], update
    assert sorted(e[1] for e in update[::2]) == sorted(cluster.nodes)
    assert took < 45
