"""Two operator replicas (kopf peering), installed by real helm on the local cluster.

The chart with ``operator.replicaCount=2`` runs both pods under the operator's own
ServiceAccount and roles. The tests check what peering promises:

* only one replica handles: a VirtualIP gets exactly one pair and one ``Allocated``
  Event, and the other replica's log never names it;
* every replica serves the admission webhook with every rule, the paused one included:
  cross-object conflicts are checked against a fresh list, because a paused replica's
  kopf index is empty;
* when the handling replica goes away the other takes over: deleted (it leaves the
  peering object on SIGTERM) or hung (its entry expires after kopf's lifetime), a new
  VirtualIP is allocated within seconds;
* neither replica is ever refused a permission.

The handling replica is read from the ClusterKopfPeering object: each replica keeps an
entry under its pod name, and kopf lets the live entry with the highest priority handle.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import signal
import ssl
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from keepvip.localcluster import LocalCluster, Objects, wait_until
from keepvip.operator.peering import LIFETIME_SECONDS

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "keepvip"
API = "keepvip.io/v1alpha1"
PEERING = ("kopf.dev/v1", "ClusterKopfPeering")
FORBIDDEN = re.compile(r"Forbidden|\b403\b")
TAKEOVER_SECONDS = 30.0
WEBHOOK_PORT = 9443


@dataclass
class Release:
    """keepvip installed with two operator replicas in its own namespace."""

    cluster: LocalCluster
    objects: Objects
    namespace: str
    name: str
    created: list[str] = field(default_factory=list)
    """VirtualIPs the tests created (deleted before uninstalling)."""

    def operator_pods(self) -> dict[str, dict[str, Any]]:
        """Running operator pods (not being deleted) by name."""
        pods = self.objects.list("v1", "Pod", self.namespace,
                                 label_selector="app.kubernetes.io/component=operator")  # fmt: skip
        return {
            p["metadata"]["name"]: p for p in pods
            if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
        }  # fmt: skip

    def two_ready_operators(self) -> dict[str, dict[str, Any]] | None:
        ready = {name: p for name, p in self.operator_pods().items() if is_ready(p)}
        return ready if len(ready) == 2 else None

    def wait_for_two_peers(self, timeout: float = 90) -> tuple[dict[str, dict[str, Any]], str]:
        """Two ready replicas, both in the peering object; the pods and the handling one."""
        pods = wait_until(self.two_ready_operators, timeout=timeout, what="two ready operator pods")
        wait_until(lambda: set(self.peers()) == set(pods), timeout=30, what="both replicas peering")
        return pods, self.active()

    def peers(self) -> dict[str, dict[str, Any]]:
        """The live entries of the release's peering object (identity -> entry)."""
        found = self.objects.get(*PEERING, self.name) or {}
        now = datetime.datetime.now(datetime.UTC)
        return {
            identity: entry for identity, entry in (found.get("status") or {}).items()
            if entry and datetime.datetime.fromisoformat(entry["lastseen"])
            + datetime.timedelta(seconds=entry["lifetime"]) > now
        }  # fmt: skip

    def active(self) -> str:
        """The pod kopf lets handle: the live peer with the highest priority."""
        peers = self.peers()
        return max(peers, key=lambda identity: peers[identity]["priority"])

    def log(self, pod: str) -> str:
        return self.cluster.container_log(self.namespace, pod, "operator")

    def handled(self, pod: str, vip: str) -> list[str]:
        """What ``pod`` logged handling ``vip`` (kopf's handler and daemon lines, not webhooks)."""
        return [message for message, name in log_records(self.log(pod))
                if name == vip and not message.startswith("Webhook ")]  # fmt: skip

    def vip(self, name: str, n: int) -> None:
        self.objects.create({
            "apiVersion": API, "kind": "VirtualIP", "metadata": {"name": name},
            "spec": {"addresses": [f"{self.cluster.vip(n)}/24"]},
        })  # fmt: skip

    def create_admitted(self, name: str, n: int) -> bool:
        """Create the VirtualIP; False when a webhook call failed (already created is True)."""
        try:
            self.vip(name, n)
        except ApiException as error:
            if error.status == 409:
                return True
            if error.status == 500 and "failed calling webhook" in str(error.body):
                return False
            raise
        return True

    def allocated(self, name: str) -> dict[str, Any] | None:
        status = ((self.objects.get(API, "VirtualIP", name) or {}).get("status")) or {}
        return status if status.get("vrid") and status.get("multicastGroup") else None

    def allocated_events(self, name: str) -> list[dict[str, Any]]:
        events = self.objects.list("v1", "Event", "default",
                                   field_selector=f"involvedObject.name={name},involvedObject.kind=VirtualIP")
        return [e for e in events if e["reason"] == "Allocated"]

    def ledger_entries(self, name: str) -> list[dict[str, Any]]:
        ledger = self.objects.get("v1", "ConfigMap", "keepvip-allocations", self.namespace) or {}
        entries = [json.loads(v) for v in (ledger.get("data") or {}).values()]
        return [e for e in entries if e["name"] == name]


