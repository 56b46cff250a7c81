"""A speaker tells an address conflict as a Kubernetes Event on the VirtualIP (issue 10).

node-c already has the VirtualIP's address (on its loopback, so no other traffic of the
LAN depends on it). node-c's speaker must stay out of the election for that VirtualIP,
say so in its ``status.nodes`` entry, and write one Warning Event ``Conflict`` about the
VirtualIP (selected as ``kubectl describe`` selects, uid included) as ``keepvip-speaker``
/ ``node-c`` — under the chart's RBAC, which grants the speaker ``create``/``patch`` on
events in ``default`` and nothing more. node-a and node-b elect
as usual.
"""

from __future__ import annotations

import secrets
import subprocess
from typing import Any

import pytest

from keepvip.localcluster import LocalCluster, wait_until
from keepvip.localcluster.scenario import API_VERSION, KeepvipOnCluster
from keepvip.localcluster.waiting import holds_for

pytestmark = pytest.mark.cluster


def document(name: str, address: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": {
            "addresses": [f"{address}/24"],
            "nodePriorities": [
                {"nodeName": "node-a", "priority": 150},
                {"nodeName": "node-b", "priority": 120},
            ],
            "vrrp": {"advertisementInterval": "100ms"},
        },
    }


def conflict_events(keepvip: KeepvipOnCluster, name: str) -> list[dict[str, Any]]:
    events = keepvip.objects.list("events.k8s.io/v1", "Event", namespace="default")
    return [
        e for e in events if (e.get("regarding") or {}).get("name") == name and e.get("reason") == "Conflict"
    ]


def test_an_address_the_node_already_has_is_a_conflict_event_on_the_virtualip(
    keepvip: KeepvipOnCluster, cluster: LocalCluster
) -> None:
    address = str(cluster.vip(11))
    netns = cluster.nodes["node-c"].netns
    subprocess.run(["ip", "-n", netns, "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    name = f"conflict-{secrets.token_hex(3)}"
    try:
        keepvip.apply(document(name, address))
        expected = {"node-a": "MASTER", "node-b": "BACKUP", "node-c": "FAULT"}
        wait_until(lambda: keepvip.node_states(name) == expected, timeout=30, what=f"node states {expected}")
        entry = next(n for n in keepvip.status(name)["nodes"] if n["node"] == "node-c")
        assert entry["reason"] == "address_conflict", entry
        assert f"{address} is already an address of this node (lo)" in entry["conflict"], entry

        try:
            wait_until(lambda: conflict_events(keepvip, name), timeout=20, what="a Conflict Event")
        except TimeoutError:
            pytest.fail(f"no Conflict Event; node-c's log ends:\n{keepvip.speaker_log('node-c')[-4000:]}")
        [event] = conflict_events(keepvip, name)
        uid = (keepvip.get(name) or {})["metadata"]["uid"]
        assert event["regarding"] == {
            "apiVersion": API_VERSION,
            "kind": "VirtualIP",
            "name": name,
            "uid": uid,
        }
        assert (event["type"], event["reportingController"], event["reportingInstance"]) == (
            "Warning", "keepvip-speaker", "node-c",
        )  # fmt: skip
        assert f"node node-c: spec.addresses[0]: {address} is already an address" in event["note"]
        # Told once: the speaker retries the VirtualIP every few seconds, but the story is the same.
        assert holds_for(lambda: len(conflict_events(keepvip, name)) == 1, 8.0, interval=0.5)
        log = keepvip.speaker_log("node-c")
        assert "cannot write the Conflict Event" not in log
        assert "Forbidden" not in log
    finally:
        keepvip.delete(name)
        wait_until(lambda: keepvip.get(name) is None, timeout=40, what=f"{name} deleted")
        subprocess.run(["ip", "-n", netns, "addr", "del", f"{address}/32", "dev", "lo"], check=False)
