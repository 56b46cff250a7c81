"""The operator as a real process against the local cluster, with RBAC-limited credentials.

``keepvip operator`` runs on this machine as a ServiceAccount bound to exactly the roles
listed in /work/notes/operator-contract.md (so a missing verb fails these tests), serves
its admission webhook on 127.0.0.1 and lets kopf point a ValidatingWebhookConfiguration
at it by URL. The tests act as the speakers would: they write ``status.nodes`` entries by
server-side apply, one field manager per node.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from keepvip.api.crd import build_crd
from keepvip.localcluster import LocalCluster, Objects, wait_until
from keepvip.localcluster.procs import ChildProcess
from keepvip.localcluster.waiting import holds_for

pytestmark = pytest.mark.cluster

API = "keepvip.io/v1alpha1"
LABEL = "keepvip.io/test-suite"
INVALID = yaml.safe_load((Path(__file__).parents[1] / "data" / "invalid_virtualips.yaml").read_text())
RBAC = "rbac.authorization.k8s.io/v1"
KEEPVIP = Path(sys.executable).with_name("keepvip")
SETTLE = 2.0
"""status.settleSeconds: the operator's default, which these tests run with."""

# The roles of operator-contract.md, verbatim: what the chart grants.
CLUSTER_RULES = [
    {"apiGroups": ["keepvip.io"], "resources": ["virtualips"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["keepvip.io"], "resources": ["virtualips/status"], "verbs": ["patch"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
     "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
    # only because these tests let the operator (kopf) manage the webhook configurations (url mode)
    {"apiGroups": ["admissionregistration.k8s.io"],
     "resources": ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
     "verbs": ["create", "patch"]},
]
NAMESPACE_RULES = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "create", "update"]},
    {"apiGroups": ["apps"], "resources": ["daemonsets"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class OperatorProcess:
    """``keepvip operator`` as a child process: started, stopped, killed by its pid."""

    env: dict[str, str]
    log_path: Path
    health_port: int
    webhook_name: str
    objects: Objects
    process: ChildProcess | None = None

    def start(self, *, wait: bool = True) -> None:
        """Start the operator; with ``wait``, until it is healthy and its webhook published."""
        self.process = ChildProcess("operator", [str(KEEPVIP), "operator", "--log-format", "text"],
                                    self.log_path, env=self.env)  # fmt: skip
        self.process.start()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until the liveness endpoint answers and the webhook configuration is filled."""
        wait_until(self._healthy, timeout=60, what="operator liveness endpoint")
        wait_until(self._webhook_published, timeout=60, what="webhook configuration filled")

    @property
    def running(self) -> bool:
        """Whether the operator process is alive."""
        return self.process is not None and self.process.alive()

    def _healthy(self) -> bool:
        assert self.process is not None
        assert self.process.alive(), self.log_tail()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as reply:
            return bool(reply.status == 200)

    def _webhook_published(self) -> bool:
        found = self.objects.get("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration",
                                 self.webhook_name)
        return bool(found and found.get("webhooks"))

    def stop(self) -> None:
        """SIGTERM: kopf empties its webhook configuration and exits."""
        if self.process is not None:
            self.process.stop(grace=30)
        self.process = None

    def kill(self) -> None:
        """SIGKILL by pid: no clean-up of any kind."""
        assert self.process is not None
        self.process.signal(signal.SIGKILL)
        self.process.stop(grace=0)  # reaps it
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _kubeconfig(cluster: LocalCluster, token: str, path: Path, server: str | None = None) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "op",
        "clusters": [{"name": "local", "cluster": {
            "server": server or cluster.server_url, "certificate-authority": str(cluster.pki.ca_cert)}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "op", "context": {"cluster": "local", "user": "operator"}}],
    }))
    return path


@dataclass
class Env:
    """The running operator and what the tests need to talk about it."""

    operator: OperatorProcess
    namespace: str
    objects: Objects
    cluster: LocalCluster
    suite: str

    def vip(self, name: str, **spec: Any) -> dict[str, Any]:
        body = {"apiVersion": API, "kind": "VirtualIP",
                "metadata": {"name": name, "labels": {LABEL: self.suite}}, "spec": spec}
        return self.objects.create(body)

    def get(self, name: str) -> dict[str, Any] | None:
        return self.objects.get(API, "VirtualIP", name)

    def status(self, name: str) -> dict[str, Any]:
        return (self.get(name) or {}).get("status") or {}

    def ledger(self) -> dict[str, dict[str, Any]]:
        cm = self.objects.get("v1", "ConfigMap", "keepvip-allocations", self.namespace) or {}
        return {uid: yaml.safe_load(text) for uid, text in (cm.get("data") or {}).items()}

    def speaker_reports(self, name: str, **states: str) -> None:
        """Write status.nodes entries as each node's speaker does (own field manager)."""
        for node, state in states.items():
            node_name = node.replace("_", "-")
            self.objects.apply(
                {"apiVersion": API, "kind": "VirtualIP", "metadata": {"name": name},
                 "status": {"nodes": [{"node": node_name, "state": state, "priority": 100}]}},
                field_manager=f"keepvip-speaker-{node_name}", subresource="status")

    def events(self, name: str) -> list[dict[str, Any]]:
        return self.objects.list("v1", "Event", "default",
                                 field_selector=f"involvedObject.name={name},involvedObject.kind=VirtualIP")

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True,
                              env=self.cluster.kubectl_env(), timeout=60, check=False)

    def delete_all(self) -> None:
        for item in self.objects.list(API, "VirtualIP", label_selector=f"{LABEL}={self.suite}"):
            self.objects.delete(API, "VirtualIP", item["metadata"]["name"])


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


@pytest.fixture(scope="module")
def env(cluster: LocalCluster, objects: Objects, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with operator_env(cluster, objects, tmp_path_factory.mktemp("operator")) as running:
        yield running


@contextlib.contextmanager
def operator_env(
    cluster: LocalCluster, objects: Objects, work: Path, server: str | None = None
) -> Iterator[Env]:
    """The operator running with the contract's roles; everything it made removed afterwards.

    ``server``: the API server URL the operator dials (default the cluster's own), for a
    test that puts something between the two (test_operator_rides_out_api_server_restart).
    """
    suite = "s" + secrets.token_hex(3)  # a label value: '59e131' alone is a number to kubectl's YAML
    namespace = f"keepvip-op-{suite}"
    cluster.create_namespace(namespace)
    objects.apply(build_crd(), field_manager="keepvip-tests")
    wait_until(lambda: any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (objects.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "virtualips.keepvip.io")
                  or {}).get("status", {}).get("conditions", [])), what="VirtualIP CRD Established")
    objects.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "keepvip-operator"}},
                   namespace)
    role_name = f"keepvip-operator-{suite}"
    subject = [{"kind": "ServiceAccount", "name": "keepvip-operator", "namespace": namespace}]
    objects.create({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": role_name},
                    "rules": CLUSTER_RULES})
    objects.create({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": role_name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": role_name}, "subjects": subject})
    objects.create({"apiVersion": RBAC, "kind": "Role", "metadata": {"name": "keepvip-operator"},
                    "rules": NAMESPACE_RULES}, namespace)
    objects.create({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": "keepvip-operator"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": "keepvip-operator"}, "subjects": subject}, namespace)
    token = cluster.service_account_token(namespace, "keepvip-operator")
    webhook_port, health_port, webhook_name = free_port(), free_port(), f"vips-{suite}.keepvip.io"
    settings = {
        "namespace": namespace, "metricsPort": free_port(), "healthPort": health_port,
        "deploymentName": None, "resyncSeconds": 5, "finalizerTimeoutSeconds": 6,
        # no node carries this label: the DaemonSet is rendered and applied, no speaker pod starts
        "speaker": {"nodeSelector": {"keepvip.io/operator-test": "no-node"}},
        "webhook": {"port": webhook_port, "listenAddress": "127.0.0.1",
                    "url": f"https://127.0.0.1:{webhook_port}", "manageConfiguration": True,
                    "configurationName": webhook_name},
    }
    (work / "operator.yaml").write_text(yaml.safe_dump(settings))
    run_env = {**os.environ, "KUBECONFIG": str(_kubeconfig(cluster, token, work / "kubeconfig", server)),
               "KEEPVIP_OPERATOR_SETTINGS": str(work / "operator.yaml")}
    operator = OperatorProcess(run_env, work / "operator.log", health_port, webhook_name, objects)
    operator.start()
    env = Env(operator, namespace, objects, cluster, suite)
    try:
        yield env
    finally:
        try:
            if not operator.running:  # killed by a test, or exited: the finalizers need it
                operator.stop()
                operator.start()
            env.delete_all()
            wait_until(lambda: not objects.list(API, "VirtualIP", label_selector=f"{LABEL}={suite}"),
                       timeout=90, what="test VirtualIPs released and gone")
        finally:
            operator.stop()
            for item in objects.list(API, "VirtualIP", label_selector=f"{LABEL}={suite}"):
                objects.patch(API, "VirtualIP", item["metadata"]["name"], {"metadata": {"finalizers": None}})
            for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
                objects.delete("admissionregistration.k8s.io/v1", kind, webhook_name)
            objects.delete(RBAC, "ClusterRoleBinding", role_name)
            objects.delete(RBAC, "ClusterRole", role_name)
            objects.delete("v1", "Namespace", namespace)


