"""End to end: helm install keepvip, kubectl apply a VirtualIP, and the VIP moves.

The chart is installed by real helm; the operator and every speaker are run by the
process kubelet under the chart's own ServiceAccounts and roles; each node namespace
runs a web server naming its node (the ingress controller keepvip stands in front of);
the client namespace asks the VIP who answers. Nothing here talks to a speaker except
through the LAN, the Kubernetes API and the pods' logs.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keepvip.localcluster import LocalCluster, wait_until
from keepvip.localcluster.procs import children_of
from keepvip.localcluster.scenario import API_VERSION, WEB_PORT, KeepvipOnCluster

pytestmark = pytest.mark.cluster

NODES = ("node-a", "node-b", "node-c")


def virtualip_document(name: str, address: str, **extra: Any) -> dict[str, Any]:
    """node-a preferred (150), node-b next (120); web health check; gateway arbiter."""
    spec: dict[str, Any] = {
        "addresses": [f"{address}/24"],
        "nodePriorities": [
            {"nodeName": "node-a", "priority": 150},
            {"nodeName": "node-b", "priority": 120},
        ],
        "vrrp": {"advertisementInterval": "100ms"},
        "healthChecks": [
            {
                "name": "web",
                "tcp": {"port": WEB_PORT},
                "interval": "200ms",
                "timeout": "200ms",
                "rise": 2,
                "fall": 2,
                "weight": -60,
            }
        ],
        "arbiter": {"gateway": "auto", "interval": "200ms", "timeout": "150ms", "fall": 3, "rise": 3},
        **extra,
    }
    return {"apiVersion": API_VERSION, "kind": "VirtualIP", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def virtualip(keepvip: KeepvipOnCluster, cluster: LocalCluster) -> Iterator[Callable[[int], tuple[str, str]]]:
    """Apply a fresh VirtualIP on address number n; deleted (and its address gone) afterwards."""
    made: list[tuple[str, str]] = []

    def make(number: int) -> tuple[str, str]:
        name, address = f"e2e-{secrets.token_hex(3)}", str(cluster.vip(number))
        keepvip.apply(virtualip_document(name, address))
        made.append((name, address))
        return name, address

    yield make
    for name, address in made:
        keepvip.delete(name)
        wait_until(lambda a=address: not keepvip.holders(a), timeout=30, what=f"{address} released")
        wait_until(lambda n=name: keepvip.get(n) is None, timeout=40, what=f"{name} deleted")


def test_an_applied_virtualip_answers_from_the_preferred_node_within_2_seconds(
    keepvip: KeepvipOnCluster, virtualip: Callable[[int], tuple[str, str]]
) -> None:
    start = time.monotonic()
    name, address = virtualip(0)
    wait_until(lambda: keepvip.who_answers(address) == "node-a", timeout=30, what="node-a answering")
    took = time.monotonic() - start
    assert took <= 2.0, f"the VIP answered only after {took:.2f} s"
    status = wait_until(lambda: keepvip.status(name).get("master") and keepvip.status(name),
                        timeout=10, what="status.master")  # fmt: skip
    assert status["master"] == "node-a"
    assert 1 <= status["vrid"] <= 255
    assert keepvip.node_states(name) == {"node-a": "MASTER", "node-b": "BACKUP", "node-c": "BACKUP"}
    assert keepvip.holders(address) == ["node-a"]


def test_kubectl_get_vip_shows_address_master_and_state(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, virtualip: Callable[[int], tuple[str, str]]
) -> None:
    name, address = virtualip(1)
    wait_until(lambda: keepvip.status(name).get("state") == "Ready", timeout=15, what="state Ready")
    shown = subprocess.run(["kubectl", "get", "vip", name, "--no-headers"], env=cluster.kubectl_env(),
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert shown[:4] == [name, f"{address}/24", "node-a", "Ready"]


def test_a_failing_health_check_moves_the_vip_and_preemption_brings_it_back(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, virtualip: Callable[[int], tuple[str, str]]
) -> None:
    name, address = virtualip(2)
    keepvip.wait_for_answer(address, "node-a", timeout=30)
    keepvip.stop_web("node-a")
    try:
        keepvip.wait_for_answer(address, "node-b", timeout=10)
        wait_until(lambda: keepvip.status(name).get("master") == "node-b", timeout=10, what="master node-b")
    finally:
        keepvip.start_web("node-a")
    keepvip.wait_for_answer(address, "node-a", timeout=10)
    events = cluster.objects.list("v1", "Event", field_selector=f"involvedObject.name={name}")
    reasons = [e.get("reason") for e in events]
    assert reasons.count("MasterChanged") >= 2, reasons


def test_deleting_the_masters_speaker_pod_hands_over_with_priority_zero(
    keepvip: KeepvipOnCluster, virtualip: Callable[[int], tuple[str, str]]
) -> None:
    _, address = virtualip(3)
    keepvip.wait_for_answer(address, "node-a", timeout=30)
    old_pod = keepvip.delete_speaker_pod("node-a")
    keepvip.wait_for_answer(address, "node-b", timeout=10)
    assert "priority_zero_received" in keepvip.speaker_log("node-b")
    # The DaemonSet replaces the pod; the new speaker pre-empts back.
    wait_until(lambda: keepvip.running_speakers().get("node-a") not in (None, old_pod)
               and keepvip.speakers_ready(), timeout=60, what="a new ready speaker on node-a")  # fmt: skip
    keepvip.wait_for_answer(address, "node-a", timeout=15)


def test_an_oom_killed_speaker_process_leaves_no_vip_beside_the_new_master_while_the_kubelet_restarts_it(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, virtualip: Callable[[int], tuple[str, str]]
) -> None:
    # The OOM killer picks the VRRP process (the big one), not its small parent, the
    # container's PID 1 (keepvip.speaker.supervisor): the parent removes the VIPs at once,
    # sends the priority 0 the child kept ready (keepvip.speaker.net.handover) so node-b
    # takes over after Skew_Time, and exits 137; the kubelet restarts the container after
    # its back-off.
    name, address = virtualip(8)
    keepvip.wait_for_answer(address, "node-a", timeout=30)

    def told_priority_zero() -> int:
        return sum(name in line and "priority_zero_received" in line
                   for line in keepvip.speaker_log("node-b").splitlines())  # fmt: skip

    before = told_priority_zero()
    pod = keepvip.running_speakers()["node-a"]
    parent = cluster.kubelet.container_pid(keepvip.namespace, pod, "speaker")
    assert parent is not None
    (vrrp,) = children_of(parent)
    os.kill(vrrp, signal.SIGKILL)
    seen: list[list[str]] = []

    def node_b_alone() -> bool | None:
        seen.append(keepvip.holders(address))
        return seen[-1] == ["node-b"] or None

    wait_until(node_b_alone, timeout=15, interval=0.02, what="node-b the only holder")
    assert all(len(holders) <= 1 for holders in seen), seen  # never two nodes at once
    assert "the speaker process was killed by SIGKILL" in keepvip.speaker_log("node-a")
    # node-b took over on the parent's priority 0, not after a Master_Down_Interval's wait:
    wait_until(lambda: told_priority_zero() > before or None, timeout=5, what="node-b's MASTER line")
    assert told_priority_zero() == before + 1
    wait_until(lambda: _restarts(cluster, keepvip.namespace, pod) >= 1 and keepvip.speakers_ready(),
               timeout=60, what="the kubelet to restart node-a's speaker")  # fmt: skip
    keepvip.wait_for_answer(address, "node-a", timeout=15)


def _restarts(cluster: LocalCluster, namespace: str, pod: str) -> int:
    found = cluster.objects.get("v1", "Pod", pod, namespace)
    statuses = found.get("status", {}).get("containerStatuses", []) if found else []
    return sum(int(c.get("restartCount", 0)) for c in statuses)


def test_a_master_cut_off_the_lan_is_replaced_and_no_split_brain_remains_when_it_returns(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, virtualip: Callable[[int], tuple[str, str]]
) -> None:
    name, address = virtualip(4)
    keepvip.wait_for_answer(address, "node-a", timeout=30)
    with cluster.node_disconnected("node-a"):
        keepvip.wait_for_answer(address, "node-b", timeout=10)
        # node-a no longer hears node-b and cannot reach the gateway: FAULT, VIP released.
        wait_until(lambda: "node-a" not in keepvip.holders(address), timeout=10,
                   what="the isolated node-a to release the VIP")  # fmt: skip
    keepvip.wait_for_answer(address, "node-a", timeout=15)
    wait_until(lambda: keepvip.holders(address) == ["node-a"], timeout=10, what="a single holder")
    wait_until(lambda: keepvip.status(name).get("state") == "Ready", timeout=15, what="state Ready")


def test_sixty_seconds_without_the_api_server_move_no_vip(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, virtualip: Callable[[int], tuple[str, str]]
) -> None:
    _, address = virtualip(5)
    keepvip.wait_for_answer(address, "node-a", timeout=30)
    logs_before = {node: keepvip.speaker_log(node).count("MASTER:") for node in NODES}
    seen: set[tuple[str | None, tuple[str, ...]]] = set()
    with cluster.api_server_down():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen.add((keepvip.who_answers(address), tuple(keepvip.holders(address))))
            time.sleep(1)
    assert seen == {("node-a", ("node-a",))}
    logs_after = {node: keepvip.speaker_log(node).count("MASTER:") for node in NODES}
    assert logs_after == logs_before, "a speaker changed state while the API server was away"


def test_deleting_the_virtualip_removes_the_address_from_every_node(
    keepvip: KeepvipOnCluster, cluster: LocalCluster
) -> None:
    name, address = f"e2e-{secrets.token_hex(3)}", str(cluster.vip(6))
    keepvip.apply(virtualip_document(name, address))
    keepvip.wait_for_answer(address, "node-a", timeout=30)
    keepvip.delete(name)
    wait_until(lambda: keepvip.get(name) is None, timeout=40, what="the VirtualIP gone")
    wait_until(lambda: not keepvip.holders(address), timeout=10, what="the address gone from every node")
    assert keepvip.who_answers(address) is None


def test_changing_a_virtualip_moves_the_vip_without_restarting_any_speaker(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, virtualip: Callable[[int], tuple[str, str]]
) -> None:
    def speaker_pids() -> dict[str, int | None]:
        return {
            node: cluster.kubelet.container_pid(keepvip.namespace, pod, "speaker")
            for node, pod in keepvip.running_speakers().items()
        }

    before = speaker_pids()
    name, address = virtualip(7)
    keepvip.wait_for_answer(address, "node-a", timeout=30)
    document = virtualip_document(name, address)
    document["spec"]["nodePriorities"][1]["priority"] = 200  # node-b now outranks node-a
    keepvip.apply(document)
    keepvip.wait_for_answer(address, "node-b", timeout=10)
    assert speaker_pids() == before
    assert None not in before.values()