def log_records(text: str) -> list[tuple[str, str | None]]:
    """(message, object name) of each JSON log line (the chart's default log format)."""
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        records.append((str(record.get("message", "")), (record.get("object") or {}).get("name")))
    return records


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def names(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(2)}"


@pytest.fixture(scope="module")
def release(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    namespace, name = names("keepvip-peering"), "keepvip"
    helm = cluster.helm(tmp_path_factory.mktemp("helm-state"))
    cluster.create_namespace(namespace)
    rel = Release(cluster, cluster.objects, namespace, name)
    try:
        values = ["--set", "operator.replicaCount=2", "--set", "webhook.failurePolicy=Fail"]
        wait = ["--wait", "--timeout", "120s"]
        # The ClusterKopfPeering object needs its CRD, which the same chart installs (as a
        # template): one release cannot create both at once on a cluster without the CRD
        # (it worked only after another module had left the kept CRDs behind). Install
        # with one replica first, as a user who scales out later does, then upgrade.
        helm.run("install", name, str(CHART), "-n", namespace, *wait, timeout=150)
        helm.run("upgrade", name, str(CHART), "-n", namespace, *values, *wait, timeout=150)
        yield rel
    finally:
        for vip in rel.created:
            cluster.objects.delete(API, "VirtualIP", vip)
        for vip in rel.created:
            try:
                wait_until(lambda v=vip: cluster.objects.get(API, "VirtualIP", v) is None, timeout=40,
                           what=f"{vip} released by the operator")  # fmt: skip
            except TimeoutError:
                cluster.objects.patch(API, "VirtualIP", vip, {"metadata": {"finalizers": None}})
        helm.run("uninstall", name, "-n", namespace, "--wait", check=False)
        cluster.objects.delete("v1", "Namespace", namespace)


def create_vip(release: Release, prefix: str, n: int, *, retry_webhook_failures: bool = False) -> str:
    """Create a VirtualIP; after a replica went away, retry what its loss made fail.

    The API server may still send the webhook call to the replica that went away: to a
    deleted pod until the Service's endpoints drop it (connection refused), to a frozen
    one over a connection it still holds (timeout). With failurePolicy Fail the create
    is then refused, as a user would see it; a user retries, and so does the test.
    """
    name = names(prefix)
    release.created.append(name)
    if retry_webhook_failures:
        wait_until(lambda: release.create_admitted(name, n), timeout=TAKEOVER_SECONDS,
                   what=f"{name} admitted by a live replica")  # fmt: skip
    else:
        release.vip(name, n)
    return name


def test_two_replicas_run_and_exactly_one_handles_a_virtualip(release: Release) -> None:
    pods, active = release.wait_for_two_peers()
    nodes = {p["spec"]["nodeName"] for p in pods.values()}
    assert len(nodes) == 2, "the replicas are spread over two nodes"
    [standby] = set(pods) - {active}

    name = create_vip(release, "peer-one", 60)
    status = wait_until(lambda: release.allocated(name), timeout=30, what=f"{name} allocated")
    wait_until(lambda: release.allocated_events(name), timeout=30, what="the Allocated event")
    wait_until(lambda: release.handled(active, name), timeout=10, what="the handling replica's log")

    entries = release.ledger_entries(name)
    assert [(e["group"], e["vrid"]) for e in entries] == [(status["multicastGroup"], status["vrid"])]
    [event] = release.allocated_events(name)
    assert event.get("count", 1) == 1
    assert release.handled(standby, name) == [], "the paused replica handled the VirtualIP too"
    assert release.active() == active, "the handling replica did not change"


def admission_review(pod_ip: str, spec: dict[str, Any]) -> dict[str, Any]:
    """POST an AdmissionReview to one replica's webhook port (its pod address)."""
    review = {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": secrets.token_hex(8),
            "kind": {"group": "keepvip.io", "version": "v1alpha1", "kind": "VirtualIP"},
            "resource": {"group": "keepvip.io", "version": "v1alpha1", "resource": "virtualips"},
            "operation": "CREATE", "userInfo": {"username": "keepvip-tests"},
            "object": {"apiVersion": API, "kind": "VirtualIP", "metadata": {"name": names("review")},
                       "spec": spec},
        },
    }  # fmt: skip
    context = ssl.create_default_context()
    context.check_hostname = False  # the certificate names the Service, we dial the pod
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(
        f"https://{pod_ip}:{WEBHOOK_PORT}/validate-virtualip", data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, context=context, timeout=10) as reply:  # noqa: S310 - https
        response: dict[str, Any] = json.loads(reply.read())["response"]
    return response


