"""``keepvip convert metallb --adopt``: a live cut-over from MetalLB changes no address.

The scene is the one a MetalLB user is in. Class-less LoadBalancer Services already hold
addresses that "MetalLB" wrote into ``status.loadBalancer.ingress`` (written here by
server-side apply on the status subresource with MetalLB's field manager, which is what
MetalLB's controller does; MetalLB itself is not installed: its pools are files, as a
user exports them). Two Services share one address through MetalLB's
``allow-shared-ip``, and one holds an address its pool no longer contains (the pool was
edited after allocation).

The user then does what docs/migration.md says: convert the MetalLB files and the
exported Services with ``--adopt``, apply the VirtualIPPool CRD and the converted pools,
apply the Service annotations (``kubectl apply --server-side -f services.yaml``, done here
through the same server-side apply), and only then install keepvip with
``loadBalancer.defaultClass=true``. Every Service must keep its address throughout, get
``keepvip.io/Allocated=True``, its address recorded and bound on exactly one node; a new
Service afterwards draws from the converted pool, never an adopted address.

Without the pins the sharing pair would not keep its address: the operator re-binds an
address it finds in a Service's status only for Services without a sharing key, and
only inside a pool (operator/lb/plan.py ``rebind``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.cli import main
from keepvip.localcluster import LocalCluster, wait_until
from keepvip.localcluster.scenario import API_VERSION, KeepvipOnCluster

pytestmark = pytest.mark.cluster

CRDS = Path(__file__).parents[2] / "crds"
METALLB_MANAGER = "metallb-controller"  # the field manager MetalLB's controller writes status with


def _metallb_files(cluster: LocalCluster, folder: Path) -> Path:
    """MetalLB's configuration as the user exported it: one pool of vip(0)..vip(9), one L2Advertisement."""
    documents = [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "lan", "namespace": "metallb-system"},
            "spec": {"addresses": [f"{cluster.vip(0)}-{cluster.vip(9)}"]},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "lan", "namespace": "metallb-system"},
            "spec": {"ipAddressPools": ["lan"]},
        },
    ]
    path = folder / "metallb.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


class OldTool:
    """Services as MetalLB left them: an address in status, MetalLB's annotations."""

    def __init__(self, cluster: LocalCluster, namespace: str) -> None:
        self.cluster = cluster
        self.objects = cluster.objects
        self.namespace = namespace
        self.held: dict[str, str] = {}

    def service(self, name: str, address: str, port: int, protocol: str = "TCP", **annotations: str) -> None:
        document = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace, "annotations": annotations},
            "spec": {"type": "LoadBalancer", "ports": [{"name": "p", "port": port, "protocol": protocol}]},
        }
        self.objects.apply(document, field_manager="kubectl", namespace=self.namespace)
        status = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace},
            "status": {"loadBalancer": {"ingress": [{"ip": address}]}},
        }
        self.objects.apply(
            status, field_manager=METALLB_MANAGER, namespace=self.namespace, subresource="status"
        )
        self.endpoints(name, port, protocol)
        self.held[name] = address

    def endpoints(self, name: str, port: int, protocol: str = "TCP") -> None:
        """A ready backend (the node-a address, as a pod's would be) so the Cluster policy announces."""
        address = str(self.cluster.node_addresses("node-a")[0].ip)
        document = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": self.namespace},
            "subsets": [
                {"addresses": [{"ip": address}], "ports": [{"name": "p", "port": port, "protocol": protocol}]}
            ],
        }
        self.objects.apply(document, field_manager="kubectl", namespace=self.namespace)

    def get(self, name: str) -> dict[str, Any]:
        found = self.objects.get("v1", "Service", name, self.namespace)
        assert found is not None, f"Service {name} is gone"
        return found

    def ingress(self, name: str) -> list[str]:
        status = self.get(name).get("status") or {}
        return [entry.get("ip") for entry in (status.get("loadBalancer") or {}).get("ingress") or []]

    def allocated(self, name: str) -> bool:
        conditions = (self.get(name).get("status") or {}).get("conditions") or []
        return any(c["type"] == "keepvip.io/Allocated" and c["status"] == "True" for c in conditions)

    def export(self, folder: Path) -> Path:
        """``kubectl get services -n NS -o yaml``: a List of the Services as the API server has them."""
        items = self.objects.list("v1", "Service", self.namespace)
        path = folder / "services.yaml"
        path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}, sort_keys=False))
        return path


@pytest.fixture
def migration(cluster: LocalCluster, namespace: str, tmp_path: Path) -> Iterator[tuple[OldTool, Path]]:
    """The old tool's Services in a fresh namespace (deleted with it after the test)."""
    old = OldTool(cluster, namespace)
    try:
        yield old, tmp_path
    finally:
        for service in cluster.objects.list("v1", "Service", namespace):
            cluster.objects.delete("v1", "Service", service["metadata"]["name"], namespace)


