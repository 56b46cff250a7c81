"""Service type: LoadBalancer from a VirtualIPPool, through helm install and kubectl apply.

The chart is installed by real helm with ``loadBalancer.defaultClass=true`` (Kubernetes
1.20 has no ``spec.loadBalancerClass``, so class-less Services are the ones served);
pools and Services are applied as a user would. What is checked is API-level
behaviour — EXTERNAL-IP, conditions, Events, records, pool status — and, where a VIP
must be announced, that it is bound on exactly one node's network namespace
(``ip -j addr`` in the node's netns). Traffic through kube-proxy is the end-to-end
tier's business, once the local cluster runs kube-proxy.

Each Service here either has a ready endpoint (an Endpoints object written by hand,
as for a Service without selector) or opts out of the Cluster policy's stand-down with
``keepvip.io/announce-without-endpoints``; the stand-down itself is tested too.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from keepvip.localcluster import LocalCluster, wait_until
from keepvip.localcluster.scenario import API_VERSION, KeepvipOnCluster
from tests.cluster.lb_chart import chart_for_loadbalancers, records

pytestmark = pytest.mark.cluster

OPT_OUT = {"keepvip.io/announce-without-endpoints": "true"}


@pytest.fixture(scope="module")
def keepvip(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeepvipOnCluster]:
    """The chart installed with class-less Services served and no reuse delay by default."""
    yield from chart_for_loadbalancers(cluster, tmp_path_factory, "keepvip-lb")


class Lb:
    """One test's pool and Services, all removed afterwards."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster = cluster
        self.objects = cluster.objects
        self.namespace = namespace
        self.pools: list[str] = []
        self.services: set[str] = set()

    def pool(self, first: int, last: int, **spec: Any) -> str:
        """A pool over the LAN's test addresses vip(first)..vip(last)."""
        name = f"pool-{secrets.token_hex(3)}"
        addresses = [f"{self.cluster.vip(first)}-{self.cluster.vip(last)}"]
        document = {
            "apiVersion": API_VERSION,
            "kind": "VirtualIPPool",
            "metadata": {"name": name},
            "spec": {
                "addresses": addresses,
                "template": {"vrrp": {"advertisementInterval": "100ms"}},
                **spec,
            },
        }
        self.objects.apply(document, field_manager="kubectl")
        self.pools.append(name)
        return name

    def service(
        self, name: str, port: int = 80, annotations: dict[str, str] | None = None, **spec: Any
    ) -> None:
        """A class-less LoadBalancer Service without selector (its Endpoints are ours to write)."""
        document = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations or {}},
            "spec": {
                "type": "LoadBalancer",
                "ports": [{"name": "p", "port": port, "protocol": "TCP"}],
                **spec,
            },
        }
        self.objects.apply(document, field_manager="kubectl", namespace=self.namespace)
        self.services.add(name)

    def endpoints(self, name: str, port: int = 80) -> None:
        """A ready backend for a Service without selector (the node-a address, as a pod would be)."""
        address = str(self.cluster.node_addresses("node-a")[0].ip)
        document = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": self.namespace},
            "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "p", "port": port}]}],
        }
        self.objects.apply(document, field_manager="kubectl", namespace=self.namespace)

    def delete_service(self, name: str) -> None:
        self.objects.delete("v1", "Service", name, self.namespace)

    def get(self, name: str) -> dict[str, Any]:
        found = self.objects.get("v1", "Service", name, self.namespace)
        assert found is not None, f"Service {name} is gone"
        return found

    def external_ip(self, name: str) -> str | None:
        ingress = ((self.get(name).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return ingress[0]["ip"] if ingress else None

    def wait_external_ip(self, name: str, timeout: float = 30) -> str:
        address: str = wait_until(
            lambda: self.external_ip(name), timeout=timeout, what=f"an EXTERNAL-IP for {name}"
        )
        return address

    def condition(self, name: str, kind: str) -> dict[str, Any]:
        conditions = (self.get(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), {})

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.objects.list("v1", "Event", self.namespace, field_selector=f"involvedObject.name={name}")

    def record(self, address: str) -> dict[str, Any] | None:
        return self.objects.get(API_VERSION, "VirtualIP", "lb-" + address.replace(".", "-"))

    def pool_status(self, name: str) -> dict[str, Any]:
        found = self.objects.get(API_VERSION, "VirtualIPPool", name) or {}
        return dict(found.get("status") or {})

    def cleanup(self) -> None:
        """Services first: a Service left pending would take an address of the next test's pool."""
        for name in self.services:
            if self.objects.get("v1", "Service", name, self.namespace) is not None:
                self.delete_service(name)
        for pool in self.pools:
            self.objects.delete(API_VERSION, "VirtualIPPool", pool)


@pytest.fixture
def lb(keepvip: KeepvipOnCluster, cluster: LocalCluster, namespace: str) -> Iterator[Lb]:
    """A fresh namespace for Services; the test's pools (and through them their records) deleted after."""
    made = Lb(cluster, namespace)
    yield made
    made.cleanup()
    wait_until(lambda: not records(cluster), timeout=90, what="the test's records gone")


def holders(keepvip: KeepvipOnCluster, address: str) -> list[str]:
    """Nodes whose namespace has the address bound now (ip -j addr)."""
    return keepvip.holders(address)


def test_a_class_less_service_gets_an_external_ip_bound_on_exactly_one_node(
    keepvip: KeepvipOnCluster, lb: Lb
) -> None:
    pool = lb.pool(0, 4)
    lb.service("web")
    lb.endpoints("web")
    address = lb.wait_external_ip("web")
    assert lb.cluster.vip(0) <= ipaddress.ip_address(address) <= lb.cluster.vip(4)
    allocated = lb.condition("web", "keepvip.io/Allocated")
    assert allocated["status"] == "True", allocated
    record = lb.record(address)
    assert record is not None
    assert record["metadata"]["labels"]["keepvip.io/pool"] == pool
    assert record["metadata"]["annotations"]["keepvip.io/services"] == f"{lb.namespace}/web"
    assert record["metadata"]["ownerReferences"][0]["name"] == pool
    wait_until(lambda: len(holders(keepvip, address)) == 1, timeout=30, what=f"{address} bound on one node")
    announced = wait_until(
        lambda: (c := lb.condition("web", "keepvip.io/Announced")).get("status") == "True" and c,
        timeout=30,
        what="Announced=True",
    )
    assert holders(keepvip, address)[0] in announced["message"]
    reasons = [e["reason"] for e in lb.events("web")]
    assert "IPAllocated" in reasons
    wait_until(
        lambda: (lb.pool_status(pool).get("ipv4") or {}).get("assigned") == 1, timeout=15, what="pool usage"
    )
    assert lb.pool_status(pool)["ipv4"] == {"total": 5, "assigned": 1, "available": 4}


def test_a_requested_address_is_given_and_a_taken_one_is_refused_with_a_reason(
    keepvip: KeepvipOnCluster, lb: Lb
) -> None:
    pool = lb.pool(5, 9)
    wanted = str(lb.cluster.vip(7))
    lb.service("asks", annotations={"keepvip.io/pool": pool, **OPT_OUT}, loadBalancerIP=wanted)
    assert lb.wait_external_ip("asks") == wanted
    wait_until(lambda: holders(keepvip, wanted) != [], timeout=30, what=f"{wanted} bound")
    lb.service(
        "also-asks", annotations={"keepvip.io/pool": pool, "keepvip.io/load-balancer-ips": wanted, **OPT_OUT}
    )
    refused = wait_until(
        lambda: (c := lb.condition("also-asks", "keepvip.io/Allocated")).get("status") == "False" and c,
        timeout=30,
        what="the second request refused",
    )
    assert refused["reason"] == "RequestedIPUnavailable"
    assert f"{lb.namespace}/asks" in refused["message"]
    assert lb.external_ip("also-asks") is None
    events = lb.events("also-asks")
    assert any(e["reason"] == "AllocationFailed" and e["type"] == "Warning" for e in events)
    assert len(holders(keepvip, wanted)) == 1


def test_two_services_sharing_a_key_get_one_virtualip_and_one_holder(
    keepvip: KeepvipOnCluster, lb: Lb
) -> None:
    pool = lb.pool(10, 14)
    shared = {"keepvip.io/pool": pool, "keepvip.io/sharing-key": "web", **OPT_OUT}
    lb.service("http", 80, shared)
    lb.service("https", 443, shared)
    first = lb.wait_external_ip("http")
    assert lb.wait_external_ip("https") == first
    record = wait_until(
        lambda: (
            (r := lb.record(first))
            and len(r["metadata"]["annotations"]["keepvip.io/services"].split(",")) == 2
            and r
        ),
        timeout=15,
        what="one record for both",
    )
    assert sorted(record["metadata"]["annotations"]["keepvip.io/services"].split(",")) == [
        f"{lb.namespace}/http",
        f"{lb.namespace}/https",
    ]
    mine = [r["metadata"] for r in records(lb.cluster) if r["metadata"]["labels"]["keepvip.io/pool"] == pool]
    assert len(mine) == 1, [(m["name"], m["annotations"].get("keepvip.io/services")) for m in mine]
    wait_until(lambda: len(holders(keepvip, first)) == 1, timeout=30, what="one holder")
    # A third Service on a port already in use is a conflict, never a second address.
    lb.service("clash", 80, shared)
    conflict = wait_until(
        lambda: (c := lb.condition("clash", "keepvip.io/Allocated")).get("status") == "False" and c,
        timeout=30,
        what="SharingConflict",
    )
    assert conflict["reason"] == "SharingConflict"
    assert lb.external_ip("clash") is None
    time.sleep(2)
    assert len(holders(keepvip, first)) == 1


def test_exhaustion_leaves_the_service_pending_with_a_reason_and_a_release_serves_it(
    keepvip: KeepvipOnCluster, lb: Lb
) -> None:
    pool = lb.pool(15, 16, reuseDelay="2s")
    pinned = {"keepvip.io/pool": pool, **OPT_OUT}
    lb.service("one", annotations=pinned)
    lb.service("two", annotations=pinned)
    taken = {lb.wait_external_ip("one"), lb.wait_external_ip("two")}
    assert len(taken) == 2
    lb.service("three", annotations=pinned)
    pending = wait_until(
        lambda: (c := lb.condition("three", "keepvip.io/Allocated")).get("status") == "False" and c,
        timeout=30,
        what="PoolExhausted",
    )
    assert pending["reason"] == "PoolExhausted"
    assert pool in pending["message"]
    assert lb.external_ip("three") is None
    wait_until(  # the Event is posted after the status that says so
        lambda: any(
            e["reason"] == "AllocationFailed" and "PoolExhausted" in e["message"] for e in lb.events("three")
        ),
        timeout=15,
        what="an AllocationFailed event naming PoolExhausted",
    )
    freed = lb.external_ip("one")
    lb.delete_service("one")
    got = lb.wait_external_ip("three", timeout=90)
    assert got == freed
    assert lb.condition("three", "keepvip.io/Allocated")["status"] == "True"


def test_the_cluster_policy_withdraws_the_vip_while_no_endpoint_is_ready(
    keepvip: KeepvipOnCluster, lb: Lb
) -> None:
    pool = lb.pool(17, 19)
    lb.service("lonely", annotations={"keepvip.io/pool": pool})
    address = lb.wait_external_ip("lonely")  # written at allocation, announced or not
    stood_down = wait_until(
        lambda: (
            (c := lb.condition("lonely", "keepvip.io/Announced")).get("reason") == "NoReadyEndpoints" and c
        ),
        timeout=30,
        what="NoReadyEndpoints",
    )
    assert stood_down["status"] == "False"
    time.sleep(3)
    assert holders(keepvip, address) == []
    lb.endpoints("lonely")
    wait_until(
        lambda: len(holders(keepvip, address)) == 1, timeout=30, what="announced once an endpoint is ready"
    )
    wait_until(
        lambda: lb.condition("lonely", "keepvip.io/Announced").get("status") == "True",
        timeout=30,
        what="Announced=True",
    )


def test_deleting_and_recreating_a_service_gives_its_old_address_back(
    keepvip: KeepvipOnCluster, lb: Lb
) -> None:
    pool = lb.pool(20, 29)
    pinned = {"keepvip.io/pool": pool, **OPT_OUT}
    for name in ("alpha", "beta", "gamma"):
        lb.service(name, annotations=pinned)
    before = {name: lb.wait_external_ip(name) for name in ("alpha", "beta", "gamma")}
    lb.delete_service("beta")
    wait_until(lambda: lb.record(before["beta"]) is None, timeout=60, what="beta's record released")
    lb.service("beta", annotations=pinned)
    assert lb.wait_external_ip("beta") == before["beta"]


def test_an_operator_killed_during_fifty_creations_gives_fifty_distinct_addresses_that_never_change(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, lb: Lb
) -> None:
    pool = lb.pool(40, 99)
    pinned = {"keepvip.io/pool": pool, **OPT_OUT}
    names = [f"svc-{n:02d}" for n in range(50)]
    for index, name in enumerate(names):
        lb.service(name, annotations=pinned)
        if index == 20:
            _kill_operator(keepvip, cluster)
    addresses = {name: lb.wait_external_ip(name, timeout=180) for name in names}
    assert len(set(addresses.values())) == 50
    pooled = [r for r in records(cluster) if r["metadata"]["labels"]["keepvip.io/pool"] == pool]
    assert len(pooled) == 50
    # Once the operator has written everything (the holders elected, every Service's
    # Announced condition written), a restart must write nothing (issue 15): not one
    # Service's status, not one Event.
    versions = _quiet_services(lb, names)
    events = _event_keys(cluster, lb.namespace)
    _kill_operator(keepvip, cluster)
    wait_until(lambda: _operator_pid(keepvip, cluster) is not None, timeout=60, what="the operator back")
    wait_until(
        lambda: _passes(keepvip, cluster) > 0, timeout=120, interval=1.0, what="a pass after the restart"
    )
    time.sleep(10)  # the passes the Services' first watch events wake
    assert {name: lb.external_ip(name) for name in names} == addresses
    assert (lb.pool_status(pool).get("ipv4") or {}).get("assigned") == 50
    assert _service_versions(lb, names) == versions
    assert _event_keys(cluster, lb.namespace) - events == set()


def _passes(keepvip: KeepvipOnCluster, cluster: LocalCluster) -> int:
    """LoadBalancer passes the running operator finished (its /metrics, read in its node)."""
    pods = cluster.objects.list(
        "v1", "Pod", keepvip.namespace, label_selector="app.kubernetes.io/component=operator"
    )
    url = "http://127.0.0.1:9473/metrics"  # the chart's operator.metricsPort, in the operator's node
    fetch = f"import urllib.request as u; print(u.urlopen({url!r}, timeout=5).read().decode())"
    for pod in pods:
        done = cluster.exec_in_node(pod["spec"]["nodeName"], [sys.executable, "-c", fetch], timeout=15)
        for line in done.stdout.splitlines() if done.returncode == 0 else ():
            if line.startswith("keepvip_operator_reconcile_total{") and 'handler="loadbalancer"' in line \
                    and 'result="ok"' in line:  # fmt: skip
                return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _service_versions(lb: Lb, names: list[str]) -> dict[str, str]:
    found = lb.objects.list("v1", "Service", lb.namespace)
    return {
        s["metadata"]["name"]: s["metadata"]["resourceVersion"]
        for s in found
        if s["metadata"]["name"] in names
    }


def _quiet_services(lb: Lb, names: list[str], quiet: float = 10.0) -> dict[str, str]:
    """The Services' resourceVersions once none has changed for ``quiet`` seconds."""
    versions, since = _service_versions(lb, names), time.monotonic()

    def settled() -> bool:
        nonlocal versions, since
        now = _service_versions(lb, names)
        if now != versions:
            versions, since = now, time.monotonic()
        return time.monotonic() - since >= quiet

    wait_until(settled, timeout=180, interval=1.0, what="the operator done writing the Services")
    return versions


def _event_keys(cluster: LocalCluster, namespace: str) -> set[tuple[str, int]]:
    """(Event name, count) of the Events on Services in ``namespace``: a new or recounted one differs."""
    events = cluster.objects.list("v1", "Event", namespace)
    return {
        (e["metadata"]["name"], int(e.get("count") or 1))
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == "Service"
    }


def _operator_pid(keepvip: KeepvipOnCluster, cluster: LocalCluster) -> int | None:
    pods = cluster.objects.list(
        "v1", "Pod", keepvip.namespace, label_selector="app.kubernetes.io/component=operator"
    )
    for pod in pods:
        pid = cluster.kubelet.container_pid(keepvip.namespace, pod["metadata"]["name"], "operator")
        if pid is not None:
            return pid
    return None


def _kill_operator(keepvip: KeepvipOnCluster, cluster: LocalCluster) -> None:
    pid = _operator_pid(keepvip, cluster)
    assert pid is not None, "no operator process"
    os.kill(pid, signal.SIGKILL)


def test_the_webhook_refuses_an_invalid_pool_naming_the_field(
    keepvip: KeepvipOnCluster, cluster: LocalCluster
) -> None:
    document = {
        "apiVersion": API_VERSION,
        "kind": "VirtualIPPool",
        "metadata": {"name": f"bad-{secrets.token_hex(3)}"},
        "spec": {"addresses": [f"{cluster.vip(30)}-{cluster.vip(35)}", str(cluster.vip(33))]},
    }
    name = document["metadata"]["name"]
    # The chart's webhook fails open (failurePolicy: Ignore) while the operator is down, and
    # the test before this one SIGKILLs it: a pool admitted meanwhile is removed and the
    # apply tried again, as a user would once the operator is back.
    wait_until(lambda: _operator_pid(keepvip, cluster) is not None, timeout=120, what="the operator back")

    def refusal() -> Exception | None:
        try:
            cluster.objects.apply(document, field_manager="kubectl")
        except Exception as error:  # the dynamic client raises its ApiException subclasses
            return error
        cluster.objects.delete(API_VERSION, "VirtualIPPool", name)
        return None

    refused = wait_until(refusal, timeout=120, interval=2.0, what="the webhook refuses the pool")
    assert "spec.addresses[1]" in str(refused)
    assert "overlaps" in str(refused)
    assert cluster.objects.get(API_VERSION, "VirtualIPPool", name) is None