def allocated(env: Env, name: str) -> dict[str, Any] | None:
    status = env.status(name)
    return status if status.get("vrid") and condition(status, "Allocated").get("status") == "True" else None


def test_a_new_virtualip_is_allocated_a_pair_recorded_in_status_and_in_the_ledger(env: Env) -> None:
    env.vip("alloc-one", addresses=["198.18.0.100/24"])
    status = wait_until(lambda: allocated(env, "alloc-one"), what="alloc-one allocated")
    vip = env.get("alloc-one") or {}
    assert status["state"] == "Pending"  # allocated, no speaker has reported yet
    assert status["multicastGroup"].startswith("224.0.0.")
    assert status["observedGeneration"] == vip["metadata"]["generation"]
    assert "keepvip.io/release-allocation" in vip["metadata"]["finalizers"]
    entry = env.ledger()[vip["metadata"]["uid"]]
    assert (entry["group"], entry["vrid"]) == (status["multicastGroup"], status["vrid"])
    assert entry["name"] == "alloc-one"
    wait_until(lambda: "Allocated" in [e["reason"] for e in env.events("alloc-one")], what="Allocated event")


def test_fifty_virtualips_get_fifty_distinct_pairs_stable_across_a_sigkill_midway(env: Env) -> None:
    names = [f"bulk-{i:02d}" for i in range(50)]
    env.operator.stop()  # gracefully: kopf empties its webhook configuration (fails open)
    try:
        for i, name in enumerate(names):
            env.vip(name, addresses=[f"198.18.1.{i + 1}/24"])
        uids = {n: (env.get(n) or {})["metadata"]["uid"] for n in names}
        ours = set(uids.values())

        def allocations() -> dict[str, tuple[str, int]]:
            """What the ledger, written before any status, holds for these 50 (one GET)."""
            return {entry["name"]: (entry["group"], entry["vrid"])
                    for uid, entry in env.ledger().items() if uid in ours}  # fmt: skip

        env.operator.start(wait=False)  # the operator allocates while it comes up
        wait_until(allocations, timeout=60, interval=0.01, what="the first allocations")
        env.operator.kill()
        before_kill = allocations()
        assert 0 < len(before_kill) < len(names), "the operator finished before it could be killed midway"
        env.operator.start()
        wait_until(lambda: all(allocated(env, n) for n in names), timeout=120, what="all 50 allocated")
        pairs = {n: (env.status(n)["multicastGroup"], env.status(n)["vrid"]) for n in names}
        assert len(set(pairs.values())) == 50
        assert {n: pairs[n] for n in before_kill} == before_kill  # nothing re-allocated after the kill
        ledger = env.ledger()
        assert {n: (ledger[uids[n]]["group"], ledger[uids[n]]["vrid"]) for n in names} == pairs

        env.operator.stop()
        env.operator.start()  # a plain restart (resume handlers) changes nothing either
        assert holds_for(
            lambda: {n: (env.status(n)["multicastGroup"], env.status(n)["vrid"]) for n in names} == pairs, 3
        )

        for name in names:
            env.objects.delete(API, "VirtualIP", name)
        wait_until(lambda: not ours & set(env.ledger()), timeout=90, what="pairs released")
    finally:
        if not env.operator.running:  # the next tests need their operator whatever happened here
            env.operator.start()


