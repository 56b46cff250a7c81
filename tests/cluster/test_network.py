"""The LAN: nodes reach the API server like real nodes do, and faults are real.

Cutting a node off the LAN must make the API server (and the gateway) unreachable from
it while its link stays up, and reconnecting must bring both back; stopping the API
server must leave running pods alone. keepvip's failure tests are built on these.
"""

from __future__ import annotations

import ipaddress

import pytest

from keepvip.localcluster import LocalCluster, Objects, wait_until

pytestmark = pytest.mark.cluster


def _readyz_from(cluster: LocalCluster, node: str) -> str:
    result = cluster.exec_in_node(node, [
        "curl", "-s", "--max-time", "2", "--cacert", str(cluster.pki.ca_cert),
        f"{cluster.server_url}/readyz"])
    return result.stdout


def _pings(cluster: LocalCluster, node: str, address: str) -> bool:
    return cluster.exec_in_node(node, ["ping", "-c", "1", "-W", "1", address]).returncode == 0


def test_api_server_is_reachable_from_every_node_over_the_lan(cluster: LocalCluster) -> None:
    host = ipaddress.ip_address(cluster.server_url.split("//")[1].rsplit(":", 1)[0])
    for name in cluster.nodes:
        assert host in ipaddress.ip_network(cluster.nodes[name].ipv4.network)
        assert _readyz_from(cluster, name) == "ok"
        assert _pings(cluster, name, str(cluster.gateway_address))


def test_node_addresses_are_read_from_the_nodes_namespace(cluster: LocalCluster) -> None:
    node = cluster.nodes["node-b"]
    assert cluster.node_addresses("node-b") == [node.ipv4, node.ipv6]


def test_cutting_a_node_off_makes_api_server_and_gateway_unreachable_until_restored(
        cluster: LocalCluster) -> None:
    with cluster.node_disconnected("node-c"):
        assert _readyz_from(cluster, "node-c") == ""
        assert not _pings(cluster, "node-c", str(cluster.gateway_address))
        link = cluster.exec_in_node("node-c", ["ip", "-br", "link", "show", "eth0"]).stdout
        assert " UP " in link  # a broken switch, not a link down the node could see
        assert _readyz_from(cluster, "node-a") == "ok"  # the others are unaffected

    assert _readyz_from(cluster, "node-c") == "ok"
    assert _pings(cluster, "node-c", str(cluster.gateway_address))


def test_pods_keep_running_while_the_api_server_is_stopped(
        cluster: LocalCluster, objects: Objects, namespace: str) -> None:
    objects.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "steady"},
                    "spec": {"nodeName": "node-a", "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "main", "image": "x",
                                             "command": ["sleep", "3600"]}]}}, namespace)
    wait_until(lambda: (objects.get("v1", "Pod", "steady", namespace) or {})
               .get("status", {}).get("phase") == "Running", what="pod running")
    pid = cluster.kubelet.container_pid(namespace, "steady", "main")
    assert pid is not None

    with cluster.api_server_down():
        assert _readyz_from(cluster, "node-a") == ""
        assert cluster.kubelet.container_pid(namespace, "steady", "main") == pid

    assert _readyz_from(cluster, "node-a") == "ok"
    assert cluster.kubelet.container_pid(namespace, "steady", "main") == pid
    # The kubelet's watch came back: deleting the pod still stops its process.
    objects.delete("v1", "Pod", "steady", namespace)
    wait_until(lambda: objects.get("v1", "Pod", "steady", namespace) is None, timeout=30,
               what="pod deleted after the API server came back")
    assert cluster.kubelet.container_pid(namespace, "steady", "main") is None