def test_every_replica_serves_the_webhook_the_paused_one_too(release: Release) -> None:
    pods, active = release.wait_for_two_peers()
    for pod_name, pod in pods.items():
        role = "handling" if pod_name == active else "paused"
        ipv6_over_v2 = {"addresses": ["2001:db8:7::1/64"], "vrrp": {"version": 2}}
        refused = admission_review(pod["status"]["podIP"], ipv6_over_v2)
        assert refused["allowed"] is False, f"the {role} replica admitted IPv6 over VRRPv2"
        assert "spec.vrrp.version" in refused["status"]["message"]
        admitted = admission_review(pod["status"]["podIP"], {"addresses": ["198.18.9.1/24"]})
        assert admitted["allowed"] is True, f"the {role} replica refused a valid VirtualIP: {admitted}"


def test_the_paused_replica_refuses_an_address_another_virtualip_uses(release: Release) -> None:
    pods, active = release.wait_for_two_peers()
    name = create_vip(release, "peer-taken", 63)
    wait_until(lambda: release.allocated(name), timeout=30, what=f"{name} allocated")
    [standby] = set(pods) - {active}
    taken = {"addresses": [f"{release.cluster.vip(63)}/24"]}
    review = admission_review(pods[standby]["status"]["podIP"], taken)
    assert review["allowed"] is False, "the paused replica admitted an address already in use"


def test_deleting_the_handling_replica_hands_over_to_the_other(release: Release) -> None:
    pods, active = release.wait_for_two_peers()
    [survivor] = set(pods) - {active}
    release.objects.delete("v1", "Pod", active, release.namespace, grace_period_seconds=0)

    name = create_vip(release, "peer-after-delete", 61, retry_webhook_failures=True)
    wait_until(lambda: release.allocated(name), timeout=TAKEOVER_SECONDS, what=f"{name} allocated")
    wait_until(  # kopf logs the handler's success after the status patch the test saw
        lambda: "Handler 'spec' succeeded." in release.handled(survivor, name),
        timeout=15,
        what=f"the survivor's log of handling {name}",
    )
    assert len(release.allocated_events(name)) == 1
    assert release.active() == survivor
    for pod in (active, survivor):
        assert not FORBIDDEN.search(release.log(pod)), f"{pod}: {release.log(pod)[-3000:]}"
    # The local cluster runs every pod in its node's network namespace: until the deleted
    # pod's process has exited, a replacement on that node finds its ports taken.
    wait_until(lambda: release.cluster.kubelet.container_pid(release.namespace, active, "operator") is None,
               timeout=40, what=f"{active}'s process to exit")  # fmt: skip


def test_a_hung_handling_replica_is_replaced_once_its_peering_entry_expires(release: Release) -> None:
    pods, active = release.wait_for_two_peers()
    [survivor] = set(pods) - {active}
    pid = release.cluster.kubelet.container_pid(release.namespace, active, "operator")
    assert pid is not None
    os.killpg(pid, signal.SIGSTOP)  # a frozen process: no keep-alive, no farewell
    frozen = time.monotonic()
    try:
        name = create_vip(release, "peer-after-hang", 62, retry_webhook_failures=True)
        wait_until(lambda: release.allocated(name), timeout=LIFETIME_SECONDS + TAKEOVER_SECONDS,
                   what=f"{name} allocated by {survivor} after {active}'s entry expired")  # fmt: skip
        assert time.monotonic() - frozen < LIFETIME_SECONDS + TAKEOVER_SECONDS
        assert "Handler 'spec' succeeded." in release.handled(survivor, name)
        assert release.active() == survivor
    finally:
        release.objects.delete("v1", "Pod", active, release.namespace, grace_period_seconds=0)
        os.killpg(pid, signal.SIGCONT)  # let it see its SIGTERM and stop
    assert not FORBIDDEN.search(release.log(survivor)), release.log(survivor)[-3000:]
