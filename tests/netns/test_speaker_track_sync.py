"""Speakers on a namespace LAN: tracked interfaces and sync groups move the VIPs.

Each node gets a second interface, a dummy called ``uplink0`` (set down with ``ip link``,
like an uplink that lost its carrier), which the VirtualIP tracks as keepalived's
``track_interface`` does: without a weight its loss is a FAULT, with a weight it lowers
the priority. A sync group (keepalived ``vrrp_sync_group``) is two VirtualIPs, ``web``
and ``api``, that must stay on one node: a failing check on ``web`` moves both.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from lan import Lan
from speaker_harness import (
    VIP4,
    SpeakerSet,
    as_interface,
    virtualip,
    wait_for_master,
    web_check,
)

pytestmark = pytest.mark.timeout(60)

PRIORITIES = {"node1": 150, "node2": 140, "node3": 100}
UPLINK = "uplink0"
API_VIP = as_interface("198.18.0.101/24")


def add_uplinks(lan: Lan) -> None:
    """A dummy interface, up, in every node (it goes with the namespace)."""
    for host in lan.nodes:
        lan.run(host, "ip", "link", "add", UPLINK, "type", "dummy")
        lan.run(host, "ip", "link", "set", UPLINK, "up")


def set_uplink(lan: Lan, node: str, *, up: bool) -> None:
    lan.run(node, "ip", "link", "set", UPLINK, "up" if up else "down")


def tracking(document: dict[str, Any], *entries: dict[str, Any]) -> dict[str, Any]:
    document["spec"]["trackInterfaces"] = list(entries)
    return document


def in_group(document: dict[str, Any], group: str) -> dict[str, Any]:
    document["spec"]["syncGroup"] = group
    return document


def test_a_tracked_interface_without_weight_going_down_moves_the_vip_and_back(
    lan: Lan, speakers: SpeakerSet
) -> None:
    add_uplinks(lan)
    speakers.configure(tracking(virtualip("web", vrid=81, node_priorities=PRIORITIES), {"name": UPLINK}))
    speakers.start()
    wait_for_master(lan, VIP4, "node1")

    down_at = time.time()
    set_uplink(lan, "node1", up=False)

    wait_for_master(lan, VIP4, "node2", timeout=10)
    fault = speakers.became("node1", "FAULT", "web", since=down_at)
    assert fault is not None
    assert fault.reason == "fault_tracked_interface"
    takeover = speakers.became("node2", "MASTER", "web", since=down_at)
    assert takeover is not None
    assert takeover.reason == "priority_zero_received"  # node1 handed over with priority 0

    set_uplink(lan, "node1", up=True)  # FAULT clears; 150 > 140 pre-empts back
    wait_for_master(lan, VIP4, "node1", timeout=10)


def test_a_tracked_interface_with_a_negative_weight_lowers_the_priority_while_down(
    lan: Lan, speakers: SpeakerSet
) -> None:
    add_uplinks(lan)
    speakers.configure(
        tracking(virtualip("web", vrid=82, node_priorities=PRIORITIES), {"name": UPLINK, "weight": -20})
    )
    speakers.start()
    wait_for_master(lan, VIP4, "node1")

    down_at = time.time()
    set_uplink(lan, "node1", up=False)  # 150 - 20 = 130 < node2's 140

    wait_for_master(lan, VIP4, "node2", timeout=10)
    takeover = speakers.became("node2", "MASTER", "web", since=down_at)
    assert takeover is not None
    assert takeover.reason == "preempt"
    assert speakers.state("node1", "web") == "BACKUP"  # a weight is not a FAULT
    assert speakers.metrics("node1").gauge("keepvip_vrrp_effective_priority", virtualip="web") == 130

    set_uplink(lan, "node1", up=True)
    wait_for_master(lan, VIP4, "node1", timeout=10)
    assert speakers.metrics("node1").gauge("keepvip_vrrp_effective_priority", virtualip="web") == 150


def test_a_positive_weight_counts_while_up_and_a_missing_interface_is_down(
    lan: Lan, speakers: SpeakerSet
) -> None:
    # Only node3 has the uplink: +60 makes it 160, above node1's 150.
    lan.run("node3", "ip", "link", "add", UPLINK, "type", "dummy")
    lan.run("node3", "ip", "link", "set", UPLINK, "up")
    speakers.configure(
        tracking(virtualip("web", vrid=83, node_priorities=PRIORITIES), {"name": UPLINK, "weight": 60})
    )
    speakers.start()
    wait_for_master(lan, VIP4, "node3")
    assert speakers.metrics("node3").gauge("keepvip_vrrp_effective_priority", virtualip="web") == 160
    assert speakers.metrics("node1").gauge("keepvip_vrrp_effective_priority", virtualip="web") == 150

    set_uplink(lan, "node3", up=False)  # 100 again: node1 pre-empts
    wait_for_master(lan, VIP4, "node1", timeout=10)


def sync_pair(web_checks: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    web = in_group(virtualip("web", vrid=84, node_priorities=PRIORITIES, health_checks=web_checks), "edge")
    api = in_group(virtualip("api", vrid=85, addresses=[str(API_VIP)], node_priorities=PRIORITIES), "edge")
    return web, api


def test_a_sync_group_follows_a_member_into_fault(lan: Lan, speakers: SpeakerSet) -> None:
    speakers.configure(*sync_pair([web_check(weight=0)]))
    speakers.start()
    wait_for_master(lan, VIP4, "node1")
    wait_for_master(lan, API_VIP, "node1")

    stopped_at = time.time()
    speakers.stop_web("node1")  # web FAULT (weight 0), and api with it

    wait_for_master(lan, VIP4, "node2", timeout=10)
    wait_for_master(lan, API_VIP, "node2", timeout=10)
    api_fault = speakers.became("node1", "FAULT", "api", since=stopped_at)
    assert api_fault is not None
    assert api_fault.reason == "fault_sync_group"

    speakers.start_web("node1")  # both leave FAULT and pre-empt back
    wait_for_master(lan, VIP4, "node1", timeout=10)
    wait_for_master(lan, API_VIP, "node1", timeout=10)


def test_a_member_losing_master_by_weight_takes_the_group_with_it(lan: Lan, speakers: SpeakerSet) -> None:
    # keepalived zeroes tracking weights inside sync groups because a weight moves one
    # member only; keepvip shares the lost election instead, so the group still moves whole.
    speakers.configure(*sync_pair([web_check(weight=-20)]))
    speakers.start()
    wait_for_master(lan, VIP4, "node1")
    wait_for_master(lan, API_VIP, "node1")

    stopped_at = time.time()
    speakers.stop_web("node1")  # web: 130 < 140, node2 pre-empts web; api has no reason of its own

    wait_for_master(lan, VIP4, "node2", timeout=10)
    wait_for_master(lan, API_VIP, "node2", timeout=10)
    held = speakers.became("node1", "FAULT", "api", since=stopped_at)
    assert held is not None
    assert held.reason == "fault_sync_group"
    assert speakers.state("node1", "web") == "BACKUP"

    speakers.start_web("node1")  # web 150 again: node1 pre-empts web, then api is released
    wait_for_master(lan, VIP4, "node1", timeout=10)
    wait_for_master(lan, API_VIP, "node1", timeout=10)
    assert speakers.state("node2", "api") in ("BACKUP", "FAULT")