def names_field(field: str, message: str) -> bool:
    """Whether kubectl's message names the field, in any of the three spellings it comes in.

    The webhook says ``spec.healthChecks[0].tcp``; v1.20's schema validation drops list
    indices (``spec.healthChecks.tcp.port``); kubectl's client-side check of unknown
    fields says ``unknown field "prioirty" in io.keepvip.v1alpha1.VirtualIP.spec``.
    """
    parent, _, leaf = field.rpartition(".")
    return (field in message or re.sub(r"\[\d+\]", "", field) in message
            or (f'unknown field "{leaf}"' in message and f"VirtualIP.{parent}" in message))


@pytest.mark.parametrize("case", INVALID, ids=[c["name"] for c in INVALID])
def test_kubectl_apply_of_an_invalid_virtualip_is_refused_naming_the_field(
    env: Env, case: dict[str, Any]
) -> None:
    spec: dict[str, Any] = {"addresses": ["198.18.2.1/24"]}
    for key, value in case["spec"].items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    document = {"apiVersion": API, "kind": "VirtualIP",
                "metadata": {"name": f"bad-{case['name']}", "labels": {LABEL: env.suite}}, "spec": spec}
    result = env.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document))
    assert result.returncode != 0, result.stdout
    assert names_field(case["field"], result.stderr), result.stderr
    assert env.get(f"bad-{case['name']}") is None


