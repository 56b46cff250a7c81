"""Speakers on a namespace LAN: tracked interfaces and sync groups move the VIPs.

Each node gets a second interface, ``uplink0`` (one end of a veth pair whose other end
stays in the node: this kernel has no dummy driver), set down with ``ip link`` like an
uplink that failed, which the VirtualIP tracks as keepalived's
``track_interface`` does: without a weight its loss is a FAULT, with a weight it lowers
the priority. A sync group (keepalived ``vrrp_sync_group``) is two VirtualIPs, ``web``
and ``api``, that must stay on one node: a failing check on ``web`` moves both.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from speaker_harness import (
    VIP4,
    SpeakerSet,
    as_interface,
    stays_master,
    virtualip,
    wait_for_master,
    web_check,
)

from keepvip.localcluster.lan import Lan

pytestmark = pytest.mark.timeout(60)

PRIORITIES = {"node1": 150, "node2": 140, "node3": 100}
UPLINK = "uplink0"
API_VIP = as_interface("198.18.0.101/24")


def add_uplink(lan: Lan, node: str) -> None:
    """``uplink0`` and its veth peer, both up, in ``node`` (they go with the namespace)."""
    lan.run(node, "ip", "link", "add", UPLINK, "type", "veth", "peer", "name", f"{UPLINK}p")
    lan.run(node, "ip", "link", "set", f"{UPLINK}p", "up")
    lan.run(node, "ip", "link", "set", UPLINK, "up")


def add_uplinks(lan: Lan) -> None:
    for host in lan.nodes:
        add_uplink(lan, host.name)


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
    add_uplink(lan, "node3")
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


def test_a_member_losing_master_takes_the_group_with_it_and_nobody_preempts_back_for_half(
    lan: Lan, speakers: SpeakerSet
) -> None:
    # api prefers node2 (160 > 150), web prefers node1 (150 > 140): without the group, web
    # would stay on node1 and api move to node2. With it, node1's api losing MASTER makes
    # node1's web step down, and node1 does not pre-empt web back while its api is a backup.
    web = in_group(virtualip("web", vrid=86, node_priorities=PRIORITIES), "edge")
    api = in_group(
        virtualip("api", vrid=87, addresses=[str(API_VIP)], node_priorities={**PRIORITIES, "node2": 160}),
        "edge",
    )
    speakers.configure(web, api)
    speakers.start("node1")
    wait_for_master(lan, VIP4, "node1")
    wait_for_master(lan, API_VIP, "node1")

    joined_at = time.time()
    speakers.start("node2")

    wait_for_master(lan, API_VIP, "node2", timeout=10)
    wait_for_master(lan, VIP4, "node2", timeout=10)
    stepped_down = speakers.became("node1", "BACKUP", "web", since=joined_at)
    assert stepped_down is not None
    assert stepped_down.reason == "sync_group_backup"
    assert stays_master(lan, VIP4, "node2", 2.0)  # node1 (150 > 140) does not pre-empt web back
    assert speakers.state("node1", "web") == "BACKUP"  # held out of MASTER, still a backup

    speakers.terminate("node2")  # the group's master leaves (priority 0): node1 takes both
    wait_for_master(lan, API_VIP, "node1", timeout=10)
    wait_for_master(lan, VIP4, "node1", timeout=10)


def test_tracking_and_the_sync_group_follow_a_reloaded_file_in_place(lan: Lan, speakers: SpeakerSet) -> None:
    add_uplinks(lan)
    set_uplink(lan, "node1", up=False)  # not tracked yet: nothing happens
    web = virtualip("web", vrid=88, node_priorities=PRIORITIES)
    api = virtualip("api", vrid=89, addresses=[str(API_VIP)], node_priorities=PRIORITIES)
    speakers.configure(web, api)
    speakers.start()
    wait_for_master(lan, VIP4, "node1")
    wait_for_master(lan, API_VIP, "node1")

    edited_at = time.time()
    speakers.configure(tracking(in_group(web, "edge"), {"name": UPLINK}), in_group(api, "edge"))
    wait_for_master(lan, VIP4, "node2", timeout=10)  # node1's uplink is down: web FAULT, api with it
    wait_for_master(lan, API_VIP, "node2", timeout=10)
    assert speakers.messages("node1", "reconfigured in place", since=edited_at)
    assert not speakers.became("node1", "INITIALIZE", "web", since=edited_at)  # no restart

    speakers.configure(virtualip("web", vrid=88, node_priorities=PRIORITIES), in_group(api, "edge"))
    wait_for_master(lan, VIP4, "node1", timeout=10)  # no longer tracked: the fault clears
    wait_for_master(lan, API_VIP, "node1", timeout=10)
