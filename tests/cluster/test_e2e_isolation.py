"""One node cannot run a VirtualIP: the others elect and serve (issues 9 and 10).

node-a and node-b get a second LAN between them, ``lan1`` (a veth pair); node-c has no
such interface. A VirtualIP on ``lan1`` must run on node-a and node-b as usual, while
node-c's speaker fails only that VirtualIP: its ``status.nodes`` entry shows FAULT with
the reason and a message naming the field, its log has no traceback, and it keeps
serving every other VirtualIP. The same for a node that already has the VirtualIP's
address (issue 10): it stays out of the election, and says so with an Event too. Nothing
here talks to a speaker except through a LAN, the Kubernetes API and the pods' logs.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from keepvip.localcluster import LocalCluster, wait_until
from keepvip.localcluster.lan import netns_addresses
from keepvip.localcluster.scenario import API_VERSION, WEB_PORT, KeepvipOnCluster
from keepvip.localcluster.waiting import holds_for

pytestmark = pytest.mark.cluster

LAN1 = "lan1"
LAN1_HOSTS = {"node-a": "198.18.251.1/24", "node-b": "198.18.251.2/24"}
LAN1_VIP = "198.18.251.100"


@pytest.fixture
def second_lan(cluster: LocalCluster) -> Iterator[None]:
    """``lan1``: a veth pair between node-a and node-b only, removed afterwards."""
    a, b = (cluster.nodes[node].netns for node in LAN1_HOSTS)
    subprocess.run(["ip", "link", "add", LAN1, "netns", a, "type", "veth", "peer", "name", LAN1, "netns", b],
                   check=True)  # fmt: skip
    try:
        for node, address in LAN1_HOSTS.items():
            netns = cluster.nodes[node].netns
            subprocess.run(["ip", "-n", netns, "addr", "add", address, "dev", LAN1], check=True)
            subprocess.run(["ip", "-n", netns, "link", "set", LAN1, "up"], check=True)
        yield
    finally:
        subprocess.run(["ip", "-n", a, "link", "del", LAN1], check=False)  # removes both ends


def document(name: str, address: str, **spec: Any) -> dict[str, Any]:
    """node-a preferred (150), node-b next (120), node-c the default priority."""
    return {
        "apiVersion": API_VERSION,
        "kind": "VirtualIP",
        "metadata": {"name": name},
        "spec": {
            "addresses": [f"{address}/24"],
            **spec,
            "nodePriorities": [
                {"nodeName": "node-a", "priority": 150},
                {"nodeName": "node-b", "priority": 120},
            ],
            "vrrp": {"advertisementInterval": "100ms"},
        },
    }


def answer_from(cluster: LocalCluster, node: str, address: str) -> str:
    """Who answers ``address``'s web port when asked from inside ``node`` ('-' for nobody)."""
    ask = (
        "import socket, sys\n"
        "try:\n"
        "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)\n"
        "    s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); data = b''\n"
        "    while chunk := s.recv(4096): data += chunk\n"
        "    print(data.split(b'\\r\\n\\r\\n', 1)[1].decode().strip())\n"
        "except (OSError, IndexError):\n"
        "    print('-')\n"
    )
    return cluster.exec_in_node(node, [sys.executable, "-c", ask, address, str(WEB_PORT)]).stdout.strip()


def test_a_node_without_the_named_interface_reports_fault_while_the_others_elect_and_serve(
    keepvip: KeepvipOnCluster, cluster: LocalCluster, second_lan: None
) -> None:
    other, other_address = f"iso-{secrets.token_hex(3)}", str(cluster.vip(9))
    keepvip.apply(document(other, other_address))  # a VirtualIP every node can run
    keepvip.wait_for_answer(other_address, "node-a", timeout=30)
    name = f"iso-{secrets.token_hex(3)}"
    keepvip.apply(document(name, LAN1_VIP, interface=LAN1))
    try:
        expected = {"node-a": "MASTER", "node-b": "BACKUP", "node-c": "FAULT"}
        wait_until(lambda: keepvip.node_states(name) == expected, timeout=30,
                   what=f"node states {expected}")  # fmt: skip
        entry = next(n for n in keepvip.status(name)["nodes"] if n["node"] == "node-c")
        assert entry["reason"] == "interface_not_found", entry
        assert "spec.interface: no interface named 'lan1'" in entry["message"], entry

        assert LAN1_VIP in {str(a.ip) for a in netns_addresses(cluster.nodes["node-a"].netns, LAN1)}
        wait_until(lambda: answer_from(cluster, "node-b", LAN1_VIP) == "node-a", timeout=10,
                   what="node-a serving the VIP on lan1")  # fmt: skip

        # node-c keeps running everything else, and logged no traceback.
        assert keepvip.node_states(other)["node-c"] == "BACKUP"
        assert keepvip.who_answers(other_address) == "node-a"
        assert "Traceback" not in keepvip.speaker_log("node-c")
        assert keepvip.speakers_ready()
    finally:
        for made in (name, other):
            keepvip.delete(made)
            wait_until(lambda m=made: keepvip.get(m) is None, timeout=40, what=f"{made} deleted")


# -- a conflicting address: an Event on the VirtualIP (issue 10) ---------------------------
# node-c already has the VirtualIP's address (on its loopback, so no other traffic of the LAN
# depends on it). node-c's speaker must stay out of the election for that VirtualIP, say so in
# its status.nodes entry, and write one Warning Event ``Conflict`` about the VirtualIP
# (selected as ``kubectl describe`` selects, uid included) as keepvip-speaker / node-c — under
# the chart's RBAC, which grants the speaker create/patch on events in ``default`` only.
# node-a and node-b elect as usual.


def conflict_events(keepvip: KeepvipOnCluster, name: str) -> list[dict[str, Any]]:
    """The Conflict Events ``kubectl describe vip NAME`` shows (selected by involvedObject, uid included)."""
    uid = (keepvip.get(name) or {})["metadata"]["uid"]
    selector = f"involvedObject.kind=VirtualIP,involvedObject.name={name},involvedObject.uid={uid}"
    events = keepvip.objects.list("v1", "Event", namespace="default", field_selector=selector)
    return [e for e in events if e.get("reason") == "Conflict"]


def test_an_address_the_node_already_has_is_a_conflict_with_an_event_while_the_others_elect(
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
        assert (event["type"], event["reportingComponent"], event["reportingInstance"]) == (
            "Warning", "keepvip-speaker", "node-c",
        )  # fmt: skip
        assert event["source"] == {"component": "keepvip-speaker", "host": "node-c"}
        assert f"node node-c: spec.addresses[0]: {address} is already an address" in event["message"]
        # Told once: the speaker retries the VirtualIP every few seconds, but the story is the same.
        assert holds_for(lambda: len(conflict_events(keepvip, name)) == 1, 8.0, interval=0.5)
        log = keepvip.speaker_log("node-c")
        assert "cannot write the Conflict Event" not in log
        assert "Forbidden" not in log
    finally:
        keepvip.delete(name)
        wait_until(lambda: keepvip.get(name) is None, timeout=40, what=f"{name} deleted")
        subprocess.run(["ip", "-n", netns, "addr", "del", f"{address}/32", "dev", "lo"], check=False)