WEBHOOK_ONLY = ["mixed-families", "duplicate-address", "ipv6-with-vrrpv2", "pass-auth-with-v3",
                "routed-multicast-group", "check-with-two-kinds", "node-priority-without-target"]


@pytest.mark.parametrize("name", WEBHOOK_ONLY)
def test_cross_field_rules_are_enforced_by_the_admission_webhook(env: Env, name: str) -> None:
    case = next(c for c in INVALID if c["name"] == name)
    spec = {"addresses": ["198.18.2.1/24"], **case["spec"]}
    document = {"apiVersion": API, "kind": "VirtualIP", "metadata": {"name": f"x-{name}"}, "spec": spec}
    result = env.kubectl("apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump(document))
    assert "denied the request" in result.stderr, result.stderr
    assert case["field"] in result.stderr


def test_cross_object_rules_are_refused_by_the_webhook(env: Env) -> None:
    env.vip("holder", addresses=["198.18.3.1/24"], vrrp={"vrid": 200, "multicastGroup": "224.0.0.240"})
    wait_until(lambda: allocated(env, "holder"), what="holder allocated")
    cases = {
        "spec.addresses[0]": {"addresses": ["198.18.3.1/32"]},
        "spec.vrrp.vrid": {"addresses": ["198.18.3.2/24"],
                           "vrrp": {"vrid": 200, "multicastGroup": "224.0.0.240"}},
        "spec.vrrp.authentication.secretRef": {"addresses": ["198.18.3.3/24"], "vrrp": {
            "version": 2, "authentication": {"type": "PASS", "secretRef": {
                "namespace": env.namespace, "name": "absent", "key": "password"}}}},
        "spec.serviceRef": {"addresses": ["198.18.3.4/24"],
                            "serviceRef": {"namespace": env.namespace, "name": "absent"}},
    }
    for field, spec in cases.items():
        document = {"apiVersion": API, "kind": "VirtualIP", "metadata": {"name": "contender"}, "spec": spec}
        result = env.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(document))
        assert "denied the request" in result.stderr, (field, result.stderr)
        assert field in result.stderr, (field, result.stderr)
    env.objects.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vrrp"},
                        "data": {"password": base64.b64encode(b"s3cret").decode()}}, env.namespace)
    auth = {"type": "PASS", "secretRef": {"namespace": env.namespace, "name": "vrrp", "key": "password"}}
    env.vip("with-secret", addresses=["198.18.3.5/24"], vrrp={"version": 2, "authentication": auth})
    wait_until(lambda: allocated(env, "with-secret"), what="VirtualIP with an existing Secret admitted")


