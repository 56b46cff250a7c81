"""End to end: a LoadBalancer Service from a pool, reached from the LAN through kube-proxy.

The whole path users run, with nothing standing in for any part of it: ``helm install``
of the chart (``loadBalancer.defaultClass=true``: v1.20 has no
``spec.loadBalancerClass``), a VirtualIPPool and a ``type: LoadBalancer`` Service applied
as ``kubectl apply`` would, a backend pod (a real process in its node's namespace, run by
the process kubelet), the operator allocating the address, the speakers electing a
holder over real VRRP, and a client on the LAN dialling ``EXTERNAL-IP:port``: the holder's
kube-proxy (iptables mode) translates the connection to the pod, usually on another
node. Then the holder fails, and the same address answers through the new holder.

The backends answer with ``<pod> <node> <source address they saw>``, so every answer says
which pod was reached and whether kube-proxy preserved the client's address.
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from keepvip.localcluster import LocalCluster, wait_until
from keepvip.localcluster.scenario import API_VERSION, KeepvipOnCluster, backend_pod
from tests.cluster.lb_chart import chart_for_loadbalancers
from tests.cluster.test_kube_proxy import client_get, node_ip

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def keepvip(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeepvipOnCluster]:
    yield from chart_for_loadbalancers(cluster, tmp_path_factory, "keepvip-lbe2e")


def apply_pool(cluster: LocalCluster, first: int, last: int, template: dict[str, Any]) -> str:
    name = f"e2e-{secrets.token_hex(3)}"
    cluster.objects.apply(
        {
            "apiVersion": API_VERSION,
            "kind": "VirtualIPPool",
            "metadata": {"name": name},
            "spec": {"addresses": [f"{cluster.vip(first)}-{cluster.vip(last)}"], "template": template},
        },
        field_manager="kubectl",
    )
    return name


def apply_service(cluster: LocalCluster, namespace: str, name: str, *, app: str, port: int,
                  target: int, **spec: Any) -> None:  # fmt: skip
    """A class-less ``type: LoadBalancer`` Service selecting the pods labelled ``app``."""
    cluster.objects.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": app},
                "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}],
                **spec,
            },
        },
        field_manager="kubectl",
        namespace=namespace,
    )


def external_ip(cluster: LocalCluster, namespace: str, name: str) -> str:
    def ingress() -> str | None:
        found = cluster.objects.get("v1", "Service", name, namespace) or {}
        entries = ((found.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return entries[0]["ip"] if entries else None

    address: str = wait_until(ingress, timeout=60, what=f"an EXTERNAL-IP for {name}")
    return address


def answer(cluster: LocalCluster, url: str) -> list[str]:
    """``[pod, node, source]`` from the first answer of ``url`` at the LAN client."""
    body: str = wait_until(functools.partial(client_get, cluster, url), timeout=30, what=f"{url} answering")
    return body.split()


def conntrack_has(cluster: LocalCluster, node: str, address: str) -> bool:
    """Whether ``node``'s kernel translated a TCP connection to ``address`` (its conntrack table)."""
    out = cluster.exec_in_node(node, ["conntrack", "-L", "-p", "tcp", "-d", address])
    return f"dst={address}" in out.stdout


def announced(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    """The Service's ``keepvip.io/Announced`` condition ({} before one)."""
    found = cluster.objects.get("v1", "Service", name, namespace) or {}
    conditions = (found.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "keepvip.io/Announced"), {})