def test_a_converted_metallb_setup_keeps_every_address_the_services_hold(
    cluster: LocalCluster, migration: tuple[OldTool, Path]
) -> None:
    old, folder = migration
    old.service("web", str(cluster.vip(3)), 80)
    old.service("dns-tcp", str(cluster.vip(5)), 53, "TCP", **{"metallb.universe.tf/allow-shared-ip": "dns"})
    old.service("dns-udp", str(cluster.vip(5)), 53, "UDP", **{"metallb.universe.tf/allow-shared-ip": "dns"})
    old.service("moved", str(cluster.vip(40)), 8080)  # the pool was shrunk after MetalLB gave this out
    before = {name: old.ingress(name) for name in old.held}
    assert before == {name: [address] for name, address in old.held.items()}

    # 1. convert, as the user would: keepvip convert metallb --adopt -o out metallb.yaml services.yaml
    out = folder / "out"
    status = main(["convert", "metallb", "--adopt", "-o", str(out),
                   str(_metallb_files(cluster, folder)), str(old.export(folder))])  # fmt: skip
    report = (out / "report.txt").read_text()
    assert status == 0, report
    pools = list(yaml.safe_load_all((out / "keepvip.yaml").read_text()))
    assert [p["metadata"]["name"] for p in pools] == ["lan", "adopted-metallb"]
    assert pools[1]["spec"]["addresses"] == [str(cluster.vip(40))]
    patches = list(yaml.safe_load_all((out / "services.yaml").read_text()))
    assert {p["metadata"]["name"] for p in patches} == set(old.held)

    # 2. the CRD and the pools (kubectl apply -f keepvip.yaml), the annotations (kubectl apply --server-side)
    cluster.objects.apply(yaml.safe_load((CRDS / "virtualippools.keepvip.io.yaml").read_text()), "kubectl")
    wait_until(lambda: _established(cluster), timeout=30, what="the VirtualIPPool CRD established")
    for pool in pools:
        cluster.objects.apply(pool, field_manager="kubectl")
    for patch in patches:
        cluster.objects.apply(patch, field_manager="keepvip-convert", namespace=old.namespace)
    assert {name: old.ingress(name) for name in old.held} == before  # nothing moved yet

    # 3. keepvip takes over the class-less Services
    deployment_namespace = f"keepvip-adopt-{secrets.token_hex(2)}"
    deployment = KeepvipOnCluster(cluster, deployment_namespace)
    helm = cluster.helm(folder / "helm-install")
    deployment.install(helm, ["--set", "loadBalancer.defaultClass=true"])
    try:
        seen: list[dict[str, list[str]]] = []

        def settled() -> bool:
            now = {name: old.ingress(name) for name in old.held}
            seen.append(now)
            return all(old.allocated(name) for name in old.held)

        wait_until(settled, timeout=60, what="every adopted Service Allocated=True")
        changed = [s for s in seen if s != before]
        assert not changed, f"an address changed during the switch: {changed[0]}"
        for name, address in old.held.items():
            _recorded(cluster, address, f"{old.namespace}/{name}")
        for address in sorted(set(old.held.values())):
            _bound_once(deployment, address)

        # 4. a new Service draws from the converted pool, never from the adopted addresses
        old.objects.apply(
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "new", "namespace": old.namespace},
             "spec": {"type": "LoadBalancer", "ports": [{"name": "p", "port": 81, "protocol": "TCP"}]}},
            field_manager="kubectl", namespace=old.namespace,
        )  # fmt: skip
        got = wait_until(lambda: old.ingress("new"), timeout=30, what="an address for the new Service")
        lan = {str(cluster.vip(n)) for n in range(10)}
        assert got[0] in lan - set(old.held.values())
        assert {name: old.ingress(name) for name in old.held} == before
    finally:
        for service in cluster.objects.list("v1", "Service", old.namespace):
            cluster.objects.delete("v1", "Service", service["metadata"]["name"], old.namespace)
        for pool in pools:
            cluster.objects.delete(API_VERSION, "VirtualIPPool", pool["metadata"]["name"])
        wait_until(
            lambda: not cluster.objects.list(API_VERSION, "VirtualIP", label_selector="keepvip.io/pool"),
            timeout=90,
            what="every record gone",
        )
        deployment.uninstall(helm)
        cluster.core.delete_namespace(deployment_namespace)


def _established(cluster: LocalCluster) -> bool:
    crd = cluster.objects.get(
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", "virtualippools.keepvip.io"
    )
    conditions = ((crd or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


def _bound_once(deployment: KeepvipOnCluster, address: str) -> None:
    wait_until(
        lambda: len(deployment.holders(address)) == 1, timeout=30, what=f"{address} bound on exactly one node"
    )


def _recorded(cluster: LocalCluster, address: str, service: str) -> None:
    """The address's record (``lb-<address>``) names ``service`` among its Services."""

    def names() -> bool:
        record = cluster.objects.get(API_VERSION, "VirtualIP", "lb-" + address.replace(".", "-"))
        members = ((record or {}).get("metadata", {}).get("annotations") or {}).get("keepvip.io/services", "")
        return service in members.split(",")

    wait_until(names, timeout=30, what=f"the record of {address} naming {service}")