def test_the_speaker_daemonset_is_applied_and_restored(env: Env) -> None:
    def daemonset() -> dict[str, Any] | None:
        return env.objects.get("apps/v1", "DaemonSet", "keepvip-speaker", env.namespace)

    ds = wait_until(daemonset, what="speaker DaemonSet")
    [container] = ds["spec"]["template"]["spec"]["containers"]
    assert ds["spec"]["template"]["spec"]["hostNetwork"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    assert container["command"][:4] == ["keepvip", "speaker", "--kubernetes", "--node"]
    managers = {f["manager"] for f in ds["metadata"]["managedFields"]}
    assert "keepvip-operator" in managers
    env.objects.delete("apps/v1", "DaemonSet", "keepvip-speaker", env.namespace)
    wait_until(lambda: (d := daemonset()) and d["metadata"]["uid"] != ds["metadata"]["uid"],
               timeout=30, what="DaemonSet re-applied after deletion")


def test_master_state_conditions_and_events_follow_the_speakers_reports(env: Env) -> None:
    env.vip("story", addresses=["198.18.4.1/24"])
    wait_until(lambda: allocated(env, "story"), what="story allocated")

    env.speaker_reports("story", node_a="MASTER", node_b="BACKUP")
    status = wait_until(lambda: (s := env.status("story")).get("state") == "Ready" and s, what="Ready")
    assert status["master"] == "node-a"
    assert condition(status, "Ready")["status"] == "True"
    assert {n["node"] for n in status["nodes"]} == {"node-a", "node-b"}  # the speakers' entries survive
    # The first master is told once it has held 0.25 s.
    wait_until(lambda: [e["message"] for e in env.events("story") if e["reason"] == "MasterChanged"]
               == ["(none) → node-a"], what="first master told")

    # A takeover as the API sees it: node-b's speaker reports first, then node-a's; a
    # moment of two masters shorter than status.settleSeconds (2 s) is no split brain.
    env.speaker_reports("story", node_b="MASTER")
    env.speaker_reports("story", node_a="BACKUP")
    wait_until(lambda: env.status("story").get("master") == "node-b", what="master moved")

    def told_once(*changes: str) -> bool:
        told = [(e["reason"], e["message"]) for e in env.events("story")]
        master_changes = [message for reason, message in told if reason == "MasterChanged"]
        return sorted(master_changes) == sorted(changes) and "SplitBrain" not in [r for r, _ in told]

    # Long enough for a transient to have been told, had it been: each change told once.
    assert holds_for(lambda: told_once("(none) → node-a", "node-a → node-b"), SETTLE + 1), env.events("story")
    # ... and back through a moment without master: one more change, told once.
    env.speaker_reports("story", node_b="BACKUP")
    env.speaker_reports("story", node_a="MASTER")
    wait_until(lambda: env.status("story").get("master") == "node-a", what="master moved back")
    assert holds_for(
        lambda: told_once("(none) → node-a", "node-a → node-b", "node-b → node-a"), SETTLE + 1
    ), env.events("story")
    env.speaker_reports("story", node_a="BACKUP")
    env.speaker_reports("story", node_b="MASTER")

    env.speaker_reports("story", node_a="MASTER")  # two masters that last: a split brain, told
    status = wait_until(lambda: (s := env.status("story")).get("state") == "SplitBrain" and s, what="split")
    assert condition(status, "SplitBrain")["status"] == "True"
    # status is patched first, then the events are posted
    wait_until(lambda: "SplitBrain" in [e["reason"] for e in env.events("story")], what="SplitBrain event")

    env.speaker_reports("story", node_a="FAULT")
    status = wait_until(lambda: (s := env.status("story")).get("state") == "Degraded" and s, what="degraded")
    assert condition(status, "Degraded")["reason"] == "NoBackup"

    described = env.kubectl("describe", "virtualip", "story")
    assert "MasterChanged" in described.stdout, described.stdout
    assert "node-a → node-b" in described.stdout


def test_a_master_entry_of_a_node_that_is_not_ready_is_stale_not_a_split_brain(env: Env) -> None:
    # A node cut off from the network cannot withdraw its MASTER entry; Kubernetes marks
    # it NotReady. This Node has no kubelet: it is never Ready.
    ghost = f"ghost-{env.suite}"
    env.objects.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": ghost}})
    try:
        env.vip("stale", addresses=["198.18.7.1/24"])
        wait_until(lambda: allocated(env, "stale"), what="stale allocated")
        env.speaker_reports("stale", node_a="MASTER", node_b="BACKUP", **{ghost: "MASTER"})
        status = wait_until(lambda: (s := env.status("stale")).get("state") == "Ready" and s, what="Ready")
        def master_and_state() -> tuple[str, str]:
            current = env.status("stale")
            return current["master"], current["state"]

        assert holds_for(lambda: master_and_state() == ("node-a", "Ready"), SETTLE + 1), env.status("stale")
        status = env.status("stale")
        assert f"{ghost}: last reported MASTER, node NotReady" in condition(status, "Ready")["message"]
        assert "SplitBrain" not in [e["reason"] for e in env.events("stale")]
    finally:
        env.objects.delete("v1", "Node", ghost)
    gone = f"{ghost}: last reported MASTER, no Node object"
    wait_until(lambda: gone in condition(env.status("stale"), "Ready").get("message", ""),
               what="the Node's deletion noticed")


def test_deletion_waits_for_the_master_to_let_go_then_releases_the_pair(env: Env) -> None:
    env.vip("leaving", addresses=["198.18.5.1/24"])
    wait_until(lambda: allocated(env, "leaving"), what="leaving allocated")
    uid = (env.get("leaving") or {})["metadata"]["uid"]
    env.speaker_reports("leaving", node_a="MASTER", node_b="BACKUP")
    wait_until(lambda: env.status("leaving").get("master") == "node-a", what="master reported")
    env.objects.delete(API, "VirtualIP", "leaving")
    # Held by the finalizer while node-a is MASTER.
    assert holds_for(lambda: env.get("leaving") is not None and uid in env.ledger(), 2)
    env.speaker_reports("leaving", node_a="BACKUP")  # the speaker stopped the router
    wait_until(lambda: env.get("leaving") is None, timeout=30, what="VirtualIP gone")
    assert uid not in env.ledger()


def _service_ingress(env: Env, name: str) -> list[str]:
    service = env.objects.get("v1", "Service", name, env.namespace) or {}
    entries = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [entry.get("ip") for entry in entries]


def test_service_ref_receives_the_addresses_and_loses_them_on_delete(env: Env) -> None:
    env.objects.create({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "ingress", "annotations": {"keepvip.io/virtualip": "published"}},
                        "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}, env.namespace)  # fmt: skip

    def ingress() -> list[str]:
        return _service_ingress(env, "ingress")

    env.vip("published", addresses=["198.18.6.1/24", "198.18.6.2/24"],
            serviceRef={"namespace": env.namespace, "name": "ingress"})
    wait_until(lambda: ingress() == ["198.18.6.1", "198.18.6.2"], what="addresses published")
    env.objects.delete(API, "VirtualIP", "published")
    wait_until(lambda: ingress() == [], timeout=30, what="addresses unpublished")


def test_service_ref_never_writes_to_a_service_that_did_not_opt_in(env: Env) -> None:
    env.objects.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "victim"},
                        "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}}, env.namespace)  # fmt: skip
    env.vip("deputy", addresses=["198.18.6.9/24"], serviceRef={"namespace": env.namespace, "name": "victim"})
    wait_until(lambda: any(e.get("reason") == "ServiceNotOptedIn" for e in env.events("deputy")),
               what="a ServiceNotOptedIn event")  # fmt: skip
    assert _service_ingress(env, "victim") == []

    def published() -> dict[str, Any]:
        vip = env.objects.get(API, "VirtualIP", "deputy") or {}
        conditions = (vip.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "ServicePublished"), {})

    wait_until(lambda: published().get("reason") == "ServiceNotOptedIn", what="ServicePublished False")
    refused = published()
    assert refused["status"] == "False", refused
    assert f"Service {env.namespace}/victim does not opt in" in refused["message"], refused
    assert "keepvip.io/virtualip: deputy" in refused["message"], refused
    # Still nothing written after the operator's retries; the refusal was told once.
    assert holds_for(lambda: _service_ingress(env, "victim") == [], 2 * SETTLE, interval=0.5)
    assert sum(e.get("reason") == "ServiceNotOptedIn" for e in env.events("deputy")) == 1

    # The Service's owner opts in: the condition clears and the address is published.
    opt_in = {"metadata": {"annotations": {"keepvip.io/virtualip": "deputy"}}}
    env.objects.patch("v1", "Service", "victim", opt_in, env.namespace)
    wait_until(lambda: published().get("status") == "True", timeout=60, what="ServicePublished True")
    assert published()["reason"] == "Published"
    assert _service_ingress(env, "victim") == ["198.18.6.9"]


def test_the_operator_never_hit_a_permission_it_was_not_granted(env: Env) -> None:
    log = env.operator.log_path.read_text(errors="replace")
    assert "Forbidden" not in log, env.operator.log_tail()
    assert " 403" not in log