class HolderWatch:
    """Samples which nodes hold an address, in a thread, for as long as the block runs."""

    def __init__(self, keepvip: KeepvipOnCluster, address: str) -> None:
        self.keepvip, self.address = keepvip, address
        self.seen: list[tuple[str, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.seen.append(tuple(self.keepvip.holders(self.address)))

    def __enter__(self) -> HolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def nodes(self) -> set[str]:
        return {node for sample in self.seen for node in sample}


def test_a_loadbalancer_vip_reaches_a_pod_through_kube_proxy_and_follows_a_failed_holder(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, namespace: str
) -> None:
    # node-a preferred, node-b next; the backend runs on node-c, which the failures spare.
    apply_pool(cluster, 60, 64, {
        "nodePriorities": [{"nodeName": "node-a", "priority": 150}, {"nodeName": "node-b", "priority": 120}],
        "vrrp": {"advertisementInterval": "100ms"},
    })  # fmt: skip
    cluster.objects.create(backend_pod("web-c", "node-c", 18090, {"app": "e2e"}), namespace)
    apply_service(cluster, namespace, "web", app="e2e", port=8080, target=18090)
    address = external_ip(cluster, namespace, "web")
    url = f"http://{address}:8080/"
    wait_until(lambda: keepvip.holders(address) == ["node-a"], timeout=30, what=f"{address} on node-a")

    # Cluster policy: the holder translates and masquerades, so the pod sees the holder.
    assert answer(cluster, url) == ["web-c", "node-c", node_ip(cluster, "node-a")]
    assert conntrack_has(cluster, "node-a", address)

    # The holder's link fails: node-b takes the address and its kube-proxy carries it.
    cluster.set_node_link("node-a", False)
    try:
        wait_until(lambda: "node-b" in keepvip.holders(address), timeout=10, what=f"{address} on node-b")
        assert answer(cluster, url) == ["web-c", "node-c", node_ip(cluster, "node-b")]
        assert conntrack_has(cluster, "node-b", address)
    finally:
        cluster.set_node_link("node-a", True)
    wait_until(lambda: keepvip.holders(address) == ["node-a"], timeout=30, what="node-a pre-empting back")
    assert answer(cluster, url) == ["web-c", "node-c", node_ip(cluster, "node-a")]

    # The holder's speaker stops (kubectl delete pod: priority 0, then the DaemonSet's new pod).
    keepvip.delete_speaker_pod("node-a")
    wait_until(lambda: keepvip.holders(address) == ["node-b"], timeout=10, interval=0.05,
               what=f"{address} on node-b after node-a's speaker stopped")  # fmt: skip
    assert answer(cluster, url)[:2] == ["web-c", "node-c"]
    wait_until(keepvip.speakers_ready, timeout=60, what="node-a's speaker back")
    wait_until(lambda: keepvip.holders(address) == ["node-a"], timeout=30, what="node-a holding again")


def test_local_policy_keeps_the_vip_on_a_node_with_an_endpoint_and_preserves_the_client_address(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, namespace: str
) -> None:
    apply_pool(cluster, 65, 69, {"vrrp": {"advertisementInterval": "100ms"}})
    client = str(cluster.lan.client_address)
    cluster.objects.create(backend_pod("web-1", "node-b", 18091, {"app": "local"}), namespace)
    apply_service(cluster, namespace, "local", app="local", port=8081, target=18091,
                  externalTrafficPolicy="Local")  # fmt: skip
    address = external_ip(cluster, namespace, "local")
    url = f"http://{address}:8081/"

    with HolderWatch(keepvip, address) as first:
        wait_until(lambda: keepvip.holders(address) == ["node-b"], timeout=30, what=f"{address} on node-b")
        assert answer(cluster, url) == ["web-1", "node-b", client]
        for _ in range(5):
            assert client_get(cluster, url) == f"web-1 node-b {client}"
    assert first.nodes() == {"node-b"}, f"a node without a local endpoint held {address}: {first.seen}"

    # The pod moves to node-c: so does the address, and the client's address still arrives.
    with HolderWatch(keepvip, address) as moving:
        cluster.objects.delete("v1", "Pod", "web-1", namespace)
        wait_until(lambda: cluster.objects.get("v1", "Pod", "web-1", namespace) is None, timeout=30,
                   what="web-1 gone")  # fmt: skip
        cluster.objects.create(backend_pod("web-2", "node-c", 18091, {"app": "local"}), namespace)
        wait_until(lambda: keepvip.holders(address) == ["node-c"], timeout=30, what=f"{address} on node-c")
        assert answer(cluster, url) == ["web-2", "node-c", client]
    assert "node-a" not in moving.nodes(), moving.seen
    assert all(len(sample) <= 1 for sample in moving.seen), f"two holders at once: {moving.seen}"
    held_by_c = wait_until(
        lambda: "node-c" in (c := announced(cluster, namespace, "local")).get("message", "") and c,
        timeout=30,
        what="Announced names node-c",
    )
    assert held_by_c["status"] == "True"
