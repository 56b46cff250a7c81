"""kube-proxy (iptables mode) in every node namespace carries Service traffic end to end.

The path under test is the one users run: a client on the LAN → a node address, a
ClusterIP or a VIP → kube-proxy's iptables rules in that node's namespace → a backend
pod, usually on another node. Backends are pods run by the process kubelet on their
node's address (see docs/local-cluster.md) that answer with their own pod and node
name, so every answer says which pod the traffic reached. Nothing here stands in for
kube-proxy: if its rules are missing, nothing answers.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from keepvip.localcluster import LocalCluster, wait_until
from keepvip.localcluster.controlplane import SERVICE_CIDR
from keepvip.localcluster.kubeproxy import root_namespace_iptables
from keepvip.localcluster.scenario import API_VERSION, KeepvipOnCluster

pytestmark = pytest.mark.cluster

# A backend: answers every GET with "<pod> <node>".
SERVER = """
import http.server, os, sys
body = (os.environ["POD_NAME"] + " " + os.environ["NODE_NAME"] + "\\n").encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
"""

# sysctls kube-proxy writes (or could write); the root namespace's must not move.
ROOT_KNOBS = (
    "/proc/sys/net/ipv4/conf/all/route_localnet",
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/netfilter/nf_conntrack_max",
    "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established",
    "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close_wait",
    "/sys/module/nf_conntrack/parameters/hashsize",
)


def backend(cluster: LocalCluster, namespace: str, name: str, node: str, *, port: int,
            app: str) -> None:  # fmt: skip
    """A ready-probed web server pod pinned to ``node``, listening on ``port``."""
    cluster.objects.create({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "nodeName": node, "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "web", "image": "keepvip-test/web",
                "command": ["python3", "-c", SERVER, str(port)],
                "ports": [{"containerPort": port, "name": "http"}],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "readinessProbe": {"httpGet": {"path": "/", "port": port}, "periodSeconds": 1},
            }],
        },
    }, namespace)  # fmt: skip


def service(cluster: LocalCluster, namespace: str, name: str, *, app: str, port: int,
            target: int, **spec: Any) -> dict[str, Any]:  # fmt: skip
    """Create a Service selecting ``app`` and return it as stored (ports allocated)."""
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": app},
                     "ports": [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP"}],
                     **spec}}  # fmt: skip
    cluster.objects.create(body, namespace)
    stored = cluster.objects.get("v1", "Service", name, namespace)
    assert stored is not None
    return stored


def client_get(cluster: LocalCluster, url: str) -> str | None:
    """GET ``url`` from the LAN client: the body, or None when nothing answers."""
    out = cluster.exec_in_client(["curl", "-s", "--max-time", "2", url])
    return out.stdout.strip() if out.returncode == 0 else None


def client_status(cluster: LocalCluster, url: str) -> tuple[int | None, str]:
    """GET ``url`` from the LAN client: (HTTP status or None, body)."""
    out = cluster.exec_in_client(["curl", "-s", "--max-time", "2", "-w", "\n%{http_code}", url])
    body, _, code = out.stdout.rpartition("\n")
    return (int(code) if code.isdigit() and code != "000" else None), body


def node_ip(cluster: LocalCluster, node: str) -> str:
    return str(cluster.nodes[node].ipv4.ip)


@contextmanager
def capture_on_lan(cluster: LocalCluster, bpf: str) -> Iterator[Callable[[], int]]:
    """tcpdump on the LAN switch (every node, the gateway and the root attachment hang on
    it) for the block; the yielded function gives the number of packets matching ``bpf``
    (valid after the block)."""
    proc = subprocess.Popen(["ip", "netns", "exec", cluster.lan.switch, "tcpdump", "-i", "br0",
                             "-n", "-p", "-q", bpf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    assert proc.stderr is not None
    counted: list[int] = []
    try:
        header = [proc.stderr.readline() for _ in range(2)]
        assert any("listening on" in line for line in header), header
        yield lambda: counted[0]
    finally:
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    match = re.search(r"(\d+) packets? captured", err)
    assert match, err
    counted.append(int(match.group(1)))


def read_root_knobs() -> dict[str, str]:
    return {path: Path(path).read_text().strip() for path in ROOT_KNOBS if Path(path).exists()}


def test_kube_proxy_of_a_new_node_keeps_to_its_namespace_and_its_rbac(cluster: LocalCluster) -> None:
    for name, proxy in cluster.kube_proxies.items():
        assert proxy.synced(), f"kube-proxy on {name} has not synced"
        assert "-A KUBE-SERVICES" in cluster.iptables_save(name)
    knobs_before, rules_before = read_root_knobs(), root_namespace_iptables()
    cluster.add_node("node-x")
    try:
        assert cluster.kube_proxies["node-x"].synced()
        node_knobs = cluster.exec_in_node("node-x", ["cat", *ROOT_KNOBS[:2]]).stdout.split()
        assert node_knobs == ["1", "1"], "route_localnet and ip_forward are set in the node namespace"
        assert "-A INPUT -j KUBE-FIREWALL" in cluster.iptables_save("node-x", "filter")
        timeout = cluster.exec_in_node(
            "node-x", ["cat", "/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_established"]).stdout
        assert timeout.strip() == "86400", "kube-proxy sets its conntrack timeout in the node namespace"
    finally:
        cluster.remove_node("node-x")
    assert read_root_knobs() == knobs_before
    assert root_namespace_iptables() == rules_before
    assert "KUBE-" not in rules_before

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.pki.kube_proxy_kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        as_proxy = client.CoreV1Api(api)
        as_proxy.list_endpoints_for_all_namespaces(limit=1)
        with pytest.raises(client.ApiException) as denied:
            as_proxy.list_secret_for_all_namespaces(limit=1)
    assert denied.value.status == 403
    assert "system:kube-proxy" in str(denied.value.body)


def test_a_nodeport_from_the_lan_client_reaches_a_pod_on_another_node(
    cluster: LocalCluster, namespace: str
) -> None:
    backend(cluster, namespace, "web-b", "node-b", port=18080, app="np")
    svc = service(cluster, namespace, "np", app="np", port=80, target=18080, type="NodePort")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    for entry in ("node-a", "node-c"):
        url = f"http://{node_ip(cluster, entry)}:{node_port}/"
        answer = wait_until(functools.partial(client_get, cluster, url), timeout=30,
                            what=f"an answer on {url}")
        assert answer == "web-b node-b"


def test_a_clusterip_dialled_in_a_node_namespace_reaches_a_pod_and_stays_off_the_lan(
    cluster: LocalCluster, namespace: str
) -> None:
    backend(cluster, namespace, "web-c", "node-c", port=18081, app="cip")
    svc = service(cluster, namespace, "cip", app="cip", port=80, target=18081)
    cluster_ip = svc["spec"]["clusterIP"]
    url = f"http://{cluster_ip}:80/"

    def get_from_node_a() -> str | None:
        out = cluster.exec_in_node("node-a", ["curl", "-s", "--max-time", "2", url])
        return out.stdout.strip() if out.returncode == 0 else None

    wait_until(get_from_node_a, timeout=30, what=f"{url} answering in node-a")
    with capture_on_lan(cluster, f"dst net {SERVICE_CIDR} or src net {SERVICE_CIDR}") as seen:
        answers = [get_from_node_a() for _ in range(5)]
    assert answers == ["web-c node-c"] * 5
    assert seen() == 0, "a packet addressed to the service CIDR went onto the LAN"


def test_local_traffic_policy_health_check_node_port_follows_the_pod(
    cluster: LocalCluster, namespace: str
) -> None:
    backend(cluster, namespace, "web-1", "node-b", port=18082, app="local")
    svc = service(cluster, namespace, "local", app="local", port=80, target=18082, type="LoadBalancer",
                  externalTrafficPolicy="Local")  # fmt: skip
    health_port = svc["spec"]["healthCheckNodePort"]
    node_port = svc["spec"]["ports"][0]["nodePort"]

    def health() -> dict[str, int | None]:
        return {n: client_status(cluster, f"http://{node_ip(cluster, n)}:{health_port}/")[0]
                for n in ("node-a", "node-b", "node-c")}  # fmt: skip

    expected = {"node-a": 503, "node-b": 200, "node-c": 503}
    wait_until(lambda: health() == expected, timeout=30, what=f"health {expected}")
    code, body = client_status(cluster, f"http://{node_ip(cluster, 'node-b')}:{health_port}/")
    assert code == 200
    assert json.loads(body)["localEndpoints"] == 1
    assert client_get(cluster, f"http://{node_ip(cluster, 'node-b')}:{node_port}/") == "web-1 node-b"
    # Local: a node without a local endpoint drops the traffic (curl times out: exit 28)
    # rather than forwarding it.
    dropped = cluster.exec_in_client(
        ["curl", "-s", "--max-time", "2", f"http://{node_ip(cluster, 'node-a')}:{node_port}/"])
    assert dropped.returncode == 28, (dropped.returncode, dropped.stdout)

    cluster.objects.delete("v1", "Pod", "web-1", namespace)
    wait_until(lambda: cluster.objects.get("v1", "Pod", "web-1", namespace) is None, timeout=30,
               what="web-1 gone")  # fmt: skip
    backend(cluster, namespace, "web-2", "node-c", port=18082, app="local")
    moved = {"node-a": 503, "node-b": 503, "node-c": 200}
    wait_until(lambda: health() == moved, timeout=30, what=f"health {moved}")
    assert client_get(cluster, f"http://{node_ip(cluster, 'node-c')}:{node_port}/") == "web-2 node-c"


def test_a_keepvip_vip_carries_lan_traffic_through_kube_proxy_to_a_pod_on_another_node(
    cluster: LocalCluster, namespace: str, tmp_path: Path
) -> None:
    keepvip = KeepvipOnCluster(cluster, f"kp-keepvip-{secrets.token_hex(2)}")
    helm = cluster.helm(tmp_path / "helm")
    keepvip.install(helm)
    vip_name, vip = f"kp-{secrets.token_hex(3)}", str(cluster.vip(50))
    try:
        keepvip.apply({"apiVersion": API_VERSION, "kind": "VirtualIP", "metadata": {"name": vip_name},
                       "spec": {"addresses": [f"{vip}/24"],
                                "nodePriorities": [{"nodeName": "node-a", "priority": 150},
                                                   {"nodeName": "node-b", "priority": 120}],
                                "vrrp": {"advertisementInterval": "100ms"}}})  # fmt: skip
        wait_until(lambda: keepvip.holders(vip) == ["node-a"], timeout=30, what=f"{vip} on node-a")

        backend(cluster, namespace, "web-c", "node-c", port=18083, app="vip")
        service(cluster, namespace, "lb", app="vip", port=8080, target=18083, type="LoadBalancer")
        # What lb-core's allocation writes; v1.20 has no LoadBalancer class or ipMode.
        cluster.core.patch_namespaced_service_status(
            "lb", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": vip}]}}})
        service(cluster, namespace, "ext", app="vip", port=8081, target=18083, externalIPs=[vip])

        for port in (8080, 8081):
            url = f"http://{vip}:{port}/"
            answer = wait_until(functools.partial(client_get, cluster, url), timeout=30,
                            what=f"{url} answering")
            assert answer == "web-c node-c"
        # The VIP's holder translated the connection: its conntrack table has it, with the
        # pod on node-c as the replying side.
        entries = cluster.exec_in_node("node-a", ["conntrack", "-L", "-p", "tcp", "-d", vip]).stdout
        assert f"src={node_ip(cluster, 'node-c')} dst=" in entries, entries
        assert f"-d {vip}/32" in cluster.iptables_save("node-a")

        # externalTrafficPolicy Local on the same VIP: node-a holds it but runs no endpoint,
        # so its kube-proxy drops the connection (a timeout, not a refusal: the rules exist)
        # until a ready endpoint runs on node-a; then only that pod answers.
        local = service(cluster, namespace, "lb-local", app="vip", port=8082, target=18083,
                        type="LoadBalancer", externalTrafficPolicy="Local")  # fmt: skip
        cluster.core.patch_namespaced_service_status(
            "lb-local", namespace, {"status": {"loadBalancer": {"ingress": [{"ip": vip}]}}})
        wait_until(lambda: f"-d {vip}/32 -p tcp -m comment --comment \"{namespace}/lb-local:http"
                   in cluster.iptables_save("node-a"), timeout=30, what="node-a's rules for lb-local")
        dropped = cluster.exec_in_client(["curl", "-s", "--max-time", "2", f"http://{vip}:8082/"])
        assert dropped.returncode == 28, (dropped.returncode, dropped.stdout)  # 28: timed out
        health_port = local["spec"]["healthCheckNodePort"]
        assert client_status(cluster, f"http://{node_ip(cluster, 'node-a')}:{health_port}/")[0] == 503
        backend(cluster, namespace, "web-a", "node-a", port=18083, app="vip")
        wait_until(functools.partial(client_get, cluster, f"http://{vip}:8082/"), timeout=30,
                   what="lb-local answering once node-a has an endpoint")  # fmt: skip
        assert {client_get(cluster, f"http://{vip}:8082/") for _ in range(6)} == {"web-a node-a"}
    finally:
        keepvip.delete(vip_name)
        wait_until(lambda: not keepvip.holders(vip), timeout=30, what=f"{vip} released")
        wait_until(lambda: keepvip.get(vip_name) is None, timeout=40, what=f"{vip_name} deleted")
        keepvip.uninstall(helm)
        cluster.core.delete_namespace(keepvip.namespace)
